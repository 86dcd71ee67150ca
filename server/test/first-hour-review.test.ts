// A new operator's first hour, as the README and docs/operations.md walk it: the mistakes one
// makes then (a port already taken on the very first start, a HOST that is not this machine's, a
// REDIS_URL that does not answer, `npm run pay` or `npm run qr:provision` pointed at the wrong
// DATA_DIR, `npm run cluster`'s address used at once) each get a message that says what to change,
// and none of them loses the admin token that the first start generates once.
import { existsSync } from 'node:fs';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { openDatabase } from '../src/platform/db/database.js';
import { createTenantsService } from '../src/modules/tenants/tenants.service.js';
import { dropSchema, newSchemaName, tempDir } from './harness.js';
import { freePortRun } from './cluster/helpers.js';
import { runScript, stop, stopAll, waitForOutput } from './operator-process.js';

afterEach(stopAll);

async function takenPort(): Promise<{ port: number; server: Server }> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as AddressInfo).port, server };
}

async function closedPort(): Promise<number> {
  const { port, server } = await takenPort();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe('npm start: first-hour mistakes', { timeout: 240_000 }, () => {
  it('a first start on a port already in use still shows the admin token it generated (it is stored, and never shown again)', async () => {
    const dir = tempDir();
    const { port, server } = await takenPort();
    try {
      const refused = runScript('server/src/main.ts', [], { DATA_DIR: dir.path, PORT: String(port) });
      expect((await refused.exited).code).toBe(2);
      expect(refused.stderr()).toContain(
        `kioskhub: 127.0.0.1:${port} is already in use; stop what listens there or set PORT`,
      );
      const token = /^\s*ADMIN_TOKEN=(\S+)\s*$/m.exec(refused.stdout())?.[1];
      expect(token, refused.stdout()).toMatch(/^kh_admin_/);
      expect(refused.stdout()).toContain('The server did not start');

      // The next start (on a free port) does not print it again, and the token shown works.
      const next = runScript('server/src/main.ts', [], { DATA_DIR: dir.path, PORT: '0' });
      const [, address] = await waitForOutput(next, /listening on (http:\/\/\S+)/);
      await waitForOutput(next, /^Admin token: .*$/m);
      expect(next.stdout()).not.toMatch(/ADMIN_TOKEN=/);
      const me = await fetch(`${address}/v1/auth/me`, { headers: { authorization: `Bearer ${token}` } });
      expect(me.status).toBe(200);
      expect((await stop(next)).code).toBe(0);
    } finally {
      await new Promise((resolve) => server.close(resolve));
      dir.remove();
    }
  });

  it('an MQTT_PORT already in use is named as MQTT_PORT, not PORT', async () => {
    const dir = tempDir();
    const { port, server } = await takenPort();
    try {
      const r = runScript('server/src/main.ts', [], {
        DATA_DIR: dir.path,
        PORT: '0',
        MQTT_PORT: String(port),
        ADMIN_TOKEN: 'first-hour-admin-token-0123456789',
      });
      expect((await r.exited).code).toBe(2);
      expect(r.stderr()).toContain(
        `kioskhub: 127.0.0.1:${port} is already in use; stop what listens there or set MQTT_PORT`,
      );
    } finally {
      await new Promise((resolve) => server.close(resolve));
      dir.remove();
    }
  });

  it('a HOST that is not an address of this machine is named, with what to set (exit 2, no stack trace)', async () => {
    const dir = tempDir();
    try {
      // TEST-NET-1 (RFC 5737): never an address of the test machine.
      const r = runScript('server/src/main.ts', [], { DATA_DIR: dir.path, PORT: '0', HOST: '192.0.2.1' });
      expect((await r.exited).code).toBe(2);
      expect(r.stderr()).toContain('kioskhub: HOST=192.0.2.1 is not an address of this machine; set HOST');
      expect(r.stderr()).not.toMatch(/\n\s+at /);
      expect(r.stdout()).toMatch(/^\s*ADMIN_TOKEN=kh_admin_\S+$/m);
    } finally {
      dir.remove();
    }
  });

  it('a REDIS_URL that does not answer is named at start-up with what it costs; the server keeps serving', async () => {
    const dir = tempDir();
    const redisPort = await closedPort();
    try {
      const r = runScript('server/src/main.ts', [], {
        DATA_DIR: dir.path,
        PORT: '0',
        ADMIN_TOKEN: 'first-hour-admin-token-0123456789',
        REDIS_URL: `redis://:s3cret-redis@127.0.0.1:${redisPort}`,
      });
      const [, address] = await waitForOutput(r, /listening on (http:\/\/\S+)/);
      const [line] = await waitForOutput(r, /^kioskhub: REDIS_URL=.*$/m, {
        stream: 'stderr',
        timeoutMs: 30_000,
      });
      expect(line).toContain(`REDIS_URL=redis://:***@127.0.0.1:${redisPort} does not answer (`);
      expect(line).toContain('ECONNREFUSED');
      expect(line).toContain('password sign-ins answer 503 UNAVAILABLE');
      expect(r.stderr()).not.toContain('s3cret-redis');
      const machines = await fetch(`${address}/v1/machines`, {
        headers: { authorization: 'Bearer first-hour-admin-token-0123456789' },
      });
      expect(machines.status).toBe(200);
      expect((await stop(r)).code).toBe(0);
    } finally {
      dir.remove();
    }
  });
});

describe('npm run pay and npm run qr:provision pointed at a database', { timeout: 180_000 }, () => {
  it('npm run pay with a DATA_DIR that holds no database says so and creates nothing', async () => {
    const dir = tempDir();
    const wrong = join(dir.path, 'not-the-servers-data');
    try {
      const r = runScript('server/src/cli/pay.ts', ['M01'], {
        DATA_DIR: wrong,
        RAZORPAY_WEBHOOK_SECRET: 'whsec_first_hour',
        PORT: String(await closedPort()),
      });
      expect((await r.exited).code).toBe(2);
      expect(r.stderr()).toContain(
        `pay: there is no database at ${wrong}/kioskhub.db: run this with the DATA_DIR (or DATABASE_URL) your server uses`,
      );
      expect(existsSync(wrong)).toBe(false);
    } finally {
      dir.remove();
    }
  });

  it('qr:provision on the database of a server started with ADMIN_TOKEN makes up no admin token and does not call it new', async () => {
    const dir = tempDir();
    try {
      // What a server started with ADMIN_TOKEN leaves: the default tenant, no generated token.
      const database = await openDatabase({ kind: 'sqlite-file', file: join(dir.path, 'kioskhub.db') });
      try {
        await createTenantsService(database.db).bootstrap({
          adminToken: 'first-hour-admin-token-0123456789',
        });
      } finally {
        await database.close();
      }
      const r = runScript('server/src/cli/qr-provision.ts', ['M01', '--out', join(dir.path, 'qr')], {
        DATA_DIR: dir.path,
        UPI_VPA: 'shop@okaxis',
        UPI_PAYEE_NAME: 'Kiosk Hub',
      });
      expect((await r.exited).code, r.stderr()).toBe(0);
      expect(r.stdout()).toContain('[1/1] M01 ... created machine');
      expect(r.stdout()).not.toMatch(/ADMIN_TOKEN=|New database/);
    } finally {
      dir.remove();
    }
  });

  it('qr:provision on a fresh DATA_DIR says which database is new and shows its admin token once', async () => {
    const dir = tempDir();
    try {
      const env = { DATA_DIR: dir.path, UPI_VPA: 'shop@okaxis', UPI_PAYEE_NAME: 'Kiosk Hub' };
      const args = ['M01', '--out', join(dir.path, 'qr')];
      const first = runScript('server/src/cli/qr-provision.ts', args, env);
      expect((await first.exited).code, first.stderr()).toBe(0);
      expect(first.stdout()).toContain(
        `New database (${dir.path}/kioskhub.db): no server has used it yet. If yours is running already, it uses another one`,
      );
      expect(first.stdout().match(/^\s*ADMIN_TOKEN=kh_admin_\S+$/gm)).toHaveLength(1);
      const again = runScript('server/src/cli/qr-provision.ts', args, env);
      expect((await again.exited).code, again.stderr()).toBe(0);
      expect(again.stdout()).not.toMatch(/ADMIN_TOKEN=|New database/);
    } finally {
      dir.remove();
    }
  });
});

const services =
  process.env['TEST_DATABASE_URL'] && process.env['TEST_REDIS_URL']
    ? { databaseUrl: process.env['TEST_DATABASE_URL'], redisUrl: process.env['TEST_REDIS_URL'] }
    : undefined;
if (!services) {
  console.warn(
    'NOTICE: TEST_DATABASE_URL and TEST_REDIS_URL are not both set: the npm run cluster address test is SKIPPED.',
  );
}

describe.skipIf(!services)('npm run cluster: the address it prints', { timeout: 240_000 }, () => {
  const schemas: string[] = [];
  afterAll(async () => {
    for (const schema of schemas) await dropSchema(schema);
  });

  it('is printed once every node answers, so the curl it shows works at once', async () => {
    const schema = newSchemaName();
    schemas.push(schema);
    // The balancer's port, then the two nodes' (--base-port, +1).
    const port = await freePortRun(3);
    const basePort = port + 1;
    const r = runScript('server/src/cli/cluster.ts', ['--nodes', '2', '--base-port', String(basePort)], {
      DATABASE_URL: services!.databaseUrl,
      DATABASE_SCHEMA: schema,
      REDIS_URL: services!.redisUrl,
      PORT: String(port),
    });
    const address = `http://127.0.0.1:${port}`;
    await waitForOutput(r, /behind the balancer at /, { timeoutMs: 200_000 });
    const token = /^\s*ADMIN_TOKEN=(\S+)$/m.exec(r.stdout())?.[1];
    // No retry: the line promises that the address answers now.
    for (let i = 0; i < 4; i++) {
      const res = await fetch(`${address}/v1/machines`, { headers: { authorization: `Bearer ${token}` } });
      expect(res.status).toBe(200);
    }
    expect(r.stdout()).not.toContain('not answering yet');
    expect((await stop(r)).code).toBe(0);
  });
});
