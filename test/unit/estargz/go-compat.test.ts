import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { NO_PREFETCH_LANDMARK, PREFETCH_LANDMARK, inflateChunk, openEstargz } from '../../../src/estargz/index.js';
import { convert } from './helpers.js';
import { describeTree, makeTree } from './tree-fixture.js';

/**
 * Cross-checks against stargz-snapshotter's own Go implementation when Debian's
 * golang-go and golang-github-containerd-stargz-snapshotter-dev are installed:
 * blobs it builds must read and verify here, and blobs we build must open, verify
 * (TOC digest and every chunk digest) and read there.
 */
const GOPATH = '/usr/share/gocode';
const ESTARGZ_SOURCE = join(GOPATH, 'src/github.com/containerd/stargz-snapshotter/estargz');
const GO = [...(process.env['PATH'] ?? '').split(delimiter), '/usr/lib/go/bin'].map((d) => join(d, 'go')).find((p) => existsSync(p));
const TAR = ['/bin/tar', '/usr/bin/tar'].find((p) => existsSync(p));
// scripts/debian-packages.txt installs these; a missing one is a broken set-up, not a reason to skip.
const missing = GO === undefined ? 'the go toolchain (golang-go)' : !existsSync(ESTARGZ_SOURCE) ? 'stargz-snapshotter Go sources (golang-github-containerd-stargz-snapshotter-dev)' : TAR === undefined ? 'tar' : undefined;

const GO_PROGRAM = `package main

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/containerd/stargz-snapshotter/estargz"
	digest "github.com/opencontainers/go-digest"
)

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

type listed struct {
	Name, Type, Link, Sha string
	Size, Mode            int64
	UID, GID              int
	Chunks                int
}

func main() {
	f, err := os.Open(os.Args[2])
	must(err)
	st, err := f.Stat()
	must(err)
	sr := io.NewSectionReader(f, 0, st.Size())
	switch os.Args[1] {
	case "build":
		chunkSize, err := strconv.Atoi(os.Args[4])
		must(err)
		opts := []estargz.Option{estargz.WithChunkSize(chunkSize)}
		if len(os.Args) > 5 {
			opts = append(opts, estargz.WithPrioritizedFiles(os.Args[5:]))
		}
		blob, err := estargz.Build(sr, opts...)
		must(err)
		out, err := os.Create(os.Args[3])
		must(err)
		_, err = io.Copy(out, blob)
		must(err)
		must(blob.Close())
		must(out.Close())
		fmt.Printf("%s\\n", blob.TOCDigest())
	case "read":
		r, err := estargz.Open(sr)
		must(err)
		v, err := r.VerifyTOC(digest.Digest(os.Args[3]))
		must(err)
		var all []listed
		root, _ := r.Lookup("")
		var walk func(dir *estargz.TOCEntry, prefix string)
		walk = func(dir *estargz.TOCEntry, prefix string) {
			dir.ForeachChild(func(base string, e *estargz.TOCEntry) bool {
				name := prefix + base
				item := listed{Name: name, Type: e.Type, Link: e.LinkName, Size: e.Size, Mode: e.Mode, UID: e.UID, GID: e.GID}
				if e.Type == "reg" {
					file, err := r.OpenFile(name)
					must(err)
					h := sha256.New()
					_, err = io.Copy(h, file)
					must(err)
					item.Sha = fmt.Sprintf("%x", h.Sum(nil))
					for off := int64(0); off < e.Size; {
						ce, ok := r.ChunkEntryForOffset(e.Name, off)
						if !ok {
							must(fmt.Errorf("no chunk of %s at %d", name, off))
						}
						verifier, err := v.Verifier(ce)
						must(err)
						buf := make([]byte, ce.ChunkSize)
						_, err = file.ReadAt(buf, ce.ChunkOffset)
						must(err)
						verifier.Write(buf)
						if !verifier.Verified() {
							must(fmt.Errorf("chunk of %s at %d fails its digest", name, ce.ChunkOffset))
						}
						item.Chunks++
						off = ce.ChunkOffset + ce.ChunkSize
					}
				}
				all = append(all, item)
				if e.Type == "dir" {
					walk(e, name+"/")
				}
				return true
			})
		}
		walk(root, "")
		must(json.NewEncoder(os.Stdout).Encode(all))
	}
}
`;

