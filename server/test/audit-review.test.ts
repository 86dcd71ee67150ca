// Audit review: every change of money or access over the HTTP API leaves an audit row (who, what,
// when, the subject and the amounts) written with the change, readable through GET /v1/audit
// (admin, tenant-scoped, filtered, paged), never writable through the API; a refused request leaves
// no row and no change; sign-ins and lockouts are access events; and every ledger balance the API
// shows equals the sum of its entries. Every channel that settles a payment is covered.
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fakeSmsApi, guestOrder, makeCafe } from './cafe-fixtures.js';
import { dispensed, engines, eventually, qrCredited, startServer, type TestServer } from './harness.js';
import { ledgerInvariants } from './ledger-invariants.js';

const rand = () => randomBytes(4).toString('hex');
const PASSWORD = 'correct-horse-battery';
const PIN = '4821';
let phoneSeq = 0;
const newPhone = () =>
  `+2547${String(Date.now() % 1e6).padStart(6, '0')}${(phoneSeq++ % 100).toString().padStart(2, '0')}`;

type Res = { status: number; body: any };
type Row = {
  id: string;
  tenantId: string | null;
  actor: string;
  action: string;
  subjectType: string;
  subjectId: string;
  before: any;
  after: any;
  at: string;
};

/** Razorpay's refund API (POST /v1/payments/:id/refund), always refunding. */
async function fakeRazorpayRefunds() {
  const server: Server = createServer((req, res) => {
    let raw = '';
    req.on('data', (c: Buffer) => (raw += c.toString()));
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json' }).end(
        JSON.stringify({
          id: `rfnd_${randomBytes(4).toString('hex')}`,
          entity: 'refund',
          amount: JSON.parse(raw || '{}').amount,
          payment_id: /\/v1\/payments\/([^/]+)\/refund/.exec(req.url ?? '')?.[1],
          status: 'processed',
        }),
      );
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise((r) => server.close(r)),
  };
}

