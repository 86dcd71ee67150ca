// Everything the bench starts (child processes, temp dirs, schemas) registers here, so it is
// undone on success, on failure and on Ctrl-C. A second Ctrl-C skips the graceful part.

interface Cleanup {
  name: string;
  /** Graceful undo (awaited in reverse order of registration). */
  run: () => void | Promise<void>;
  /** Last-resort synchronous undo for process exit (kill -9, rm -rf). */
  force?: () => void;
}

const pending = new Set<Cleanup>();
let interrupted = false;

/** Registers an undo step; the returned function runs it now (once) and forgets it. */
export function onCleanup(
  name: string,
  run: () => void | Promise<void>,
  force?: () => void,
): () => Promise<void> {
  const entry: Cleanup = { name, run, ...(force ? { force } : {}) };
  pending.add(entry);
  return async () => {
    if (!pending.delete(entry)) return;
    await entry.run();
  };
}

/** Runs every pending undo step, newest first; failures are reported, not thrown. */
export async function cleanupAll(): Promise<void> {
  for (const entry of [...pending].reverse()) {
    pending.delete(entry);
    try {
      await entry.run();
    } catch (err) {
      console.error(`cleanup ${entry.name} failed: ${(err as Error).message}`);
      entry.force?.();
    }
  }
}

function forceAll(): void {
  for (const entry of [...pending].reverse()) {
    pending.delete(entry);
    try {
      entry.force?.();
    } catch {
      /* exiting anyway */
    }
  }
}

export const wasInterrupted = (): boolean => interrupted;

/** SIGINT/SIGTERM: clean up (at most 20 s) and exit 130; a second signal forces it. */
export function installSignalHandlers(): void {
  const onSignal = (signal: NodeJS.Signals): void => {
    if (interrupted) {
      console.error(`\n${signal} again: killing children and exiting`);
      forceAll();
      process.exit(130);
    }
    interrupted = true;
    console.error(`\n${signal}: stopping children and removing temp files…`);
    const deadline = setTimeout(() => {
      forceAll();
      process.exit(130);
    }, 20_000);
    deadline.unref();
    void cleanupAll().finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  // Started by the launcher in run.ts: if the launcher is gone, clean up as for a signal.
  if (process.send) process.on('disconnect', () => onSignal('SIGHUP'));
  process.on('exit', forceAll);
}
