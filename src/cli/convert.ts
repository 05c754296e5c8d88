/** `lazysnap convert SRC DST`: converts an image to eStargz and pushes it. */
import { readFile } from 'node:fs/promises';
import pino from 'pino';
import { convertImage } from '../convert/index.js';
import { DockerConfigCredentials, RegistryClient } from '../registry/index.js';

export interface ConvertFlags {
  plainHttp?: boolean;
  prioritizedFiles?: string;
  chunkSize?: string;
  compressionLevel?: string;
  platform?: string;
  logLevel: string;
}

export async function convert(source: string, destination: string, flags: ConvertFlags): Promise<void> {
  const logger = pino({ level: flags.logLevel, base: { command: 'convert' } }, pino.destination(2));
  const hosts = [source, destination].map((r) => r.split('/')[0] ?? '');
  const registry = new RegistryClient({
    ...(flags.platform ? { platform: flags.platform } : {}),
    insecureHosts: flags.plainHttp ? hosts : [],
    credentials: new DockerConfigCredentials({ onWarning: (message: string) => logger.warn(message) }),
    logger,
  });
  const prioritizedFiles = flags.prioritizedFiles
    ? (await readFile(flags.prioritizedFiles, 'utf8')).split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'))
    : [];
  const started = Date.now();
  try {
    const result = await convertImage(
      {
        source,
        destination,
        prioritizedFiles,
        ...(flags.chunkSize ? { chunkSize: parsePositive(flags.chunkSize, '--chunk-size') } : {}),
        ...(flags.compressionLevel ? { compressionLevel: Number(flags.compressionLevel) } : {}),
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

function parsePositive(text: string, flag: string): number {
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value <= 0) throw new Error(`${flag} must be a positive integer, got ${JSON.stringify(text)}`);
  return value;
}
