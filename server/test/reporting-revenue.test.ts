// The dashboard's revenue (GET /v1/stats) is the ledger's: money kept, what order payments took
// less what was refunded of them, each counted when the money moved. Shown against the real
// server and database on both engines with a vending machine paid through Razorpay: a dispensed
// order refunded in part, a failed dispense whose money is kept, a dispensed order refunded in
// full, a full refund that cancels a dispense not yet sent, and another amount (never revenue)
// refunded; the stats total and every local day of it equal the site's revenue account entries.
// Also: a refund that ended FAILED gives its money back when it failed, currencies stay apart, and
// the water plan revenue (GET /v1/stats/water) moves the same way.
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { orderStatus } from './dashboard-fixtures.js';
import { reportRows } from './fixtures/report-rows.js';
import {
  dispensed,
  dropSchema,
  engines,
  eventually,
  newSchemaName,
  qrCredited,
  startServer,
  type TestServer,
} from './harness.js';

const uid = (p: string) => `${p}${randomBytes(3).toString('hex')}`;
const DAY = 86_400_000;
const IST = 5.5 * 3_600_000;
/** The UTC instant the Kolkata day of `t` starts (India keeps +05:30 all year). */
const kolkataDay = (t: string) => new Date(Math.floor((Date.parse(t) + IST) / DAY) * DAY - IST).toISOString();

interface RevenueRow {
  start: string;
  currency: string;
  amountMinor: number;
  orders: number;
  paidMinor: number;
  refundedMinor: number;
}

