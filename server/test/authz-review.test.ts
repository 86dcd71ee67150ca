// Authorization review: tenant A's staff (every role) and machine keys against tenant B's rows,
// roles below admin against admin-only routes, machine keys against other machines and staff
// routes, /live rooms across tenants, and ids that must not be probed (another tenant's row
// answers exactly like a row that does not exist).
import { randomBytes } from 'node:crypto';
import type { Socket } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { guestOrder, makeCafe } from './cafe-fixtures.js';
import { connected, engines, liveSocket, qrCredited, startServer, type TestServer } from './harness.js';

const rand = () => randomBytes(4).toString('hex');
const PASSWORD = 'correct-horse';
const ROLES = ['admin', 'technician', 'customer_service', 'staff'] as const;

describe.each(engines())('authz review (%s)', (engine) => {
  let server: TestServer;
  const A = `az_a_${rand()}`;
  const B = `az_b_${rand()}`;
  const tokens: Record<string, string> = {};
  let bAdmin = '';
  const a = {
    site: `asite_${rand()}`,
    kiosk: { id: `akiosk_${rand()}`, key: '' },
    other: `aother_${rand()}`,
  };
  const b = {
    site: `bsite_${rand()}`,
    kiosk: { id: `bkiosk_${rand()}`, key: '' },
    water: `bwater_${rand()}`,
    vending: `bvend_${rand()}`,
    userId: '',
    orderId: '',
    paymentId: '',
    unallocatedId: '',
    alertId: '',
    customerId: '',
    accountId: '',
  };

  async function ok(method: string, path: string, body?: unknown, token?: string) {
    const res = await server.request(method, path, { body, ...(token ? { token } : {}) });
    if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body;
  }

  async function login(role: string, tenantId: string): Promise<string> {
    const email = `${role}-${rand()}@${tenantId.replaceAll('_', '-')}.example`;
    await ok('POST', '/v1/users', { email, password: PASSWORD, role, tenantId });
    const res = await server.request('POST', '/v1/auth/login', {
      token: null,
      body: { email, password: PASSWORD },
    });
    return res.body.token as string;
  }

  beforeAll(async () => {
    server = await startServer({
      engine,
      env: { RATE_LIMIT_PER_MINUTE: '10000000', LOGIN_MAX_PER_ADDRESS: '1000' },
    });
    for (const id of [A, B]) await ok('POST', '/v1/tenants', { id, name: id });
    await ok('POST', '/v1/sites', { id: a.site, name: 'A site', currency: 'PHP', tenantId: A });
    await ok('POST', '/v1/sites', { id: b.site, name: 'B site', currency: 'PHP', tenantId: B });
    a.kiosk.key = (
      await ok('POST', '/v1/machines', { id: a.kiosk.id, kind: 'kiosk', siteId: a.site, tenantId: A })
    ).key;
    await ok('POST', '/v1/machines', { id: a.other, kind: 'vending', tenantId: A });
    b.kiosk.key = (
      await ok('POST', '/v1/machines', { id: b.kiosk.id, kind: 'kiosk', siteId: b.site, tenantId: B })
    ).key;
    await ok('POST', '/v1/machines', { id: b.water, kind: 'water', tenantId: B });
    for (const role of ROLES) tokens[role] = await login(role, A);
    bAdmin = await login('admin', B);
    b.userId = (await ok('GET', '/v1/users', undefined, bAdmin)).items.find(
      (u: { role: string }) => u.role === 'admin',
    ).id;

    // B: a paid vending order (payment, ledger accounts), unallocated cash (and its alert), a customer.
    const vending = await server.createVendingMachine(b.vending, 2500, B);
    expect((await server.postWebhook(qrCredited(vending.qrCodeId, 2500))).status).toBe(200);
    b.orderId = (await ok('GET', `/v1/orders?machineId=${b.vending}`, undefined, bAdmin)).items[0].id;
    b.paymentId = (await ok('GET', `/v1/payments?machineId=${b.vending}`, undefined, bAdmin)).items[0].id;
    const parked = await server.request('POST', '/api/cash-payment/update', {
      token: b.kiosk.key,
      body: { orderNumber: `GHOST-${rand()}`, amountAdded: 20, eventId: `ev-${rand()}` },
    });
    expect(parked.status).toBe(404);
    b.unallocatedId = (await ok('GET', '/v1/cash/unallocated', undefined, bAdmin)).items[0].id;
    const alerts = (await ok('GET', '/v1/alerts', undefined, bAdmin)).items;
    b.alertId = alerts[0]?.id ?? '';
    const phone = `+2547${String(randomBytes(4).readUInt32BE(0) % 100_000_000).padStart(8, '0')}`;
    b.customerId = (await ok('POST', '/v1/customers', { phone, fullName: 'B customer' }, bAdmin)).id;
    b.accountId = (await ok('GET', '/v1/ledger/accounts', undefined, bAdmin)).items[0].id;
    for (const [name, value] of Object.entries(b)) expect(value, name).toBeTruthy();
  }, 120_000);

  afterAll(async () => {
    await server?.close();
  });

  /** [method, path to B's row, the same path with an id that exists nowhere, body]. */
  const probes = (): [string, string, string, unknown][] => {
    const ghost = `ghost${rand()}`;
    const ulid = '01JZZZZZZZZZZZZZZZZZZZZZZZ';
    return [
      ['GET', `/v1/machines/${b.vending}`, `/v1/machines/${ghost}`, undefined],
      ['GET', `/v1/machines/${b.vending}/commands`, `/v1/machines/${ghost}/commands`, undefined],
      ['GET', `/v1/machines/${b.vending}/qr.png`, `/v1/machines/${ghost}/qr.png`, undefined],
      ['GET', `/v1/orders/${b.orderId}`, `/v1/orders/${ulid}`, undefined],
      ['GET', `/v1/orders/${b.orderId}/timeline`, `/v1/orders/${ulid}/timeline`, undefined],
      ['POST', `/v1/orders/${b.orderId}/ready`, `/v1/orders/${ulid}/ready`, undefined],
      ['GET', `/v1/payments/${b.paymentId}`, `/v1/payments/${ulid}`, undefined],
      ['GET', `/v1/payments/${b.paymentId}/refunds`, `/v1/payments/${ulid}/refunds`, undefined],
      ['POST', `/v1/alerts/${b.alertId}/ack`, `/v1/alerts/${ulid}/ack`, undefined],
      ['GET', `/v1/customers/${b.customerId}`, `/v1/customers/${ulid}`, undefined],
      ['GET', `/v1/customers/${b.customerId}/ledger`, `/v1/customers/${ulid}/ledger`, undefined],
      ['GET', `/v1/ledger/accounts/${b.accountId}/entries`, `/v1/ledger/accounts/${ulid}/entries`, undefined],
      [
        'POST',
        `/v1/cash/unallocated/${b.unallocatedId}/resolve`,
        `/v1/cash/unallocated/${ulid}/resolve`,
        { action: 'kept', note: 'probe' },
      ],
      ['PATCH', `/v1/users/${b.userId}`, `/v1/users/${ulid}`, { disabled: true }],
      ['DELETE', `/v1/users/${b.userId}`, `/v1/users/${ulid}`, undefined],
      ['POST', `/v1/water/kiosks/${b.water}/secret`, `/v1/water/kiosks/${ghost}/secret`, {}],
      ['POST', `/v1/machines/${b.vending}/rotate-key`, `/v1/machines/${ghost}/rotate-key`, {}],
      ['PATCH', `/v1/machines/${b.vending}`, `/v1/machines/${ghost}`, { name: 'taken' }],
      ['PATCH', `/v1/sites/${b.site}`, `/v1/sites/${ghost}`, { name: 'taken' }],
    ];
  };

  it("tenant A's staff: B's rows answer exactly like rows that do not exist, and nothing of B changes", async () => {
    const before = JSON.stringify(await ok('GET', '/v1/users', undefined, bAdmin));
    const mismatches: string[] = [];
    for (const role of ROLES) {
      for (const [method, bPath, ghostPath, body] of probes()) {
        const real = await server.request(method, bPath, { token: tokens[role]!, body });
        const ghost = await server.request(method, ghostPath, { token: tokens[role]!, body });
        if (real.status < 400) mismatches.push(`${role} ${method} ${bPath}: ${real.status}`);
        if (real.status !== ghost.status || real.body?.error?.code !== ghost.body?.error?.code)
          mismatches.push(
            `${role} ${method} ${bPath}: ${real.status} ${real.body?.error?.code} vs ${ghost.status} ${ghost.body?.error?.code}`,
          );
      }
    }
    expect(mismatches).toEqual([]);
    expect(JSON.stringify(await ok('GET', '/v1/users', undefined, bAdmin))).toBe(before);
    const order = await ok('GET', `/v1/orders/${b.orderId}`, undefined, bAdmin);
    expect(order.status).not.toBe('COMPLETED');
  });

  it('roles below admin may not do what only admin may (docs/api.md)', async () => {
    const adminOnly: [string, string, unknown][] = [
      ['POST', '/v1/users', { email: `x-${rand()}@a.example`, password: PASSWORD, role: 'admin' }],
      ['GET', '/v1/users', undefined],
      ['PATCH', `/v1/users/${b.userId}`, { role: 'admin' }],
      ['POST', '/v1/machines', { id: `m_${rand()}` }],
      ['PATCH', `/v1/machines/${a.other}`, { name: 'renamed' }],
      ['POST', `/v1/machines/${a.other}/rotate-key`, {}],
      ['PUT', `/v1/machines/${a.other}/payment-profile`, { provider: 'razorpay', qrCodeId: `qr_${rand()}` }],
      ['POST', `/v1/machines/${a.other}/provision-qr`, { amountPaise: 100 }],
      ['POST', '/v1/sites', { id: `s_${rand()}`, name: 'S' }],
      ['PATCH', `/v1/sites/${a.site}`, { name: 'renamed' }],
      ['POST', '/v1/products', { sku: `p_${rand()}`, name: 'P', priceMinor: 100 }],
      ['PATCH', `/v1/products/nosuch`, { priceMinor: 5 }],
      ['POST', `/v1/water/kiosks/${a.other}/secret`, {}],
      [
        'POST',
        '/v1/firmware/campaigns',
        {
          artifactId: 'x',
          target: { hwModel: 'hw' },
          waves: [{ percent: 100, soakMinutes: 0, approval: 'auto' }],
          maxConcurrent: 1,
          failureThresholdPercent: 50,
          minFinishedForThreshold: 1,
        },
      ],
      ['POST', `/v1/firmware/campaigns/01JZZZZZZZZZZZZZZZZZZZZZZZ/start`, undefined],
    ];
    const wrong: string[] = [];
    for (const role of ['technician', 'customer_service', 'staff']) {
      for (const [method, path, body] of adminOnly) {
        const res = await server.request(method, path, { token: tokens[role]!, body });
        if (res.status !== 403) wrong.push(`${role} ${method} ${path}: ${res.status}`);
      }
    }
    // Refunds and customers: admin and customer_service only; resolving cash: not technician.
    for (const role of ['technician', 'staff']) {
      for (const [method, path, body] of [
        ['POST', `/v1/payments/01JZZZZZZZZZZZZZZZZZZZZZZZ/refunds`, { reason: 'x' }],
        ['GET', '/v1/customers', undefined],
        ['POST', '/v1/water/plans', { id: 'p', name: 'p', kind: 'credit', priceMinor: 1, currency: 'PHP' }],
        ['POST', '/v1/orders/01JZZZZZZZZZZZZZZZZZZZZZZZ/refund-due', { note: 'x' }],
      ] as [string, string, unknown][]) {
        const res = await server.request(method, path, { token: tokens[role]!, body });
        if (res.status !== 403) wrong.push(`${role} ${method} ${path}: ${res.status}`);
      }
    }
    const tech = await server.request('POST', `/v1/cash/unallocated/01JZZZZZZZZZZZZZZZZZZZZZZZ/resolve`, {
      token: tokens['technician']!,
      body: { action: 'kept', note: 'x' },
    });
    if (tech.status !== 403) wrong.push(`technician resolve: ${tech.status}`);
    expect(wrong).toEqual([]);
  });

  it('a machine key acts only as its own machine and never on staff routes', async () => {
    const key = a.kiosk.key;
    const wrong: string[] = [];
    const expect403: [string, string, unknown][] = [
      ['GET', `/v1/machines/${a.other}`, undefined],
      ['GET', `/v1/machines/${b.vending}`, undefined],
      ['GET', '/v1/orders', undefined],
      ['GET', '/v1/payments', undefined],
      ['GET', '/v1/users', undefined],
      ['GET', '/v1/sites', undefined],
      ['GET', '/v1/alerts', undefined],
      ['GET', '/v1/ledger/accounts', undefined],
      ['GET', '/v1/cash/unallocated', undefined],
      ['GET', `/v1/kitchen/${a.site}/orders`, undefined],
      ['GET', '/v1/customers', undefined],
      ['GET', '/v1/firmware/campaigns', undefined],
      ['POST', '/v1/orders', { items: [{ sku: 'x', qty: 1 }], siteId: b.site }],
      ['GET', `/sites/${b.site}/api/cash-payment/active-sessions`, undefined],
      ['GET', `/sites/${b.site}/api/receipt/queue/status`, undefined],
      ['POST', '/v1/water/heartbeat', { firmware: '1', taps: [] }],
    ];
    for (const [method, path, body] of expect403) {
      const res = await server.request(method, path, { token: null, headers: { 'x-api-key': key }, body });
      if (res.status !== 403) wrong.push(`${method} ${path}: ${res.status} ${JSON.stringify(res.body)}`);
    }
    expect(wrong).toEqual([]);
    // Its own machine it may read.
    const own = await server.request('GET', `/v1/machines/${a.kiosk.id}`, { token: key });
    expect(own.status).toBe(200);
  });

  it('/live: staff of A join no room of B, and a room of B answers like a room that does not exist', async () => {
    const sockets: Socket[] = [];
    try {
      const results: Record<string, unknown> = {};
      for (const role of ROLES) {
        const s = liveSocket(server.url, { token: tokens[role]! });
        sockets.push(s);
        await connected(s);
        const sub = (room: string) => s.timeout(5_000).emitWithAck('subscribe', { room });
        for (const [room, ghost] of [
          [`tenant:${B}`, `tenant:nosuch${rand()}`],
          [`machine:${b.vending}`, `machine:nosuch${rand()}`],
          [`order:${b.orderId}`, `order:nosuch${rand()}`],
          [`kitchen:${b.site}`, `kitchen:nosuch${rand()}`],
          [`site:${b.site}`, `site:nosuch${rand()}`],
          [`table:${b.kiosk.id}`, `table:nosuch${rand()}`],
        ]) {
          const real = await sub(room!);
          const none = await sub(ghost!);
          results[`${role} ${room}`] = { real: real.ok, same: real.error?.code === none.error?.code };
          expect(real.ok, `${role} ${room}`).toBe(false);
          expect(real.error?.code, `${role} ${room}`).toBe(none.error?.code);
        }
        // A's own rooms work.
        expect((await sub(`tenant:${A}`)).ok).toBe(true);
      }
      // The subscribe payload's tenantId is for ADMIN_TOKEN only.
      const s = sockets[0]!;
      const hinted = await s
        .timeout(5_000)
        .emitWithAck('subscribe', { room: `kitchen:${b.site}`, tenantId: B });
      expect(hinted.ok).toBe(false);
    } finally {
      for (const s of sockets) s.disconnect();
    }
  });

  it("an order token follows its own order only, and reads no other order's cash session", async () => {
    // A kiosk order of A with a cash session: its order token.
    await ok('POST', '/v1/products', {
      sku: `az_${A}`,
      name: 'meal',
      priceMinor: 1000,
      siteId: a.site,
      tenantId: A,
    });
    const mk = async () => {
      const order = await server.request('POST', '/v1/orders', {
        token: a.kiosk.key,
        body: { items: [{ sku: `az_${A}`, qty: 1 }] },
      });
      expect(order.status).toBe(201);
      const init = await server.request('POST', '/api/cash-payment/init', {
        token: a.kiosk.key,
        body: { orderNumber: order.body.orderNumber, totalAmount: 10 },
      });
      expect(init.status).toBe(200);
      return { number: order.body.orderNumber as string, token: init.body.orderToken as string };
    };
    const first = await mk();
    const second = await mk();
    const own = await server.request('GET', `/api/cash-payment/status/${first.number}`, {
      token: first.token,
    });
    expect(own.status).toBe(200);
    const other = await server.request('GET', `/api/cash-payment/status/${second.number}`, {
      token: first.token,
    });
    expect(other.status).toBe(403);
    // Never a staff credential.
    for (const path of ['/v1/orders', '/v1/auth/me', `/v1/machines/${a.kiosk.id}`]) {
      expect((await server.request('GET', path, { token: first.token })).status, path).toBe(401);
    }
    const s = liveSocket(server.url, { orderToken: first.token });
    try {
      await connected(s);
      const sub = (room: string) => s.timeout(5_000).emitWithAck('subscribe', { room });
      expect((await sub(`order:${first.number}`)).ok).toBe(true);
      expect((await sub(`order:${second.number}`)).ok).toBe(false);
      expect((await sub(`tenant:${A}`)).ok).toBe(false);
    } finally {
      s.disconnect();
    }
  });

  it("cafe tokens: a table's token reaches no other table's order, no other tenant's, and no staff route", async () => {
    const cafeA = await makeCafe(server, A);
    const cafeB = await makeCafe(server, B);
    const [t1, t2] = cafeA.tables as [string, string];
    const o1 = await guestOrder(server, cafeA, t1);
    const o2 = await guestOrder(server, cafeA, t2);
    const oB = await guestOrder(server, cafeB, cafeB.tables[0]);
    for (const o of [o1, o2, oB]) expect(o.status).toBe(201);
    const ghost = '01JZZZZZZZZZZZZZZZZZZZZZZZ';
    const table1 = cafeA.tokens[t1]!;
    const status = async (id: string, token: string) =>
      (await server.request('GET', `/api/orders/${id}`, { token })).status;
    expect(await status(o1.body.id, table1)).toBe(200);
    expect(await status(o2.body.id, table1)).toBe(404);
    expect(await status(oB.body.id, table1)).toBe(404);
    expect(await status(ghost, table1)).toBe(404);
    expect(await status(o1.body.id, o1.body.orderToken)).toBe(200);
    expect(await status(o2.body.id, o1.body.orderToken)).toBe(404);
    expect(await status(oB.body.id, o1.body.orderToken)).toBe(404);
    // Staff of A: B's table order is not found, like one that does not exist.
    expect(await status(oB.body.id, tokens['staff']!)).toBe(await status(ghost, tokens['staff']!));
    // Ordering for another table, or at another tenant's cafe, with table 1's token.
    const forT2 = await guestOrder(server, { ...cafeA, tokens: { [t2]: table1 } }, t2);
    expect(forT2.status).toBe(403);
    const atB = await server.request('POST', '/api/orders', {
      token: table1,
      body: { siteId: cafeB.siteId, tableId: cafeB.tables[0], items: [{ sku: cafeB.sku.latte, qty: 1 }] },
    });
    expect(atB.status).toBe(403);
    // Guest tokens are never staff credentials, on HTTP or /live.
    for (const token of [table1, o1.body.orderToken as string]) {
      for (const path of [
        '/v1/orders',
        '/v1/auth/me',
        `/v1/machines/${t1}`,
        '/api/cash-payment/active-sessions',
      ]) {
        expect((await server.request('GET', path, { token })).status, path).toBe(401);
      }
    }
    const tableLive = liveSocket(server.url, { token: table1 });
    const refused = await new Promise<boolean>((resolve) => {
      tableLive.once('connect', () => resolve(false));
      tableLive.once('connect_error', () => resolve(true));
    });
    tableLive.disconnect();
    expect(refused).toBe(true);
    const guestLive = liveSocket(server.url, { orderToken: o1.body.orderToken });
    try {
      await connected(guestLive);
      const sub = (room: string) => guestLive.timeout(5_000).emitWithAck('subscribe', { room });
      expect((await sub(`order:${o1.body.id}`)).ok).toBe(true);
      expect((await sub(`order:${o2.body.id}`)).ok).toBe(false);
      expect((await sub(`table:${t1}`)).ok).toBe(false);
      expect((await sub(`kitchen:${cafeA.siteId}`)).ok).toBe(false);
    } finally {
      guestLive.disconnect();
    }
  });

  it("a water kiosk's credential cache holds only customers allowed at its own site", async () => {
    // Site ids may hold `_`; the cache must not treat it (or case) as a pattern.
    const p = `w${rand()}`;
    const kioskSite = `${p}_1`;
    const lookalikes = [`${p}x1`, `${p.toUpperCase()}_1`];
    for (const id of [kioskSite, ...lookalikes]) await ok('POST', `/v1/sites`, { id, name: id, tenantId: A });
    const kiosk = await ok('POST', '/v1/machines', {
      id: `wk_${rand()}`,
      kind: 'water',
      siteId: kioskSite,
      tenantId: A,
    });
    const phoneOf = () => `+2547${String(randomBytes(4).readUInt32BE(0) % 100_000_000).padStart(8, '0')}`;
    const register = async (siteIds: string[]) =>
      (await ok('POST', `/v1/customers?tenantId=${A}`, { phone: phoneOf(), pin: '4821', siteIds })) as {
        id: string;
        accountId: string;
      };
    const here = await register([kioskSite]);
    const anywhere = await register([]);
    const elsewhere = await Promise.all(lookalikes.map((site) => register([site])));
    const cache = await server.request('GET', '/v1/water/credential-cache', { token: kiosk.key });
    expect(cache.status).toBe(200);
    const accounts = (cache.body.customers as { accountId: string }[]).map((c) => c.accountId);
    expect(accounts).toContain(here.accountId);
    expect(accounts).toContain(anywhere.accountId);
    for (const c of elsewhere) expect(accounts).not.toContain(c.accountId);
  });
});
