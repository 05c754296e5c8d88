export { pullImage, type PullOptions, type PullDeps, type PullResult, type PulledLayer } from './pull.js';
export { createProgress, type ProgressSink } from './progress.js';
export { chainIds } from './chain-id.js';
export type { LayerOutcome } from './remote-filter.js';
export { PullError } from './errors.js';
export { warmUpPullPath, type PullWarmUpResult } from './warm-up.js';
