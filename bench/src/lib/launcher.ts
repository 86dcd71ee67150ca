// The tsx CLI SIGKILLs its child if it does not acknowledge Ctrl-C within ~30 ms, which a busy
// benchmark on a loaded machine cannot promise. So a bench entry point first runs as a thin
// launcher that starts the real run (the same file, BENCH_WORKER=1) in its own process group and
// forwards signals; if the launcher is killed anyway, the run notices its IPC channel closing and
// cleans up (child servers, temp dirs, PostgreSQL schemas) before exiting.
import { spawn } from 'node:child_process';
import { cleanupAll } from './cleanup.js';

function launch(entry: string): void {
  const child = spawn(process.execPath, ['--import', 'tsx', entry, ...process.argv.slice(2)], {
    stdio: ['inherit', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, BENCH_WORKER: '1' },
    detached: true,
  });
  const forward = (signal: NodeJS.Signals) => child.kill(signal);
  process.on('SIGINT', forward);
  process.on('SIGTERM', forward);
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 130 : 1)));
}

/** Runs `main` in the worker process, or starts the worker when this is the launcher. */
export function runAsWorker(entry: string, main: () => Promise<void>): void {
  if (process.env['BENCH_WORKER'] !== '1') return launch(entry);
  main()
    .catch((err: unknown) => {
      console.error(err);
      process.exitCode = 1;
    })
    .finally(async () => {
      await cleanupAll();
      // Done: let go of the launcher's channel (without treating that as an interruption).
      process.removeAllListeners('disconnect');
      process.disconnect?.();
    });
}
