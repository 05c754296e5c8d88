// The deployment examples an operator copies: containerd configs for 1.7 and
// 2.x (no binaries here, so parsed and checked, not run; 1.6 is run in
// test/e2e/deploy-containerd-config.test.ts), the Kubernetes manifest
// (checked field by field against the Kubernetes API models of Debian's
// python3-kubernetes, offline: kubectl's dry run needs a server), and the
// Dockerfile of its image (no container engine here to build it).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse } from 'smol-toml';
import { DEFAULT_CONFIG, parseConfig, parseListenAddress } from '../../../src/config/index.js';

const REPO = fileURLToPath(new URL('../../../../', import.meta.url));
const read = (path: string) => readFileSync(`${REPO}${path}`, 'utf8');

type Tree = Record<string, any>; // parsed TOML/YAML, checked by the assertions

describe('containerd config examples for 1.7 and 2.x', () => {
  const v17 = parse(read('examples/containerd-1.7-config.toml')) as Tree;
  const v2 = parse(read('examples/containerd-2-config.toml')) as Tree;

  for (const [name, config] of [['1.7', v17], ['2.x', v2]] as const) {
    it(`${name}: proxy plugin at lazysnap's default socket, exports.root at its default root`, () => {
      const proxy = config['proxy_plugins']['lazysnap'];
      assert.equal(proxy['type'], 'snapshot');
      assert.equal(proxy['address'], DEFAULT_CONFIG.address);
      assert.equal(proxy['exports']['root'], DEFAULT_CONFIG.root);
    });
  }

  it('1.7: pods keep overlayfs; the runtime handler `lazysnap` uses lazysnap; labels reach the snapshotter', () => {
    assert.equal(v17['version'], 2);
    const cri = v17['plugins']['io.containerd.grpc.v1.cri']['containerd'];
    assert.equal(cri['snapshotter'], 'overlayfs');
    assert.equal(cri['disable_snapshot_annotations'], false);
    assert.deepEqual(cri['runtimes']['lazysnap'], { runtime_type: 'io.containerd.runc.v2', snapshotter: 'lazysnap' });
  });

  it("2.x: config version 3, CRI's images and runtime plugins, and the transfer service passes labels and unpacks into lazysnap", () => {
    assert.equal(v2['version'], 3);
    const images = v2['plugins']['io.containerd.cri.v1.images'];
    assert.equal(images['snapshotter'], 'overlayfs');
    assert.equal(images['disable_snapshot_annotations'], false);
    assert.deepEqual(v2['plugins']['io.containerd.cri.v1.runtime']['containerd']['runtimes']['lazysnap'], { runtime_type: 'io.containerd.runc.v2', snapshotter: 'lazysnap' });
    assert.equal(v2['proxy_plugins']['lazysnap']['exports']['enable_remote_snapshot_annotations'], 'true');
    const unpack = v2['plugins']['io.containerd.transfer.v1.local']['unpack_config'] as Tree[];
    assert.deepEqual(unpack.map((u) => u['snapshotter']).sort(), ['lazysnap', 'overlayfs']);
  });
});

/**
 * Every document of the manifest, decoded into the Kubernetes API model of
 * its kind and encoded again: a misspelt or misplaced field is dropped by the
 * model, so the round trip differs from the input and the script fails.
 */
const MANIFEST_CHECK = String.raw`
import json, sys, yaml
from kubernetes import client
api = client.ApiClient()
models = {("apps/v1", "DaemonSet"): "V1DaemonSet", ("v1", "ConfigMap"): "V1ConfigMap", ("node.k8s.io/v1", "RuntimeClass"): "V1RuntimeClass"}
class Response:
    def __init__(self, doc): self.data = json.dumps(doc)
out = []
for doc in yaml.safe_load_all(open(sys.argv[1])):
    model = models[(doc["apiVersion"], doc["kind"])]
    back = api.sanitize_for_serialization(api.deserialize(Response(doc), model))
    if back != doc:
        sys.exit("%s %s does not match the %s schema:\n%s\n!=\n%s" % (doc["kind"], doc["metadata"]["name"], model, json.dumps(doc, sort_keys=True), json.dumps(back, sort_keys=True)))
    out.append(doc)
print(json.dumps(out))
`;

