#!/usr/bin/env node
import { Command, Option } from 'commander';
import { DEFAULT_CONFIG, LOG_LEVELS } from '../config/index.js';
import { serve } from './serve.js';

const program = new Command();
program.name('lazysnap').description('containerd remote snapshotter for lazily pulled eStargz images').version('0.1.0');

program
  .command('serve')
  .description('serve the containerd Snapshots API on a unix socket (the snapshotter daemon)')
  .option('--address <sock>', `unix socket to serve on (default ${DEFAULT_CONFIG.address})`)
  .option('--root <dir>', `state directory (default ${DEFAULT_CONFIG.root})`)
  .option('--config <file>', 'TOML config file (default /etc/lazysnap/config.toml if present)')
  .addOption(new Option('--log-level <level>', `log level (default ${DEFAULT_CONFIG.logLevel})`).choices(LOG_LEVELS as string[]))
  .option('--metrics-address <host:port>', 'serve Prometheus metrics on this address')
  .action(async (flags) => {
    await serve(flags);
  });

program.parseAsync(process.argv).catch((err: unknown) => {
  process.stderr.write(`lazysnap: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