interface Listed {
  Name: string;
  Type: string;
  Link: string;
  Sha: string;
  Size: number;
  Mode: number;
  UID: number;
  GID: number;
  Chunks: number;
}

const sha256hex = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

describe('compatibility with stargz-snapshotter (Go)', () => {
  let work = '';
  let tool = '';
  before(() => {
    if (missing) throw new Error(`cannot cross-check with stargz-snapshotter: ${missing} is not installed (bash scripts/install.sh installs it)`);
    work = mkdtempSync(join(tmpdir(), 'lazysnap-estargz-go-'));
    mkdirSync(join(work, 'prog'));
    writeFileSync(join(work, 'prog', 'main.go'), GO_PROGRAM);
    tool = join(work, 'esgz');
    execFileSync(GO!, ['build', '-o', tool, '.'], {
      cwd: join(work, 'prog'),
      env: { ...process.env, GOPATH, GO111MODULE: 'off', GOFLAGS: '', GOCACHE: join(tmpdir(), 'lazysnap-go-build-cache') },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    mkdirSync(join(work, 'src'));
    makeTree(join(work, 'src'));
    execFileSync(TAR!, ['--format=pax', '--numeric-owner', '-C', join(work, 'src'), '-cf', join(work, 'in.tar'), '.']);
  });
  after(() => rmSync(work, { recursive: true, force: true }));

  it('reads and verifies blobs that stargz-snapshotter builds', async () => {
    const blobPath = join(work, 'go.esgz');
    const tocDigest = execFileSync(tool, ['build', join(work, 'in.tar'), blobPath, '65536', 'etc/hosts']).toString().trim();
    const blob = readFileSync(blobPath);
    const index = await openEstargz(blob, { expectedTocDigest: tocDigest });
    assert.equal(index.landmark, 'prefetch');
    const hosts = index.lookup('etc/hosts')!;
    assert.ok(hosts.chunks.length === 1 && hosts.chunks[0]!.offset < index.prefetchEnd!, 'the prioritized file lies before the landmark');
    for (const [path, facts] of describeTree(join(work, 'src'))) {
      const node = index.lookup(path);
      assert.ok(node !== undefined, path);
      assert.equal(node.statMode & 0o170000, facts.type, path);
      assert.equal(node.uid, facts.uid, path);
      if (facts.content === undefined) continue;
      const parts: Buffer[] = [];
      for (const c of node.chunks) parts.push(await inflateChunk(blob.subarray(c.offset, c.compressedEnd), c));
      assert.equal(Buffer.concat(parts).toString('base64'), facts.content, path);
    }
  });

  it('builds blobs that stargz-snapshotter opens, verifies and reads', async () => {
    for (const prioritized of [[], ['usr/bin/sh', 'etc/hosts']]) {
      const { blob, result } = await convert(readFileSync(join(work, 'in.tar')), { chunkSize: 65536, prioritizedFiles: prioritized });
      const blobPath = join(work, 'ours.esgz');
      writeFileSync(blobPath, blob);
      const listed = JSON.parse(execFileSync(tool, ['read', blobPath, result.tocDigest], { maxBuffer: 1 << 26 }).toString()) as Listed[];
      const byName = new Map(listed.map((l) => [l.Name, l] as const));
      const facts = describeTree(join(work, 'src'));
      for (const [path, f] of facts) {
        if (path === '') continue;
        const got = byName.get(path);
        assert.ok(got !== undefined, `Go sees ${path}`);
        assert.equal(got.UID, f.uid, path);
        assert.equal(got.Mode & 0o7777, f.mode, path);
        if (f.content !== undefined) {
          assert.equal(got.Sha, sha256hex(Buffer.from(f.content, 'base64')), path);
          assert.equal(got.Chunks, Math.ceil(f.size / 65536), path);
        }
        if (f.target !== undefined) assert.equal(got.Link, f.target, path);
      }
      const extra = listed.map((l) => l.Name).filter((n) => !facts.has(n));
      assert.deepEqual(extra, [prioritized.length > 0 ? PREFETCH_LANDMARK : NO_PREFETCH_LANDMARK], 'only the landmark is added (the TOC is not in the TOC)');
    }
  });
});
