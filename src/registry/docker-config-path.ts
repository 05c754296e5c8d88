// Where the Docker CLI keeps its config.json: on its own so that
// `lazysnap pull` can name the file to the daemon without loading the
// credential code (child_process and the rest).
import { homedir } from 'node:os';
import { join } from 'node:path';

/** `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`, as the docker CLI does. */
export function defaultDockerConfigPath(env: NodeJS.ProcessEnv = process.env, home: string = homedir()): string {
  const dir = env.DOCKER_CONFIG && env.DOCKER_CONFIG !== '' ? env.DOCKER_CONFIG : join(home, '.docker');
  return join(dir, 'config.json');
}
