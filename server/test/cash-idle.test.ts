// Abandoned kiosk cash sessions (CASH_SESSION_IDLE_MS): a customer who walks away from a kiosk
// leaves its cash session PENDING, and the earlier cash reader credits the site's oldest open
// session, so the next customers' bills went to the abandoned order. Sessions were never ended.
// Now a session nobody put money into within the idle time is cancelled with its order (as a
// cancel at the kiosk would), and one holding money that got nothing for that long raises a
// CASH_SESSION_STALE alert (once) instead: its money is the customer's, staff decide.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { engines, startServer, type TestServer } from './harness.js';
import { createBurgerSite, openCashSession } from './restaurant-fixtures.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function eventually<T>(read: () => Promise<T>, ok: (v: T) => boolean, ms: number): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = await read();
    if (ok(v) || Date.now() > until) return v;
    await sleep(200);
  }
}

for (const engine of engines()) {
  describe(`abandoned cash sessions (${engine})`, () => {
    let server: TestServer;
    let site: { siteId: string; kiosk: string; cash: string };

    beforeAll(async () => {
      server = await startServer({ engine, env: { CASH_SESSION_IDLE_MS: '1500' } });
      const siteId = `idle${randomBytes(3).toString('hex')}`;
      const kiosk = `K${randomBytes(3).toString('hex')}`;
      const cash = `C${randomBytes(3).toString('hex')}`;
      const keys = await createBurgerSite(server, {
        siteId,
        skuPrefix: `${siteId}-`,
        machines: { [kiosk]: 'kiosk', [cash]: 'cash' },
      });
      site = { siteId, kiosk: keys[kiosk]!, cash: keys[cash]! };
    });
    afterAll(async () => {
      await server?.close();
    });

    const status = async (orderNumber: string) =>
      (
        await server.request('GET', `/api/cash-payment/status/${orderNumber}`, {
          token: null,
          headers: { 'x-api-key': site.kiosk },
        })
      ).body;

    it('an empty session is cancelled with its order after CASH_SESSION_IDLE_MS; one holding money is flagged, not cancelled', async () => {
      const empty = await openCashSession(server, site);
      const partial = await openCashSession(server, site, 100);
      expect((await status(empty.orderNumber)).status).toBe('PENDING');

      const ended = await eventually(
        () => status(empty.orderNumber),
        (s) => s.status === 'CANCELLED',
        8_000,
      );
      expect(ended.status).toBe('CANCELLED');
      const order = await server.request('GET', `/v1/orders/${empty.orderId}`);
      expect(order.body.status).toBe('CANCELLED');
      const timeline = (await server.request('GET', `/v1/orders/${empty.orderId}/timeline`)).body;
      const events = (Array.isArray(timeline) ? timeline : timeline.items) as {
        type: string;
        actor: string;
        detail: Record<string, unknown> | null;
      }[];
      expect(
        events.some((e) => e.actor === 'system:cash-session-expiry' && e.detail?.reason === 'IDLE'),
      ).toBe(true);

      // The one with ₱100 of ₱150 stays open (the customer's money), with one alert for staff.
      const alerts = await eventually(
        async () =>
          (
            (await server.request('GET', '/v1/alerts?limit=200')).body.items as {
              kind: string;
              subjectId: string;
              message: string;
            }[]
          ).filter((a) => a.kind === 'CASH_SESSION_STALE' && a.subjectId === partial.orderId),
        (list) => list.length > 0,
        8_000,
      );
      expect(alerts).toHaveLength(1);
      expect(alerts[0]!.message).toMatch(/holds 100\.00 of 150\.00 PHP/);
      expect((await status(partial.orderNumber)).status).toBe('PENDING');
      await sleep(2_500); // more sweeps: still one alert
      const again = (
        (await server.request('GET', '/v1/alerts?limit=200')).body.items as {
          kind: string;
          subjectId: string;
        }[]
      ).filter((a) => a.kind === 'CASH_SESSION_STALE' && a.subjectId === partial.orderId);
      expect(again).toHaveLength(1);

      // Money inserted after all pays the order as usual.
      const rest = await server.request('POST', '/api/cash-payment/update', {
        token: null,
        headers: { 'x-api-key': site.cash },
        body: { orderNumber: partial.orderNumber, amountAdded: 50 },
      });
      expect(rest.status).toBe(200);
      expect((await status(partial.orderNumber)).status).toBe('PAID');
      // ...and the alert's condition has cleared: it is resolved, no longer open.
      const after = (
        (await server.request('GET', '/v1/alerts?limit=200')).body.items as {
          kind: string;
          subjectId: string;
          resolvedAt: string | null;
        }[]
      ).filter((a) => a.kind === 'CASH_SESSION_STALE' && a.subjectId === partial.orderId);
      expect(after).toHaveLength(1);
      expect(after[0]!.resolvedAt).toEqual(expect.any(String));
    }, 30_000);

    it('a session that keeps getting money is left alone', async () => {
      const busy = await openCashSession(server, site, 20);
      for (let i = 0; i < 4; i++) {
        await sleep(700);
        await server.request('POST', '/api/cash-payment/update', {
          token: null,
          headers: { 'x-api-key': site.cash },
          body: { orderNumber: busy.orderNumber, amountAdded: 20 },
        });
      }
      expect((await status(busy.orderNumber)).status).toBe('PENDING');
      const flagged = (
        (await server.request('GET', '/v1/alerts?limit=200')).body.items as {
          kind: string;
          subjectId: string;
        }[]
      ).some((a) => a.kind === 'CASH_SESSION_STALE' && a.subjectId === busy.orderId);
      expect(flagged).toBe(false);
    }, 30_000);
  });
}

