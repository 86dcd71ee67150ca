// One-time links to the orders CSV export (POST /v1/orders/export-links, then
// GET /v1/orders/export.csv?download=<token> without a bearer header), on both engines: the link
// gives the very file the bearer export gives for its filters, works once (also when two requests
// race with it), expires, keeps its maker's tenant, stops working when its maker is deleted or
// (ADMIN_TOKEN's links) when ADMIN_TOKEN is changed, and bad input is a 400 that stores nothing.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deleteSpentExportLinks } from '../src/modules/dashboard/export-links.js';
import { sha256 } from '../src/platform/http/auth.js';
import { PASSWORD, staffToken } from './dashboard-fixtures.js';
import { insertOrders, orderRow } from './fixtures/report-rows.js';
import {
  ADMIN_TOKEN,
  dropSchema,
  engines,
  newSchemaName,
  startServer,
  tempDir,
  type TestServer,
} from './harness.js';

const T0 = Date.UTC(2026, 2, 1);
const at = (i: number) => new Date(T0 + i * 60_000).toISOString();

describe.each(engines())('orders CSV export by one-time link (%s)', (engine) => {
  let server: TestServer;
  const schema = engine === 'postgres' ? newSchemaName() : undefined;
  let staff = '';
  let otherStaff = '';

  beforeAll(async () => {
    const env = {
      WATER_ALERT_SWEEP_MS: '3600000',
      DASHBOARD_SWEEP_MS: '3600000',
      // A process may trust its last look at a sign-in for this long (a revocation it missed).
      TOKEN_CHECK_CACHE_MS: '60000',
    };
    server = await startServer({ engine, env, ...(schema ? { schema } : {}) });
    expect(
      (await server.request('POST', '/v1/tenants', { body: { id: 'other', name: 'Other Co' } })).status,
    ).toBe(201);
    [staff, otherStaff] = await Promise.all([
      staffToken(server, 'links@default.test', 'staff'),
      staffToken(server, 'links@other.test', 'staff', 'other'),
    ]);
    await server.createMachine('LNK1');
    const rows = [];
    for (let i = 0; i < 12; i++)
      rows.push(
        orderRow(`lnk-${String(i).padStart(2, '0')}`, 'LNK1', at(i), {
          status: i % 3 === 0 ? 'CANCELLED' : 'PAID',
          customer_name: i === 4 ? 'Ravi, "R"' : null,
        }),
      );
    for (let i = 0; i < 3; i++) rows.push(orderRow(`lnko-${i}`, null, at(i), { tenant_id: 'other' }));
    await insertOrders(server, rows);
  }, 60_000);
  afterAll(async () => {
    await server?.close();
    if (schema) await dropSchema(schema);
  });

  const links = () => server.kioskhub.db.selectFrom('export_links').selectAll().execute();
  const makeLink = async (token: string, body: unknown = {}) => {
    const res = await server.request('POST', '/v1/orders/export-links', { token, body });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    return res.body as { url: string; expiresAt: string };
  };
  /** Follows a link as a browser does: no Authorization header. */
  const follow = (url: string) => fetch(`${server.url}${url}`);
  const errorOf = async (res: Response) => {
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    return ((await res.json()) as { error: { code: string; message: string } }).error;
  };
  const ids = (csv: string) =>
    csv
      .trimEnd()
      .split('\r\n')
      .slice(1)
      .map((l) => l.split(',')[0]);

  it('gives the bearer export’s very file once, then 401; two racing requests get one export', async () => {
    const filters = { machineId: 'LNK1', status: 'PAID', from: at(1) };
    const before = Date.now();
    const link = await makeLink(staff, filters);
    expect(link.url).toMatch(/^\/v1\/orders\/export\.csv\?download=[A-Za-z0-9_-]{43}$/);
    const ttl = Date.parse(link.expiresAt) - before;
    expect(ttl).toBeGreaterThanOrEqual(60_000);
    expect(ttl).toBeLessThan(65_000);
    // Stored hashed: the token itself is nowhere in the table.
    const token = new URL(link.url, server.url).searchParams.get('download')!;
    const stored = await links();
    expect(stored.map((r) => r.token_hash)).toContain(sha256(token));
    expect(JSON.stringify(stored)).not.toContain(token);

    const res = await follow(link.url);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/csv; charset=utf-8');
    expect(res.headers.get('content-disposition')).toMatch(/^attachment; filename="orders-[0-9T-]+\.csv"$/);
    const body = await res.text();
    const bearer = await fetch(`${server.url}/v1/orders/export.csv?${new URLSearchParams(filters)}`, {
      headers: { authorization: `Bearer ${staff}` },
    });
    expect(body).toBe(await bearer.text());
    expect(ids(body)).toEqual([
      'lnk-11',
      'lnk-10',
      'lnk-08',
      'lnk-07',
      'lnk-05',
      'lnk-04',
      'lnk-02',
      'lnk-01',
    ]);

    const again = await follow(link.url);
    expect(again.status).toBe(401);
    const error = await errorOf(again);
    expect(error.code).toBe('UNAUTHORIZED');
    expect(error.message).toMatch(/unknown, used or expired/);

    const raced = await makeLink(staff);
    const statuses = await Promise.all([follow(raced.url), follow(raced.url), follow(raced.url)]).then(
      (all) => Promise.all(all.map(async (r) => (await r.arrayBuffer(), r.status))),
    );
    expect(statuses.sort()).toEqual([200, 401, 401]);
  });

  it('refuses an expired link with 401, and the sweep deletes spent and expired links', async () => {
    const link = await makeLink(staff, { machineId: 'LNK1' });
    const token = new URL(link.url, server.url).searchParams.get('download')!;
    await server.kioskhub.db
      .updateTable('export_links')
      .set({ expires_at: new Date(Date.now() - 1_000).toISOString() })
      .where('token_hash', '=', sha256(token))
      .execute();
    const res = await follow(link.url);
    expect(res.status).toBe(401);
    expect((await errorOf(res)).code).toBe('UNAUTHORIZED');
    const fresh = await makeLink(staff);
    expect(await deleteSpentExportLinks(server.kioskhub.db)).toBeGreaterThanOrEqual(1);
    const left = await links();
    expect(left.map((r) => r.used_at)).toEqual([null]);
    expect(left[0]!.token_hash).toBe(sha256(new URL(fresh.url, server.url).searchParams.get('download')!));
  });

  it('answers bad input with 400 and stores nothing; a link with other query fields is 400', async () => {
    const before = (await links()).length;
    for (const body of [
      { limit: 5 },
      { status: 'EATEN' },
      { from: 'yesterday' },
      { to: '2026-12-31T23:59:60Z' },
    ]) {
      const res = await server.request('POST', '/v1/orders/export-links', { token: staff, body });
      expect({ body, status: res.status, code: res.body?.error?.code }).toEqual({
        body,
        status: 400,
        code: 'VALIDATION_FAILED',
      });
    }
    const anonymous = await server.request('POST', '/v1/orders/export-links', { token: null, body: {} });
    expect(anonymous.status).toBe(401);
    expect((await links()).length).toBe(before);

    const link = await makeLink(staff);
    const mixed = await follow(`${link.url}&machineId=LNK1`);
    expect(mixed.status).toBe(400);
    expect((await errorOf(mixed)).code).toBe('VALIDATION_FAILED');
    // Not spent by the refused request.
    expect((await follow(link.url)).status).toBe(200);
  });

  it('keeps the maker’s tenant: a tenant user’s link exports that tenant only, ADMIN_TOKEN’s every tenant', async () => {
    const theirs = await (await follow((await makeLink(otherStaff)).url)).text();
    expect(ids(theirs)).toEqual(['lnko-2', 'lnko-1', 'lnko-0']);
    const all = await (await follow((await makeLink(ADMIN_TOKEN)).url)).text();
    expect(ids(all)).toHaveLength(15);
  });

  it('belongs to the sign-in that made it: a role change since is 401, and so is a link made by a sign-in revoked but still accepted from the check cache', async () => {
    const token = await staffToken(server, 'mover@default.test', 'technician');
    const user = await server.kioskhub.db
      .selectFrom('users')
      .select('id')
      .where('email', '=', 'mover@default.test')
      .executeTakeFirstOrThrow();
    expect((await server.request('GET', '/v1/auth/me', { token })).status).toBe(200); // check cached
    const before = await makeLink(token, { machineId: 'LNK1' });
    // Revoked where this process does not hear of it (another process's sign-out, say).
    await server.kioskhub.db
      .updateTable('users')
      .set((eb) => ({ token_version: eb('token_version', '+', 1) }))
      .where('id', '=', user.id)
      .execute();
    const after = await makeLink(token, { machineId: 'LNK1' }); // accepted from the cache
    for (const link of [before, after]) {
      const res = await follow(link.url);
      expect(res.status).toBe(401);
      expect((await errorOf(res)).message).toMatch(/signed out or been changed since/);
    }
    // A role change (here, through the API) ends a fresh sign-in's link the same way.
    const fresh = await staffToken(server, 'changer@default.test', 'technician');
    const link = await makeLink(fresh);
    const changer = await server.kioskhub.db
      .selectFrom('users')
      .select('id')
      .where('email', '=', 'changer@default.test')
      .executeTakeFirstOrThrow();
    expect(
      (await server.request('PATCH', `/v1/users/${changer.id}`, { body: { role: 'staff' } })).status,
    ).toBe(200);
    const res = await follow(link.url);
    expect(res.status).toBe(401);
    expect((await errorOf(res)).code).toBe('UNAUTHORIZED');
  });

  it('stops working when the sign-in that made it signs out (DELETE /v1/auth/session); another sign-in’s link still works', async () => {
    const token = await staffToken(server, 'session@default.test', 'staff');
    const login = await server.request('POST', '/v1/auth/login', {
      body: { email: 'session@default.test', password: PASSWORD },
      token: null,
    });
    expect(login.status).toBe(200);
    const ended = await makeLink(token, { machineId: 'LNK1' });
    const kept = await makeLink(login.body.token as string, { machineId: 'LNK1' });
    expect((await server.request('DELETE', '/v1/auth/session', { token })).status).toBe(204);
    const res = await follow(ended.url);
    expect(res.status).toBe(401);
    expect((await errorOf(res)).message).toMatch(/has signed out since/);
    expect((await follow(kept.url)).status).toBe(200);
  });

  it('stops working when its maker is deleted (401, nothing streamed)', async () => {
    const token = await staffToken(server, 'leaver@default.test', 'staff');
    const link = await makeLink(token, { machineId: 'LNK1' });
    const user = await server.kioskhub.db
      .selectFrom('users')
      .select('id')
      .where('email', '=', 'leaver@default.test')
      .executeTakeFirstOrThrow();
    expect((await server.request('DELETE', `/v1/users/${user.id}`)).status).toBe(204);
    const res = await follow(link.url);
    expect(res.status).toBe(401);
    const error = await errorOf(res);
    expect(error).toMatchObject({ code: 'UNAUTHORIZED', message: expect.stringMatching(/no longer exists/) });
  });
});

