// Lazy layers through the real daemon (no containerd in the way): time to
// open and mount a layer, cold and warm read throughput of a large file
// through FUSE next to the same file in an unpacked directory, and bytes
// fetched from the registry per byte read for a small-file workload.
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { REMOTE_SNAPSHOT_DIGEST, REMOTE_SNAPSHOT_REF } from '../../src/containerd/labels.js';
import { RegistryClient } from '../../src/registry/index.js';
import { startDaemon } from '../harness/daemon.js';
import { buildImage, pushImage } from '../harness/image.js';
import { lazysnapCli } from '../harness/lazysnap-cli.js';
import { startRegistry } from '../harness/registry.js';
import { bytesServed } from '../harness/registry-log.js';
import { makeTempDir, removeTree } from '../harness/process.js';
import { round, table } from './stats.js';

const BIG_FILE_MIB = Number(process.env.LAZYSNAP_BENCH_BIG_MIB ?? 256);

function dropCaches(): void {
  execFileSync('sync');
  writeFileSync('/proc/sys/vm/drop_caches', '3');
}

/** Seconds to read a file with dd from a separate process (the daemon serves FUSE). */
function timedRead(path: string): number {
  const t = process.hrtime.bigint();
  execFileSync('dd', [`if=${path}`, 'of=/dev/null', 'bs=1M'], { stdio: 'ignore' });
  return Number(process.hrtime.bigint() - t) / 1e9;
}

function smallFiles(dir: string, count: number): string[] {
  return readdirSync(dir).filter((n) => n.endsWith('.py') && statSync(join(dir, n)).size < 64 * 1024).sort().slice(0, count);
}

export async function benchLazyLayer(): Promise<{ text: string; results: Record<string, number> }> {
  const work = makeTempDir('bench-layer');
  const registry = await startRegistry(work);
  const client = new RegistryClient();
  try {
    // One big layer of incompressible data plus Python's standard library.
    const tree = join(work, 'tree');
    mkdirSync(join(tree, 'data'), { recursive: true });
    execFileSync('/bin/sh', ['-c', `head -c ${BIG_FILE_MIB * 1024 * 1024} /dev/urandom > ${join(tree, 'data', 'big.bin')}`]);
    execFileSync('cp', ['-a', '/usr/lib/python3.11', join(tree, 'python3.11')]);
    const image = buildImage(join(work, 'oci'), 'v1', [{ dir: tree }]);
    const plainRef = pushImage(image, registry.host, 'bench/layer:plain');
    const esgzRef = `${registry.host}/bench/layer:esgz`;
    await lazysnapCli(['convert', '--compression-level', '1', plainRef, esgzRef]);
    const layer = (await client.resolve(esgzRef)).manifest.layers[0]!;

    const config = join(work, 'lazysnap.toml');
    writeFileSync(config, '[remote]\nprefetch = false\nbackground_fetch = false\n');
    const daemon = await startDaemon(join(work, 'daemon'), ['--config', config, '--log-level', 'warn'], { fuseManager: true });
    try {
      const logBefore = bytesServed(registry.readLog()).get(layer.digest) ?? 0;
      const t0 = process.hrtime.bigint();
      const mounts = await daemon.client.prepare('bench-layer', '', { [REMOTE_SNAPSHOT_REF]: esgzRef, [REMOTE_SNAPSHOT_DIGEST]: layer.digest });
      const openMountMs = Number(process.hrtime.bigint() - t0) / 1e6;
      const mnt = mounts[0]!.source;

      // Small-file workload: bytes fetched per byte read.
      const names = smallFiles(join(tree, 'python3.11'), 50);
      let smallBytes = 0;
      for (const name of names) {
        smallBytes += statSync(join(mnt, 'python3.11', name)).size;
        execFileSync('cat', [join(mnt, 'python3.11', name)], { stdio: 'ignore' });
      }
      await new Promise((r) => setTimeout(r, 1500));
      const afterSmall = bytesServed(registry.readLog()).get(layer.digest) ?? 0;
      const fetchedForSmall = afterSmall - logBefore;

      // Large file: cold (network), warm (our chunk cache, page cache dropped), unpacked directory.
      dropCaches();
      const cold = timedRead(join(mnt, 'data', 'big.bin'));
      dropCaches();
      const warm = timedRead(join(mnt, 'data', 'big.bin'));
      dropCaches();
      const local = timedRead(join(tree, 'data', 'big.bin'));
      const mib = BIG_FILE_MIB;
      const results = {
        layerCompressedMiB: round(layer.size / 1048576, 1),
        openAndMountMs: round(openMountMs, 1),
        smallFilesRead: names.length,
        smallBytesRead: smallBytes,
        smallBytesFetched: fetchedForSmall,
        fetchedPerByteRead: round(fetchedForSmall / smallBytes, 2),
        fractionOfLayerFetched: round(fetchedForSmall / layer.size, 4),
        coldMiBps: round(mib / cold, 1),
        warmMiBps: round(mib / warm, 1),
        unpackedMiBps: round(mib / local, 1),
      };
      const text = [
        `Lazy layer (${results.layerCompressedMiB} MiB eStargz blob: ${mib} MiB random file + Python stdlib; registry on loopback)`,
        table(['figure', 'value'], [
          ['open + FUSE mount (Prepare, cold: footer + TOC fetched and verified)', `${results.openAndMountMs} ms`],
          [`read ${mib} MiB file, cold (fetched from registry)`, `${results.coldMiBps} MiB/s`],
          [`read ${mib} MiB file, warm (lazysnap chunk cache, page cache dropped)`, `${results.warmMiBps} MiB/s`],
          [`read ${mib} MiB file from an unpacked directory (page cache dropped)`, `${results.unpackedMiBps} MiB/s`],
          ['cold / unpacked throughput', round(results.coldMiBps / results.unpackedMiBps, 2)],
          ['warm / unpacked throughput', round(results.warmMiBps / results.unpackedMiBps, 2)],
          [`small-file workload: ${names.length} files, ${smallBytes} bytes read`, `${fetchedForSmall} bytes fetched`],
          ['bytes fetched per byte read (small files)', results.fetchedPerByteRead],
          ['fraction of the layer fetched for them', results.fractionOfLayerFetched],
        ]),
      ].join('\n');
      await daemon.client.remove('bench-layer');
      return { text, results };
    } finally {
      await daemon.stopWithFuseManager();
    }
  } finally {
    await client.close();
    await registry.stop();
    removeTree(work);
  }
}
