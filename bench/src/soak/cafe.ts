// Cafe tables paying by bank transfer: a guest orders at a table (table token), chooses a
// transfer (an EPC payload with its RF reference), and the bank's signed credit notification
// arrives at /webhooks/bank — one in ten delivered twice with the same eventId, one in five split
// into two credits that add up, one in ten confirmed by staff from the statement instead. One paid
// order in five gets a partial refund (refund due), and one refund in four asks for more than is
// left (refused). Exactly once: each payment received exactly its distinct acknowledged credits,
// every fully paid order is paid, refunds never exceed what arrived.
import { randomInt } from 'node:crypto';
import { signatureHeader } from '../../../server/src/providers/bank/bank.signature.js';
import { call, ok } from './client.js';
import { loop, type AuditLine, type Flow } from './flow.js';

export const CAFE_SITE = 'soak-cafe';
export const BANK_SECRET = 'soak-bank-webhook-secret-2026';
const IBAN = 'DE89 3704 0044 0532 0130 00';
const PRICES = { latte: 350, soup: 500 };

interface CafePayment {
  orderId: string;
  amountMinor: number;
  /** Acknowledged credits by eventId. */
  credits: Map<string, number>;
  verifiedByStaff: boolean;
  refunded: number;
  /** Refunds sent whose answer was lost (the server was killed): done or not. */
  refundsUnsure: number;
}

