// The dashboard's /v1 routes (docs/dashboard.md) against the real server and database: the
// fleet, a machine's commands and QR, QR provisioning, machine edits, order filters and CSV,
// the Needs review decisions, charts, print counts and the dashboard's alerts. Every route is
// also asked by another tenant's staff, who must get nothing.
import { SimulatedMachine } from '@kioskhub/machine-simulator';
import QRCode from 'qrcode';
import type { Socket } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  connected,
  engines,
  eventually,
  liveSocket,
  qrCredited,
  startServer,
  tempDir,
  type TestServer,
} from './harness.js';
import { orderStatus, otherTenant, silentV1Machine, staffToken } from './dashboard-fixtures.js';

describe.each(engines())('dashboard API (%s)', (engine) => {
  let server: TestServer;
  const dir = tempDir('kioskhub-dash-');
  const tok: Record<'staff' | 'cs' | 'tech' | 'admin', string> = { staff: '', cs: '', tech: '', admin: '' };
  let other: Awaited<ReturnType<typeof otherTenant>>;
  let m01: { id: string; key: string; qrCodeId: string };
  let v1: { id: string; key: string; qrCodeId: string };
  const paidM01: string[] = [];
  const get = (path: string, token?: string) => server.request('GET', path, token ? { token } : {});
  const post = (path: string, body: unknown, token?: string) =>
    server.request('POST', path, { body, ...(token ? { token } : {}) });

  beforeAll(async () => {
    server = await startServer({
      engine,
      env: {
        DATA_DIR: dir.path,
        UPI_VPA: 'shop@okaxis',
        UPI_PAYEE_NAME: 'Kiosk Hub',
        DISPATCH_RESULT_TIMEOUT_MS: '300',
        DASHBOARD_SWEEP_MS: '150',
        MACHINE_OFFLINE_ALERT_MS: '200',
      },
    });
    expect((await post('/v1/sites', { id: 's2', name: 'Second site' })).status).toBe(201);
    m01 = await server.createVendingMachine('M01', 2000);
    v1 = await server.createVendingMachine('V1', 2000);
    await server.createMachine('M02', { kind: 'kiosk', siteId: 's2' });
    tok.staff = await staffToken(server, 'staff@default.test', 'staff');
    tok.cs = await staffToken(server, 'cs@default.test', 'customer_service');
    tok.tech = await staffToken(server, 'tech@default.test', 'technician');
    tok.admin = await staffToken(server, 'admin@default.test', 'admin');
    other = await otherTenant(server);
    for (let i = 0; i < 2; i++)
      paidM01.push((await server.postWebhook(qrCredited(m01.qrCodeId, 2000))).body.orderId as string);
  });
  afterAll(async () => {
    await server?.close();
    dir.remove();
  });

  it('lists the fleet with queued orders, filtered, and only the caller’s tenant', async () => {
    const all = await get('/v1/fleet', tok.staff);
    expect(all.status).toBe(200);
    expect(all.body.items.map((m: { id: string }) => m.id)).toEqual(['M01', 'M02', 'V1']);
    expect(all.body.items[0]).toMatchObject({
      id: 'M01',
      status: 'OFFLINE',
      siteId: 'default',
      queuedOrders: 2,
    });
    const ids = async (query: string) =>
      (await get(`/v1/fleet${query}`, tok.staff)).body.items.map((m: { id: string }) => m.id);
    expect(await ids('?kind=kiosk')).toEqual(['M02']);
    expect(await ids('?siteId=s2')).toEqual(['M02']);
    expect(await ids('?status=IDLE')).toEqual([]);
    expect(await ids('?q=m0')).toEqual(['M01', 'M02']);
    expect(await ids('?q=%25')).toEqual([]);
    expect(await ids('?limit=1')).toEqual(['M01']);
    expect((await get('/v1/fleet?limit=1&cursor=M01', tok.staff)).body.items[0].id).toBe('M02');
    expect((await get('/v1/fleet')).body.items.map((m: { id: string }) => m.id)).toContain('O01'); // ADMIN_TOKEN: all tenants
    expect((await get('/v1/fleet', other.staffToken)).body.items.map((m: { id: string }) => m.id)).toEqual([
      'O01',
    ]);
    expect((await server.request('GET', '/v1/fleet', { token: null })).status).toBe(401);
    expect((await get('/v1/fleet?status=SLEEPING', tok.staff)).status).toBe(400);
  });

  it('counts the whole fleet for the summary line, whatever one page holds, per tenant', async () => {
    const summary = async (query: string, token?: string) =>
      (await get(`/v1/fleet/summary${query}`, token)).body;
    expect(await summary('', tok.staff)).toEqual({ machines: 3, online: 0, queuedOrders: 2 });
    expect(await summary('?kind=kiosk', tok.staff)).toEqual({ machines: 1, online: 0, queuedOrders: 0 });
    expect(await summary('?q=m01', tok.staff)).toEqual({ machines: 1, online: 0, queuedOrders: 2 });
    const others = (await get('/v1/fleet', other.staffToken)).body.items as { queuedOrders: number }[];
    expect(await summary('', other.staffToken)).toEqual({
      machines: 1,
      online: 0,
      queuedOrders: others[0]!.queuedOrders,
    });
    expect((await summary('')).machines).toBe(4); // ADMIN_TOKEN: all tenants
    expect((await server.request('GET', '/v1/fleet/summary', { token: null })).status).toBe(401);
    const bad = await get('/v1/fleet/summary?status=SLEEPING', tok.staff);
    expect(bad.status).toBe(400);
    expect((await get('/v1/fleet/summary?limit=1', tok.staff)).status).toBe(400);
  });

  it('shows a machine’s recent commands, not another tenant’s', async () => {
    const res = await get('/v1/machines/M01/commands', tok.staff);
    expect(res.status).toBe(200);
    expect(res.body.items.map((c: { orderId: string }) => c.orderId).sort()).toEqual([...paidM01].sort());
    expect(res.body.items[0]).toMatchObject({ status: 'QUEUED', attempts: 0, result: null });
    expect((await get('/v1/machines/M01/commands', other.staffToken)).status).toBe(404);
    expect((await get('/v1/machines/NOPE/commands', tok.staff)).status).toBe(404);
  });

  it('draws the payment QR as a PNG', async () => {
    const res = await fetch(`${server.url}/v1/machines/M01/qr.png`, {
      headers: { authorization: `Bearer ${tok.staff}` },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('image/png');
    expect(res.headers.get('x-kioskhub-qr-source')).toBe('image-url');
    const expected = await QRCode.toBuffer('https://rzp.io/i/M01', {
      type: 'png',
      errorCorrectionLevel: 'M',
      margin: 4,
      width: 512,
    });
    expect(Buffer.from(await res.arrayBuffer()).equals(expected)).toBe(true);
    expect((await get('/v1/machines/M02/qr.png', tok.staff)).status).toBe(404); // no payment profile
    expect((await get('/v1/machines/M01/qr.png', other.staffToken)).status).toBe(404);
    expect((await get('/v1/machines/O01/qr.png', other.staffToken)).status).toBe(200);
  });

  it('provisions a UPI QR from the dashboard (admins only, audited)', async () => {
    expect((await post('/v1/machines/M02/provision-qr', { amountPaise: 2500 }, tok.staff)).status).toBe(403);
    expect(
      (await post('/v1/machines/M02/provision-qr', { amountPaise: 2500 }, other.adminToken)).status,
    ).toBe(404);
    expect((await post('/v1/machines/M02/provision-qr', { amountPaise: 0 }, tok.admin)).status).toBe(400);
    const res = await post('/v1/machines/M02/provision-qr', { amountPaise: 2500 }, tok.admin);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      machineId: 'M02',
      status: 'provisioned',
      qrCodeId: 'local_M02',
      error: null,
    });
    const machine = (await get('/v1/machines/M02', tok.staff)).body;
    expect(machine.paymentProfile).toMatchObject({ provider: 'upi_local', fixedAmountPaise: 2500 });
    expect(machine.paymentProfile.qrContent).toMatch(/^upi:\/\/pay\?pa=shop@okaxis&.*am=25\.00/);
    const png = await fetch(`${server.url}/v1/machines/M02/qr.png`, {
      headers: { authorization: `Bearer ${tok.staff}` },
    });
    expect(png.headers.get('x-kioskhub-qr-source')).toBe('content');
    expect((await post('/v1/machines/M02/provision-qr', { amountPaise: 2500 }, tok.admin)).body.status).toBe(
      'skipped',
    );
    const audit = await server.kioskhub.db
      .selectFrom('audit_log')
      .selectAll()
      .where('action', '=', 'machine.provision_qr')
      .execute();
    expect(audit).toHaveLength(1);
    expect(audit[0]).toMatchObject({
      actor: 'user:admin@default.test',
      subject_id: 'M02',
      tenant_id: 'default',
    });
    // The profile it set is audited with the operator who asked, not the CLI's name.
    const profileAudit = await server.kioskhub.db
      .selectFrom('audit_log')
      .select('actor')
      .where('action', '=', 'machine.payment_profile')
      .where('subject_id', '=', 'M02')
      .execute();
    expect(profileAudit).toEqual([{ actor: 'user:admin@default.test' }]);
  });

  it('renames a machine and moves it between sites (admins only, audited)', async () => {
    const patch = (body: unknown, token: string, id = 'M02') =>
      server.request('PATCH', `/v1/machines/${id}`, { body, token });
    expect((await patch({ name: 'Kiosk two' }, tok.staff)).status).toBe(403);
    expect((await patch({ name: 'Mine now' }, other.adminToken)).status).toBe(404);
    expect((await patch({ siteId: 'nowhere' }, tok.admin)).status).toBe(404);
    expect((await patch({}, tok.admin)).status).toBe(400);
    const res = await patch({ name: 'Kiosk two', siteId: 'default' }, tok.admin);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ id: 'M02', name: 'Kiosk two', siteId: 'default' });
    const audit = await server.kioskhub.db
      .selectFrom('audit_log')
      .selectAll()
      .where('action', '=', 'machine.update')
      .executeTakeFirstOrThrow();
    expect(JSON.parse(audit.before!)).toEqual({ name: 'M02', siteId: 's2' });
  });

  it('filters orders by site and date range, and exports the filtered list as CSV', async () => {
    const count = async (query: string, token = tok.staff) =>
      (await get(`/v1/orders${query}`, token)).body.items.length;
    const hourAgo = new Date(Date.now() - 3_600_000).toISOString();
    const inAnHour = new Date(Date.now() + 3_600_000).toISOString();
    expect(await count('?machineId=M01')).toBe(2);
    expect(await count('?siteId=default&machineId=M01')).toBe(2);
    expect(await count('?siteId=s2')).toBe(0);
    expect(
      await count(`?from=${encodeURIComponent(hourAgo)}&to=${encodeURIComponent(inAnHour)}&machineId=M01`),
    ).toBe(2);
    expect(await count(`?from=${encodeURIComponent(inAnHour)}`)).toBe(0);
    expect(await count(`?to=${encodeURIComponent(hourAgo)}`)).toBe(0);
    expect((await get('/v1/orders?from=yesterday', tok.staff)).status).toBe(400);

    const csv = await fetch(
      `${server.url}/v1/orders/export.csv?machineId=M01&from=${encodeURIComponent(hourAgo)}`,
      { headers: { authorization: `Bearer ${tok.staff}` } },
    );
    expect(csv.status).toBe(200);
    expect(csv.headers.get('content-type')).toMatch(/^text\/csv/);
    expect(csv.headers.get('content-disposition')).toMatch(/^attachment; filename="orders-.*\.csv"$/);
    const lines = (await csv.text()).trimEnd().split('\r\n');
    expect(lines[0]).toBe(
      'id,orderNumber,createdAt,paidAt,status,failureCode,machineId,siteId,source,provider,providerPaymentId,amount,amountMinor,currency,customerName,updatedAt',
    );
    expect(
      lines
        .slice(1)
        .map((l) => l.split(',')[0])
        .sort(),
    ).toEqual([...paidM01].sort());
    expect(lines[1]).toContain(',PAID,,M01,default,upi_qr,razorpay,pay_');
    expect(lines[1]).toContain(',20.00,2000,INR,');
    const theirs = (
      await (
        await fetch(`${server.url}/v1/orders/export.csv`, {
          headers: { authorization: `Bearer ${other.staffToken}` },
        })
      ).text()
    )
      .trimEnd()
      .split('\r\n');
    expect(theirs.slice(1).map((l) => l.split(',')[0])).toEqual([other.orderId]);
    expect((await server.request('GET', '/v1/orders/export.csv', { token: null })).status).toBe(401);
  });

  it('settles an amount mismatch as refund due (customer service), audited, never for another tenant', async () => {
    const mismatch = (await server.postWebhook(qrCredited(m01.qrCodeId, 1500))).body.orderId as string;
    const list = await get('/v1/orders/needs-review', tok.staff);
    expect(list.body.items.find((o: { id: string }) => o.id === mismatch)).toMatchObject({
      status: 'FAILED',
      failureCode: 'AMOUNT_MISMATCH',
      reviewReason: 'AMOUNT_MISMATCH',
    });
    expect((await get('/v1/orders/needs-review', other.staffToken)).body.items).toEqual([]);
    expect((await post(`/v1/orders/${mismatch}/mark-dispensed`, {}, tok.admin)).body.error.code).toBe(
      'INVALID_STATE',
    );
    expect((await post(`/v1/orders/${mismatch}/refund-due`, {}, tok.staff)).status).toBe(403);
    expect((await post(`/v1/orders/${mismatch}/refund-due`, {}, tok.tech)).status).toBe(403);
    expect((await post(`/v1/orders/${mismatch}/refund-due`, {}, other.adminToken)).status).toBe(404);
    expect((await post(`/v1/orders/${mismatch}/refund-due`, { note: 'x', extra: 1 }, tok.cs)).status).toBe(
      400,
    );
    const res = await post(`/v1/orders/${mismatch}/refund-due`, { note: 'paid ₹15 for a ₹20 item' }, tok.cs);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ id: mismatch, status: 'REFUNDED', failureCode: 'AMOUNT_MISMATCH' });
    expect((await post(`/v1/orders/${mismatch}/refund-due`, {}, tok.cs)).status).toBe(409);
    const timeline = (await get(`/v1/orders/${mismatch}/timeline`, tok.staff)).body.items;
    expect(timeline.at(-1)).toMatchObject({
      type: 'refund_due',
      actor: 'user:cs@default.test',
      detail: { status: 'REFUNDED', note: 'paid ₹15 for a ₹20 item' },
    });
    const audit = await server.kioskhub.db
      .selectFrom('audit_log')
      .selectAll()
      .where('action', '=', 'order.refund_due')
      .where('subject_id', '=', mismatch)
      .executeTakeFirstOrThrow();
    expect(JSON.parse(audit.before!)).toEqual({ status: 'FAILED', failureCode: 'AMOUNT_MISMATCH' });
    expect(audit.actor).toBe('user:cs@default.test');
    expect(
      (await get('/v1/orders/needs-review', tok.staff)).body.items.map((o: { id: string }) => o.id),
    ).not.toContain(mismatch);
  });

  it('marks a v1 dispense without a result as dispensed (technician), audited', async () => {
    const socket: Socket = await silentV1Machine(server.url, v1.id, v1.key);
    try {
      const orderId = (await server.postWebhook(qrCredited(v1.qrCodeId, 2000))).body.orderId as string;
      await orderStatus(server, orderId, 'NEEDS_REVIEW');
      const item = (await get('/v1/orders/needs-review', tok.tech)).body.items.find(
        (o: { id: string }) => o.id === orderId,
      );
      expect(item).toMatchObject({ reviewReason: 'NO_RESULT', failureCode: 'NO_RESULT' });
      expect((await post(`/v1/orders/${orderId}/mark-dispensed`, {}, tok.staff)).status).toBe(403);
      expect((await post(`/v1/orders/${orderId}/mark-dispensed`, {}, other.adminToken)).status).toBe(404);
      const res = await server.request('POST', `/v1/orders/${orderId}/mark-dispensed`, { token: tok.tech });
      expect(res.status).toBe(200);
      expect(res.body.status).toBe('COMPLETED');
      const audit = await server.kioskhub.db
        .selectFrom('audit_log')
        .selectAll()
        .where('action', '=', 'order.mark_dispensed')
        .executeTakeFirstOrThrow();
      expect(audit).toMatchObject({
        subject_id: orderId,
        actor: 'user:tech@default.test',
        tenant_id: 'default',
      });
      // The decision answers the sweep's no-result alert: resolved if the sweep had raised it,
      // never raised if not (reporting-review2.test.ts). Never an open one.
      const open = (await get('/v1/alerts?open=true&limit=200', tok.staff)).body.items as {
        kind: string;
        subjectId: string;
      }[];
      expect(open.filter((a) => a.subjectId === orderId)).toEqual([]);
    } finally {
      socket.close();
    }
  });

  it('raises one alert per outage for a machine offline too long, and one per failed dispense', async () => {
    const m03 = await server.createVendingMachine('M03', 2000);
    const machine = new SimulatedMachine({
      url: server.url,
      machineId: 'M03',
      key: m03.key,
      heartbeatMs: 100,
      dispenseDelayMs: 10,
      failureRate: 1,
      autoReconnect: false,
    });
    await machine.start();
    const failedOrder = (await server.postWebhook(qrCredited(m03.qrCodeId, 2000))).body.orderId as string;
    await orderStatus(server, failedOrder, 'FAILED');
    const live = liveSocket(server.url, { token: tok.staff });
    await connected(live);
    expect(await live.emitWithAck('subscribe', { room: 'tenant:default' })).toMatchObject({ ok: true });
    const announced: { kind: string; subjectId: string }[] = [];
    live.on('alert_raised', (e: { kind: string; subjectId: string }) => announced.push(e));
    machine.stop();
    const alertsFor = async (kind: string, subjectId: string, token = tok.staff) =>
      ((await get('/v1/alerts?limit=200', token)).body.items as { kind: string; subjectId: string }[]).filter(
        (a) => a.kind === kind && a.subjectId === subjectId,
      );
    await eventually(
      async () => (await alertsFor('MACHINE_OFFLINE', 'M03')).length === 1,
      5_000,
      'offline alert',
    );
    await eventually(
      async () => (await alertsFor('DISPENSE_FAILED', failedOrder)).length === 1,
      5_000,
      'failed-dispense alert',
    );
    await new Promise((r) => setTimeout(r, 600)); // several more sweeps: still one of each
    expect(await alertsFor('MACHINE_OFFLINE', 'M03')).toHaveLength(1);
    expect(await alertsFor('DISPENSE_FAILED', failedOrder)).toHaveLength(1);
    expect(await alertsFor('MACHINE_OFFLINE', 'M03', other.staffToken)).toHaveLength(0);
    await eventually(
      () => announced.some((e) => e.kind === 'MACHINE_OFFLINE' && e.subjectId === 'M03'),
      5_000,
      'alert_raised on /live',
    );
    live.close();
    // A new outage is a new alert.
    const again = new SimulatedMachine({
      url: server.url,
      machineId: 'M03',
      key: m03.key,
      heartbeatMs: 100,
      autoReconnect: false,
    });
    await again.start();
    await new Promise((r) => setTimeout(r, 150));
    again.stop();
    await eventually(
      async () => (await alertsFor('MACHINE_OFFLINE', 'M03')).length === 2,
      5_000,
      'second outage alert',
    );
  });

  it('charts revenue, orders by status, dispense rate and machines online for a range, per tenant', async () => {
    const res = await get('/v1/stats?bucket=hour', tok.staff);
    expect(res.status).toBe(200);
    const orders = (await get('/v1/orders?limit=200', tok.staff)).body.items as {
      status: string;
      amount: number;
    }[];
    // Revenue is the ledger's: what order payments took less what was refunded of them (a failed
    // dispense whose money is kept counts; another amount, never taken, does not).
    const payments = (await get('/v1/payments?purpose=order&limit=200', tok.staff)).body.items as {
      status: string;
      amountMinor: number;
      receivedMinor: number;
      refundedMinor: number;
    }[];
    const taken = payments.filter((p) => ['SUCCEEDED', 'PARTIALLY_REFUNDED', 'REFUNDED'].includes(p.status));
    const paid = taken.reduce((n, p) => n + Math.min(p.amountMinor, p.receivedMinor), 0);
    const refunded = taken.reduce((n, p) => n + p.refundedMinor, 0);
    const sum = (field: 'amountMinor' | 'orders' | 'paidMinor' | 'refundedMinor') =>
      res.body.revenue.reduce((n: number, r: Record<string, number>) => n + r[field]!, 0);
    expect(sum('paidMinor')).toBe(paid);
    expect(sum('refundedMinor')).toBe(refunded);
    expect(sum('amountMinor')).toBe(paid - refunded);
    expect(sum('orders')).toBe(taken.length);
    expect(res.body.revenue[0].start).toMatch(/^\d{4}-\d\d-\d\dT\d\d:00:00\.000Z$/);
    for (const s of res.body.ordersByStatus)
      expect(s.count).toBe(orders.filter((o) => o.status === s.status).length);
    expect(res.body.dispense).toMatchObject({ success: 0, failed: 1, noResult: 1, rate: 0 });
    expect(res.body.machinesOnline.at(-1)).toMatchObject({ online: 0, total: 4 });

    // Samples of a quiet past day: two instants, two sites.
    const day = Math.floor(Date.now() / 60_000) * 60_000 - 3 * 86_400_000;
    const at = (minute: number) => new Date(day + minute * 60_000).toISOString();
    const sample = (when: string, site: string, ids: string[], total: number) => ({
      tenant_id: 'default',
      site_id: site,
      at: when,
      online: ids.length,
      total,
      online_ids: JSON.stringify(ids),
    });
    await server.kioskhub.db
      .insertInto('machine_online_samples')
      .values([
        // v1 is another machine than V1: ids differ in case only (SQLite's LIKE would match both).
        sample(at(10), 'default', ['M01', 'v1'], 3),
        sample(at(10), 's2', [], 1),
        sample(at(20), 'default', ['M01', 'V1'], 3),
        sample(at(20), 's2', ['M02'], 1),
      ])
      .execute();
    const range = `from=${encodeURIComponent(at(0))}&to=${encodeURIComponent(at(60))}`;
    const past = (await get(`/v1/stats?${range}`, tok.staff)).body;
    expect(past.machinesOnline).toEqual([
      { at: at(10), online: 2, total: 4 },
      { at: at(20), online: 3, total: 4 },
    ]);
    expect(past.revenue).toEqual([]);
    expect((await get(`/v1/stats?${range}&machineId=V1`, tok.staff)).body.machinesOnline).toEqual([
      { at: at(10), online: 0, total: 1 },
      { at: at(20), online: 1, total: 1 },
    ]);
    expect((await get(`/v1/stats?${range}&siteId=s2`, tok.staff)).body.machinesOnline).toEqual([
      { at: at(10), online: 0, total: 1 },
      { at: at(20), online: 1, total: 1 },
    ]);

    const theirs = (await get('/v1/stats?bucket=day', other.staffToken)).body;
    expect(theirs.revenue).toEqual([
      {
        start: expect.stringMatching(/T00:00:00\.000Z$/),
        currency: 'INR',
        amountMinor: 2000,
        orders: 1,
        paidMinor: 2000,
        refundedMinor: 0,
      },
    ]);
    expect((await get(`/v1/stats?${range}`, other.staffToken)).body.machinesOnline).toEqual([]);
    expect((await get('/v1/stats?machineId=M01', other.staffToken)).status).toBe(404);
    expect(
      (await get(`/v1/stats?from=${encodeURIComponent(at(60))}&to=${encodeURIComponent(at(0))}`, tok.staff))
        .status,
    ).toBe(400);
    expect((await get('/v1/stats?from=2020-01-01T00:00:00Z&to=2022-01-01T00:00:00Z', tok.staff)).status).toBe(
      400,
    );
  });

  it('counts print jobs per site for the caller’s tenant', async () => {
    const receipt = {
      restaurantName: 'Main',
      restaurantAddress: '',
      restaurantPhone: '',
      orderNumber: 'A1',
      orderDate: new Date().toISOString(),
      items: [],
      subTotal: 0,
      tax: 0,
      totalAmount: 0,
      paymentMethod: 'CASH',
    };
    await server.kioskhub.services.printing.enqueue(server.kioskhub.db, {
      tenantId: 'default',
      siteId: 'default',
      orderId: null,
      receipt,
    });
    const res = await get('/v1/print-jobs/summary', tok.staff);
    expect(res.status).toBe(200);
    expect(res.body.items).toEqual([
      { tenantId: 'default', siteId: 'default', pending: 1, leased: 0, printed: 0, failed: 0 },
    ]);
    expect((await get('/v1/print-jobs/summary', other.staffToken)).body.items).toEqual([]);
  });

  it('documents every dashboard route in the OpenAPI document', async () => {
    const doc = (await get('/openapi.json')).body;
    for (const path of [
      '/v1/fleet',
      '/v1/machines/{id}/commands',
      '/v1/machines/{id}/qr.png',
      '/v1/machines/{id}/provision-qr',
      '/v1/orders/needs-review',
      '/v1/orders/{id}/mark-dispensed',
      '/v1/orders/{id}/refund-due',
      '/v1/orders/export.csv',
      '/v1/stats',
      '/v1/print-jobs/summary',
    ]) {
      expect(doc.paths[path], path).toBeDefined();
    }
    expect(doc.paths['/v1/machines/{id}'].patch).toBeDefined();
    expect(doc.paths['/v1/orders'].get.parameters.map((p: { name: string }) => p.name)).toEqual(
      expect.arrayContaining(['siteId', 'from', 'to']),
    );
  });
  it('a v1 machine’s SUCCESS after the order was marked refund due is recorded, alerted and answered ok', async () => {
    const late = await server.createVendingMachine('V1LATE', 2000);
    const socket: Socket = await silentV1Machine(server.url, late.id, late.key);
    try {
      const orderId = (await server.postWebhook(qrCredited(late.qrCodeId, 2000))).body.orderId as string;
      await orderStatus(server, orderId, 'NEEDS_REVIEW');
      const due = await post(`/v1/orders/${orderId}/refund-due`, { note: 'nothing came out' }, tok.cs);
      expect(due.body).toMatchObject({ status: 'REFUNDED' });
      const done = () =>
        socket.timeout(5_000).emitWithAck('machine:done', { orderId, result: 'SUCCESS' }) as Promise<unknown>;
      // The machine did dispense: it is answered ok, so it does not retry for ever; a repeat too.
      expect(await done()).toEqual({ ok: true, orderId });
      expect(await done()).toEqual({ ok: true, orderId });
      expect((await get(`/v1/orders/${orderId}`)).body.status).toBe('REFUNDED');
      const timeline = (await get(`/v1/orders/${orderId}/timeline`)).body.items as {
        type: string;
        actor: string;
      }[];
      expect(timeline.filter((e) => e.type === 'dispensed_after_review')).toEqual([
        expect.objectContaining({ actor: `machine:${late.id}` }),
      ]);
      const alerts = (await get('/v1/alerts', tok.staff)).body.items.filter(
        (a: { kind: string; subjectId: string }) =>
          a.kind === 'DISPENSED_AFTER_REFUND' && a.subjectId === orderId,
      );
      expect(alerts).toHaveLength(1);
      expect(alerts[0]).toMatchObject({ subjectType: 'order', tenantId: 'default' });
      // The refund due still stands: staff decide on it, with the alert.
      const payment = (await get(`/v1/payments?orderId=${orderId}`)).body.items[0];
      const refunds = (await get(`/v1/payments/${payment.id}/refunds`)).body.items;
      expect(refunds).toEqual([expect.objectContaining({ destination: 'refund_due', status: 'DUE' })]);
    } finally {
      socket.close();
    }
  });
});

describe('dashboard API without a payment channel', () => {
  it('answers 503 PROVIDER_NOT_CONFIGURED to provision-qr', async () => {
    const server = await startServer();
    try {
      await server.createMachine('M09');
      const res = await server.request('POST', '/v1/machines/M09/provision-qr', {
        body: { amountPaise: 2000 },
      });
      expect(res.status).toBe(503);
      expect(res.body.error.code).toBe('PROVIDER_NOT_CONFIGURED');
    } finally {
      await server.close();
    }
  });
});
