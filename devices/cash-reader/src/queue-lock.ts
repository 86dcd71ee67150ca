// One process owns a queue directory: a second agent writing the same file (an operator
// running the agent by hand while the service runs) would undo the first one's records.
// The lock names the owner's pid and boot, so a lock left by a crash or a reboot is taken over.
import { open, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { OperatorError } from '@kioskhub/agent-kit';

export const LOCK_FILE = 'queue.lock';

export class QueueLockedError extends OperatorError {}

async function bootId(): Promise<string> {
  return (await readFile('/proc/sys/kernel/random/boot_id', 'utf8').catch(() => '')).trim();
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Takes the directory's lock; resolves with its release. */
export async function lockQueueDir(dir: string): Promise<() => Promise<void>> {
  const path = join(dir, LOCK_FILE);
  const me = `${process.pid} ${await bootId()}`;
  const release = () => rm(path, { force: true });
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const handle = await open(path, 'wx');
      try {
        await handle.writeFile(me);
        await handle.sync();
      } finally {
        await handle.close();
      }
      return release;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const [pidText = '', boot = ''] = (await readFile(path, 'utf8').catch(() => '')).trim().split(' ');
    const pid = Number(pidText);
    // The same process reopening its queue (after an error, or a test's simulated restart) may.
    if (pid === process.pid) return release;
    if (Number.isInteger(pid) && pid > 0 && boot === (await bootId()) && alive(pid)) {
      throw new QueueLockedError(
        `queue directory ${dir} is in use by process ${pid}: another cash reader runs on it (the service?); ` +
          'stop that one first, or give this one its own QUEUE_DIR',
      );
    }
    await rm(path, { force: true }); // left by a process that is gone
  }
  throw new QueueLockedError(`could not lock queue directory ${dir}`);
}
