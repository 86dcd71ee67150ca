// Water kiosks: customers with a PIN and prepaid credit ask a kiosk for water
// (`POST /dispense-verification`), the kiosk settles what the tap poured (`POST
// /v1/water/dispenses`). One verification in ten is repeated with the same timestamp (a lost
// answer) and must return the same authorization; one settlement in ten is sent twice with the
// same kioskTxnId; one approval in eight is never settled (the customer walked away) and its hold
// must expire. Exactly once: each customer's credit is what it started with minus the water of
// the distinct settlements acknowledged, and no hold outlives its expiry.
import { randomInt } from 'node:crypto';
import { sleep } from '../lib/wait.js';
import { call, ok } from './client.js';
import { loop, type AuditLine, type Flow } from './flow.js';

const START_CREDIT_ML = 5_000_000;
const PIN = '4821';

interface Customer {
  id: string;
  phone: string;
  /** Water of acknowledged settlements, by kioskTxnId. */
  settled: Map<string, number>;
  finalCreditMl?: number;
}

export function waterFlow(options: {
  kiosks: number;
  customers: number;
  gapMs: number;
  holdMs: number;
}): Flow {
  const kiosks: { id: string; key: string }[] = [];
  const customers: Customer[] = [];
  const approvals = new Set<string>();
  const abandoned = new Set<string>();
  let repeatsSent = 0;
  let repeatsDiffering = 0;
  let duplicateSettlements = 0;
  let duplicateAnswersWrong = 0;
  let refusals = 0;
  let txn = 0;

  return {
    name: 'water kiosks',
    async setup(ctx) {
      for (let i = 1; i <= options.kiosks; i++) {
        const m = await ok(ctx.url, 'POST', '/v1/machines', { admin: true }, { id: `SW${i}`, kind: 'water' });
        kiosks.push({ id: `SW${i}`, key: String(m.key) });
      }
      for (let i = 0; i < options.customers; i++) {
        const phone = `+2547${String(10_000_000 + i * 7919).slice(-8)}`;
        const c = await ok(
          ctx.url,
          'POST',
          '/v1/customers',
          { admin: true },
          { phone, fullName: `Soak ${i}`, pin: PIN, reason: 'soak' },
        );
        await ok(
          ctx.url,
          'POST',
          `/v1/customers/${c.id}/credits`,
          { admin: true },
          { deltaMl: START_CREDIT_ML, reason: 'soak opening credit' },
        );
        customers.push({ id: String(c.id), phone, settled: new Map() });
      }
    },
    async run(ctx) {
      await Promise.all(
        kiosks.map((k) =>
          loop(ctx, options.gapMs, async () => {
            const c = customers[randomInt(customers.length)]!;
            const volumeMl = 250 * randomInt(1, 21);
            const body = {
              kiosk_id: k.id,
              user_id: c.phone,
              pin: PIN,
              volume_ml: volumeMl,
              timestamp: new Date().toISOString(),
            };
            const verify = () => call(ctx.url, 'POST', '/dispense-verification', { key: k.key }, body);
            const answer = await verify();
            if (answer.status !== 200 || answer.body?.approved !== true) {
              refusals++;
              ctx.log(
                `water: verification answered ${answer.status} ${JSON.stringify(answer.body).slice(0, 200)}`,
              );
              return;
            }
            const authorizationId = String(answer.body.authorization_id);
            approvals.add(authorizationId);
            if (Math.random() < 0.1) {
              repeatsSent++;
              const again = await verify();
              if (again.body?.authorization_id !== authorizationId) repeatsDiffering++;
            }
            if (Math.random() < 0.125) {
              abandoned.add(authorizationId);
              return;
            }
            await sleep(100 + randomInt(400)); // the tap pours
            const dispensedMl = Math.random() < 0.5 ? volumeMl : randomInt(1, volumeMl + 1);
            const kioskTxnId = `${k.id}-${++txn}`;
            const settle = () =>
              ok(
                ctx.url,
                'POST',
                '/v1/water/dispenses',
                { key: k.key },
                { authorizationId, dispensedMl, kioskTxnId, tap: 1 },
              );
            await settle();
            c.settled.set(kioskTxnId, dispensedMl);
            if (Math.random() < 0.1) {
              duplicateSettlements++;
              const again = await settle();
              if (again.duplicate !== true) duplicateAnswersWrong++;
            }
          }),
        ),
      );
    },
    count: () => customers.reduce((a, c) => a + c.settled.size, 0),
    async drain(ctx) {
      // Abandoned holds give their water back after WATER_HOLD_MS (a durable job): wait for it.
      await sleep(options.holdMs + 2_000);
      for (const c of customers) {
        const row = await ok(ctx.url, 'GET', `/v1/customers/${c.id}`, { admin: true });
        c.finalCreditMl = Number(row.creditsMl);
      }
    },
    async audit(db) {
      const lines: AuditLine[] = [];
      const ids = customers.map((c) => c.id);
      const rows = ids.length
        ? await db
            .selectFrom('water_dispenses')
            .select(['id', 'customer_id', 'status', 'dispensed_ml', 'kiosk_txn_id', 'hold_expires_at'])
            .where('customer_id', 'in', ids)
            .execute()
        : [];
      const settledRows = new Map(
        rows.filter((r) => r.status === 'SETTLED').map((r) => [String(r.kiosk_txn_id), r]),
      );
      const acked = customers.flatMap((c) => [...c.settled.entries()]);
      const missing = acked.filter(([id]) => !settledRows.has(id)).length;
      const wrongAmount = acked.filter(
        ([id, ml]) => settledRows.has(id) && Number(settledRows.get(id)!.dispensed_ml) !== ml,
      ).length;
      const unknownApprovals = [...approvals].filter((id) => !rows.some((r) => r.id === id)).length;
      lines.push({
        check: 'water: every approval is one hold, every acknowledged settlement applied once',
        ok:
          missing === 0 &&
          wrongAmount === 0 &&
          settledRows.size === acked.length &&
          rows.length === approvals.size &&
          unknownApprovals === 0 &&
          repeatsDiffering === 0 &&
          duplicateAnswersWrong === 0,
        detail: `${approvals.size} approvals, ${rows.length} dispense rows, ${acked.length} settlements acknowledged, ${settledRows.size} settled rows, ${missing} missing, ${wrongAmount} with another amount; ${repeatsSent} repeated verifications (${repeatsDiffering} with another authorization), ${duplicateSettlements} repeated settlements (${duplicateAnswersWrong} not answered as duplicates); ${refusals} refusals`,
      });
      const now = Date.now();
      const stuck = rows.filter(
        (r) => r.status === 'HELD' && r.hold_expires_at !== null && Date.parse(r.hold_expires_at) < now,
      );
      const abandonedReleased = rows.filter((r) => abandoned.has(r.id) && r.status === 'RELEASED').length;
      lines.push({
        check: 'water: every hold settled or expired (released)',
        ok:
          stuck.length === 0 &&
          abandonedReleased === abandoned.size &&
          rows.every((r) => r.status !== 'HELD'),
        detail: `${abandoned.size} walked away, ${abandonedReleased} released; ${rows.filter((r) => r.status === 'HELD').length} still held (${stuck.length} past expiry)`,
      });
      const off = customers.filter((c) => {
        const used = [...c.settled.values()].reduce((a, b) => a + b, 0);
        return c.finalCreditMl !== START_CREDIT_ML - used;
      });
      lines.push({
        check: 'water: each credit = opening credit - water of distinct settlements',
        ok: off.length === 0 && customers.every((c) => c.finalCreditMl !== undefined),
        detail: `${customers.length} customers, ${off.length} off${
          off.length
            ? ` (${off
                .slice(0, 3)
                .map((c) => `${c.id}: ${c.finalCreditMl}`)
                .join(', ')})`
            : ''
        }`,
      });
      return lines;
    },
    async close() {},
  };
}
