/**
 * A command whose promise is still pending when Node's event loop runs out
 * of work can never finish (a promise nothing will settle, e.g. a close
 * that waits on a stream nobody reads). Node would then exit 0 as if it had
 * succeeded; this makes it a failure with a message instead.
 */
export async function runToCompletion(command: string, action: () => Promise<void>): Promise<void> {
  const onStalled = () => {
    process.stderr.write(`lazysnap ${command}: internal error: the command stopped before it finished (a pending operation can never complete)\n`);
    process.exitCode = 1;
  };
  process.once('beforeExit', onStalled);
  try {
    await action();
  } finally {
    process.off('beforeExit', onStalled);
  }
}