describe.each(engines())('audit review (%s)', (engine) => {
  let server: TestServer;
  let sms: Awaited<ReturnType<typeof fakeSmsApi>>;
  let razorpay: Awaited<ReturnType<typeof fakeRazorpayRefunds>>;
  const A = `au_a_${rand()}`;
  const B = `au_b_${rand()}`;
  const siteA = `ausite_${rand()}`;
  const tok: Record<'admin' | 'technician' | 'customer_service' | 'staff' | 'adminB', string> = {
    admin: '',
    technician: '',
    customer_service: '',
    staff: '',
    adminB: '',
  };
  let adminEmail = '';

  async function ok(method: string, path: string, body?: unknown, token?: string) {
    const res = await server.request(method, path, { body, ...(token ? { token } : {}) });
    if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body;
  }

  async function user(role: string, tenantId: string) {
    const email = `${role.replace('_', '-')}-${rand()}@${tenantId.replaceAll('_', '-')}.example`;
    const created = await ok('POST', '/v1/users', { email, password: PASSWORD, role, tenantId });
    const login = await server.request('POST', '/v1/auth/login', {
      token: null,
      body: { email, password: PASSWORD },
    });
    expect(login.status).toBe(200);
    return { id: created.id as string, email, token: login.body.token as string };
  }

  /** Every audit row (all tenants) through the API, newest first, following the cursor. */
  async function auditApi(query: Record<string, string> = {}, token?: string): Promise<Row[]> {
    const rows: Row[] = [];
    let cursor: string | null = null;
    do {
      const params = new URLSearchParams({ ...query, limit: '200', ...(cursor ? { cursor } : {}) });
      const res = await server.request('GET', `/v1/audit?${params}`, token ? { token } : {});
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      rows.push(...res.body.items);
      cursor = res.body.nextCursor;
    } while (cursor);
    return rows;
  }

  /** The rows of one subject (ADMIN_TOKEN, every tenant), oldest first. */
  const auditOf = async (subjectId: string, action?: string) =>
    (await auditApi({ subjectId, ...(action ? { action } : {}) })).reverse();

  const auditCount = async () =>
    Number(
      (
        await server.kioskhub.db
          .selectFrom('audit_log')
          .select((eb) => eb.fn.countAll<number>().as('n'))
          .executeTakeFirstOrThrow()
      ).n,
    );
  const entryCount = async () =>
    Number(
      (
        await server.kioskhub.db
          .selectFrom('ledger_entries')
          .select((eb) => eb.fn.countAll<number>().as('n'))
          .executeTakeFirstOrThrow()
      ).n,
    );

  /** A refused request: the status and code, and no audit row and no ledger entry written. */
  async function refused(
    request: () => Promise<Res>,
    status: number,
    code?: string,
    unchanged?: () => Promise<unknown>,
  ): Promise<void> {
    const audits = await auditCount();
    const entries = await entryCount();
    const before = unchanged ? JSON.stringify(await unchanged()) : '';
    const res = await request();
    expect(res.status, JSON.stringify(res.body)).toBe(status);
    if (code) expect(res.body.error.code).toBe(code);
    expect(await auditCount()).toBe(audits);
    expect(await entryCount()).toBe(entries);
    if (unchanged) expect(JSON.stringify(await unchanged())).toBe(before);
  }

  beforeAll(async () => {
    sms = await fakeSmsApi();
    razorpay = await fakeRazorpayRefunds();
    server = await startServer({
      engine,
      env: {
        RAZORPAY_KEY_ID: 'rzp_test_key',
        RAZORPAY_KEY_SECRET: 'rzp_test_secret',
        RAZORPAY_API_BASE: razorpay.url,
        RATE_LIMIT_PER_MINUTE: '10000000',
        LOGIN_MAX_PER_ADDRESS: '100000',
        AT_USERNAME: 'sandbox',
        AT_API_KEY: 'at-key',
        AT_API_BASE: sms.url,
      },
    });
    for (const id of [A, B]) await ok('POST', '/v1/tenants', { id, name: `Tenant ${id}` });
    await ok('POST', '/v1/sites', { id: siteA, name: 'A site', currency: 'PHP', tenantId: A });
    const admin = await user('admin', A);
    tok.admin = admin.token;
    adminEmail = admin.email;
    for (const role of ['technician', 'customer_service', 'staff'] as const)
      tok[role] = (await user(role, A)).token;
    tok.adminB = (await user('admin', B)).token;
  }, 120_000);

  afterAll(async () => {
    await server?.close();
    await sms?.close();
    await razorpay?.close();
  });

  // ---- the audit API ------------------------------------------------------------------------

  it('GET /v1/audit: admins read their tenant’s rows newest first, with filters and pages; ADMIN_TOKEN reads all', async () => {
    const sku = `ausku_${rand()}`;
    await ok('POST', '/v1/products', { sku, name: 'Tea', priceMinor: 100, siteId: siteA }, tok.admin);
    // t0 strictly between the create and the updates: audit times have milliseconds, and a fast
    // server can write the create in the very millisecond t0 is taken (`from` is inclusive).
    const tick = () => new Promise((r) => setTimeout(r, 5));
    await tick();
    const t0 = new Date().toISOString();
    await tick();
    for (const price of [110, 120, 130])
      await ok('PATCH', `/v1/products/${sku}`, { priceMinor: price }, tok.admin);
    await ok('POST', '/v1/products', { sku: `bsku_${rand()}`, name: 'B tea', priceMinor: 1 }, tok.adminB);

    // The tenant's admin: its own rows only, newest first, each with who, what, when and the change.
    const mine = await auditApi({}, tok.admin);
    expect(mine.length).toBeGreaterThan(4);
    expect(mine.every((r) => r.tenantId === A)).toBe(true);
    expect(mine.map((r) => r.id)).toEqual([...mine.map((r) => r.id)].sort().reverse());
    const updates = await auditApi({ action: 'product.update', subjectId: sku }, tok.admin);
    expect(updates.map((r) => [r.before.priceMinor, r.after.priceMinor])).toEqual([
      [120, 130],
      [110, 120],
      [100, 110],
    ]);
    expect(updates[0]).toMatchObject({
      tenantId: A,
      actor: `user:${adminEmail}`,
      action: 'product.update',
      subjectType: 'product',
      subjectId: sku,
    });
    expect(Date.parse(updates[0]!.at)).toBeGreaterThanOrEqual(Date.parse(t0));

    // Filters: an action prefix (exact, not a pattern: `_` is no wildcard), actor, subject type, time.
    const products = await auditApi({ action: 'product.*', subjectType: 'product' }, tok.admin);
    expect(new Set(products.map((r) => r.action))).toEqual(new Set(['product.create', 'product.update']));
    expect(await auditApi({ action: 'product_*' }, tok.admin)).toEqual([]);
    expect((await auditApi({ actor: `user:${adminEmail}`, subjectId: sku }, tok.admin)).length).toBe(4);
    expect((await auditApi({ subjectId: sku, from: t0 }, tok.admin)).length).toBe(3);
    expect((await auditApi({ subjectId: sku, to: t0 }, tok.admin)).map((r) => r.action)).toEqual([
      'product.create',
    ]);

    // Pages of one follow each other without gaps or repeats.
    const paged: string[] = [];
    let cursor: string | null = null;
    do {
      const res: Res = await server.request(
        'GET',
        `/v1/audit?subjectId=${sku}&limit=1${cursor ? `&cursor=${cursor}` : ''}`,
        { token: tok.admin },
      );
      expect(res.body.items.length).toBeLessThanOrEqual(1);
      paged.push(...res.body.items.map((r: Row) => r.id));
      cursor = res.body.nextCursor;
    } while (cursor);
    expect(paged).toEqual((await auditApi({ subjectId: sku }, tok.admin)).map((r) => r.id));

    // ADMIN_TOKEN: every tenant, or the one named. Another tenant's admin sees none of A's rows.
    const all = await auditApi();
    const tenants = new Set(all.map((r) => r.tenantId));
    expect(tenants.has(A) && tenants.has(B)).toBe(true);
    expect((await auditApi({ tenantId: B })).every((r) => r.tenantId === B)).toBe(true);
    expect((await auditApi({ subjectId: sku }, tok.adminB)).length).toBe(0);
    expect((await auditApi({}, tok.adminB)).every((r) => r.tenantId === B)).toBe(true);
  });

  it('GET /v1/audit: roles below admin, machine keys and strangers are refused; bad queries are 400', async () => {
    for (const role of ['technician', 'customer_service', 'staff'] as const) {
      const res = await server.request('GET', '/v1/audit', { token: tok[role] });
      expect(res.status, role).toBe(403);
    }
    const machine = await ok('POST', '/v1/machines', { id: `aum_${rand()}`, tenantId: A });
    expect((await server.request('GET', '/v1/audit', { token: machine.key })).status).toBe(403);
    expect((await server.request('GET', '/v1/audit', { token: null })).status).toBe(401);
    expect((await server.request('GET', '/v1/audit', { token: 'not-a-credential' })).status).toBe(401);
    expect((await server.request('GET', `/v1/audit?tenantId=${B}`, { token: tok.admin })).status).toBe(403);
    for (const q of [
      'limit=0',
      'limit=201',
      'from=yesterday',
      'to=2026-13-01T00:00:00Z',
      'from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z',
      'action=user%25',
      'unknown=1',
    ]) {
      const res = await server.request('GET', `/v1/audit?${q}`, { token: tok.admin });
      expect(res.status, q).toBe(400);
      expect(res.body.error.code, q).toBe('VALIDATION_FAILED');
    }
  });

  it('the audit log cannot be written, changed or deleted through the API', async () => {
    const [row] = await auditApi();
    const before = JSON.stringify(await server.kioskhub.db.selectFrom('audit_log').selectAll().execute());
    for (const method of ['POST', 'PUT', 'PATCH', 'DELETE']) {
      for (const path of ['/v1/audit', `/v1/audit/${row!.id}`, '/v1/audit-log']) {
        const res = await server.request(method, path, { body: { action: 'forged', actor: 'nobody' } });
        expect(res.status, `${method} ${path}`).toBe(404);
      }
    }
    expect(JSON.stringify(await server.kioskhub.db.selectFrom('audit_log').selectAll().execute())).toBe(
      before,
    );
    // The published API has one audit route, a read.
    const spec = (await server.request('GET', '/openapi.json', { token: null })).body;
    const auditPaths = Object.entries(spec.paths as Record<string, Record<string, unknown>>).filter(([p]) =>
      p.includes('audit'),
    );
    expect(auditPaths.map(([p, ops]) => [p, Object.keys(ops)])).toEqual([['/v1/audit', ['get']]]);
  });

  // ---- access: tenants, users, sign-ins -----------------------------------------------------

  it('creating a tenant is audited (ADMIN_TOKEN as actor); a refused one leaves nothing', async () => {
    const id = `au_t_${rand()}`;
    await ok('POST', '/v1/tenants', { id, name: 'Fresh tenant' });
    const rows = await auditOf(id, 'tenant.create');
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      tenantId: id,
      actor: 'admin-token',
      subjectType: 'tenant',
      subjectId: id,
      after: { id, name: 'Fresh tenant' },
    });
    await refused(
      () => server.request('POST', '/v1/tenants', { body: { id, name: 'again' } }),
      409,
      'CONFLICT',
    );
    await refused(
      () =>
        server.request('POST', '/v1/tenants', { token: tok.admin, body: { id: `x${rand()}`, name: 'x' } }),
      403,
      'FORBIDDEN',
    );
    expect(await auditOf(id, 'tenant.create')).toHaveLength(1);
  });

  it('users: create, role change, disable, delete and logout are audited with actor, before and after; refusals leave nothing', async () => {
    const email = `ops-${rand()}@a.example`;
    const created = await ok('POST', '/v1/users', { email, password: PASSWORD, role: 'staff' }, tok.admin);
    // Refusals first: nothing written, nothing changed.
    const userRow = () =>
      server.kioskhub.db.selectFrom('users').selectAll().where('id', '=', created.id).execute();
    await refused(
      () =>
        server.request('POST', '/v1/users', {
          token: tok.technician,
          body: { email: `t-${rand()}@a.example`, password: PASSWORD, role: 'admin' },
        }),
      403,
      'FORBIDDEN',
    );
    await refused(
      () =>
        server.request('POST', '/v1/users', {
          token: tok.admin,
          body: { email, password: PASSWORD, role: 'staff' },
        }),
      409,
      'CONFLICT',
    );
    await refused(
      () => server.request('PATCH', `/v1/users/${created.id}`, { token: tok.admin, body: { role: 'root' } }),
      400,
      'VALIDATION_FAILED',
      userRow,
    );
    await refused(
      () =>
        server.request('PATCH', `/v1/users/${created.id}`, {
          token: tok.customer_service,
          body: { role: 'admin' },
        }),
      403,
      'FORBIDDEN',
      userRow,
    );
    await refused(
      () =>
        server.request('PATCH', `/v1/users/${created.id}`, { token: tok.adminB, body: { role: 'admin' } }),
      404,
      'NOT_FOUND',
      userRow,
    );
    await refused(
      () => server.request('DELETE', `/v1/users/${created.id}`, { token: tok.adminB }),
      404,
      'NOT_FOUND',
      userRow,
    );

    const login = await server.request('POST', '/v1/auth/login', {
      token: null,
      body: { email, password: PASSWORD },
    });
    expect(login.status).toBe(200);
    expect((await server.request('POST', '/v1/auth/logout', { token: login.body.token })).status).toBe(204);
    await ok('PATCH', `/v1/users/${created.id}`, { role: 'technician' }, tok.admin);
    await ok('PATCH', `/v1/users/${created.id}`, { disabled: true }, tok.admin);
    expect((await server.request('DELETE', `/v1/users/${created.id}`, { token: tok.admin })).status).toBe(
      204,
    );

    const rows = await auditOf(created.id);
    const by = `user:${adminEmail}`;
    expect(rows.map((r) => [r.action, r.actor, r.tenantId])).toEqual([
      ['user.create', by, A],
      ['user.login', `user:${email}`, A],
      ['user.logout', `user:${email}`, A],
      ['user.update', by, A],
      ['user.update', by, A],
      ['user.delete', by, A],
    ]);
    expect(rows[0]!.after).toEqual({ email, role: 'staff' });
    expect(rows[3]).toMatchObject({
      before: { role: 'staff', disabled: false },
      after: { role: 'technician', disabled: false },
    });
    expect(rows[4]).toMatchObject({
      before: { role: 'technician', disabled: false },
      after: { role: 'technician', disabled: true },
    });
    expect(rows[5]!.before).toEqual({ email, role: 'technician' });
    // The password is in no audit row.
    expect(JSON.stringify(await auditApi())).not.toContain(PASSWORD);
  });

  it('two changes of one user at once: neither undoes the other, and the audit rows chain to the final state', async () => {
    for (let round = 0; round < 6; round++) {
      const created = await ok(
        'POST',
        '/v1/users',
        { email: `race-${rand()}@a.example`, password: PASSWORD, role: 'staff' },
        tok.admin,
      );
      const [disable, promote] = await Promise.all([
        server.request('PATCH', `/v1/users/${created.id}`, { token: tok.admin, body: { disabled: true } }),
        server.request('PATCH', `/v1/users/${created.id}`, {
          token: tok.admin,
          body: { role: 'technician' },
        }),
      ]);
      expect([disable.status, promote.status]).toEqual([200, 200]);
      const final = (await ok('GET', '/v1/users', undefined, tok.admin)).items.find(
        (u: { id: string }) => u.id === created.id,
      );
      // The disable must not be undone by the role change, nor the role change by the disable.
      expect({ round, role: final.role, disabled: final.disabled }).toEqual({
        round,
        role: 'technician',
        disabled: true,
      });
      const updates = await auditOf(created.id, 'user.update');
      expect(updates).toHaveLength(2);
      expect(updates[0]!.before).toEqual({ role: 'staff', disabled: false });
      expect(updates[1]!.before).toEqual(updates[0]!.after);
      expect(updates[1]!.after).toEqual({ role: 'technician', disabled: true });
    }
  });

  it('sign-ins are access events: each success and each failed attempt on a user is audited; an unknown email is not', async () => {
    const u = await user('staff', A);
    const succeeded = await auditOf(u.id, 'user.login');
    expect(succeeded).toHaveLength(1);
    expect(succeeded[0]).toMatchObject({
      tenantId: A,
      actor: `user:${u.email}`,
      subjectType: 'user',
      after: { role: 'staff', address: '127.0.0.1' },
    });

    const wrong = await server.request('POST', '/v1/auth/login', {
      token: null,
      body: { email: u.email, password: 'not-the-password' },
    });
    expect(wrong.status).toBe(401);
    await ok('PATCH', `/v1/users/${u.id}`, { disabled: true }, tok.admin);
    const disabled = await server.request('POST', '/v1/auth/login', {
      token: null,
      body: { email: u.email, password: PASSWORD },
    });
    expect(disabled.status).toBe(401);
    // Both answers say the same: a stranger cannot tell a disabled account from a wrong password.
    expect(disabled.body).toEqual(wrong.body);
    const failed = await auditOf(u.id, 'user.login_failed');
    expect(failed.map((r) => [r.actor, r.tenantId, r.after])).toEqual([
      ['address:127.0.0.1', A, { reason: 'wrong_password', address: '127.0.0.1' }],
      ['address:127.0.0.1', A, { reason: 'disabled', address: '127.0.0.1' }],
    ]);
    expect(JSON.stringify(failed)).not.toContain('not-the-password');

    const stranger = `nobody-${rand()}@a.example`;
    const audits = await auditCount();
    expect(
      (
        await server.request('POST', '/v1/auth/login', {
          token: null,
          body: { email: stranger, password: 'x' },
        })
      ).status,
    ).toBe(401);
    expect(await auditCount()).toBe(audits);
  });

  it('sign-in limits: attempts refused by the per-email limit are not checked, so they cannot flood the audit log', async () => {
    const u = await user('staff', A);
    const statuses: number[] = [];
    for (let i = 0; i < 14; i++) {
      statuses.push(
        (
          await server.request('POST', '/v1/auth/login', {
            token: null,
            body: { email: u.email, password: `wrong-${i}` },
          })
        ).status,
      );
    }
    const checked = statuses.filter((s) => s === 401).length;
    expect(statuses.filter((s) => s === 429).length).toBeGreaterThan(0);
    // One row per password actually checked, none for the refused ones.
    expect(await auditOf(u.id, 'user.login_failed')).toHaveLength(checked);
  });

  it('machines: register, key rotation, moves and payment profiles are audited; refusals leave the key working', async () => {
    const id = `aumach_${rand()}`;
    const created = await ok('POST', '/v1/machines', { id, kind: 'vending', siteId: siteA }, tok.admin);
    const status = async (key: string) =>
      (await server.request('GET', `/v1/machines/${id}`, { token: key })).status;
    await refused(
      () => server.request('POST', `/v1/machines/${id}/rotate-key`, { token: tok.adminB }),
      404,
      'NOT_FOUND',
    );
    await refused(
      () => server.request('POST', `/v1/machines/${id}/rotate-key`, { token: tok.technician }),
      403,
      'FORBIDDEN',
    );
    expect(await status(created.key)).toBe(200);
    const rotated = await ok('POST', `/v1/machines/${id}/rotate-key`, undefined, tok.admin);
    expect(await status(created.key)).toBe(401);
    expect(await status(rotated.key)).toBe(200);
    await ok('PATCH', `/v1/machines/${id}`, { siteId: 'default' }, tok.admin);
    await ok(
      'PUT',
      `/v1/machines/${id}/payment-profile`,
      { provider: 'razorpay', qrCodeId: `qr_${rand()}`, fixedAmountPaise: 2000 },
      tok.admin,
    );
    const rows = await auditOf(id);
    expect(rows.map((r) => r.action)).toEqual([
      'machine.create',
      'machine.rotate_key',
      'machine.update',
      'machine.payment_profile',
    ]);
    expect(rows.every((r) => r.actor === `user:${adminEmail}` && r.tenantId === A)).toBe(true);
    expect(rows[2]).toMatchObject({ before: { siteId: siteA }, after: { siteId: 'default' } });
    expect(rows[3]!.after).toMatchObject({ fixedAmountPaise: 2000 });
    // Keys never reach the log.
    expect(JSON.stringify(rows)).not.toContain(created.key);
    expect(JSON.stringify(rows)).not.toContain(rotated.key);
  });

  // ---- prices and sites ----------------------------------------------------------------------

  it('sites and prices: creates and changes are audited with before and after; a refused change leaves nothing', async () => {
    const site = `aus_${rand()}`;
    await ok(
      'POST',
      '/v1/sites',
      { id: site, name: 'Kiosk row', currency: 'PHP', taxRateBp: 1200 },
      tok.admin,
    );
    const siteRow = () => ok('GET', '/v1/sites', undefined, tok.admin);
    await refused(
      () => server.request('PATCH', `/v1/sites/${site}`, { token: tok.admin, body: { currency: 'XYZ' } }),
      400,
      'VALIDATION_FAILED',
      siteRow,
    );
    await refused(
      () =>
        server.request('PATCH', `/v1/sites/${site}`, { token: tok.technician, body: { currency: 'EUR' } }),
      403,
      'FORBIDDEN',
      siteRow,
    );
    await ok('PATCH', `/v1/sites/${site}`, { currency: 'EUR', taxRateBp: 900 }, tok.admin);
    const rows = await auditOf(site);
    expect(rows.map((r) => r.action)).toEqual(['site.create', 'site.update']);
    expect(rows[1]!.before).toMatchObject({ currency: 'PHP', taxRateBp: 1200 });
    expect(rows[1]!.after).toMatchObject({ currency: 'EUR', taxRateBp: 900 });

    const sku = `aup_${rand()}`;
    await ok(
      'POST',
      '/v1/products',
      { sku, name: 'Pan', priceMinor: 2500, siteId: site, stock: 3 },
      tok.admin,
    );
    await refused(
      () => server.request('PATCH', `/v1/products/${sku}`, { token: tok.admin, body: { priceMinor: -1 } }),
      400,
      'VALIDATION_FAILED',
    );
    await refused(
      () => server.request('PATCH', `/v1/products/${sku}`, { token: tok.adminB, body: { priceMinor: 1 } }),
      404,
      'NOT_FOUND',
    );
    await ok('PATCH', `/v1/products/${sku}`, { priceMinor: 2700 }, tok.admin);
    const prices = await auditOf(sku);
    expect(prices.map((r) => [r.action, r.before?.priceMinor ?? null, r.after.priceMinor])).toEqual([
      ['product.create', null, 2500],
      ['product.update', 2500, 2700],
    ]);
  });

  // ---- water customers: credit, plans, PINs --------------------------------------------------

  it('water customers: registration, PIN, credit, subscription, unlock and plans are audited with amounts; refusals leave nothing', async () => {
    const phone = newPhone();
    const c = await ok(
      'POST',
      '/v1/customers',
      { phone, fullName: 'Amina', pin: PIN, reason: 'walk-in' },
      tok.customer_service,
    );
    await ok(
      'POST',
      `/v1/customers/${c.id}/credits`,
      { deltaMl: 20_000, reason: 'paid at the counter' },
      tok.admin,
    );
    const customer = () => ok('GET', `/v1/customers/${c.id}`, undefined, tok.admin);
    await refused(
      () =>
        server.request('POST', `/v1/customers/${c.id}/credits`, {
          token: tok.admin,
          body: { deltaMl: -50_000, reason: 'too much' },
        }),
      409,
      'INSUFFICIENT_CREDIT',
      customer,
    );
    await refused(
      () =>
        server.request('POST', `/v1/customers/${c.id}/credits`, { token: tok.admin, body: { deltaMl: 5 } }),
      400,
      'VALIDATION_FAILED',
      customer,
    );
    await refused(
      () =>
        server.request('POST', `/v1/customers/${c.id}/credits`, {
          token: tok.technician,
          body: { deltaMl: 5, reason: 'x' },
        }),
      403,
      'FORBIDDEN',
      customer,
    );
    await refused(
      () =>
        server.request('POST', `/v1/customers/${c.id}/credits`, {
          token: tok.adminB,
          body: { deltaMl: 5, reason: 'x' },
        }),
      404,
      'NOT_FOUND',
      customer,
    );
    await ok('POST', `/v1/customers/${c.id}/credits`, { deltaMl: -5_000, reason: 'leak refund' }, tok.admin);
    const planId = `aupl${rand()}`;
    await ok(
      'POST',
      '/v1/water/plans',
      { id: planId, name: 'Month', kind: 'subscription', priceMinor: 50_000, currency: 'KES', days: 30 },
      tok.admin,
    );
    await refused(
      () =>
        server.request('POST', '/v1/water/plans', {
          token: tok.admin,
          body: { id: planId, name: 'Again', kind: 'subscription', priceMinor: 1, currency: 'KES', days: 1 },
        }),
      409,
      'CONFLICT',
    );
    await ok('POST', `/v1/customers/${c.id}/subscription`, { planId, reason: 'bought in cash' }, tok.admin);
    await ok('PATCH', `/v1/customers/${c.id}`, { active: false, reason: 'moved away' }, tok.admin);
    await ok('POST', `/v1/customers/${c.id}/unlock`, { reason: 'called in' }, tok.admin);
    const reset = await ok('POST', `/v1/customers/${c.id}/pin-reset`, { reason: 'forgot' }, tok.admin);

    const rows = await auditOf(c.id);
    expect(rows.map((r) => r.action)).toEqual([
      'customer.created',
      'customer.pin_set',
      'customer.registered_by_staff',
      'customer.credit_adjusted',
      'customer.credit_adjusted',
      'customer.subscription_set',
      'customer.updated',
      'customer.unlocked',
      'customer.pin_changed',
      'customer.pin_reset',
    ]);
    const credits = rows.filter((r) => r.action === 'customer.credit_adjusted');
    expect(
      credits.map((r) => [r.before.creditsMl, r.after.deltaMl, r.after.creditsMl, r.after.reason]),
    ).toEqual([
      [0, 20_000, 20_000, 'paid at the counter'],
      [20_000, -5_000, 15_000, 'leak refund'],
    ]);
    expect(rows[0]!.actor).toMatch(/^user:customer-service-/);
    expect(rows.slice(3).every((r) => r.actor === `user:${adminEmail}`)).toBe(true);
    expect(rows.find((r) => r.action === 'customer.subscription_set')!.after).toMatchObject({ planId });
    expect((await auditOf(planId, 'plan.created'))[0]!.after).toMatchObject({
      priceMinor: 50_000,
      currency: 'KES',
    });
    // The PINs are in no audit row.
    const text = JSON.stringify(rows);
    expect(text).not.toContain(PIN);
    if (reset.pin) expect(text).not.toContain(`"${reset.pin}"`);
    // The credit matches the ledger the API shows.
    expect((await customer()).creditsMl).toBe(15_000);
    const ledger = await ok('GET', `/v1/customers/${c.id}/ledger?limit=100`, undefined, tok.admin);
    expect(
      ledger.items.map((e: { amount: number }) => e.amount).reduce((a: number, b: number) => a + b, 0),
    ).toBe(15_000);
  });

  it('water kiosks: a hold and its settlement are audited with the ml; a refused verification holds and records nothing', async () => {
    const kiosk = await ok(
      'POST',
      '/v1/machines',
      { id: `auw_${rand()}`, kind: 'water', siteId: siteA },
      tok.admin,
    );
    const phone = newPhone();
    const c = await ok('POST', '/v1/customers', { phone, pin: PIN }, tok.admin);
    await ok('POST', `/v1/customers/${c.id}/credits`, { deltaMl: 10_000, reason: 'top up' }, tok.admin);
    const verify = (pin: string, ts: number) =>
      server.request('POST', '/dispense-verification', {
        token: null,
        headers: { 'x-api-key': kiosk.key },
        body: {
          kiosk_id: kiosk.id,
          user_id: phone,
          pin,
          volume_ml: 4_000,
          timestamp: new Date(Date.UTC(2026, 0, 1) + ts * 1000).toISOString(),
        },
      });
    const audits = await auditCount();
    const entries = await entryCount();
    const wrong = await verify('0000', 1);
    expect(wrong.body).toMatchObject({ approved: false, code: 'INVALID_PIN' });
    expect(await auditCount()).toBe(audits);
    expect(await entryCount()).toBe(entries);

    const ok1 = await verify(PIN, 2);
    expect(ok1.body).toMatchObject({ approved: true, code: 'VERIFIED' });
    const settled = await server.request('POST', '/v1/water/dispenses', {
      token: null,
      headers: { 'x-api-key': kiosk.key },
      body: { authorizationId: ok1.body.authorization_id, dispensedMl: 3_000, kioskTxnId: `tx-${rand()}` },
    });
    expect(settled.status).toBe(200);
    const rows = (await auditOf(c.id)).filter((r) => r.action.startsWith('water.'));
    expect(rows.map((r) => [r.action, r.actor])).toEqual([
      ['water.hold_placed', `machine:${kiosk.id}`],
      ['water.dispensed', `machine:${kiosk.id}`],
    ]);
    expect(rows[0]!.after).toMatchObject({ authorizationId: ok1.body.authorization_id, heldMl: 4_000 });
    expect((await ok('GET', `/v1/customers/${c.id}`, undefined, tok.admin)).creditsMl).toBe(7_000);

    // The kiosk's secret is handed out only with an audit row naming who took it.
    await ok('POST', `/v1/water/kiosks/${kiosk.id}/secret`, { reason: 'provisioning' }, tok.admin);
    expect((await auditOf(kiosk.id, 'water.kiosk_secret_issued'))[0]).toMatchObject({
      actor: `user:${adminEmail}`,
      after: { reason: 'provisioning' },
    });
  });

  // ---- payments and refunds --------------------------------------------------------------------

  it('refunds: each refund and its completion are audited with the amounts; a refund beyond what is left changes nothing', async () => {
    const vending = await server.createVendingMachine(`auv_${rand()}`, 2500, A);
    const paidRes = await server.postWebhook(qrCredited(vending.qrCodeId, 2500));
    expect(paidRes.status).toBe(200);
    // Dispensed (the machine's result, recorded as its socket would): a partial refund of an
    // order whose dispense is still queued is refused (docs/api.md §8).
    await dispensed(server, vending.id, paidRes.body.orderId);
    const payment = (await ok('GET', `/v1/payments?machineId=${vending.id}`, undefined, tok.admin)).items[0];
    const paymentRow = () => ok('GET', `/v1/payments/${payment.id}`, undefined, tok.admin);
    await refused(
      () =>
        server.request('POST', `/v1/payments/${payment.id}/refunds`, {
          token: tok.technician,
          body: { amountMinor: 100, reason: 'x', to: 'refund_due' },
        }),
      403,
      'FORBIDDEN',
      paymentRow,
    );
    await refused(
      () =>
        server.request('POST', `/v1/payments/${payment.id}/refunds`, {
          token: tok.adminB,
          body: { amountMinor: 100, reason: 'x', to: 'refund_due' },
        }),
      404,
      'NOT_FOUND',
      paymentRow,
    );
    const refund = await ok(
      'POST',
      `/v1/payments/${payment.id}/refunds`,
      { amountMinor: 1000, reason: 'stuck can', to: 'refund_due' },
      tok.customer_service,
    );
    await refused(
      () =>
        server.request('POST', `/v1/payments/${payment.id}/refunds`, {
          token: tok.admin,
          body: { amountMinor: 1501, reason: 'too much', to: 'refund_due' },
        }),
      409,
      'INVALID_STATE',
      paymentRow,
    );
    await ok('POST', `/v1/refunds/${refund.id}/complete`, { note: 'handed over' }, tok.admin);
    await refused(
      () => server.request('POST', `/v1/refunds/${refund.id}/complete`, { token: tok.admin, body: {} }),
      409,
      'INVALID_STATE',
    );
    const rows = await auditOf(payment.id, 'payment.refund');
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      tenantId: A,
      actor: expect.stringMatching(/^user:customer-service-/),
      before: { status: 'SUCCEEDED', refundedMinor: 0 },
      after: { refundId: refund.id, amountMinor: 1000, destination: 'refund_due', refundedMinor: 1000 },
    });
    const completed = await auditOf(refund.id, 'refund.complete');
    expect(completed).toHaveLength(1);
    expect(completed[0]!.actor).toBe(`user:${adminEmail}`);
  });

  it('resolving unallocated cash is audited once with the item before and after; a second resolution is refused', async () => {
    const kiosk = await ok(
      'POST',
      '/v1/machines',
      { id: `auk_${rand()}`, kind: 'kiosk', siteId: siteA },
      tok.admin,
    );
    const parked = await server.request('POST', '/api/cash-payment/update', {
      token: kiosk.key,
      body: { orderNumber: `NOPE${rand()}`, amountAdded: 20, eventId: `ev-${rand()}` },
    });
    expect(parked.status).toBe(404);
    const item = (await ok('GET', '/v1/cash/unallocated', undefined, tok.admin)).items[0];
    await ok(
      'POST',
      `/v1/cash/unallocated/${item.id}/resolve`,
      { action: 'kept', note: 'nobody claimed it' },
      tok.staff,
    );
    await refused(
      () =>
        server.request('POST', `/v1/cash/unallocated/${item.id}/resolve`, {
          token: tok.admin,
          body: { action: 'returned', note: 'again' },
        }),
      409,
      'INVALID_STATE',
    );
    const rows = await auditOf(item.id);
    expect(rows.map((r) => r.action)).toEqual(['unallocated_cash.recorded', 'unallocated_cash.kept']);
    expect(rows[1]!.actor).toMatch(/^user:staff-/);
    expect(rows[1]!.before).toMatchObject({ status: 'OPEN' });
    expect(rows[1]!.after).toMatchObject({ status: 'KEPT' });
  });

  it('a Razorpay QR payment that pays an order is audited (who: the provider, the amount)', async () => {
    const vending = await server.createVendingMachine(`auq_${rand()}`, 2500, A);
    expect((await server.postWebhook(qrCredited(vending.qrCodeId, 2500))).status).toBe(200);
    const payment = (await ok('GET', `/v1/payments?machineId=${vending.id}`, undefined, tok.admin)).items[0];
    const rows = await auditOf(payment.id);
    expect(rows.map((r) => [r.action, r.actor])).toEqual([['payment.settled', 'provider:razorpay']]);
    expect(rows[0]!.after).toMatchObject({
      purpose: 'order',
      method: 'upi_qr',
      amountMinor: 2500,
      receivedMinor: 2500,
      currency: 'INR',
    });
  });

  it('a Razorpay QR payment of the wrong amount is audited as payment.amount_mismatch (due, received, currency)', async () => {
    const vending = await server.createVendingMachine(`aum_${rand()}`, 2500, A);
    const res = await server.postWebhook(qrCredited(vending.qrCodeId, 1500));
    expect(res.status).toBe(200);
    const payment = (await ok('GET', `/v1/payments?machineId=${vending.id}`, undefined, tok.admin)).items[0];
    expect(payment).toMatchObject({ status: 'FAILED', failureCode: 'AMOUNT_MISMATCH' });
    const rows = await auditOf(payment.id);
    expect(rows.map((r) => [r.action, r.actor])).toEqual([['payment.amount_mismatch', 'provider:razorpay']]);
    expect(rows[0]!.after).toMatchObject({
      orderId: res.body.orderId,
      method: 'upi_qr',
      amountMinor: 2500,
      receivedMinor: 1500,
      currency: 'INR',
    });
  });

  it('a refund sent back through the provider is audited when the provider confirms it', async () => {
    const vending = await server.createVendingMachine(`aur_${rand()}`, 2500, A);
    expect((await server.postWebhook(qrCredited(vending.qrCodeId, 2500))).status).toBe(200);
    const payment = (await ok('GET', `/v1/payments?machineId=${vending.id}`, undefined, tok.admin)).items[0];
    const refund = await ok(
      'POST',
      `/v1/payments/${payment.id}/refunds`,
      { reason: 'vend failed' },
      tok.admin,
    );
    await eventually(
      async () =>
        (await ok('GET', `/v1/payments/${payment.id}/refunds`, undefined, tok.admin)).items[0].status ===
        'SUCCEEDED',
      10_000,
      'the provider refund',
    );
    const rows = await auditOf(refund.id);
    expect(rows.map((r) => [r.action, r.actor])).toContainEqual(['refund.complete', 'provider:razorpay']);
  });

  it('cash inserted at a kiosk and the payment it completes are audited with the amounts', async () => {
    const kiosk = await ok(
      'POST',
      '/v1/machines',
      { id: `auc_${rand()}`, kind: 'kiosk', siteId: siteA },
      tok.admin,
    );
    const sku = `auck_${rand()}`;
    await ok('POST', '/v1/products', { sku, name: 'Meal', priceMinor: 15_000, siteId: siteA }, tok.admin);
    const order = await server.request('POST', '/v1/orders', {
      token: kiosk.key,
      body: { items: [{ sku, qty: 1 }] },
    });
    expect(order.status).toBe(201);
    const init = await server.request('POST', '/api/cash-payment/init', {
      token: kiosk.key,
      body: { orderNumber: order.body.orderNumber, totalAmount: 150 },
    });
    expect(init.status).toBe(200);
    const paid = await server.request('POST', '/api/cash-payment/update', {
      token: kiosk.key,
      body: { orderNumber: order.body.orderNumber, amountAdded: 200, eventId: `ev-${rand()}` },
    });
    expect(paid.body.status).toBe('PAID');
    const rows = await auditOf(init.body.sessionId);
    expect(rows.map((r) => r.action).sort()).toEqual(['cash.inserted', 'payment.settled']);
    const bill = rows.find((r) => r.action === 'cash.inserted')!;
    expect(bill.actor).toBe(`machine:${kiosk.id}`);
    expect(bill.after).toMatchObject({ amountMinor: 20_000, insertedMinor: 20_000, requiredMinor: 15_000 });
    const settled = rows.find((r) => r.action === 'payment.settled')!;
    expect(settled.after).toMatchObject({ method: 'cash', amountMinor: 15_000, receivedMinor: 20_000 });
  });

  it('cash that no order can take is audited when it is recorded as unallocated', async () => {
    const kiosk = await ok(
      'POST',
      '/v1/machines',
      { id: `auu_${rand()}`, kind: 'kiosk', siteId: siteA },
      tok.admin,
    );
    const parked = await server.request('POST', '/api/cash-payment/update', {
      token: kiosk.key,
      body: { orderNumber: `NOPE${rand()}`, amountAdded: 50, eventId: `ev-${rand()}` },
    });
    expect(parked.status).toBe(404);
    const item = (await ok('GET', '/v1/cash/unallocated', undefined, tok.admin)).items[0];
    const rows = await auditOf(item.id);
    expect(rows.map((r) => [r.action, r.actor])).toEqual([
      ['unallocated_cash.recorded', `machine:${kiosk.id}`],
    ]);
    expect(rows[0]!.after).toMatchObject({ status: 'OPEN', reason: 'UNKNOWN_ORDER', amountMinor: 5_000 });
  });

  it('paying a cafe order from the wallet is audited with the amount', async () => {
    const cafe = await makeCafe(server, A);
    const table = cafe.tables[0]!;
    const phone = newPhone();
    await server.request('POST', '/api/customers/otp', { token: cafe.tokens[table]!, body: { phone } });
    const code = await eventually(() => sms.codeFor(phone), 10_000, 'the SMS code');
    const me = (
      await server.request('POST', '/api/customers/session', {
        token: cafe.tokens[table]!,
        body: { phone, code },
      })
    ).body;
    await ok(
      'POST',
      '/api/credits/add',
      { customerId: me.customerId, amountMinor: 2000, reason: 'gift' },
      tok.admin,
    );
    const order = await guestOrder(server, cafe, table);
    const paid = await server.request('POST', '/api/payments/initiate', {
      token: me.token,
      body: { orderId: order.body.id, method: 'credit' },
    });
    expect(paid.status).toBe(201);
    const rows = await auditOf(paid.body.paymentId);
    expect(rows.map((r) => [r.action, r.actor])).toEqual([['payment.settled', `customer:${me.customerId}`]]);
    expect(rows[0]!.after).toMatchObject({ method: 'credit', customerId: me.customerId });
  });

  // ---- customer credentials: the wallet sign-in code ------------------------------------------

  it('a wallet sign-in code spent by wrong guesses is a lockout: audited once; the sign-in itself is audited', async () => {
    const cafe = await makeCafe(server, A);
    const table = cafe.tables[0]!;
    const phone = newPhone();
    const ask = () =>
      server.request('POST', '/api/customers/otp', { token: cafe.tokens[table]!, body: { phone } });
    const session = (code: string) =>
      server.request('POST', '/api/customers/session', { token: cafe.tokens[table]!, body: { phone, code } });
    expect((await ask()).status).toBe(202);
    const code = await eventually(() => sms.codeFor(phone), 10_000, 'the SMS code');
    const wrong = code === '000000' ? '111111' : '000000';
    for (let i = 0; i < 5; i++) expect((await session(wrong)).status).toBe(401);
    expect((await session(code)).status).toBe(429);
    expect((await session(code)).status).toBe(401);
    const locks = await auditOf(phone, 'customer.sign_in_locked');
    expect(locks).toHaveLength(1);
    expect(locks[0]).toMatchObject({ tenantId: A, subjectType: 'phone', actor: 'system' });
    expect(JSON.stringify(locks)).not.toContain(code);

    // A fresh code signs in, audited as the customer's.
    sms.sent.length = 0;
    expect((await ask()).status).toBe(202);
    const fresh = await eventually(() => sms.codeFor(phone), 10_000, 'the second SMS code');
    const signedIn = await session(fresh);
    expect(signedIn.status).toBe(200);
    expect(await auditOf(signedIn.body.customerId, 'customer.wallet_sign_in')).toHaveLength(1);
  });

  // ---- the ledger ------------------------------------------------------------------------------

  it('every balance the API shows equals the sum of its entries the API shows', async () => {
    for (const token of [tok.admin, tok.adminB]) {
      let cursor: string | null = null;
      let accounts = 0;
      do {
        const page: Res = await server.request(
          'GET',
          `/v1/ledger/accounts?limit=200${cursor ? `&cursor=${cursor}` : ''}`,
          { token },
        );
        expect(page.status).toBe(200);
        for (const account of page.body.items) {
          accounts += 1;
          let sum = 0;
          let entryCursor: string | null = null;
          do {
            const entries: Res = await server.request(
              'GET',
              `/v1/ledger/accounts/${account.id}/entries?limit=200${entryCursor ? `&cursor=${entryCursor}` : ''}`,
              { token },
            );
            expect(entries.status).toBe(200);
            for (const e of entries.body.items) {
              expect(e.unit).toBe(account.unit);
              sum += e.amount;
            }
            entryCursor = entries.body.nextCursor;
          } while (entryCursor);
          expect(sum, `${account.kind} ${account.ownerType}:${account.ownerId} ${account.unit}`).toBe(
            account.balance,
          );
        }
        cursor = page.body.nextCursor;
      } while (cursor);
      if (token === tok.admin) expect(accounts).toBeGreaterThan(3);
    }
    expect(await ledgerInvariants(server.kioskhub.db)).toEqual({ drift: [], units: [] });
  });
});