describe('examples/kubernetes-daemonset.yaml', () => {
  const documents = JSON.parse(execFileSync('/usr/bin/python3', ['-c', MANIFEST_CHECK, `${REPO}examples/kubernetes-daemonset.yaml`], { encoding: 'utf8' })) as Tree[];
  const byKind = (kind: string) => {
    const found = documents.filter((d) => d['kind'] === kind);
    assert.equal(found.length, 1, `one ${kind}`);
    return found[0]!;
  };
  const daemonSet = byKind('DaemonSet');
  const pod = daemonSet['spec']['template']['spec'];
  const container = pod['containers'][0];
  const configText = byKind('ConfigMap')['data']['config.toml'] as string;

  it('every document matches its Kubernetes API schema', () => {
    assert.deepEqual(documents.map((d) => d['kind']).sort(), ['ConfigMap', 'DaemonSet', 'RuntimeClass']);
  });

  it('has no bootstrap cycle: the daemon runs on the default snapshotter, workloads opt in by RuntimeClass', () => {
    assert.equal(pod['runtimeClassName'], undefined);
    const runtimeClass = byKind('RuntimeClass');
    const v17 = parse(read('examples/containerd-1.7-config.toml')) as Tree;
    assert.ok(v17['plugins']['io.containerd.grpc.v1.cri']['containerd']['runtimes'][runtimeClass['handler']], 'the handler is a runtime of the containerd examples');
    // Opted-in pods land only where the daemon runs.
    assert.deepEqual(runtimeClass['scheduling']['nodeSelector'], pod['nodeSelector']);
  });

  it('can mount FUSE and share its mounts with containerd on the host', () => {
    assert.equal(container['securityContext']['privileged'], true);
    const volume = (name: string) => pod['volumes'].find((v: Tree) => v['name'] === name);
    const mount = (path: string) => container['volumeMounts'].find((m: Tree) => m['mountPath'] === path);
    assert.deepEqual(volume(mount('/dev/fuse')['name'])['hostPath'], { path: '/dev/fuse', type: 'CharDevice' });
    const root = mount(DEFAULT_CONFIG.root);
    assert.equal(root['mountPropagation'], 'Bidirectional');
    assert.equal(volume(root['name'])['hostPath']['path'], DEFAULT_CONFIG.root);
    const socketDir = DEFAULT_CONFIG.address.slice(0, DEFAULT_CONFIG.address.lastIndexOf('/'));
    assert.equal(volume(mount(socketDir)['name'])['hostPath']['path'], socketDir);
  });

  it('runs on tainted nodes too, with start-up, readiness and liveness probes', () => {
    assert.ok(pod['tolerations'].some((t: Tree) => t['operator'] === 'Exists' && t['key'] === undefined));
    for (const probe of ['startupProbe', 'readinessProbe', 'livenessProbe']) assert.ok(container[probe], probe);
    assert.ok(container['startupProbe']['exec']['command'].join(' ').includes(DEFAULT_CONFIG.address));
  });

  it('its config is valid for lazysnap and serves metrics where Prometheus is told to scrape and the liveness probe looks', () => {
    const config = parseConfig(configText, 'ConfigMap lazysnap-config');
    const metrics = parseListenAddress(config.metricsAddress ?? '');
    assert.deepEqual(metrics, { host: '0.0.0.0', port: 9464 });
    const annotations = daemonSet['spec']['template']['metadata']['annotations'];
    assert.equal(annotations['prometheus.io/scrape'], 'true');
    assert.equal(Number(annotations['prometheus.io/port']), metrics.port);
    assert.equal(container['ports'][0]['containerPort'], metrics.port);
    assert.equal(container['livenessProbe']['httpGet']['port'], metrics.port);
    assert.deepEqual(container['args'], ['serve', '--config', '/etc/lazysnap/config.toml']);
    assert.ok(container['volumeMounts'].some((m: Tree) => m['mountPath'] === '/etc/lazysnap'));
  });
});

describe('examples/Dockerfile', () => {
  const text = read('examples/Dockerfile');
  const stages = text.split(/^FROM /m).slice(1);

  it('copies only files the repository has, and builds with the locked dependencies', () => {
    const build = stages[0]!;
    for (const match of build.matchAll(/^COPY (?!--from)(.+) \S+$/gm)) {
      for (const source of match[1]!.split(/\s+/)) assert.ok(existsSync(`${REPO}${source}`), `COPY ${source}`);
    }
    assert.match(build, /npm ci\b/);
    assert.match(build, /npm prune --omit=dev/);
  });

  it('ships what the daemon reads at run time and runs `lazysnap` from PATH, as the DaemonSet expects', () => {
    const runtime = stages[1]!;
    for (const path of ['package.json', 'proto', 'node_modules', 'dist/src']) assert.match(runtime, new RegExp(`^COPY --from=build /src/${path} `, 'm'));
    assert.match(runtime, /fuse3/);
    assert.match(runtime, /libfuse2/);
    assert.match(runtime, /^ENTRYPOINT \["lazysnap"\]$/m);
    assert.match(runtime, /ln -s \/opt\/lazysnap\/dist\/src\/cli\/main\.js \/usr\/local\/bin\/lazysnap/);
  });
});
