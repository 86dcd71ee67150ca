// Starts a TypeScript entry point as a Node child process (node --import tsx, so the pid is
// the real server and not a wrapper), keeps the tail of its output for error messages, and
// stops it with SIGTERM then SIGKILL. Every child is registered for cleanup.
import { spawn, type ChildProcess } from 'node:child_process';
import { onCleanup } from './cleanup.js';
import { benchPath, REPO_ROOT } from './paths.js';

export interface ChildOptions {
  name: string;
  /** Absolute path of the .ts entry point. */
  script: string;
  args?: string[];
  env?: Record<string, string | undefined>;
  /** --expose-gc, so SIGUSR2 collects garbage (child-preload.ts). */
  exposeGc?: boolean;
  /** Write a V8 CPU profile into this folder when the child exits. */
  cpuProfDir?: string;
  /** Called with each output line (stdout and stderr). */
  onLine?: (line: string) => void;
}

export interface Child {
  name: string;
  pid: number;
  process: ChildProcess;
  /** Resolves with the exit code (or signal name) once the child has exited. */
  exited: Promise<number | string>;
  /** Last lines the child printed. */
  tail(): string;
  stop(timeoutMs?: number): Promise<void>;
}

export function startChild(options: ChildOptions): Child {
  const execArgv = ['--import', 'tsx', '--import', benchPath('lib/child-preload.ts')];
  if (options.exposeGc) execArgv.push('--expose-gc');
  if (options.cpuProfDir) execArgv.push('--cpu-prof', `--cpu-prof-dir=${options.cpuProfDir}`);
  // Extra node/V8 flags for every child (e.g. `--perf-basic-prof`, `--trace-deopt`), space-separated.
  const extra = process.env['BENCH_NODE_ARGS']?.trim();
  if (extra) execArgv.push(...extra.split(/\s+/));
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries({ ...process.env, ...options.env })) if (v !== undefined) env[k] = v;
  const proc = spawn(process.execPath, [...execArgv, options.script, ...(options.args ?? [])], {
    cwd: REPO_ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  if (proc.pid === undefined) throw new Error(`${options.name}: could not start`);
  const pid = proc.pid;
  const lines: string[] = [];
  const collect = (chunk: Buffer) => {
    for (const line of chunk.toString('utf8').split('\n')) {
      if (!line.trim()) continue;
      lines.push(line);
      if (lines.length > 40) lines.shift();
      options.onLine?.(line);
    }
  };
  proc.stdout?.on('data', collect);
  proc.stderr?.on('data', collect);
  let exitValue: number | string | undefined;
  const exited = new Promise<number | string>((resolve) => {
    proc.once('exit', (code, signal) => {
      exitValue = code ?? signal ?? 'unknown';
      resolve(exitValue);
    });
  });
  // The IPC channel is only there so the child notices when the bench goes away.
  proc.on('error', () => undefined);
  proc.channel?.unref();

  const stop = async (timeoutMs = 15_000): Promise<void> => {
    if (exitValue !== undefined) return;
    proc.kill('SIGTERM');
    const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
    await exited;
    clearTimeout(timer);
  };
  const unregister = onCleanup(
    `child ${options.name} (pid ${pid})`,
    () => stop(),
    () => {
      if (exitValue === undefined) proc.kill('SIGKILL');
    },
  );
  void exited.then(() => unregister());

  return { name: options.name, pid, process: proc, exited, tail: () => lines.join('\n'), stop };
}

/** Polls `url` until it answers 2xx; fails early if the child exits. */
export async function waitForHttp(child: Child, url: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let exited = false;
  void child.exited.then(() => (exited = true));
  for (;;) {
    if (exited) throw new Error(`${child.name} exited before it was ready:\n${child.tail()}`);
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(1_000) });
      await res.arrayBuffer();
      if (res.ok) return;
    } catch {
      /* not up yet */
    }
    if (Date.now() > deadline)
      throw new Error(`${child.name} not ready after ${timeoutMs} ms:\n${child.tail()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
