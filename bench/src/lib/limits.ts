// Open-file limit checks: each connected machine is one file descriptor in the server and
// one in a client process. Children inherit the bench's limit (`ulimit -n`).
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

export function openFileLimit(): number | undefined {
  try {
    const match = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    if (!match) return undefined;
    return match[1] === 'unlimited' ? Number.POSITIVE_INFINITY : Number(match[1]);
  } catch {
    return undefined;
  }
}

/** Throws with the fix when the limit is too low for `sockets` connections in one process. */
export function requireOpenFiles(sockets: number): void {
  const limit = openFileLimit();
  const needed = sockets + 1_024;
  if (limit !== undefined && limit < needed) {
    throw new Error(
      `open-file limit is ${limit}, ${needed} needed for ${sockets} connections: run \`ulimit -n ${Math.max(needed, 20_000)}\` in this shell first`,
    );
  }
}

/**
 * Raises a running process's open-file limit (prlimit; needs root or CAP_SYS_RESOURCE to go
 * past the hard limit). Returns the limit it now has, or undefined when it could not.
 */
export function raiseNoFile(pid: number, limit: number): number | undefined {
  try {
    execFileSync('prlimit', ['--pid', String(pid), `--nofile=${limit}:${limit}`], {
      stdio: 'ignore',
      timeout: 5_000,
    });
    return limit;
  } catch {
    return undefined;
  }
}

/**
 * Makes sure this process (and the children it starts from now on) may open `needed` files:
 * raises its own limit when it can (root), otherwise throws with the command to run. Returns a
 * line for the report saying what the limit is and what was done.
 */
export function ensureOpenFiles(needed: number, what: string): string {
  const limit = openFileLimit();
  if (limit === undefined) return `open-file limit unknown (no /proc/self/limits); ${what} needs ${needed}`;
  if (limit >= needed) return `open-file limit ${limit}: enough for ${what} (${needed} needed)`;
  if (raiseNoFile(process.pid, needed) !== undefined && (openFileLimit() ?? 0) >= needed)
    return `open-file limit was ${limit} (\`ulimit -n\`), too low for ${what} (${needed} needed): raised to ${needed} with prlimit`;
  throw new Error(
    `open-file limit (\`ulimit -n\`) is ${limit}, but ${what} needs ${needed}: run \`ulimit -n ${needed}\` in this shell first (or use --machines ${Math.max(1, limit - 1_024)})`,
  );
}
