#!/usr/bin/env node
// Each command's implementation is imported inside its action: `--help`
// and `pull` must not pay for what only `serve` uses (lmdb, FUSE,
// prom-client) or only the registry needs (undici).
import { Command, Option } from 'commander';
import { setFlagsFromString } from 'node:v8';
import { DEFAULT_CONFIG, LOG_FORMATS, LOG_LEVELS } from '../config/index.js';
import { detachOneArrayBuffer } from '../layer/detach-protector.js';
import { runToCompletion } from './run-to-completion.js';
import { packageVersion } from './version.js';

// undici parses HTTP with llhttp, a WebAssembly module. V8 compiles it with
// Liftoff at once and then again with TurboFan on a background thread; that
// second compile costs some 200 ms of CPU in every process on its first
// request (measured: 570 ms against 340 ms for one request from a fresh
// process). The daemon, its FUSE manager and `pull` all pay it exactly
// while a container starts, and on a small node that CPU is the
// container's. Liftoff's code is fast enough for response headers; bodies
// with a Content-Length are passed through without being scanned.
setFlagsFromString('--liftoff-only');
// See detach-protector.ts: the daemon and the FUSE manager hand TOCs to a
// worker thread by transfer, and the first transfer would throw away the
// code V8 optimised before it.
detachOneArrayBuffer();

const program = new Command();
program.name('lazysnap').description('containerd remote snapshotter for lazily pulled eStargz images').version(packageVersion());

program
  .command('serve')
  .description('serve the containerd Snapshots API on a unix socket (the snapshotter daemon)')
  .option('--address <sock>', `unix socket to serve on (default ${DEFAULT_CONFIG.address})`)
  .option('--root <dir>', `state directory (default ${DEFAULT_CONFIG.root})`)
  .option('--config <file>', 'TOML config file (default /etc/lazysnap/config.toml if present)')
  .addOption(new Option('--log-level <level>', `log level (default ${DEFAULT_CONFIG.logLevel})`).choices(LOG_LEVELS as string[]))
  .addOption(new Option('--log-format <format>', 'log line format: text when stderr is a terminal, else JSON (default auto)').choices(LOG_FORMATS as string[]))
  .option('--metrics-address <host:port>', 'serve Prometheus metrics on this address')
  .option('--fuse-manager', 'serve the FUSE mounts from a separate process that outlives the daemon (default; [fuse_manager] enable)')
  .option('--no-fuse-manager', 'serve the FUSE mounts from the daemon itself: they end when it does')
  .action(async (flags) => {
    await runToCompletion('serve', async () => (await import('./serve.js')).serve(flags));
  });

program
  .command('fuse-manager')
  .description("serve the FUSE mounts of lazy layers for the daemon, from a process that outlives it (the daemon starts one when none runs)")
  .option('--root <dir>', `state directory, the daemon's (default ${DEFAULT_CONFIG.root})`)
  .option('--config <file>', 'TOML config file, the daemon\'s (default /etc/lazysnap/config.toml if present)')
  .addOption(new Option('--log-level <level>', `log level (default ${DEFAULT_CONFIG.logLevel})`).choices(LOG_LEVELS as string[]))
  .addOption(new Option('--log-format <format>', 'log line format: text when stderr is a terminal, else JSON (default auto)').choices(LOG_FORMATS as string[]))
  .action(async (flags) => {
    await runToCompletion('fuse-manager', async () => (await import('./fuse-manager.js')).fuseManager(flags));
  });

program
  .command('status')
  .description("show what the running daemon serves: snapshots, remote layers and how much of each is fetched, FUSE mounts, caches, registry errors")
  .option('--address <sock>', `the daemon's socket, as given to serve (default ${DEFAULT_CONFIG.address}); the admin socket is <sock>.admin`)
  .option('--config <file>', "serve's TOML config file, for its address (default /etc/lazysnap/config.toml if present)")
  .option('--json', 'print the status as JSON, for scripts')
  .action(async (flags) => {
    await runToCompletion('status', async () => (await import('./status.js')).status(flags));
  });

program
  .command('pull')
  .description('pull an image through containerd; with --remote-snapshot, layers lazysnap can serve lazily are not downloaded')
  .argument('<ref>', 'image reference, e.g. registry.example.com/app:1.0')
  .option('--remote-snapshot', 'ask the snapshotter to serve layers remotely (eStargz) and skip their download')
  .option('--snapshotter <name>', 'containerd snapshotter to unpack into', 'lazysnap')
  .option('--plain-http', 'use plain HTTP for this registry (automatic for localhost and 127.0.0.1)')
  .option('--config <file>', 'TOML config file; its [registry] section applies (default /etc/lazysnap/config.toml if present)')
  .option('--hosts-dir <dir>', 'registry host configuration directory, HOST/hosts.toml (default [registry] config_path)')
  .option('--platform <os/arch[/variant]>', 'platform to pull from a multi-platform index (default linux/amd64)')
  .option('--namespace <ns>', 'containerd namespace', 'default')
  .option('--address <sock>', "containerd's socket", '/run/containerd/containerd.sock')
  .option('-q, --quiet', 'no progress output')
  .option('--no-daemon', 'with --remote-snapshot: pull in this process, not in the lazysnap daemon behind --snapshotter')
  .addOption(new Option('--log-level <level>', 'log level').choices(LOG_LEVELS as string[]).default('warn'))
  .action(async (ref: string, flags) => {
    await runToCompletion('pull', async () => (await import('./pull.js')).pull(ref, flags));
  });

program
  .command('convert')
  .description('convert an image in a registry to eStargz (lazily pullable) and push it')
  .argument('<source>', 'image to convert')
  .argument('<destination>', 'where to push the eStargz image')
  .option('--plain-http', 'use plain HTTP for these registries (automatic for localhost and 127.0.0.1)')
  .option('--config <file>', 'TOML config file; its [registry] section applies (default /etc/lazysnap/config.toml if present)')
  .option('--hosts-dir <dir>', 'registry host configuration directory, HOST/hosts.toml (default [registry] config_path)')
  .option('--prioritized-files <file>', 'file listing paths (one per line) to put first, so they are prefetched')
  .option('--chunk-size <bytes>', 'uncompressed bytes per chunk of large files (default 4194304)')
  .option('--compression-level <0-9>', 'gzip level (default 9)')
  .option('--platform <os/arch[/variant]>', 'platform to convert from a multi-platform index (default linux/amd64)')
  .addOption(new Option('--log-level <level>', 'log level').choices(LOG_LEVELS as string[]).default('warn'))
  .action(async (source: string, destination: string, flags) => {
    await runToCompletion('convert', async () => (await import('./convert.js')).convert(source, destination, flags));
  });

program.parseAsync(process.argv).catch((err: unknown) => {
  process.stderr.write(`lazysnap: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
