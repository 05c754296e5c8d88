/** `lazysnap convert SRC DST`: converts an image to eStargz and pushes it. */
import { readFile } from 'node:fs/promises';
import pino from 'pino';
import { convertImage } from '../convert/index.js';
import { DEFAULT_TOC_LIMITS } from '../estargz/index.js';
import { loadConfigWithSource } from '../config/index.js';
import { DockerConfigCredentials, RegistryClient, parsePlatform } from '../registry/index.js';
import { parseIntegerOption } from './numeric-option.js';
import { hostsDirFlag } from './registry-host-flag.js';
import { registryOptions } from './registry-options.js';

export interface ConvertFlags {
  plainHttp?: boolean;
  prioritizedFiles?: string;
  chunkSize?: string;
  compressionLevel?: string;
  platform?: string;
  logLevel: string;
  /** Same file as `serve` reads; its [registry] section applies. */
  config?: string;
  /** Overrides [registry] config_path, as `ctr --hosts-dir`. */
  hostsDir?: string;
}

export async function convert(source: string, destination: string, flags: ConvertFlags): Promise<void> {
  // Every option is checked before anything is read or pushed.
  // lazysnap's own reader refuses chunks larger than its TOC limit: a bigger one would make a layer that cannot be lazy.
  const chunkSize = flags.chunkSize === undefined ? undefined : parseIntegerOption('--chunk-size', flags.chunkSize, 1, DEFAULT_TOC_LIMITS.maxChunkSize);
  const compressionLevel = flags.compressionLevel === undefined ? undefined : parseIntegerOption('--compression-level', flags.compressionLevel, 0, 9);
  const platform = flags.platform === undefined ? undefined : parsePlatform(flags.platform);
  const { config } = await loadConfigWithSource(flags.config, { registry: { configPath: hostsDirFlag(flags.hostsDir) } });
  const prioritizedFiles = flags.prioritizedFiles
    ? (await readFile(flags.prioritizedFiles, 'utf8')).split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'))
    : [];
  const logger = pino({ level: flags.logLevel, base: { command: 'convert' } }, pino.destination(2));
  const hosts = [source, destination].map((r) => r.split('/')[0] ?? '');
  const registry = new RegistryClient({
    ...registryOptions(config, logger, flags.plainHttp ? hosts : []),
    ...(platform ? { platform } : {}),
    credentials: new DockerConfigCredentials({ onWarning: (message: string) => logger.warn(message) }),
    logger,
  });
  const started = Date.now();
  try {
    const result = await convertImage(
      {
        source,
        destination,
        prioritizedFiles,
        ...(chunkSize !== undefined ? { chunkSize } : {}),
        ...(compressionLevel !== undefined ? { compressionLevel } : {}),
        ...(flags.platform ? { platform: flags.platform } : {}),
      },
      registry,
      { layer: (i, total, digest, state) => process.stderr.write(`layer ${i + 1}/${total} ${digest.slice(7, 19)}: ${state}\n`) },
      logger,
    );
    process.stdout.write(`${result.destination}: ${result.manifest.digest} (${result.layers.length} layers, ${((Date.now() - started) / 1000).toFixed(1)} s)\n`);
  } finally {
    await registry.close();
  }
}

