// One process owns an embedded data folder: an exclusive SQLite lock on DATA_DIR/kioskhub.lock,
// held for the life of the server. The OS drops it when the process ends, even by kill -9.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import SqliteDatabase from 'better-sqlite3';

export class DataDirLockedError extends Error {}

export interface DataDirLock {
  release(): void;
}

export function lockDataDir(dataDir: string): DataDirLock {
  const dir = resolve(dataDir);
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'kioskhub.lock');
  const owner = join(dir, 'kioskhub.lock.owner');
  const lock = new SqliteDatabase(file, { timeout: 0 });
  try {
    lock.pragma('locking_mode = EXCLUSIVE');
    // The first write takes the exclusive lock; EXCLUSIVE locking mode keeps it until close.
    lock.exec('create table if not exists holder (pid integer, host text, since text)');
    lock.exec('delete from holder');
    lock
      .prepare('insert into holder values (?, ?, ?)')
      .run(process.pid, hostname(), new Date().toISOString());
  } catch (err) {
    lock.close();
    if ((err as { code?: string }).code !== 'SQLITE_BUSY') throw err;
    let holder = '';
    try {
      holder = ` (${readFileSync(owner, 'utf8').trim()})`;
    } catch {
      // No owner note: the other process is still starting.
    }
    throw new DataDirLockedError(
      `another Kioskhub process is using DATA_DIR ${dir}${holder}. The embedded database belongs to one ` +
        'process: stop the other one, give this one its own DATA_DIR, or run several processes on ' +
        'PostgreSQL (DATABASE_URL=postgres://…).',
    );
  }
  writeFileSync(owner, `pid ${process.pid} on ${hostname()} since ${new Date().toISOString()}\n`);
  return { release: () => lock.close() };
}