export function cafeFlow(options: { tables: number; gapMs: number }): Flow {
  const tables: { id: string; token: string }[] = [];
  const payments = new Map<string, CafePayment>();
  let duplicatesSent = 0;
  let duplicatesNotDuplicate = 0;
  let refusedRefunds = 0;
  let overRefundsAccepted = 0;
  let paid = 0;
  let evt = 0;

  const bankCredit = (url: string, body: Record<string, unknown>) => {
    const raw = JSON.stringify(body);
    return call(url, 'POST', '/webhooks/bank', null, undefined, {
      raw,
      headers: { 'kioskhub-signature': signatureHeader(raw, BANK_SECRET) },
    });
  };

  return {
    name: 'cafe tables',
    async setup(ctx) {
      await ok(
        ctx.url,
        'POST',
        '/v1/sites',
        { admin: true },
        { id: CAFE_SITE, name: 'Soak Cafe', currency: 'EUR' },
      );
      await ok(
        ctx.url,
        'PATCH',
        `/v1/sites/${CAFE_SITE}`,
        { admin: true },
        { bankAccount: { name: 'Soak Cafe GmbH', iban: IBAN, bic: 'COBADEFFXXX' } },
      );
      for (const [sku, priceMinor] of Object.entries(PRICES))
        await ok(
          ctx.url,
          'POST',
          '/v1/products',
          { admin: true },
          { sku: `soak-${sku}`, name: sku, priceMinor, siteId: CAFE_SITE },
        );
      for (let i = 1; i <= options.tables; i++) {
        const id = `ST${i}`;
        await ok(ctx.url, 'POST', '/v1/machines', { admin: true }, { id, kind: 'table', siteId: CAFE_SITE });
        const link = await ok(ctx.url, 'GET', `/v1/machines/${id}/table-link`, { admin: true });
        tables.push({ id, token: String(link.token) });
      }
    },
    async run(ctx) {
      await Promise.all(
        tables.map((t) =>
          loop(ctx, options.gapMs, async () => {
            const order = await ok(
              ctx.url,
              'POST',
              '/api/orders',
              { bearer: t.token },
              {
                siteId: CAFE_SITE,
                tableId: t.id,
                items: [
                  { sku: 'soak-latte', qty: randomInt(1, 3) },
                  { sku: 'soak-soup', qty: randomInt(0, 2) || 1 },
                ],
              },
            );
            const pay = await ok(
              ctx.url,
              'POST',
              '/api/payments/initiate',
              { bearer: t.token },
              { orderId: order.id, method: 'bank_transfer' },
            );
            const p: CafePayment = {
              orderId: String(order.id),
              amountMinor: Number(pay.amountMinor),
              credits: new Map(),
              verifiedByStaff: false,
              refunded: 0,
              refundsUnsure: 0,
            };
            payments.set(String(pay.paymentId), p);
            const r = Math.random();
            if (r < 0.1) {
              await ok(ctx.url, 'POST', `/api/payments/${pay.paymentId}/verify`, { admin: true }, {});
              p.verifiedByStaff = true;
            } else {
              const first = r < 0.3 ? randomInt(1, p.amountMinor) : p.amountMinor;
              for (const amountMinor of first < p.amountMinor ? [first, p.amountMinor - first] : [first]) {
                const body = {
                  eventId: `soak-bank-${++evt}`,
                  reference: pay.epc.reference,
                  amountMinor,
                  currency: 'EUR',
                  bookedAt: new Date().toISOString(),
                };
                const res = await bankCredit(ctx.url, body);
                if (res.status !== 200 || res.body?.ok !== true) {
                  ctx.log(
                    `cafe: bank credit answered ${res.status} ${JSON.stringify(res.body).slice(0, 200)}`,
                  );
                  return;
                }
                p.credits.set(body.eventId, amountMinor);
                if (Math.random() < 0.1) {
                  duplicatesSent++;
                  const again = await bankCredit(ctx.url, body);
                  if (again.body?.outcome !== 'duplicate') duplicatesNotDuplicate++;
                }
              }
            }
            paid++;
            if (Math.random() < 0.2) {
              const tooMuch = Math.random() < 0.25;
              const amountMinor = tooMuch ? p.amountMinor + 1 : randomInt(1, p.amountMinor);
              try {
                const res = await call(
                  ctx.url,
                  'POST',
                  `/api/payments/${pay.paymentId}/refund`,
                  { admin: true },
                  { reason: 'soak: cold soup', to: 'refund_due', amountMinor },
                  // A staff click is not retried blindly: a lost answer leaves it unsure.
                  { patienceMs: 0 },
                );
                if (res.status === 201) {
                  p.refunded += amountMinor;
                  if (tooMuch) overRefundsAccepted++;
                } else if (res.status === 409) refusedRefunds++;
                else ctx.log(`cafe: refund answered ${res.status} ${JSON.stringify(res.body).slice(0, 200)}`);
              } catch {
                p.refundsUnsure += amountMinor;
              }
            }
          }),
        ),
      );
    },
    count: () => paid,
    async drain() {},
    async audit(db) {
      const lines: AuditLine[] = [];
      const ids = [...payments.keys()];
      const rows = new Map<
        string,
        { status: string; received_minor: number; refunded_minor: number; order_id: string | null }
      >();
      for (let i = 0; i < ids.length; i += 500) {
        const chunk = await db
          .selectFrom('payments')
          .select(['id', 'status', 'received_minor', 'refunded_minor', 'order_id'])
          .where('id', 'in', ids.slice(i, i + 500))
          .execute();
        for (const r of chunk) rows.set(r.id, r);
      }
      const orderIds = [...payments.values()].map((p) => p.orderId);
      const orderStatus = new Map<string, string>();
      for (let i = 0; i < orderIds.length; i += 500) {
        const chunk = await db
          .selectFrom('orders')
          .select(['id', 'status'])
          .where('id', 'in', orderIds.slice(i, i + 500))
          .execute();
        for (const o of chunk) orderStatus.set(o.id, o.status);
      }
      let wrongReceived = 0;
      let unpaid = 0;
      let wrongRefund = 0;
      let settled = 0;
      for (const [id, p] of payments) {
        const row = rows.get(id);
        const credited = [...p.credits.values()].reduce((a, b) => a + b, 0);
        const fullyPaid = p.verifiedByStaff || credited === p.amountMinor;
        if (!row) {
          wrongReceived++;
          continue;
        }
        if (!p.verifiedByStaff && Number(row.received_minor) !== credited) wrongReceived++;
        if (fullyPaid) {
          settled++;
          if (!['SUCCEEDED', 'PARTIALLY_REFUNDED', 'REFUNDED'].includes(row.status)) unpaid++;
          if (orderStatus.get(p.orderId) !== 'PAID') unpaid++;
        }
        const r = Number(row.refunded_minor);
        if (r < p.refunded || r > p.refunded + p.refundsUnsure || r > Number(row.received_minor))
          wrongRefund++;
      }
      lines.push({
        check: 'cafe: each transfer received exactly its distinct acknowledged credits; paid orders PAID',
        ok: wrongReceived === 0 && unpaid === 0 && duplicatesNotDuplicate === 0,
        detail: `${payments.size} transfers, ${settled} paid (${[...payments.values()].filter((p) => p.verifiedByStaff).length} by staff), ${wrongReceived} with another amount received, ${unpaid} not paid; ${duplicatesSent} repeated credits (${duplicatesNotDuplicate} not answered as duplicates)`,
      });
      lines.push({
        check: 'cafe: refunds never exceed what was paid',
        ok: wrongRefund === 0 && overRefundsAccepted === 0,
        detail: `${[...payments.values()].filter((p) => p.refunded > 0).length} refunded, ${refusedRefunds} refused (more than left), ${overRefundsAccepted} over-refunds accepted, ${wrongRefund} refund totals off`,
      });
      return lines;
    },
    async close() {},
  };
}
