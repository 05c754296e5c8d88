// Child process for stale-mounts.test.ts: mounts a small layer at each path
// given on the command line, prints "ready", and serves until killed.
// Run without arguments (say, picked up by a test runner) it does nothing.
import { mountLayer } from '../../../src/fuse/index.js';
import { recordingLogger } from './helpers.js';
import { buildLayer } from './memory-layer.js';

const mountpoints = process.argv.slice(2);
if (mountpoints.length > 0) {
  const layer = buildLayer([{ path: '/hello', type: 'reg', data: 'hello from the child\n' }]);
  for (const mountpoint of mountpoints) await mountLayer(layer, mountpoint, { logger: recordingLogger() });
  process.stdout.write('ready\n');
  // Stay alive serving the mounts until the test kills us.
  setInterval(() => {}, 60_000);
}
