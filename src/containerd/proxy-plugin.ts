/**
 * Where a proxy snapshotter listens, asked of containerd itself: its
 * Introspection service lists every plugin with its exports, and for a
 * proxy plugin containerd exports the `address` from its config
 * (`[proxy_plugins.NAME] address`). `lazysnap pull` uses it to find the
 * lazysnap daemon behind `--snapshotter NAME` without being told its socket.
 *
 * Encoded by hand and sent with bareUnaryCall: this is the CLI's first
 * call, made before grpc-js is loaded (if it is loaded at all).
 */
import { bareUnaryCall } from './bare-call.js';
import { fields, stringField } from './protobuf-wire.js';

export { ProtobufDecodeError } from './protobuf-wire.js';

const PLUGINS_PATH = '/containerd.services.introspection.v1.Introspection/Plugins';
const SNAPSHOTTER_PLUGIN_TYPE = 'io.containerd.snapshotter.v1';
/** One call answers in milliseconds; a containerd that takes longer is hung. */
export const PLUGIN_LOOKUP_TIMEOUT_MS = 5_000;

/** What containerd says of a snapshotter plugin. */
export interface SnapshotterPlugin {
  /** The proxy plugin's socket; undefined for a built-in snapshotter. */
  address: string | undefined;
  /** containerd could not initialize it (init_err set). */
  failed: boolean;
}

/**
 * The socket a pull may be handed to: a proxy plugin's address, unless
 * containerd could not initialize the plugin (then its Snapshots calls fail
 * whoever runs the pull). Undefined for no plugin, a built-in one, or one
 * that failed.
 */
export function usableProxyAddress(plugin: SnapshotterPlugin | undefined): string | undefined {
  return plugin === undefined || plugin.failed ? undefined : plugin.address;
}

/**
 * Asks containerd for the snapshotter plugin `name`. Undefined when
 * containerd has no snapshotter of that name. Rejects like bareUnaryCall
 * (containerd unreachable, or answering with an error).
 */
export async function lookupSnapshotterPlugin(address: string, namespace: string, name: string, timeoutMs = PLUGIN_LOOKUP_TIMEOUT_MS): Promise<SnapshotterPlugin | undefined> {
  const filter = `type==${JSON.stringify(SNAPSHOTTER_PLUGIN_TYPE)},id==${JSON.stringify(name)}`;
  const answer = await bareUnaryCall({ address, namespace, path: PLUGINS_PATH, message: stringField(1, filter), timeoutMs, what: `the plugin lookup of snapshotter ${name}` });
  return decodePluginsResponse(answer).find((p) => p.type === SNAPSHOTTER_PLUGIN_TYPE && p.id === name);
}

interface DecodedPlugin extends SnapshotterPlugin {
  type: string;
  id: string;
}

/** introspection.v1.PluginsResponse: plugins = 1; Plugin: type = 1, id = 2, exports = 5 (map<string,string>), init_err = 7. */
export function decodePluginsResponse(message: Buffer): DecodedPlugin[] {
  const plugins: DecodedPlugin[] = [];
  for (const field of fields(message)) {
    if (field.number !== 1 || field.bytes === undefined) continue;
    let type = '';
    let id = '';
    let address: string | undefined;
    let failed = false;
    for (const f of fields(field.bytes)) {
      if (f.bytes === undefined) continue;
      if (f.number === 1) type = f.bytes.toString('utf8');
      else if (f.number === 2) id = f.bytes.toString('utf8');
      else if (f.number === 7) failed = true;
      else if (f.number === 5) {
        let key = '';
        let value = '';
        for (const e of fields(f.bytes)) {
          if (e.number === 1 && e.bytes) key = e.bytes.toString('utf8');
          else if (e.number === 2 && e.bytes) value = e.bytes.toString('utf8');
        }
        if (key === 'address') address = value;
      }
    }
    plugins.push({ type, id, address, failed });
  }
  return plugins;
}
