// The repository's commands run as an operator runs them: `node --import tsx <script>` from the
// repository root (what the npm scripts do), in a shell that sets none of the server's variables
// but those the test passes. Used by the start-up and first-hour tests.
import {
  spawn,
  type ChildProcess,
  type ChildProcessByStdio,
  type SpawnOptionsWithoutStdio,
} from 'node:child_process';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
// The tsx CLI's signal relay SIGKILLs a child that has not confirmed a SIGTERM within 30 ms,
// which a loaded machine cannot promise: node --import tsx instead, as `npm start` runs it.
// It is also one process where the tsx CLI makes two, and starts quicker.
const NODE_ARGS = ['--import', 'tsx'];

/**
 * Runs a TypeScript entry point (a path from the repository root) as the npm scripts do, with no
 * input and its output piped.
 */
export function spawnTs(
  script: string,
  args: string[],
  options: SpawnOptionsWithoutStdio,
): ChildProcessByStdio<null, Readable, Readable> {
  return spawn(process.execPath, [...NODE_ARGS, script, ...args], {
    cwd: ROOT,
    ...options,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface OperatorRun {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  exited: Promise<Exit>;
}

const running: ChildProcess[] = [];

/** An operator's shell: none of the server's variables but those in `extra`. */
function operatorEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of Object.keys(env)) {
    if (
      /^(PORT|HOST|DATA_DIR|DATABASE_.*|REDIS_URL|ADMIN_TOKEN|JWT_SECRET|PIN_SECRET|RAZORPAY_.*|UPI_.*|MQTT_.*|DISPATCH_.*|MACHINE_.*|PRINT_.*|LOG_LEVEL|PUBLIC_URL|METRICS_TOKEN)$/.test(
        name,
      )
    )
      delete env[name];
  }
  return { ...env, HOST: '127.0.0.1', LOG_LEVEL: 'warn', ...extra };
}

/** Starts `script` (a path from the repository root) with `args`; `stopAll` ends it after the test. */
export function runScript(script: string, args: string[], env: Record<string, string>): OperatorRun {
  const child = spawnTs(script, args, { env: operatorEnv(env) });
  running.push(child);
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
  const exited = new Promise<Exit>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  return { child, stdout: () => out, stderr: () => err, exited };
}

/** SIGTERM, as an operator's Ctrl-C or systemd would send it; resolves with how it exited. */
export function stop(run: OperatorRun): Promise<Exit> {
  run.child.kill('SIGTERM');
  return run.exited;
}

/**
 * Ends every process still running, SIGTERM first (`npm run cluster` stops its nodes on it and
 * would leave them running on a SIGKILL), SIGKILL after 10 s. For an `afterEach`.
 */
export async function stopAll(): Promise<void> {
  await Promise.all(
    running.splice(0).map(async (child) => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const gone = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      const late = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await gone;
      clearTimeout(late);
    }),
  );
}

/**
 * Waits until the process's `stream` matches `pattern`; fails with both outputs if the process
 * exits first or `timeoutMs` passes.
 */
export async function waitForOutput(
  run: OperatorRun,
  pattern: RegExp,
  { stream = 'stdout', timeoutMs = 120_000 }: { stream?: 'stdout' | 'stderr'; timeoutMs?: number } = {},
): Promise<RegExpMatchArray> {
  const deadline = Date.now() + timeoutMs;
  let exited = false;
  void run.exited.then(() => (exited = true));
  for (;;) {
    const match = pattern.exec(run[stream]());
    if (match) return match;
    if (exited || Date.now() > deadline) {
      throw new Error(
        `no ${pattern} in ${stream} (exited: ${exited})\nstdout:\n${run.stdout()}\nstderr:\n${run.stderr()}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}
