import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_FILTER_BYTES, MAX_FILTERS, parseFilters } from '../../../src/snapshotter/filters.js';
import { snapshotFieldAdaptor } from '../../../src/snapshotter/metadata-store.js';
import { InvalidArgumentError } from '../../../src/snapshotter/errors.js';
import { Kind, type SnapshotInfo } from '../../../src/snapshotter/types.js';

const info = (name: string, kind: Kind, parent: string, labels: Record<string, string>): SnapshotInfo => ({
  name,
  kind,
  parent,
  labels,
  created: 0n,
  updated: 0n,
});

const snapshots = [
  info('sha256:aaa', Kind.Committed, '', { 'containerd.io/snapshot.ref': 'sha256:aaa', 'containerd.io/gc.root': 'x' }),
  info('sha256:bbb', Kind.Committed, 'sha256:aaa', { 'containerd.io/snapshot.ref': 'sha256:bbb', 'a.b.c': 'dots' }),
  info('default/1/extract', Kind.Active, 'sha256:bbb', { 'with space': 'v w', quote: 'say "hi"' }),
  info('view-1', Kind.View, 'sha256:aaa', {}),
];

function select(...filters: string[]): string[] {
  const filter = parseFilters(filters);
  return snapshots.filter((s) => filter.match(snapshotFieldAdaptor(s))).map((s) => s.name);
}

describe('containerd filter syntax', () => {
  it('matches what containerd\'s metadata layer sends for remote snapshots', () => {
    assert.deepEqual(select('labels."containerd.io/snapshot.ref"==sha256:bbb,parent==sha256:aaa'), ['sha256:bbb']);
    assert.deepEqual(select('labels."containerd.io/snapshot.ref"==sha256:bbb,parent==sha256:zzz'), []);
  });

  it('supports name, parent, kind, presence, inequality and regexps', () => {
    assert.deepEqual(select('name==view-1'), ['view-1']);
    assert.deepEqual(select('parent==sha256:aaa'), ['sha256:bbb', 'view-1']);
    assert.deepEqual(select('kind==active'), ['default/1/extract']);
    assert.deepEqual(select('kind==view'), ['view-1']);
    assert.deepEqual(select('labels."containerd.io/gc.root"'), ['sha256:aaa']);
    assert.deepEqual(select('kind!=committed'), ['default/1/extract', 'view-1']);
    assert.deepEqual(select('name~=^sha256:'), ['sha256:aaa', 'sha256:bbb']);
    assert.deepEqual(select('name~=/extract$/'), ['default/1/extract']);
  });

  it('joins unquoted dotted label keys and decodes quoted values with escapes', () => {
    assert.deepEqual(select('labels.a.b.c==dots'), ['sha256:bbb']);
    assert.deepEqual(select('labels."with space"=="v w"'), ['default/1/extract']);
    assert.deepEqual(select('labels.quote=="say \\"hi\\""'), ['default/1/extract']);
    assert.deepEqual(select('name=="\\x76iew-1"'), ['view-1']);
  });

  it('ORs several filters and ANDs the selectors of one', () => {
    assert.deepEqual(select('name==view-1', 'kind==active'), ['default/1/extract', 'view-1']);
    assert.deepEqual(select('kind==committed,parent==sha256:aaa'), ['sha256:bbb']);
    assert.deepEqual(select(), snapshots.map((s) => s.name));
    assert.deepEqual(select(''), snapshots.map((s) => s.name));
  });

  it('rejects malformed filters with InvalidArgument', () => {
    for (const bad of ['name==', 'name=x', 'name<>x', '==x', 'labels.', 'name==x,', 'labels."unterminated==x', 'name==/x/', 'name~=/(/', 'name==x y', 'na\0me==x']) {
      assert.throws(() => parseFilters([bad]), InvalidArgumentError, bad);
    }
  });
});

describe('containerd filter regexps (Go RE2 semantics)', () => {
  const names = (pattern: string, candidates: string[]) => {
    const filter = parseFilters([`name~=${JSON.stringify(pattern)}`]);
    return candidates.filter((name) => filter.match(snapshotFieldAdaptor(info(name, Kind.Active, '', {}))));
  };

  it('supports Go\'s anchors, POSIX classes, Unicode classes and flags', () => {
    assert.deepEqual(names('\\Asha256:[[:xdigit:]]+\\z', ['sha256:abc', 'sha256:xyz', 'xsha256:abc']), ['sha256:abc']);
    assert.deepEqual(names('^[[:digit:]]+$', ['123', '12a', ':']), ['123']);
    assert.deepEqual(names('^\\pL+$', ['héllo', 'h3llo']), ['héllo']);
    assert.deepEqual(names('(?i)^LAYER', ['layer-1', 'Layer-2', 'x-layer']), ['layer-1', 'Layer-2']);
    assert.deepEqual(names('^(?P<chain>sha256):', ['sha256:a', 'sha512:a']), ['sha256:a']);
  });

  it('matches an unanchored pattern anywhere, and an absent field as the empty string, as containerd does', () => {
    assert.deepEqual(names('extract', ['default/1/extract', 'view-1']), ['default/1/extract']);
    assert.deepEqual(select('labels.team~=^$'), snapshots.map((s) => s.name));
    assert.deepEqual(select('labels.team~=.'), []);
  });

  it('rejects what Go\'s regexp rejects with InvalidArgument: lookaround, backreferences, huge repeats', () => {
    for (const pattern of ['(?=a)b', '(?!a)', '(a)\\1', 'a{1001}', '(', 'a**']) {
      assert.throws(() => parseFilters([`name~=${JSON.stringify(pattern)}`]), InvalidArgumentError, pattern);
    }
  });

  it('bounds the size of one filter and the number of filters, naming the limit', () => {
    const long = `name==${'x'.repeat(MAX_FILTER_BYTES)}`;
    assert.throws(() => parseFilters([long]), (err: Error) => err instanceof InvalidArgumentError && err.message.includes(`${MAX_FILTER_BYTES} bytes`));
    parseFilters([`name==${'x'.repeat(MAX_FILTER_BYTES - 'name=='.length)}`]);
    const many = Array.from({ length: MAX_FILTERS + 1 }, (_, i) => `name==k${i}`);
    assert.throws(() => parseFilters(many), (err: Error) => err instanceof InvalidArgumentError && err.message.includes(`at most ${MAX_FILTERS} filters`));
    parseFilters(many.slice(1));
  });
});
