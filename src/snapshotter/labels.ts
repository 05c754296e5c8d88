import { InvalidArgumentError } from './errors.js';
import type { Labels } from './types.js';

/** containerd's limit on one label: key and value together, in bytes. */
export const MAX_LABEL_BYTES = 4096;

/** Validates labels the way containerd's labels.Validate does; the error names the key. */
export function validateLabels(labels: Labels, context: string): void {
  for (const [key, value] of Object.entries(labels)) {
    if (key === '') throw new InvalidArgumentError(`${context}: label key must not be empty`);
    const bytes = Buffer.byteLength(key) + Buffer.byteLength(value);
    if (bytes > MAX_LABEL_BYTES) {
      const shown = key.length > 64 ? `${key.slice(0, 64)}...` : key;
      throw new InvalidArgumentError(`${context}: label key and value length (${bytes} bytes) greater than maximum size (${MAX_LABEL_BYTES} bytes), key: ${shown}`);
    }
  }
}
