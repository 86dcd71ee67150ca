// Property test of the payment platform against the real app on both engines (restarted on
// "crash"): random interleavings of provider events (authorized before captured, duplicates with
// the same or another event id, concurrent deliveries, out of order), cash inserts with retries,
// refunds of random sizes (some at once), one-off intents of an unsigned-callback provider (forged
// and repeated callbacks, status answers changing, checks racing) and crashes leave every payment
// counted once, never refunded past what it received, with its refunds summing to its refunded
// amount, an intent settled only as its provider's status API said, and every ledger balance equal
// to the sum of its entries.
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import type { ProviderStatus } from '../src/modules/payments/intents.js';
import { afterAll, describe, expect, it } from 'vitest';
import { ledgerInvariants } from './ledger-invariants.js';
import {
  dropSchema,
  engines,
  eventually,
  newSchemaName,
  qrCredited,
  startServer,
  tempDir,
  type TestServer,
} from './harness.js';

type Action =
  | { t: 'deliver'; payment: number; captured: boolean; sameEventId: boolean; copies: number }
  | { t: 'refund'; payment: number; amount: number; copies: number }
  | { t: 'cash'; amount: number; retry: boolean }
  | { t: 'intent'; amount: number }
  | { t: 'answer'; intent: number; status: 'SUCCEEDED' | 'FAILED'; amount: number }
  | { t: 'callback'; intent: number; copies: number }
  | { t: 'crash' };

const PAYMENTS = 4;
const INTENTS = 3;
const actionArb: fc.Arbitrary<Action> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      t: fc.constant('deliver' as const),
      payment: fc.integer({ min: 0, max: PAYMENTS - 1 }),
      captured: fc.boolean(),
      sameEventId: fc.boolean(),
      copies: fc.integer({ min: 1, max: 3 }),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      t: fc.constant('refund' as const),
      payment: fc.integer({ min: 0, max: PAYMENTS - 1 }),
      amount: fc.integer({ min: 1, max: 1500 }),
      copies: fc.integer({ min: 1, max: 2 }),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      t: fc.constant('cash' as const),
      amount: fc.constantFrom(20, 50, 100),
      retry: fc.boolean(),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({ t: fc.constant('intent' as const), amount: fc.integer({ min: 1, max: 5000 }) }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      t: fc.constant('answer' as const),
      intent: fc.integer({ min: 0, max: INTENTS - 1 }),
      status: fc.constantFrom('SUCCEEDED' as const, 'FAILED' as const),
      amount: fc.integer({ min: 1, max: 5000 }),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      t: fc.constant('callback' as const),
      intent: fc.integer({ min: 0, max: INTENTS - 1 }),
      copies: fc.integer({ min: 1, max: 3 }),
    }),
  },
  { weight: 1, arbitrary: fc.constant({ t: 'crash' as const }) },
);

