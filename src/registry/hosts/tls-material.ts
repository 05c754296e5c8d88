// Reads and checks the TLS files a host configuration names, so that a
// missing CA, a certificate that is not PEM or a key that does not match its
// certificate is reported once, naming the file, instead of as an opaque
// handshake failure on every request.
import { createHash, X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createSecureContext, rootCertificates } from 'node:tls';
import { HostsConfigError } from '../errors.js';
import type { HostSpec } from './hosts-file.js';

/** TLS options for undici's connector (node:tls connect options). */
export interface TlsMaterial {
  ca?: Buffer[];
  cert?: Buffer;
  key?: Buffer;
  rejectUnauthorized: boolean;
  /** Identifies the material, so endpoints with the same files share one connection pool. */
  fingerprint: string;
}

export async function loadTlsMaterial(spec: HostSpec, registryHost: string): Promise<TlsMaterial> {
  const hash = createHash('sha256');
  const material: TlsMaterial = { rejectUnauthorized: !spec.skipVerify, fingerprint: '' };
  hash.update(spec.skipVerify ? 'skip-verify\0' : 'verify\0');
  if (spec.caFiles.length > 0) {
    // As in containerd, a configured CA is trusted in addition to the system's, not instead.
    material.ca = rootCertificates.map((pem) => Buffer.from(pem));
    for (const file of spec.caFiles) {
      const pem = await readTlsFile(file, registryHost, 'CA certificate');
      checkCertificate(pem, file, registryHost, 'CA certificate');
      material.ca.push(pem);
      hash.update(pem).update('\0');
    }
  }
  // Node offers one client certificate per connection; the first pair is the one used.
  const client = spec.clientCertificates[0];
  if (client) {
    const cert = await readTlsFile(client.cert, registryHost, 'client certificate');
    const key = client.key === undefined ? cert : await readTlsFile(client.key, registryHost, 'client key');
    checkCertificate(cert, client.cert, registryHost, 'client certificate');
    try {
      createSecureContext({ cert, key });
    } catch (err) {
      const reason = /mismatch/i.test((err as Error).message) ? `key does not match certificate ${client.cert}` : `unusable client key: ${(err as Error).message}`;
      throw new HostsConfigError(registryHost, client.key ?? client.cert, reason, err);
    }
    material.cert = cert;
    material.key = key;
    hash.update(cert).update('\0').update(key);
  }
  material.fingerprint = hash.digest('hex');
  return material;
}

async function readTlsFile(file: string, registryHost: string, what: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new HostsConfigError(registryHost, file, code === 'ENOENT' ? `${what} file does not exist` : `cannot read ${what}: ${(err as Error).message}`, err);
  }
}

function checkCertificate(pem: Buffer, file: string, registryHost: string, what: string): void {
  try {
    new X509Certificate(pem);
  } catch (err) {
    throw new HostsConfigError(registryHost, file, `not a PEM ${what}: ${(err as Error).message}`, err);
  }
}
