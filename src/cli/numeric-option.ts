/** Numeric command-line options, checked before a command does any work. */

export class OptionError extends Error {
  constructor(
    readonly option: string,
    message: string,
  ) {
    super(`${option} ${message}`);
    this.name = 'OptionError';
  }
}

/** An integer in [min, max] written in decimal digits only (no 1e3, 0x10, 1.0 or spaces). */
export function parseIntegerOption(option: string, text: string, min: number, max: number): number {
  const value = /^-?\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new OptionError(option, `must be an integer from ${min} to ${max}, got ${JSON.stringify(text)}`);
  }
  return value;
}
