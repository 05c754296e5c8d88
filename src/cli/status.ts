/**
 * `lazysnap status`: asks the running daemon over its admin socket
 * (`<address>.admin`, root only) and prints what it is serving. Imports only
 * node:http and the status formatter, so it answers fast on a busy node.
 */
import { adminSocketPath } from '../admin/admin-server.js';
import { fetchStatus } from '../admin/status-client.js';
import { formatStatus } from '../admin/status-text.js';
import { loadConfig } from '../config/index.js';

export interface StatusFlags {
  address?: string;
  config?: string;
  json?: boolean;
}

export async function status(flags: StatusFlags): Promise<void> {
  // The daemon's address comes from the same place as serve's: flag, else the config file, else the default.
  const config = await loadConfig(flags.config, { address: flags.address });
  const daemonStatus = await fetchStatus(adminSocketPath(config.address));
  process.stdout.write(flags.json === true ? `${JSON.stringify(daemonStatus, null, 2)}\n` : formatStatus(daemonStatus));
}
