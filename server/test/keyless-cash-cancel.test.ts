// The standalone cash reader of the restaurant kiosk (arduino_cash_reader.py) cancels a session when
// its acceptor sends "CANCEL": `self.session.post(f"{api_url}/api/cash-payment/cancel/{order}",
// timeout=5)`, no body and no X-API-Key (it sends the key on every other call). A site opts in
// with `keylessCashCancel: true`; the reader then points its api_url at /sites/<site id>.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  dropSchema,
  engines,
  newSchemaName,
  startServer,
  tempDir,
  type Engine,
  type TestServer,
} from './harness.js';
import { createBurgerSite, openCashSession } from './restaurant-fixtures.js';

type Res = { status: number; body: any };
function expectError(res: Res, status: number, code: string): void {
  expect(res.status, JSON.stringify(res.body)).toBe(status);
  expect(res.body?.error?.code).toBe(code);
}

let seq = 0;
const uid = (prefix: string) => `${prefix}${++seq}${Math.random().toString(36).slice(2, 6)}`;

/** What python-requests sends for `session.post(url, timeout=5)`: no body, no key. */
const READER_HEADERS = { 'user-agent': 'python-requests/2.31.0', accept: '*/*' };

describe.each(engines())('key-less cash-reader cancel (%s)', (engine: Engine) => {
  let server: TestServer;
  const logs: string[] = [];

  interface CashSite {
    siteId: string;
    kiosk: string;
    cash: string;
  }
  const cashSite = async (site: Record<string, unknown> = {}): Promise<CashSite> => {
    const siteId = uid('kc');
    const keys = await createBurgerSite(server, {
      siteId,
      skuPrefix: `${siteId}-`,
      site,
      machines: { [`${siteId}-K`]: 'kiosk', [`${siteId}-C`]: 'cash' },
    });
    return { siteId, kiosk: keys[`${siteId}-K`]!, cash: keys[`${siteId}-C`]! };
  };
  const keyed = (k: string) => ({ token: null, headers: { 'x-api-key': k } }) as const;
  /** An order of the site, its cash session open and `inserted` pesos in it. */
  const openSession = (site: CashSite, inserted = 0) => openCashSession(server, site, inserted);
  /** The reader's cancel, exactly as it sends it, with its api_url at /sites/<siteId>. */
  const readerCancel = (siteId: string, orderNumber: string) =>
    server.request('POST', `/sites/${siteId}/api/cash-payment/cancel/${orderNumber}`, {
      token: null,
      headers: READER_HEADERS,
    });
  const status = async (site: CashSite, orderNumber: string) =>
    (await server.request('GET', `/api/cash-payment/status/${orderNumber}`, keyed(site.kiosk))).body;
  const siteOf = async (siteId: string, tenantId?: string) =>
    ((await server.request('GET', '/v1/sites')).body.items as any[]).find(
      (s) => s.id === siteId && (tenantId === undefined || s.tenantId === tenantId),
    );
  const newTenant = async () => {
    const id = uid('tn');
    expect((await server.request('POST', '/v1/tenants', { body: { id, name: 'Other' } })).status).toBe(201);
    return id;
  };

  beforeAll(async () => {
    server = await startServer({ engine, logStream: { write: (line) => void logs.push(line) } });
  });
  afterAll(async () => {
    await server?.close();
  });

  it('off by default: the key-less cancel is 401 and the session stays open with its money', async () => {
    const site = await cashSite();
    expect((await siteOf(site.siteId)).keylessCashCancel).toBe(false);
    const { orderNumber } = await openSession(site, 100);
    const refused = await readerCancel(site.siteId, orderNumber);
    expectError(refused, 401, 'UNAUTHORIZED');
    // The answer names the site setting that would let a reader without a key in.
    expect(refused.body.error.message).toBe(
      'send X-API-Key with the key of a machine of this site (or, for a cash reader that cannot send one, the site’s keylessCashCancel)',
    );
    expect(await status(site, orderNumber)).toMatchObject({ status: 'PENDING', amountInserted: 100 });
  });

  it('on: the reader’s cancel works without a key, answers as a keyed cancel, and is audited as a key-less device', async () => {
    const site = await cashSite({ keylessCashCancel: true });
    expect((await siteOf(site.siteId)).keylessCashCancel).toBe(true);
    const { orderNumber, orderId } = await openSession(site, 100);
    const refundsBefore = (
      await server.request('GET', '/v1/audit?action=payment.refund&actor=legacy-cash-reader&limit=200')
    ).body.items as any[];
    const cancelled = await readerCancel(site.siteId, orderNumber);
    expect(cancelled.status, JSON.stringify(cancelled.body)).toBe(200);
    expect(cancelled.body).toEqual({
      success: true,
      orderNumber,
      amountReturned: 100,
      status: 'CANCELLED',
    });
    expect(await status(site, orderNumber)).toMatchObject({ status: 'CANCELLED', amountInserted: 100 });
    expect((await server.request('GET', `/v1/orders/${orderId}`)).body.status).toBe('CANCELLED');
    // Cancelling again answers the same, as it does with a key.
    expect((await readerCancel(site.siteId, orderNumber)).body).toEqual(cancelled.body);
    // Staff see who cancelled: the order's timeline and the refund due carry the key-less actor.
    const timeline = (await server.request('GET', `/v1/orders/${orderId}/timeline`)).body.items as any[];
    expect(timeline.at(-1)).toMatchObject({ actor: 'legacy-cash-reader' });
    const refunds = (
      await server.request('GET', '/v1/audit?action=payment.refund&actor=legacy-cash-reader&limit=200')
    ).body.items as any[];
    expect(refunds.length - refundsBefore.length).toBe(1);
    expect(refunds[0]).toMatchObject({
      actor: 'legacy-cash-reader',
      after: { amountMinor: 10_000, destination: 'refund_due', reason: 'cash session cancelled' },
    });
    const active = await server.request('GET', '/api/cash-payment/active-sessions', keyed(site.cash));
    expect(active.body.sessions.map((s: any) => s.orderNumber)).not.toContain(orderNumber);
  });

  it('on: an unknown order is 404 and a paid session 409, as with a key; nothing changes', async () => {
    const site = await cashSite({ keylessCashCancel: true });
    expectError(await readerCancel(site.siteId, uid('NONE-')), 404, 'NOT_FOUND');
    const { orderNumber, orderId } = await openSession(site, 200);
    expectError(await readerCancel(site.siteId, orderNumber), 409, 'INVALID_STATE');
    expect((await server.request('GET', `/v1/orders/${orderId}`)).body.status).toBe('PAID');
  });

  it('on: every other cash route, the body cancel and the un-prefixed cancel still need a key', async () => {
    const site = await cashSite({ keylessCashCancel: true });
    const { orderNumber } = await openSession(site, 100);
    const bare = { token: null, headers: READER_HEADERS };
    const prefix = `/sites/${site.siteId}`;
    const calls: [string, string, unknown?][] = [
      ['POST', `/api/cash-payment/cancel/${orderNumber}`],
      ['POST', `${prefix}/api/cash-payment/cancel`, { orderNumber }],
      ['POST', `${prefix}/api/cash-payment/init`, { orderNumber: uid('N-'), totalAmount: 10 }],
      ['POST', `${prefix}/api/cash-payment/update`, { orderNumber, amountAdded: 50 }],
      ['GET', `${prefix}/api/cash-payment/active-sessions`],
      ['GET', `${prefix}/api/cash-payment/status/${orderNumber}`],
    ];
    for (const [method, path, body] of calls)
      expectError(
        await server.request(method, path, { ...bare, ...(body ? { body } : {}) }),
        401,
        'UNAUTHORIZED',
      );
    expect(await status(site, orderNumber)).toMatchObject({ status: 'PENDING', amountInserted: 100 });
  });

  it('another site’s order through an open site’s prefix is refused as today (401) and stays open', async () => {
    const open = await cashSite({ keylessCashCancel: true });
    const closed = await cashSite();
    const alsoOpen = await cashSite({ keylessCashCancel: true });
    for (const other of [closed, alsoOpen]) {
      const { orderNumber } = await openSession(other, 100);
      expectError(await readerCancel(open.siteId, orderNumber), 401, 'UNAUTHORIZED');
      expect(await status(other, orderNumber)).toMatchObject({ status: 'PENDING', amountInserted: 100 });
    }
  });

  it('a site id open for key-less use stays with the tenant that opened it: 409 for another, nothing changed', async () => {
    const ours = await cashSite({ keylessCashCancel: true });
    const tenant = await newTenant();
    const theirs = { id: ours.siteId, name: 'Theirs', currency: 'PHP', tenantId: tenant };
    expectError(
      await server.request('POST', '/v1/sites', { body: { ...theirs, keylessCashCancel: true } }),
      409,
      'CONFLICT',
    );
    expect(await siteOf(ours.siteId, tenant)).toBeUndefined();
    // The printers' flag claims the same id: it is refused too.
    expectError(
      await server.request('POST', '/v1/sites', { body: { ...theirs, printQueueOpen: true } }),
      409,
      'CONFLICT',
    );
    expect((await server.request('POST', '/v1/sites', { body: theirs })).status).toBe(201);
    const patch = (body: Record<string, unknown>) =>
      server.request('PATCH', `/v1/sites/${ours.siteId}?tenantId=${tenant}`, { body });
    expectError(await patch({ keylessCashCancel: true }), 409, 'CONFLICT');
    expect((await siteOf(ours.siteId, tenant)).keylessCashCancel).toBe(false);
    expect((await patch({ keylessCashCancel: false })).status).toBe(200);
    // The holder is unaffected.
    const { orderNumber } = await openSession(ours, 100);
    expect((await readerCancel(ours.siteId, orderNumber)).status).toBe(200);
  });

  it('one claim for both flags: turning one off keeps it while the other is on', async () => {
    const site = await cashSite({ keylessCashCancel: true, printQueueOpen: true });
    const tenant = await newTenant();
    const printerStatus = () =>
      server.request('GET', `/sites/${site.siteId}/api/receipt/queue/status`, { token: null });
    expect((await printerStatus()).status).toBe(200);
    const own = (body: Record<string, unknown>) =>
      server.request('PATCH', `/v1/sites/${site.siteId}`, { body });
    const theirs = () =>
      server.request('POST', '/v1/sites', {
        body: { id: site.siteId, name: 'Theirs', keylessCashCancel: true, tenantId: tenant },
      });

    expect((await own({ printQueueOpen: false })).status).toBe(200);
    const closed = await printerStatus();
    expectError(closed, 401, 'UNAUTHORIZED');
    expect(closed.body.error.message).toContain('the site’s printQueueOpen');
    expectError(await theirs(), 409, 'CONFLICT');
    const first = await openSession(site, 100);
    expect((await readerCancel(site.siteId, first.orderNumber)).status).toBe(200);

    expect((await own({ printQueueOpen: true })).status).toBe(200);
    expect((await own({ keylessCashCancel: false })).status).toBe(200);
    expect((await printerStatus()).status).toBe(200);
    expectError(await theirs(), 409, 'CONFLICT');
    const second = await openSession(site, 100);
    expectError(await readerCancel(site.siteId, second.orderNumber), 401, 'UNAUTHORIZED');

    // Both off: this site's key-less use is over and the id is free for another tenant, whose
    // site /sites/<id>/ now names (our order is unknown there: 404, and ours stays open).
    expect((await own({ printQueueOpen: false })).status).toBe(200);
    expectError(await readerCancel(site.siteId, second.orderNumber), 401, 'UNAUTHORIZED');
    expect((await theirs()).status).toBe(201);
    expectError(await own({ keylessCashCancel: true }), 409, 'CONFLICT');
    expect((await siteOf(site.siteId, 'default')).keylessCashCancel).toBe(false);
    expectError(await readerCancel(site.siteId, second.orderNumber), 404, 'NOT_FOUND');
    expect(await status(site, second.orderNumber)).toMatchObject({ status: 'PENDING' });
  });

  it('bad input: a keylessCashCancel that is not a boolean is 400 and changes nothing', async () => {
    const siteId = uid('kcbad');
    for (const bad of ['true', 1, null, 'yes'])
      expectError(
        await server.request('POST', '/v1/sites', {
          body: { id: siteId, name: 'Bad', keylessCashCancel: bad },
        }),
        400,
        'VALIDATION_FAILED',
      );
    expect(await siteOf(siteId)).toBeUndefined();
    const site = await cashSite();
    const before = await siteOf(site.siteId);
    for (const bad of ['true', 0, null, {}])
      expectError(
        await server.request('PATCH', `/v1/sites/${site.siteId}`, {
          body: { name: 'Renamed', keylessCashCancel: bad },
        }),
        400,
        'VALIDATION_FAILED',
      );
    expect(await siteOf(site.siteId)).toEqual(before);
  });

  it('turning it on is audited on the site and warned about in the log', async () => {
    const site = await cashSite();
    logs.length = 0;
    const on = await server.request('PATCH', `/v1/sites/${site.siteId}`, {
      body: { keylessCashCancel: true },
    });
    expect(on.status).toBe(200);
    expect(on.body.keylessCashCancel).toBe(true);
    const audit = (await server.request('GET', `/v1/audit?action=site.update&subjectId=${site.siteId}`)).body
      .items as any[];
    expect(audit[0]).toMatchObject({
      before: { keylessCashCancel: false },
      after: { keylessCashCancel: true },
    });
    expect(logs.join('')).toContain('keylessCashCancel');
    expect(logs.join('')).toContain(site.siteId);
  });
});

describe.each(engines())('key-less cash-reader cancel at start-up (%s)', (engine: Engine) => {
  it('a restart warns about each site that has it on', async () => {
    const dir = tempDir();
    const schema = engine === 'postgres' ? newSchemaName() : undefined;
    const where = { engine, ...(schema ? { schema } : { dataDir: dir.path }) };
    try {
      const first = await startServer(where);
      try {
        const res = await first.request('POST', '/v1/sites', {
          body: { id: 'reader-open', name: 'Open', keylessCashCancel: true },
        });
        expect(res.status).toBe(201);
      } finally {
        await first.close();
      }
      const logs: string[] = [];
      const second = await startServer({ ...where, logStream: { write: (line) => void logs.push(line) } });
      await second.close();
      const warned = logs.filter((l) => l.includes('keylessCashCancel'));
      expect(warned).toHaveLength(1);
      expect(warned[0]).toContain('reader-open');
      expect(warned[0]).toMatch(/order number/);
    } finally {
      if (schema) await dropSchema(schema);
      dir.remove();
    }
  });
});
