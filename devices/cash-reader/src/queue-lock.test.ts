import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LOCK_FILE, QueueLockedError, lockQueueDir } from './queue-lock.js';

const bootId = () => {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return '';
  }
};

describe('queue directory lock', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'cash-lock-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('refuses a directory another running agent holds', async () => {
    writeFileSync(join(dir, LOCK_FILE), `${process.ppid} ${bootId()}`);
    await expect(lockQueueDir(dir)).rejects.toThrow(QueueLockedError);
  });

  it('takes over a lock left by a dead process or an earlier boot, and releases it', async () => {
    writeFileSync(join(dir, LOCK_FILE), `2147483646 ${bootId()}`);
    const release = await lockQueueDir(dir);
    expect(readFileSync(join(dir, LOCK_FILE), 'utf8')).toBe(`${process.pid} ${bootId()}`);
    await release();
    expect(existsSync(join(dir, LOCK_FILE))).toBe(false);
    writeFileSync(join(dir, LOCK_FILE), `${process.ppid} an-earlier-boot`);
    await (
      await lockQueueDir(dir)
    )();
  });
});
