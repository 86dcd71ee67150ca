// Review 5 of the operator live updates on /live (live.gateway.ts and the modules that publish
// live events): each test shows a defect found on review, against the real server and database.
import type { Socket } from 'socket.io-client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  ADMIN_TOKEN,
  connected,
  engines,
  eventually,
  liveSocket,
  startServer,
  type Engine,
  type TestServer,
} from './harness.js';
import { mealSite, orderMeal } from './restaurant-fixtures.js';

const key = (k: string) => ({ token: null, headers: { 'x-api-key': k } }) as const;

interface LiveEvent {
  event: string;
  data: any;
}

describe.each(engines())('live review 5 (%s)', (engine: Engine) => {
  let server: TestServer;
  let seq = 0;
  const uid = (prefix: string) => `${prefix}${++seq}`;
  const open: Socket[] = [];

  beforeAll(async () => {
    server = await startServer({ engine });
  });
  afterEach(() => {
    for (const s of open.splice(0)) s.disconnect();
  });
  afterAll(async () => {
    for (const s of open.splice(0)) s.disconnect();
    await server?.close();
  });

  /** A /live socket that records every event it receives, joined to `rooms`. */
  async function viewer(auth: Record<string, string>, rooms: string[]) {
    const socket = liveSocket(server.url, auth);
    open.push(socket);
    const events: LiveEvent[] = [];
    socket.onAny((event: string, data: unknown) => events.push({ event, data }));
    await connected(socket);
    for (const room of rooms) {
      const ack = await socket.timeout(5_000).emitWithAck('subscribe', { room });
      expect(ack, room).toEqual({ ok: true, room });
    }
    const of = (event: string, match: (d: any) => boolean = () => true) =>
      events.filter((e) => e.event === event && match(e.data)).map((e) => e.data);
    return {
      socket,
      events,
      of,
      waitFor: (event: string, match: (d: any) => boolean, what = event, timeoutMs = 5_000) =>
        eventually(() => of(event, match)[0], timeoutMs, what),
    };
  }

  const post = (k: string, path: string, body: unknown) => server.request('POST', path, { ...key(k), body });

  async function login(role: string): Promise<string> {
    const email = `${uid('live5-')}@example.com`;
    const password = 'correct horse battery';
    const created = await server.request('POST', '/v1/users', { body: { email, password, role } });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const res = await server.request('POST', '/v1/auth/login', { body: { email, password }, token: null });
    expect(res.status).toBe(200);
    return res.body.token as string;
  }

  // docs/api.md §17: "| `alert_raised` | `{tenantId, kind, subjectType, subjectId}` | `tenant:` |";
  // docs/dashboard.md: "Alerts (`/alerts`) | open alerts (or all), `Acknowledge` …; the header badge
  // counts open alerts | `alert_raised`".
  // Wrong: only the dashboard sweeper (server/src/modules/dashboard/sweeper.ts:91-104) and the
  // water alert sweep (server/src/modules/water-ops/water-alerts.ts:43) publish `alert_raised`.
  // Every other alert is raised with a bare `alerts.raise` / `raiseUnlessOpen` and no live event:
  // UNALLOCATED_CASH (server/src/modules/cash/unallocated.ts:132), OVERSOLD
  // (orders/order-settlement.ts:98), PRINT_JOB_FAILED (printing/printing.service.ts:98),
  // DISPENSE_DECLINED (commands/commands.service.ts:378), REFUND_FAILED (payments/refunds.ts),
  // PAYMENT_MISMATCH (payments/arrivals.ts), … so the dashboard's alert badge and list stay stale.
  // Fix: publish `alert_raised` from AlertsService.raise itself (enqueueOutbox 'live' to
  // `tenant:<tenantId>` in the caller's transaction), and drop the sweeper's own copy.
  it('an UNALLOCATED_CASH alert (cash for an unknown order) is announced with alert_raised on tenant:', async () => {
    const site = await mealSite(server, uid, 'lrv');
    const staff = await login('staff');
    const v = await viewer({ token: staff }, ['tenant:default']);
    const stray = uid('NOSUCH');
    const res = await post(site.cashUnit.key, '/api/cash-payment/update', {
      orderNumber: stray,
      amountAdded: 100,
      eventId: `${stray}-e1`,
    });
    expect(res.status, JSON.stringify(res.body)).toBe(404);
    const alerts = (await server.request('GET', '/v1/alerts?open=true')).body.items as any[];
    const alert = alerts.find((a) => a.kind === 'UNALLOCATED_CASH' && a.message.includes(stray));
    expect(alert, 'the alert itself is raised').toBeDefined();
    const raised = await v.waitFor(
      'alert_raised',
      (d) => d.kind === 'UNALLOCATED_CASH' && d.subjectId === alert.subjectId,
      'alert_raised for UNALLOCATED_CASH',
    );
    expect(raised).toEqual({
      tenantId: 'default',
      kind: 'UNALLOCATED_CASH',
      subjectType: alert.subjectType,
      subjectId: alert.subjectId,
    });
  });

  // docs/api.md §17: "Rooms: … `order:<id or orderNumber>` …" and "| `order_status_updated` | … |
  // `tenant:`, `order:`, `machine:` |"; §14: the `orderToken` "lets the customer screen follow
  // `order:<orderNumber>` on `/live`".
  // Wrong: subscribing to `order:<orderNumber>` is accepted ({ok: true}), but order_status_updated
  // is published only to `order:<id>` (server/src/modules/orders/orders.service.ts:52-61,
  // `orderRooms`, used at :202), so a viewer of the order's number room (a staff screen, the cash
  // customer screen with its orderToken) never hears its order become PAID (nor payment_refunded /
  // refund_updated, which use the same `orderRooms`). payment_completed, cash_session_updated and
  // kitchen_order_ready already go to both rooms.
  // Fix: add `order:<order_number>` to `orderRooms` when the row has one (and pass order_number in).
  it('order_status_updated reaches the order room joined by its orderNumber (staff and orderToken)', async () => {
    const site = await mealSite(server, uid, 'lrv');
    const o = await orderMeal(server, site);
    const staff = await login('staff');
    const byNumber = await viewer({ token: staff }, [`order:${o.orderNumber}`]);
    const byId = await viewer({ token: staff }, [`order:${o.id}`]);
    const init = await post(site.kiosk.key, '/api/cash-payment/init', {
      orderNumber: o.orderNumber,
      totalAmount: 150,
    });
    expect(init.status, JSON.stringify(init.body)).toBe(200);
    const screen = await viewer({ orderToken: init.body.orderToken as string }, [`order:${o.orderNumber}`]);
    const paid = await post(site.cashUnit.key, '/api/cash-payment/update', {
      orderNumber: o.orderNumber,
      amountAdded: 150,
      eventId: `${o.orderNumber}-e1`,
    });
    expect(paid.status, JSON.stringify(paid.body)).toBe(200);
    const isPaid = (d: any) => d.orderId === o.id && d.status === 'PAID';
    // The id room hears it, and payment_completed reaches the number room: both were published.
    await byId.waitFor('order_status_updated', isPaid, 'PAID on order:<id>');
    await byNumber.waitFor('payment_completed', (d) => d.orderId === o.id, 'payment_completed by number');
    await screen.waitFor('payment_completed', (d) => d.orderId === o.id, 'payment_completed on the screen');
    await byNumber.waitFor('order_status_updated', isPaid, 'PAID for staff on order:<orderNumber>');
    await screen.waitFor('order_status_updated', isPaid, 'PAID for the orderToken on order:<orderNumber>');
  });

  // docs/api.md §17: "| `payment_initiated` | `{tenantId, orderId, orderNumber, method: "cash",
  // totalRequired}` | `order:`, `tenant:` |" and "Rooms: … `order:<id or orderNumber>`".
  // Wrong: a cash session's payment_initiated goes to `order:<orderNumber>` and `tenant:` only
  // (server/src/modules/cash/cash.service.ts:512-523), while its cash_session_updated goes to
  // both `order:<orderNumber>` and `order:<orderId>` (:197-199): a staff screen following the
  // order by id (what the dashboard's order page and GET /v1/orders give it) misses it.
  // Fix: add `order:${s.order_id}` to the rooms at cash.service.ts:514, as `announce` does.
  it('a cash payment_initiated reaches the order room joined by its id', async () => {
    const site = await mealSite(server, uid, 'lrv');
    const o = await orderMeal(server, site);
    const staff = await login('staff');
    const byId = await viewer({ token: staff }, [`order:${o.id}`]);
    const init = await post(site.kiosk.key, '/api/cash-payment/init', {
      orderNumber: o.orderNumber,
      totalAmount: 150,
    });
    expect(init.status, JSON.stringify(init.body)).toBe(200);
    // Published in the same transaction: the id room hears this one.
    await byId.waitFor('cash_session_updated', (d) => d.orderId === o.id, 'cash_session_updated by id');
    const initiated = await byId.waitFor(
      'payment_initiated',
      (d) => d.orderId === o.id,
      'payment_initiated on order:<id>',
    );
    expect(initiated).toEqual({
      tenantId: 'default',
      orderId: o.id,
      orderNumber: o.orderNumber,
      method: 'cash',
      totalRequired: 150,
    });
  });

  // docs/api.md §17: "| `customer_updated` | `{tenantId, customerId, reason, …}` (a staff change, a
  // plan applied, …) | `tenant:` …"; docs/dashboard.md: "`ADMIN_TOKEN` … subscribes to every
  // tenant's live room".
  // Wrong: a staff change's event is `{customerId, reason}` without `tenantId`
  // (server/src/modules/customers/customers-staff.ts:88), as is a plan applied
  // (server/src/modules/mobile-money/plan-settlement.ts:209), so ADMIN_TOKEN's dashboard, joined
  // to several tenants' rooms, cannot tell whose customer changed (every other event carries it,
  // the kiosk's own customer_updated at water/dispenses.ts:104 too).
  // Fix: `data: { tenantId: c.tenant_id, customerId: c.id, reason: … }` in both places.
  it('customer_updated from a staff change carries tenantId', async () => {
    const v = await viewer({ token: ADMIN_TOKEN }, ['tenant:default']);
    const phone = `+2547${String(Math.floor(Math.random() * 1e8)).padStart(8, '0')}`;
    const res = await server.request('POST', '/v1/customers', { body: { phone } });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    const customerId = res.body.id as string;
    const event = await v.waitFor('customer_updated', (d) => d.customerId === customerId, 'customer_updated');
    expect(event).toMatchObject({ tenantId: 'default', customerId, reason: expect.any(String) });
  });
});
