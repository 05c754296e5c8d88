// The daemon's log lines: JSON with level names for machines, a short text
// line for a terminal, chosen by --log-format / log_format (auto: by stderr).
import assert from 'node:assert/strict';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import pino from 'pino';
import { levelName, resolveLogFormat, textLine } from '../../../src/cli/log-format.js';
import { LogSink } from '../../../src/cli/log-sink.js';
import { parseConfig } from '../../../src/config/index.js';
import { makeTempDir, removeTree } from '../../harness/process.js';

const dir = makeTempDir('log-format');
after(() => removeTree(dir));

/** Logs through a real pino + LogSink into a file, as the daemon does into stderr. */
async function logLines(format: 'json' | 'text', log: (logger: pino.Logger) => void): Promise<string[]> {
  const path = join(dir, `${format}-${Math.random().toString(36).slice(2)}.log`);
  const fd = openSync(path, 'w');
  const sink = new LogSink(fd, undefined, format);
  const logger = pino({ level: 'debug', base: { service: 'lazysnap' }, formatters: { level: (label) => ({ level: levelName(label) }) } }, sink);
  log(logger);
  await sink.drain(5_000);
  closeSync(fd);
  return readFileSync(path, 'utf8').split('\n').filter(Boolean);
}

describe('log format', () => {
  it('JSON lines carry the level as a name (warnings as "warning", as containerd spells it)', async () => {
    const lines = await logLines('json', (logger) => {
      logger.info('hello');
      logger.warn({ key: 'k' }, 'careful');
      logger.error('broken');
    });
    const levels = lines.map((line) => (JSON.parse(line) as { level: unknown }).level);
    assert.deepEqual(levels, ['info', 'warning', 'error']);
    assert.match(lines[1]!, /^\{"level":"warning","time":\d+,"service":"lazysnap","key":"k","msg":"careful"\}$/);
  });

  it('text lines lead with time, level and component, then the message and the fields', async () => {
    const lines = await logLines('text', (logger) => {
      logger.child({ component: 'remote' }).info({ ref: 'r.example/app:1', size: 12, reason: 'no TOC digest here', nested: { a: 1 } }, 'layer cannot be served remotely');
      logger.error({ err: new Error('disk full') }, 'write failed');
    });
    assert.match(lines[0]!, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO {4}\[remote\] layer cannot be served remotely ref=r\.example\/app:1 size=12 reason="no TOC digest here" nested=\{"a":1\}$/);
    // An error shows its message, not its stack.
    assert.match(lines[1]!, /Z ERROR {3}write failed err="disk full"$/);
  });

  it('text keeps a line that is not a JSON object as it is', () => {
    assert.equal(textLine('not json\n'), 'not json\n');
    assert.equal(textLine('[1,2]'), '[1,2]');
  });

  it('auto means text on a terminal and JSON anywhere else; an explicit choice wins', () => {
    assert.equal(resolveLogFormat('auto', true), 'text');
    assert.equal(resolveLogFormat('auto', false), 'json');
    assert.equal(resolveLogFormat('json', true), 'json');
    assert.equal(resolveLogFormat('text', false), 'text');
  });

  it('log_format is validated like the other keys', () => {
    assert.deepEqual(parseConfig('log_format = "text"'), { logFormat: 'text' });
    assert.throws(() => parseConfig('log_format = "fancy"'), /log_format must be one of auto, json, text, got "fancy"/);
  });
});