describe.each(engines())('payments property (%s, restarts)', (engine) => {
  const dirs: { remove(): void }[] = [];
  afterAll(() => dirs.forEach((d) => d.remove()));

  it('every payment counted once, never refunded past what it received', async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(actionArb, { minLength: 5, maxLength: 30 }), async (actions) => {
        run++;
        const dir = tempDir('kioskhub-payprop-');
        dirs.push(dir);
        // A crash restarts the app on the same storage: the SQLite file, or the PostgreSQL schema.
        const schema = engine === 'postgres' ? newSchemaName() : undefined;
        // The provider's status API: its answer per payment id, final once it is not PENDING.
        const answers = new Map<string, ProviderStatus>();
        const env = { PAYMENT_STATUS_POLL_MS: '600000' };
        const start = async () => {
          const s = await startServer(schema ? { engine, schema, env } : { dataDir: dir.path, env });
          s.kioskhub.services.intents.registerStatusSource('fakepay', {
            fetchStatus: async (p) => answers.get(p.id) ?? { status: 'PENDING' },
          });
          return s;
        };
        let server: TestServer = await start();
        try {
          const machine = await server.createVendingMachine(`PP${run}`, 2000);
          const siteId = `pp${run}${randomBytes(2).toString('hex')}`;
          await server.request('POST', '/v1/sites', {
            body: { id: siteId, name: 'Cafe', currency: 'PHP', adHocCashOrders: true },
          });
          const kiosk = await server.createMachine(`PK${run}`, { kind: 'kiosk', siteId });
          const ids = Array.from({ length: PAYMENTS }, () => `pay_${randomBytes(5).toString('hex')}`);
          const captured = new Set<number>();
          const customer = await server.kioskhub.services.customers.create(
            { tenantId: 'default', phone: '+256772000001', actor: 'test' },
            server.kioskhub.db,
          );
          const intents: string[] = [];
          // Intents checked after their provider's final answer: they must not stay pending.
          const decided = new Set<string>();
          let orderNumber = `N${run}-1`;
          let cashEvents = 0;
          let lastCashEvent = '';
          await server.request('POST', '/api/cash-payment/init', {
            token: kiosk.key,
            body: { orderNumber, totalAmount: 100 },
          });

          for (const a of actions) {
            if (a.t === 'deliver') {
              const event = qrCredited(machine.qrCodeId, 2000, ids[a.payment]);
              if (!a.captured)
                Object.assign(event.payload.payment.entity, { status: 'authorized', captured: false });
              else captured.add(a.payment);
              const eventId = a.sameEventId ? `evt_${ids[a.payment]}_${a.captured}` : undefined;
              const answers = await Promise.all(
                Array.from({ length: a.copies }, (_, i) =>
                  server.postWebhook(event, {
                    eventId: eventId ?? `evt_${randomBytes(4).toString('hex')}_${i}`,
                  }),
                ),
              );
              for (const res of answers) expect(res.status).toBe(200);
            } else if (a.t === 'refund') {
              const events = await server.request('GET', `/v1/payment-events/razorpay/${ids[a.payment]}`);
              if (!events.body?.orderId) continue;
              const [payment] = (await server.request('GET', `/v1/payments?orderId=${events.body.orderId}`))
                .body.items;
              const answers = await Promise.all(
                Array.from({ length: a.copies }, () =>
                  server.request('POST', `/v1/payments/${payment.id}/refunds`, {
                    body: { amountMinor: a.amount, reason: 'prop', to: 'refund_due' },
                  }),
                ),
              );
              for (const res of answers) expect([201, 409]).toContain(res.status);
            } else if (a.t === 'cash') {
              const eventId = a.retry && lastCashEvent ? lastCashEvent : `c${cashEvents++}`;
              lastCashEvent = eventId;
              const res = await server.request('POST', '/api/cash-payment/update', {
                token: kiosk.key,
                body: { orderNumber, amountAdded: a.amount, eventId: `${run}-${eventId}` },
              });
              if (res.body?.status === 'PAID') {
                orderNumber = `N${run}-${cashEvents}`;
                await server.request('POST', '/api/cash-payment/init', {
                  token: kiosk.key,
                  body: { orderNumber, totalAmount: 100 },
                });
              }
            } else if (a.t === 'intent') {
              if (intents.length >= INTENTS) continue;
              const { db, services } = server.kioskhub;
              const p = await db.transaction().execute((tx) =>
                services.intents.create(tx, {
                  tenantId: 'default',
                  purpose: 'wallet_topup',
                  method: 'momo',
                  provider: 'fakepay',
                  customerId: customer.id,
                  amountMinor: a.amount,
                  currency: 'UGX',
                }),
              );
              intents.push(p.id);
            } else if (a.t === 'answer') {
              const id = intents[a.intent];
              if (!id || answers.has(id)) continue; // a provider's final answer does not change
              answers.set(
                id,
                a.status === 'SUCCEEDED'
                  ? { status: 'SUCCEEDED', receivedMinor: a.amount }
                  : { status: 'FAILED', failureCode: 'REJECTED' },
              );
            } else if (a.t === 'callback') {
              const id = intents[a.intent];
              if (!id) continue;
              const { db, services } = server.kioskhub;
              // Forged or real, repeated and concurrent: each only schedules a status check.
              await Promise.all(
                Array.from({ length: a.copies }, () =>
                  db
                    .transaction()
                    .execute((tx) => services.intents.scheduleCheck(tx, { id, tenant_id: 'default' })),
                ),
              );
              await Promise.all([services.outbox.drain(), services.outbox.drain()]);
              if (answers.has(id)) decided.add(id);
            } else {
              await server.kioskhub.close();
              server = await start();
            }
          }

          const db = server.kioskhub.db;
          await server.kioskhub.services.outbox.drain();
          // An intent is settled exactly as its provider's status API said (or still pending,
          // when no check ran since the answer); the wallet holds what the settled ones received.
          let credited = 0;
          for (const id of intents) {
            if (decided.has(id)) {
              await eventually(async () => {
                await server.kioskhub.services.outbox.drain();
                const p = await db
                  .selectFrom('payments')
                  .select('status')
                  .where('id', '=', id)
                  .executeTakeFirst();
                expect(p?.status).not.toBe('PENDING');
                return true;
              });
            }
            const row = await db
              .selectFrom('payments')
              .selectAll()
              .where('id', '=', id)
              .executeTakeFirstOrThrow();
            const answer = answers.get(id);
            if (row.status === 'SUCCEEDED') {
              expect(answer).toMatchObject({
                status: 'SUCCEEDED',
                receivedMinor: Number(row.received_minor),
              });
              credited += Number(row.received_minor);
            } else if (row.status === 'FAILED') {
              expect(answer?.status).toBe('FAILED');
            } else {
              expect(row.status).toBe('PENDING');
            }
          }
          const wallet = await server.kioskhub.services.customers.wallet(db, 'default', customer.id, 'UGX');
          expect(wallet.balance).toBe(credited);
          // Every ledger balance equals the sum of its entries; each unit sums to zero.
          expect(await ledgerInvariants(db)).toEqual({ drift: [], units: [] });
          const payments = await db.selectFrom('payments').selectAll().execute();
          // One order and one payment per captured provider payment, whatever was delivered.
          const qr = payments.filter((p) => p.method === 'upi_qr');
          expect(qr.map((p) => p.provider_payment_id).sort()).toEqual(
            [...captured].map((i) => ids[i]).sort(),
          );
          const orders = await db
            .selectFrom('orders')
            .select(['provider_payment_id'])
            .where('source', '=', 'upi_qr')
            .execute();
          expect(orders.length).toBe(captured.size);
          for (const p of payments) {
            const refunds = await db
              .selectFrom('refunds')
              .select('amount_minor')
              .where('payment_id', '=', p.id)
              .execute();
            const sum = refunds.reduce((acc, r) => acc + Number(r.amount_minor), 0);
            expect(sum).toBe(Number(p.refunded_minor));
            expect(Number(p.refunded_minor)).toBeLessThanOrEqual(Number(p.received_minor));
            if (p.method === 'cash') {
              const inserted = await db
                .selectFrom('cash_inserts')
                .select('amount_minor')
                .where('session_id', '=', p.id)
                .execute();
              expect(Number(p.received_minor)).toBe(
                inserted.reduce((acc, r) => acc + Number(r.amount_minor), 0),
              );
            }
          }
        } finally {
          await server.close();
          if (schema) await dropSchema(schema);
        }
      }),
      { numRuns: 12, endOnFailure: true },
    );
  }, 240_000);
});
