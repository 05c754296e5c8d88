/**
 * How the daemon's log lines look. JSON lines (pino's, with the level as a
 * name) for journals and log collectors; a short text line for a person
 * watching a terminal. The text is made from the JSON line, so both formats
 * carry the same fields.
 */
import type { LogFormat } from '../config/index.js';

/**
 * pino's level label as it appears in a JSON line. "warning", not "warn": the
 * spelling of containerd's and stargz-snapshotter's (logrus) logs, so one
 * query (`level="warning"`) finds warnings of all three.
 */
export function levelName(label: string): string {
  return label === 'warn' ? 'warning' : label;
}

export function resolveLogFormat(configured: LogFormat, stderrIsTerminal: boolean): 'json' | 'text' {
  if (configured !== 'auto') return configured;
  return stderrIsTerminal ? 'text' : 'json';
}

/** Fields every line has; they lead the text line instead of trailing it. */
const LEADING = new Set(['time', 'level', 'msg', 'service', 'component']);

/**
 * `2026-11-30T08:29:22.123Z WARNING [remote] msg key=value ...` from one JSON
 * line. Anything that is not a JSON object is passed through as it is.
 */
export function textLine(jsonLine: string): string {
  let record: Record<string, unknown>;
  try {
    const parsed: unknown = JSON.parse(jsonLine);
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return jsonLine;
    record = parsed as Record<string, unknown>;
  } catch {
    return jsonLine;
  }
  const time = typeof record.time === 'number' ? new Date(record.time).toISOString() : String(record.time ?? '');
  const level = String(record.level ?? '').toUpperCase().padEnd(7);
  const component = typeof record.component === 'string' ? ` [${record.component}]` : '';
  const fields = Object.entries(record)
    .filter(([key]) => !LEADING.has(key))
    .map(([key, value]) => `${key}=${fieldValue(value)}`);
  return `${[`${time} ${level}${component}`, String(record.msg ?? ''), ...fields].join(' ')}\n`;
}

function fieldValue(value: unknown): string {
  if (typeof value === 'string') return /^[^\s"=]+$/.test(value) ? value : JSON.stringify(value);
  if (isSerializedError(value)) return JSON.stringify(value.message);
  return JSON.stringify(value) ?? String(value);
}

/** pino's err serializer output: the message is what a person reads; the stack stays in the JSON format. */
function isSerializedError(value: unknown): value is { message: string } {
  return typeof value === 'object' && value !== null && typeof (value as { message?: unknown }).message === 'string' && typeof (value as { stack?: unknown }).stack === 'string';
}
