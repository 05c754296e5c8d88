/**
 * src/admin: the daemon's local, root-only admin endpoint (JSON over HTTP on
 * `<address>.admin`) and the status it serves. The status command imports
 * status-client and status-text directly, not this index: they need only
 * node:http.
 */
export { AdminServer, adminSocketPath, type AdminRoutes } from './admin-server.js';
export { adminDirectory, advertiseAdminSocket, advertisedAdminSockets, DEFAULT_ADMIN_DIRECTORY } from './admin-directory.js';
export { RecentErrors, registryErrorsReport, type RecentError, type RegistryErrorsReport } from './recent-errors.js';
export { StatusCollector, type RemoteStateReport, type StatusSources } from './status-collector.js';
export { AdminRequestError, fetchStatus } from './status-client.js';
export { formatStatus } from './status-text.js';
export { DaemonCannotPullError, DaemonPullError, requestPull } from './pull-client.js';
export { formatPullSummary, parsePullRequest, PullRequestError, type PullEvent, type PullRequestBody, type PullSummary } from './pull-model.js';
export type { DaemonStatus, FuseManagerStatus, LayerStatus, CacheTierStatus } from './status-model.js';