// The sweep runs on every process of a cluster (scheduler.every is per process), and it must
// reach every abandoned kiosk session however many sessions it leaves alone. The server's own
// sweep is kept out of the way (an idle time of an hour); the tests sweep by hand, as if later.
for (const engine of engines()) {
  describe(`abandoned cash sessions: cluster and volume (${engine})`, () => {
    let server: TestServer;
    let site: { siteId: string; kiosk: string; cash: string };
    const IDLE = 1_000;
    const later = () => Date.now() + 5_000;

    beforeAll(async () => {
      server = await startServer({ engine, env: { CASH_SESSION_IDLE_MS: '3600000' } });
      const siteId = `idlc${randomBytes(3).toString('hex')}`;
      const kiosk = `K${randomBytes(3).toString('hex')}`;
      const cash = `C${randomBytes(3).toString('hex')}`;
      const keys = await createBurgerSite(server, {
        siteId,
        skuPrefix: `${siteId}-`,
        machines: { [kiosk]: 'kiosk', [cash]: 'cash' },
      });
      site = { siteId, kiosk: keys[kiosk]!, cash: keys[cash]! };
    });
    afterAll(async () => {
      await server?.close();
    });

    const staleAlerts = async (orderId: string) =>
      (
        (await server.request('GET', '/v1/alerts?limit=200')).body.items as {
          kind: string;
          subjectId: string;
        }[]
      ).filter((a) => a.kind === 'CASH_SESSION_STALE' && a.subjectId === orderId);

    it('two processes sweeping at the same moment raise one CASH_SESSION_STALE, not two', async () => {
      const partial = await openCashSession(server, site, 100);
      const { cash } = server.kioskhub.services;
      const at = later();
      const [a, b] = await Promise.all([cash.expireIdle(IDLE, at), cash.expireIdle(IDLE, at)]);
      expect(a.stale + b.stale).toBe(1);
      expect(await staleAlerts(partial.orderId)).toHaveLength(1);
    }, 30_000);

    it('an empty counter session of a table order ends but its order stays open; a kiosk session behind 200 of them is cancelled too', async () => {
      const { orders } = server.kioskhub.services;
      const db = server.kioskhub.db;
      const hourAgo = new Date(Date.now() - 3_600_000).toISOString();
      const tableOrders: { id: string; orderNumber: string }[] = [];
      for (let i = 0; i < 201; i++) {
        const order = await db.transaction().execute((tx) =>
          orders.create(tx, {
            tenantId: 'default',
            siteId: site.siteId,
            machineId: null,
            amount: 15_000,
            currency: 'PHP',
            source: 'table',
            status: 'CREATED',
            orderNumber: `T${randomBytes(4).toString('hex')}`,
            actor: 'test',
          }),
        );
        tableOrders.push({ id: order.id, orderNumber: order.orderNumber! });
        await db
          .insertInto('cash_sessions')
          .values({
            id: `cs${randomBytes(8).toString('hex')}`,
            tenant_id: 'default',
            site_id: site.siteId,
            machine_id: null,
            order_id: order.id,
            order_number: order.orderNumber!,
            total_required_minor: 15_000,
            currency: 'PHP',
            status: 'PENDING',
            started_at: hourAgo,
            completed_at: null,
            cancelled_at: null,
          })
          .execute();
      }
      const empty = await openCashSession(server, site);
      const done = await server.kioskhub.services.cash.expireIdle(IDLE, later());
      expect(done.cancelled).toBeGreaterThanOrEqual(202);
      expect((await server.request('GET', `/v1/orders/${empty.orderId}`)).body.status).toBe('CANCELLED');
      // The table orders' counter sessions ended; the orders themselves are still payable (the
      // cafe's expiry ends them if nobody pays), and their timeline says the session ended.
      const sample = tableOrders[0]!;
      const sessions = await db
        .selectFrom('cash_sessions')
        .select('status')
        .where(
          'order_id',
          'in',
          tableOrders.map((o) => o.id),
        )
        .execute();
      expect(new Set(sessions.map((r) => r.status))).toEqual(new Set(['CANCELLED']));
      expect((await server.request('GET', `/v1/orders/${sample.id}`)).body.status).toBe('CREATED');
      const timeline = (await server.request('GET', `/v1/orders/${sample.id}/timeline`)).body.items as {
        type: string;
        actor: string;
      }[];
      expect(
        timeline.some((e) => e.type === 'cash_session_ended' && e.actor === 'system:cash-session-expiry'),
      ).toBe(true);
    }, 120_000);
  });
}
