export { KeyedMutex } from './keyed-mutex.js';
export { SingleFlight } from './singleflight.js';
