// Open-file limit checks: each connected machine is one file descriptor in the server and
// one in a client process. Children inherit the bench's limit (`ulimit -n`).
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
