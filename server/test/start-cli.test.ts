// `npm start` as an operator runs it (CONTRACTS.md §1): the real entry point in a child
// process. A bad value stops start-up naming the variable; the first start prints a
// generated admin token once; SIGTERM stops the server cleanly.
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { tempDir } from './harness.js';
import { runScript, stop, stopAll, waitForOutput, type OperatorRun } from './operator-process.js';

const MAIN = 'server/src/main.ts';

/** `npm start` with `env` (PORT 0 unless it says otherwise). */
const start = (env: Record<string, string>): OperatorRun => runScript(MAIN, [], { PORT: '0', ...env });

afterEach(stopAll);

// Each case starts real processes (tsx compiles on the fly): generous timeouts for loaded CI boxes.
describe('server/src/main.ts', { timeout: 180_000 }, () => {
  it('a bad PORT, LOG_LEVEL, DATABASE_URL or ADMIN_TOKEN stops start-up with a non-zero exit naming the variable', async () => {
    const bad: [string, string][] = [
      ['PORT', 'abc'],
      ['LOG_LEVEL', 'loud'],
      ['DATABASE_URL', 'mysql://x'],
      ['ADMIN_TOKEN', 'change-me-to-a-long-secret'],
    ];
    const dir = tempDir();
    try {
      // One process for each, all at once: none of them gets as far as the data directory.
      const runs = bad.map(([name, value]) => start({ DATA_DIR: dir.path, [name]: value }));
      for (const [i, run] of runs.entries()) {
        const name = bad[i]![0];
        const { code } = await run.exited;
        expect(code, name).not.toBe(0);
        expect(code, name).not.toBeNull();
        expect(run.stderr()).toContain(name);
        expect(run.stdout()).not.toMatch(/listening on/);
      }
    } finally {
      dir.remove();
    }
  });

  // Each start compiles and loads the whole server (seconds of CPU), so the next case and the
  // one after it share a DATA_DIR: the first start of the next case generates the admin token
  // there and its restart is the start on the stored token; the case after it starts there with
  // ADMIN_TOKEN set. Each start, stop and check of both cases is as it was.
  const generatedDir = tempDir();
  let generated: string | undefined;
  afterAll(() => generatedDir.remove());

  it('first start on a fresh DATA_DIR prints the generated admin token once; SIGTERM exits 0; a restart does not print it again', async () => {
    const dir = generatedDir;
    {
      const first = start({ DATA_DIR: dir.path });
      const [, address] = await waitForOutput(first, /listening on (http:\/\/[^\s]+)/);
      const [, token] = await waitForOutput(first, /^\s*ADMIN_TOKEN=(\S+)\s*$/m);
      expect(first.stdout().match(/ADMIN_TOKEN=/g)).toHaveLength(1);
      generated = token;
      // The printed token is an admin credential.
      const me = await fetch(`${address}/v1/auth/me`, { headers: { authorization: `Bearer ${token}` } });
      expect(me.status).toBe(200);
      expect(await me.json()).toMatchObject({ kind: 'admin' });
      const anonymous = await fetch(`${address}/v1/machines`);
      expect(anonymous.status).toBe(401);
      expect(await stop(first)).toEqual({ code: 0, signal: null });
      expect(first.stdout().match(/ADMIN_TOKEN=/g)).toHaveLength(1);

      const second = start({ DATA_DIR: dir.path });
      const [, address2] = await waitForOutput(second, /listening on (http:\/\/[^\s]+)/);
      // The start on the stored token (of the title of the case after the next one).
      const storedSaid = await waitForOutput(second, /^Admin token: .*$/m);
      expect(storedSaid[0]).toBe(
        'Admin token: the one generated at first start (stored as a hash; ADMIN_TOKEN is not set).',
      );
      const again = await fetch(`${address2}/v1/auth/me`, { headers: { authorization: `Bearer ${token}` } });
      expect(again.status).toBe(200);
      expect(await stop(second)).toEqual({ code: 0, signal: null });
      expect(second.stdout()).not.toMatch(/ADMIN_TOKEN=/);
      expect(second.stdout()).not.toContain(token!);
    }
  });

  it('with ADMIN_TOKEN set nothing is generated or printed', async () => {
    const dir = tempDir();
    try {
      const run = start({ DATA_DIR: dir.path, ADMIN_TOKEN: 'cli-admin-token-0123456789' });
      const [, address] = await waitForOutput(run, /listening on (http:\/\/[^\s]+)/);
      const me = await fetch(`${address}/v1/auth/me`, {
        headers: { authorization: 'Bearer cli-admin-token-0123456789' },
      });
      expect(me.status).toBe(200);
      expect(await stop(run)).toEqual({ code: 0, signal: null });
      expect(run.stdout()).not.toMatch(/ADMIN_TOKEN=/);
      expect(run.stdout()).not.toContain('cli-admin-token-0123456789');
    } finally {
      dir.remove();
    }
  });

  it('start-up says which admin token is in force (environment or stored), never its value; placeholders are refused', async () => {
    // The directory where the first case's first start generated a token; the start on the
    // stored token was that case's restart.
    const dir = generatedDir;
    expect(generated, 'the token generated by the first case').toBeDefined();
    const refusedDir = tempDir();
    try {
      // Refused at start-up, before the data directory is touched: they run beside the others.
      const placeholder = start({ DATA_DIR: refusedDir.path, ADMIN_TOKEN: 'change-me-to-a-long-secret' });
      const short = start({ DATA_DIR: refusedDir.path, ADMIN_TOKEN: 'change-me' });

      const fromEnv = start({ DATA_DIR: dir.path, ADMIN_TOKEN: 'cli-admin-token-0123456789' });
      await waitForOutput(fromEnv, /listening on/);
      const said = await waitForOutput(fromEnv, /^Admin token: .*$/m);
      expect(said[0]).toBe(
        'Admin token: ADMIN_TOKEN from the environment. The token generated at first start is not accepted while it is set.',
      );
      expect(await stop(fromEnv)).toEqual({ code: 0, signal: null });
      expect(fromEnv.stdout()).not.toContain('cli-admin-token-0123456789');
      expect(fromEnv.stdout()).not.toContain(generated!);

      expect((await placeholder.exited).code).toBe(2);
      expect(placeholder.stderr()).toContain(
        'kioskhub: bad configuration: ADMIN_TOKEN: "change-me-to-a-long-secret" is a placeholder, not a secret; ' +
          'it must be at least 16 characters and not a placeholder. Make one with openssl rand -hex 32',
      );
      // Too short (and a placeholder): the rule and the way to a good one, not the value.
      expect((await short.exited).code).toBe(2);
      expect(short.stderr()).toContain(
        'kioskhub: bad configuration: ADMIN_TOKEN: too short (9 characters); it must be at least 16 characters ' +
          'and not a placeholder. Make one with openssl rand -hex 32',
      );
      expect(short.stderr()).not.toMatch(/\n\s+at /);
      expect(short.stdout()).not.toMatch(/listening on/);
    } finally {
      refusedDir.remove();
    }
  });

  it('a second server on the same DATA_DIR is refused with a clear message; the first one keeps serving', async () => {
    const dir = tempDir();
    try {
      const first = start({ DATA_DIR: dir.path, ADMIN_TOKEN: 'cli-admin-token-0123456789' });
      const [, address] = await waitForOutput(first, /listening on (http:\/\/[^\s]+)/);
      const second = start({ DATA_DIR: dir.path, ADMIN_TOKEN: 'cli-admin-token-0123456789' });
      expect((await second.exited).code).toBe(2);
      expect(second.stderr()).toContain(`another Kioskhub process is using DATA_DIR ${dir.path} (pid `);
      expect(second.stderr()).not.toMatch(/\n\s+at /); // no stack trace
      expect(second.stdout()).not.toMatch(/listening on/);
      expect((await fetch(`${address}/readyz`)).status).toBe(200);
      expect(await stop(first)).toEqual({ code: 0, signal: null });
      // The lock goes with its process: the next server starts.
      const third = start({ DATA_DIR: dir.path, ADMIN_TOKEN: 'cli-admin-token-0123456789' });
      await waitForOutput(third, /listening on/);
      expect(await stop(third)).toEqual({ code: 0, signal: null });
    } finally {
      dir.remove();
    }
  });

  it('PostgreSQL that does not answer is named by DATABASE_URL (password hidden); DATABASE_SCHEMA on SQLite is said to be ignored', async () => {
    const dir = tempDir();
    const pgDir = tempDir();
    try {
      const pg = start({
        DATA_DIR: pgDir.path,
        DATABASE_URL: 'postgres://kioskhub:s3cret@127.0.0.1:1/kioskhub',
      });
      const sqlite = start({ DATA_DIR: dir.path, DATABASE_SCHEMA: 'kh' });
      expect((await pg.exited).code).toBe(2);
      expect(pg.stderr()).toContain(
        'cannot connect to PostgreSQL at DATABASE_URL=postgres://kioskhub:***@127.0.0.1:1/kioskhub: ',
      );
      expect(pg.stderr()).toContain('ECONNREFUSED');
      expect(pg.stderr()).not.toContain('s3cret');

      await waitForOutput(sqlite, /listening on/);
      expect(sqlite.stdout()).toContain(
        'DATABASE_SCHEMA is ignored: it applies to PostgreSQL only, and this server uses SQLite.',
      );
      expect(await stop(sqlite)).toEqual({ code: 0, signal: null });
    } finally {
      dir.remove();
      pgDir.remove();
    }
  });
});
