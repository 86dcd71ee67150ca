// The soak's whole-database audit, across every flow, after the server stopped: every payment
// counted once, refunds within what was kept, every paid order dispensed or reviewable, no command
// left in flight, every print job printed, no water hold outliving its expiry, every ledger
// balance equal to the sum of its entries. Each flow audits its own acknowledgements beside this.
import { ledgerInvariants } from '../../../server/test/ledger-invariants.js';
import type { Executor } from '../../../server/src/platform/db/database.js';
import type { AuditLine } from './flow.js';

const TAKEN = ['SUCCEEDED', 'PARTIALLY_REFUNDED', 'REFUNDED'];

export async function auditDatabase(db: Executor): Promise<AuditLine[]> {
  const lines: AuditLine[] = [];

  const payments = await db
    .selectFrom('payments')
    .select([
      'id',
      'provider',
      'provider_payment_id',
      'purpose',
      'order_id',
      'status',
      'amount_minor',
      'received_minor',
      'refunded_minor',
    ])
    .execute();
  const byProviderId = new Map<string, number>();
  for (const p of payments)
    if (p.provider && p.provider_payment_id) {
      const k = `${p.provider}|${p.provider_payment_id}`;
      byProviderId.set(k, (byProviderId.get(k) ?? 0) + 1);
    }
  const events = await db
    .selectFrom('payment_events')
    .select(['provider', 'event_id'])
    .where('event_id', 'is not', null)
    .execute();
  const byEvent = new Map<string, number>();
  for (const e of events) {
    const k = `${e.provider}|${e.event_id}`;
    byEvent.set(k, (byEvent.get(k) ?? 0) + 1);
  }
  const paidOrders = new Map<string, number>();
  for (const p of payments)
    if (p.purpose === 'order' && p.order_id && TAKEN.includes(p.status))
      paidOrders.set(p.order_id, (paidOrders.get(p.order_id) ?? 0) + 1);
  const twiceProvider = [...byProviderId.values()].filter((n) => n > 1).length;
  const twiceEvent = [...byEvent.values()].filter((n) => n > 1).length;
  const paidTwice = [...paidOrders.values()].filter((n) => n > 1).length;
  const shortSettled = payments.filter(
    (p) => TAKEN.includes(p.status) && Number(p.received_minor) < Number(p.amount_minor),
  ).length;
  lines.push({
    check:
      'every payment counted once (one row per provider payment, one inbox row per event, one taken payment per order)',
    ok: twiceProvider === 0 && twiceEvent === 0 && paidTwice === 0 && shortSettled === 0,
    detail: `${payments.length} payments, ${events.length} inbox events; ${twiceProvider} provider payments twice, ${twiceEvent} events twice, ${paidTwice} orders paid twice, ${shortSettled} taken with less than due`,
  });

  const refunds = await db.selectFrom('refunds').select(['payment_id', 'amount_minor', 'status']).execute();
  const refundedBy = new Map<string, number>();
  for (const r of refunds)
    if (r.status !== 'FAILED')
      refundedBy.set(r.payment_id, (refundedBy.get(r.payment_id) ?? 0) + Number(r.amount_minor));
  // What may be refunded: a taken payment's cost (change and surplus were given back already),
  // a payment never taken everything it received.
  const refundBase = (p: (typeof payments)[number]) =>
    TAKEN.includes(p.status)
      ? Math.min(Number(p.received_minor), Number(p.amount_minor))
      : Number(p.received_minor);
  const over = payments.filter((p) => Number(p.refunded_minor) > refundBase(p)).length;
  const mismatch = payments.filter((p) => Number(p.refunded_minor) !== (refundedBy.get(p.id) ?? 0)).length;
  const badStatus = payments.filter(
    (p) =>
      (p.status === 'REFUNDED' && Number(p.refunded_minor) !== refundBase(p)) ||
      (p.status === 'PARTIALLY_REFUNDED' &&
        !(Number(p.refunded_minor) > 0 && Number(p.refunded_minor) < refundBase(p))),
  ).length;
  lines.push({
    check:
      'refunds: never more than a payment kept (or received, if never taken); its total is the sum of its refunds',
    ok: over === 0 && mismatch === 0 && badStatus === 0,
    detail: `${refunds.length} refunds on ${refundedBy.size} payments; ${over} over-refunded, ${mismatch} totals off, ${badStatus} statuses off`,
  });

  const commands = await db.selectFrom('commands').select(['order_id', 'status']).execute();
  const commandsPerOrder = new Map<string, number>();
  for (const c of commands) commandsPerOrder.set(c.order_id, (commandsPerOrder.get(c.order_id) ?? 0) + 1);
  const inFlight = commands.filter((c) => !['DONE', 'NEEDS_REVIEW'].includes(c.status)).length;
  const machineOrders = await db
    .selectFrom('orders')
    .select(['id', 'status', 'paid_at'])
    .where('source', '=', 'upi_qr')
    .execute();
  const forgotten = machineOrders.filter(
    (o) =>
      o.paid_at !== null &&
      !commandsPerOrder.has(o.id) &&
      !['FAILED', 'NEEDS_REVIEW', 'REFUNDED'].includes(o.status),
  ).length;
  const notFinished = machineOrders.filter((o) => ['PAID', 'DISPATCHED'].includes(o.status)).length;
  lines.push({
    check: 'every paid vending order dispensed or reviewable; no command left queued or in flight',
    ok:
      inFlight === 0 &&
      forgotten === 0 &&
      notFinished === 0 &&
      [...commandsPerOrder.values()].every((n) => n === 1),
    detail: `${commands.length} commands (${commands.filter((c) => c.status === 'NEEDS_REVIEW').length} in review), ${inFlight} still queued or in flight, ${forgotten} paid orders without a command, ${notFinished} orders still PAID/DISPATCHED`,
  });

  const jobs = await db.selectFrom('print_jobs').select(['order_id', 'status']).execute();
  const jobsPerOrder = new Map<string, number>();
  for (const j of jobs) if (j.order_id) jobsPerOrder.set(j.order_id, (jobsPerOrder.get(j.order_id) ?? 0) + 1);
  lines.push({
    check: 'every print job printed, one per order',
    ok: jobs.every((j) => j.status === 'PRINTED') && [...jobsPerOrder.values()].every((n) => n === 1),
    detail: `${jobs.length} jobs, ${jobs.filter((j) => j.status !== 'PRINTED').length} not printed, ${[...jobsPerOrder.values()].filter((n) => n > 1).length} orders with more than one`,
  });

  const now = new Date().toISOString();
  const holds = await db.selectFrom('water_dispenses').select(['status', 'hold_expires_at']).execute();
  const overdue = holds.filter(
    (h) => h.status === 'HELD' && h.hold_expires_at !== null && h.hold_expires_at < now,
  ).length;
  lines.push({
    check: 'water holds settled or expired',
    ok: overdue === 0,
    detail: `${holds.length} dispenses: ${['SETTLED', 'RELEASED', 'HELD', 'OFFLINE'].map((s) => `${holds.filter((h) => h.status === s).length} ${s}`).join(', ')}; ${overdue} held past expiry`,
  });

  const ledger = await ledgerInvariants(db);
  const accounts = await db
    .selectFrom('ledger_accounts')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .executeTakeFirstOrThrow();
  lines.push({
    check: 'ledger: every balance equals the sum of its entries, every unit sums to zero',
    ok: ledger.drift.length === 0 && ledger.units.length === 0,
    detail: `${Number(accounts.n)} accounts, ${ledger.drift.length} drifting, ${ledger.units.length} units not summing to zero`,
  });
  return lines;
}