describe.each(engines())('an ADMIN_TOKEN export link after ADMIN_TOKEN is changed (%s)', (engine) => {
  it('is 401 once the server runs with a new ADMIN_TOKEN; a link the new one makes works', async () => {
    const schema = engine === 'postgres' ? newSchemaName() : undefined;
    const dir = tempDir('kioskhub-links-');
    const store = schema ? { schema } : { dataDir: dir.path };
    const newToken = 'rotated-admin-token-9f3c1e7a52d84b06';
    const follow = (server: TestServer, url: string) => fetch(`${server.url}${url}`);
    try {
      const before = await startServer({ engine, ...store });
      let oldLink: { url: string };
      let unchanged: { url: string };
      try {
        const made = () => before.request('POST', '/v1/orders/export-links', { body: {} });
        const [first, second] = await Promise.all([made(), made()]);
        expect(first!.status).toBe(201);
        oldLink = first!.body as { url: string };
        unchanged = second!.body as { url: string };
      } finally {
        await before.close();
      }
      // The same ADMIN_TOKEN after a restart: the link still works.
      const same = await startServer({ engine, ...store });
      try {
        expect((await follow(same, unchanged.url)).status).toBe(200);
      } finally {
        await same.close();
      }
      const after = await startServer({ engine, ...store, env: { ADMIN_TOKEN: newToken } });
      try {
        const res = await follow(after, oldLink.url);
        expect(res.status).toBe(401);
        const body = (await res.json()) as { error: { code: string; message: string } };
        expect(body.error).toEqual({
          code: 'UNAUTHORIZED',
          message:
            'this download link was made with an ADMIN_TOKEN that has been changed since; export again with the current one',
        });
        const fresh = await after.request('POST', '/v1/orders/export-links', { token: newToken, body: {} });
        expect(fresh.status).toBe(201);
        const ok = await follow(after, (fresh.body as { url: string }).url);
        expect(ok.status).toBe(200);
        expect(await ok.text()).toMatch(/^id,/);
      } finally {
        await after.close();
      }
    } finally {
      if (schema) await dropSchema(schema);
      dir.remove();
    }
  }, 60_000);
});