describe.each(engines())('reporting revenue agrees with the ledger (%s)', (engine) => {
  let server: TestServer;
  /** Razorpay's refund API refusing every refund for good (400), as for a payment refunded already. */
  let razorpay: Server;
  const schema = engine === 'postgres' ? newSchemaName() : undefined;

  beforeAll(async () => {
    razorpay = createServer((req, res) => {
      req.resume();
      req.on('end', () =>
        res
          .writeHead(400, { 'content-type': 'application/json' })
          .end('{"error":{"code":"BAD_REQUEST_ERROR","description":"refund refused"}}'),
      );
    });
    await new Promise<void>((r) => razorpay.listen(0, '127.0.0.1', r));
    server = await startServer({
      engine,
      env: {
        DASHBOARD_SWEEP_MS: '3600000',
        RAZORPAY_KEY_ID: 'rzp_test_key',
        RAZORPAY_KEY_SECRET: 'rzp_test_secret',
        RAZORPAY_API_BASE: `http://127.0.0.1:${(razorpay.address() as AddressInfo).port}`,
        JOB_RETRY_BASE_MS: '20',
        JOB_POLL_MS: '50',
      },
      ...(schema ? { schema } : {}),
    });
  }, 120_000);
  afterAll(async () => {
    await server?.close();
    await new Promise((r) => razorpay?.close(r));
    if (schema) await dropSchema(schema);
  });

  const get = async (path: string) => {
    const res = await server.request('GET', path);
    expect(res.status, `${path}: ${JSON.stringify(res.body)}`).toBe(200);
    return res.body;
  };
  const post = async (path: string, body: unknown, status = 201) => {
    const res = await server.request('POST', path, { body });
    expect(res.status, `${path}: ${JSON.stringify(res.body)}`).toBe(status);
    return res.body;
  };

  /** The entries of the site's revenue account in `unit`, read through the ledger routes. */
  async function ledgerRevenue(siteId: string, unit: string) {
    const accounts = await get(
      `/v1/ledger/accounts?ownerType=site&ownerId=${siteId}&kind=revenue&unit=${unit}`,
    );
    expect(accounts.items).toHaveLength(1);
    const account = accounts.items[0] as { id: string; balance: number };
    const entries: { amount: number; createdAt: string }[] = [];
    let cursor: string | null = null;
    do {
      const page = await get(
        `/v1/ledger/accounts/${account.id}/entries?limit=100${cursor ? `&cursor=${cursor}` : ''}`,
      );
      entries.push(...page.items);
      cursor = page.nextCursor;
    } while (cursor);
    return { balance: account.balance, entries };
  }

  it('counts what was paid less what was refunded, as the ledger does, by the day the money moved', async () => {
    const site = uid('rev-');
    await post('/v1/sites', { id: site, name: 'Revenue check', currency: 'INR' });
    const id = uid('RV');
    const m = await server.createMachine(id, { siteId: site });
    const qrCodeId = `qr_${id}`;
    const profile = await server.request('PUT', `/v1/machines/${id}/payment-profile`, {
      body: { provider: 'razorpay', qrCodeId, fixedAmountPaise: 2000, qrImageUrl: `https://rzp.io/i/${id}` },
    });
    expect(profile.status).toBe(200);
    const from = new Date(Date.now() - 2 * DAY).toISOString();
    const pay = async (amount = 2000) => {
      const res = await server.postWebhook(qrCredited(qrCodeId, amount));
      expect(res.status).toBe(200);
      const orderId = res.body.orderId as string;
      const payment = (await get(`/v1/payments?orderId=${orderId}`)).items[0] as { id: string };
      return { orderId, paymentId: payment.id };
    };
    const refund = (paymentId: string, amountMinor?: number) =>
      post(`/v1/payments/${paymentId}/refunds`, {
        ...(amountMinor !== undefined ? { amountMinor } : {}),
        reason: 'revenue check',
        to: 'refund_due',
      });

    // 1. Paid, dispensed, then 500 of its 2000 refunded: 1500 kept.
    const partly = await pay();
    await dispensed(server, m.id, partly.orderId);
    await orderStatus(server, partly.orderId, 'COMPLETED');
    await refund(partly.paymentId, 500);

    // 2. Paid, the dispense failed, the money not refunded (yet): 2000 kept, the order FAILED.
    const failed = await pay();
    const { commands } = server.kioskhub.services;
    const claim = await commands.claimNext(m.id, 'v2');
    expect(claim.kind !== 'none' && claim.command.order_id).toBe(failed.orderId);
    expect((await commands.recordResult(m.id, { orderId: failed.orderId }, 'FAILED', 'JAM')).outcome).toBe(
      'recorded',
    );
    await orderStatus(server, failed.orderId, 'FAILED');

    // 3. Paid, dispensed, refunded in full: nothing kept, the order stays COMPLETED.
    const full = await pay();
    await dispensed(server, m.id, full.orderId);
    await refund(full.paymentId);

    // 4. Paid and refunded in full before its dispense was sent: the order REFUNDED, nothing kept.
    const cancelled = await pay();
    await refund(cancelled.paymentId);
    await orderStatus(server, cancelled.orderId, 'REFUNDED');

    // 5. Another amount than the QR's: never revenue, and its refund comes out of no revenue.
    const mismatch = await pay(1500);
    await orderStatus(server, mismatch.orderId, 'FAILED');
    await refund(mismatch.paymentId);

    // 6. A payment of yesterday refunded today: the payment counts yesterday, the refund today
    // (the ledger moved the money then). Its rows are dated back as if it had been paid then.
    const yesterday = new Date(Date.now() - DAY).toISOString();
    const earlier = await pay();
    const db = server.kioskhub.db;
    await db
      .updateTable('payments')
      .set({ created_at: yesterday, completed_at: yesterday })
      .where('id', '=', earlier.paymentId)
      .execute();
    await db.updateTable('orders').set({ paid_at: yesterday }).where('id', '=', earlier.orderId).execute();
    await db
      .updateTable('ledger_entries')
      .set({ created_at: yesterday })
      .where('cause_type', '=', 'payment')
      .where('cause_id', '=', earlier.paymentId)
      .execute();
    await dispensed(server, m.id, earlier.orderId);
    await refund(earlier.paymentId, 300);

    const to = new Date(Date.now() + 60_000).toISOString();
    const ledger = await ledgerRevenue(site, 'INR');
    const inRange = ledger.entries.filter((e) => e.createdAt >= from && e.createdAt < to);
    const ledgerTotal = inRange.reduce((n, e) => n + e.amount, 0);
    // 2000 − 500 + 2000 + 2000 − 2000 + 2000 − 2000 + 2000 − 300
    expect(ledgerTotal).toBe(5200);
    expect(ledger.balance).toBe(5200);

    const range = `from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}`;
    for (const zone of [undefined, 'Asia/Kolkata']) {
      const q = `/v1/stats?${range}&bucket=day&siteId=${site}${zone ? `&timeZone=${zone}` : ''}`;
      const stats = await get(q);
      const revenue = stats.revenue as RevenueRow[];
      expect(revenue.every((r) => r.currency === 'INR')).toBe(true);
      expect(
        revenue.reduce((n, r) => n + r.amountMinor, 0),
        q,
      ).toBe(ledgerTotal);
      // Money taken: five payments of 2000 (the other amount was never taken); refunds of them.
      expect(revenue.reduce((n, r) => n + r.paidMinor, 0)).toBe(10_000);
      expect(revenue.reduce((n, r) => n + r.refundedMinor, 0)).toBe(4800);
      expect(revenue.reduce((n, r) => n + r.orders, 0)).toBe(5);
      for (const r of revenue) expect(r.amountMinor).toBe(r.paidMinor - r.refundedMinor);

      // Day by day, in the zone asked for, the chart is the ledger's account.
      const dayOf = zone ? kolkataDay : (t: string) => `${t.slice(0, 10)}T00:00:00.000Z`;
      const perDay = new Map<string, number>();
      for (const e of inRange)
        perDay.set(dayOf(e.createdAt), (perDay.get(dayOf(e.createdAt)) ?? 0) + e.amount);
      expect(new Map(revenue.map((r) => [r.start, r.amountMinor]))).toEqual(perDay);
      expect(revenue.find((r) => r.start === dayOf(yesterday))).toMatchObject({
        paidMinor: 2000,
        refundedMinor: 0,
        orders: 1,
      });
    }

    // One machine of the site: the same figures (every payment here is this machine's).
    const byMachine = (await get(`/v1/stats?${range}&bucket=day&machineId=${id}`)).revenue as RevenueRow[];
    expect(byMachine.reduce((n, r) => n + r.amountMinor, 0)).toBe(ledgerTotal);
    // Hours: the same total.
    const hourFrom = new Date(Date.now() - 2 * 3_600_000).toISOString();
    const hourly = (
      await get(
        `/v1/stats?from=${encodeURIComponent(hourFrom)}&to=${encodeURIComponent(to)}&bucket=hour&siteId=${site}`,
      )
    ).revenue as RevenueRow[];
    const ledgerHours = ledger.entries
      .filter((e) => e.createdAt >= hourFrom && e.createdAt < to)
      .reduce((n, e) => n + e.amount, 0);
    expect(hourly.reduce((n, r) => n + r.amountMinor, 0)).toBe(ledgerHours);
  });

  it('water plan revenue moves the same way: a plan paid days ago and refunded now counts the refund now', async () => {
    const db = server.kioskhub.db;
    const planId = uid('PLAN');
    const paidAt = new Date(Date.now() - 3 * DAY).toISOString();
    const paymentId = uid('pay');
    await db
      .insertInto('payments')
      .values({
        id: paymentId,
        tenant_id: 'default',
        site_id: null,
        purpose: 'plan',
        order_id: null,
        customer_id: null,
        plan_id: planId,
        machine_id: null,
        method: 'momo',
        provider: null,
        provider_payment_id: null,
        reference: null,
        amount_minor: 50_000,
        received_minor: 50_000,
        currency: 'KES',
        status: 'PARTIALLY_REFUNDED',
        failure_code: null,
        refunded_minor: 20_000,
        created_at: paidAt,
        completed_at: paidAt,
        updated_at: paidAt,
        expires_at: null,
      })
      .execute();
    const refundedAt = new Date(Date.now() - 60_000).toISOString();
    await db
      .insertInto('refunds')
      .values({
        id: uid('rf'),
        tenant_id: 'default',
        payment_id: paymentId,
        amount_minor: 20_000,
        currency: 'KES',
        reason: 'plan refunded in part',
        destination: 'refund_due',
        status: 'DUE',
        actor: 'test',
        provider_refund_id: null,
        error: null,
        created_at: refundedAt,
        completed_at: null,
      })
      .execute();
    const plan = async (from: number, to: number) => {
      const range = `from=${encodeURIComponent(new Date(from).toISOString())}&to=${encodeURIComponent(new Date(to).toISOString())}`;
      const body = await get(`/v1/stats/water?${range}`);
      return (body.revenueByPlan as { planId: string; amountMinor: number; payments: number }[]).find(
        (r) => r.planId === planId,
      );
    };
    const now = Date.now();
    // The day it was paid keeps what it took; the refund is today's, as on the ledger.
    expect(await plan(now - 4 * DAY, now - 2 * DAY)).toMatchObject({ amountMinor: 50_000, payments: 1 });
    expect(await plan(now - 3_600_000, now + 60_000)).toMatchObject({ amountMinor: -20_000, payments: 0 });
    expect(await plan(now - 4 * DAY, now + 60_000)).toMatchObject({ amountMinor: 30_000, payments: 1 });
  });

  it('a refund Razorpay refused (FAILED) gives its money back to revenue when it failed, as the ledger does', async () => {
    const site = uid('revf-');
    await post('/v1/sites', { id: site, name: 'Failed refund', currency: 'INR' });
    const id = uid('RF');
    await server.createMachine(id, { siteId: site });
    const qrCodeId = `qr_${id}`;
    await server.request('PUT', `/v1/machines/${id}/payment-profile`, {
      body: { provider: 'razorpay', qrCodeId, fixedAmountPaise: 2000, qrImageUrl: `https://rzp.io/i/${id}` },
    });
    const orderId = (await server.postWebhook(qrCredited(qrCodeId, 2000))).body.orderId as string;
    const paymentId = ((await get(`/v1/payments?orderId=${orderId}`)).items[0] as { id: string }).id;
    await dispensed(server, id, orderId);
    const from = new Date(Date.now() - 3_600_000).toISOString();
    const refund = await post(`/v1/payments/${paymentId}/refunds`, {
      amountMinor: 800,
      reason: 'revenue check',
    });
    const failed = await eventually(
      async () => {
        const items = (await get(`/v1/payments/${paymentId}/refunds`)).items as {
          id: string;
          status: string;
        }[];
        return items.find((r) => r.id === refund.id && r.status === 'FAILED');
      },
      20_000,
      'the refused refund',
    );
    expect(failed).toBeDefined();
    const to = new Date(Date.now() + 60_000).toISOString();
    const q = `from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}&bucket=hour&siteId=${site}`;
    const rows = (await get(`/v1/stats?${q}`)).revenue as RevenueRow[];
    const sum = (f: 'amountMinor' | 'paidMinor' | 'refundedMinor') => rows.reduce((n, r) => n + r[f], 0);
    const ledger = await ledgerRevenue(site, 'INR');
    // On the ledger: +2000, −800 when the refund was asked for, +800 when it failed.
    expect(ledger.entries.map((e) => e.amount).sort((a, b) => a - b)).toEqual([-800, 800, 2000]);
    expect(sum('amountMinor')).toBe(ledger.entries.reduce((n, e) => n + e.amount, 0));
    expect({ paid: sum('paidMinor'), refunded: sum('refundedMinor'), kept: sum('amountMinor') }).toEqual({
      paid: 2000,
      refunded: 0,
      kept: 2000,
    });
  });

  it('never adds amounts of different currencies together', async () => {
    const { paidOrder } = reportRows(() => server);
    const machine = uid('CUR');
    await server.createMachine(machine);
    const at = new Date(Date.now() - 60_000).toISOString();
    await paidOrder(machine, at, 2000);
    const ugx = await paidOrder(machine, at, 5000);
    await server.kioskhub.db.updateTable('orders').set({ currency: 'UGX' }).where('id', '=', ugx).execute();
    await server.kioskhub.db
      .updateTable('payments')
      .set({ currency: 'UGX' })
      .where('order_id', '=', ugx)
      .execute();
    const rows = (await get(`/v1/stats?bucket=day&machineId=${machine}`)).revenue as RevenueRow[];
    expect(rows.map((r) => [r.currency, r.amountMinor, r.paidMinor, r.orders]).sort()).toEqual([
      ['INR', 2000, 2000, 1],
      ['UGX', 5000, 5000, 1],
    ]);
  });
});
