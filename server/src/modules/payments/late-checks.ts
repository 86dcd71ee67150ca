// A one-off payment that ended here (expired, or failed without money) may still be paid at its
// provider: a wallet prompt approved after our expiry, an ambiguous answer that resolves. Such a
// payment is asked again for a while after its end (`scheduleLateCheck`), and money taken then is
// recorded on the payment, alerted and audited, once; money taken that cannot be applied at all
// (another currency, an amount not exact) is alerted for staff to refund. Part of the intents
// (intents.ts), which decide when to ask.
import { formatMinor } from '../../platform/money.js';
import type { AlertsService } from '../alerts/alerts.service.js';
import { recordAudit } from '../audit/audit.service.js';
import { nowIso, type Db, type Executor } from '../../platform/db/database.js';
import { inGroup } from '../../platform/db/group-commit.js';
import type { PaymentRow } from '../../platform/db/schema.js';
import { enqueueOutbox } from '../../platform/outbox.js';
import type { IntentEndedListener, PaymentStatusSource, ProviderStatus } from './intents.js';
import type { PaymentsRepo } from './payments.repo.js';

/** How long after its expiry a payment whose provider still said pending is asked again. */
export const LATE_CHECK_WINDOW_MS = 30 * 60_000;
const LATE_CHECK_MAX_GAP_MS = 10 * 60_000;

/**
 * A payment that ended here without money, whose provider may yet report it paid: expired, or
 * failed for a reason other than money that could not be applied (that was alerted already).
 */
export const mayBePaidAfterEnd = (p: Pick<PaymentRow, 'status' | 'received_minor' | 'failure_code'>) =>
  (p.status === 'EXPIRED' || p.status === 'FAILED') &&
  Number(p.received_minor) === 0 &&
  p.failure_code !== 'AMOUNT_MISMATCH';

export function createLateChecks(deps: {
  db: Db;
  repo: Pick<PaymentsRepo, 'claimDelivery' | 'updateIfStatus'>;
  pollMs: number;
  alerts: Pick<AlertsService, 'raise'>;
  /** The listener told when a payment of `purpose` was paid after it ended (`onPaidAfterEnd`). */
  paidAfterEndListener(purpose: string): IntentEndedListener | undefined;
}) {
  const { db, repo } = deps;

  /**
   * The provider says it took money the payment cannot use: it is not ours to apply, and not in
   * the payment's currency to keep, so staff are told exactly what was taken, to refund it.
   */
  async function moneyNotApplied(
    ex: Executor,
    payment: PaymentRow,
    taken: { amount: string | null; currency: string | null },
  ): Promise<void> {
    const what = `${taken.amount ?? 'an unreadable amount'} ${taken.currency ?? payment.currency}`;
    const asked = `${formatMinor(Number(payment.amount_minor), payment.currency)} ${payment.currency}`;
    await deps.alerts.raise(ex, {
      tenantId: payment.tenant_id,
      kind: 'PAYMENT_AMOUNT_MISMATCH',
      subjectType: 'payment',
      subjectId: payment.id,
      message: `${payment.provider} took ${what} for payment ${payment.id} of ${asked}: not applied, refund it by hand`,
    });
    await recordAudit(ex, {
      tenantId: payment.tenant_id,
      actor: `provider:${payment.provider}`,
      action: 'payment.amount_mismatch',
      subjectType: 'payment',
      subjectId: payment.id,
      after: { amountMinor: Number(payment.amount_minor), currency: payment.currency, taken },
    });
  }

  /**
   * The provider took money for a payment that had ended here (it cannot become paid): the money is
   * recorded on the payment (`received_minor`, for staff to refund), alerted and audited, once.
   */
  async function paidAfterEnd(ex: Executor, payment: PaymentRow, answer: ProviderStatus): Promise<void> {
    if (answer.status === 'PENDING' || (answer.status === 'FAILED' && !answer.taken)) return;
    const provider = payment.provider ?? payment.method;
    const took = answer.status === 'SUCCEEDED' ? answer.receivedMinor : 0;
    if (!(await repo.claimDelivery(provider, `late:${payment.id}`, { took, answer }, ex))) return;
    if (answer.status === 'FAILED') {
      await moneyNotApplied(ex, payment, answer.taken!);
      return;
    }
    const row = await repo.updateIfStatus(
      payment.id,
      [payment.status],
      {
        received_minor: took,
        ...(answer.providerPaymentId !== undefined ? { provider_payment_id: answer.providerPaymentId } : {}),
        updated_at: nowIso(),
      },
      ex,
    );
    if (!row) return;
    const what = `${formatMinor(took, payment.currency)} ${payment.currency}`;
    await deps.alerts.raise(ex, {
      tenantId: payment.tenant_id,
      kind: 'PAYMENT_MISMATCH',
      subjectType: 'payment',
      subjectId: payment.id,
      message: `${provider} took ${what} for payment ${payment.id} after it had ended ${payment.status}: not applied, refund it by hand`,
    });
    await recordAudit(ex, {
      tenantId: payment.tenant_id,
      actor: `provider:${provider}`,
      action: 'payment.paid_after_end',
      subjectType: 'payment',
      subjectId: payment.id,
      before: { status: payment.status, receivedMinor: 0 },
      after: { status: row.status, receivedMinor: took, providerPaymentId: row.provider_payment_id },
    });
    await deps.paidAfterEndListener(row.purpose)?.(ex, row);
  }

  /** A payment that ended here, asked again: money taken is recorded; still pending, asked later. */
  async function checkAfterEnd(payment: PaymentRow, source: PaymentStatusSource, late: number | undefined) {
    const answer = await source.fetchStatus(payment);
    await inGroup(
      db,
      async (tx) => {
        if (answer.status !== 'PENDING') return paidAfterEnd(tx, payment, answer);
        if (late !== undefined) await scheduleLateCheck(tx, payment, late + 1);
      },
      { replayable: true },
    );
  }

  /**
   * The `n`-th check after expiry, further apart each time, while the window lasts. True when it
   * was queued; false once the window is over.
   */
  async function scheduleLateCheck(ex: Executor, payment: PaymentRow, n: number): Promise<boolean> {
    const expiredAt = Date.parse(payment.expires_at ?? payment.updated_at);
    const runAt = Date.now() + Math.min(deps.pollMs * 2 ** n, LATE_CHECK_MAX_GAP_MS);
    if (!Number.isFinite(expiredAt) || runAt - expiredAt > LATE_CHECK_WINDOW_MS) return false;
    const job = { tenantId: payment.tenant_id, paymentId: payment.id, poll: true, late: n };
    await enqueueOutbox(ex, 'payment_status', job, { runAt: new Date(runAt).toISOString() });
    return true;
  }

  return { moneyNotApplied, checkAfterEnd, scheduleLateCheck };
}
