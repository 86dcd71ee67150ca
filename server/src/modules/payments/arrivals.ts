// Credits that arrive on their own for a one-off intent named by our reference (a bank transfer
// carrying its RF reference). Each credit counts once (the inbox, by provider + event id), in the
// transaction of its effect, and amounts add up (`cumulative`): underpaid stays PENDING with what
// arrived shown; enough settles through the one settlement path; more settles and the surplus
// goes to the payer's wallet or to staff review. Nothing arrives silently unapplied: a credit that
// matches no payment is kept in the inbox and alerted (BANK_CREDIT_UNMATCHED).
import { OPERATOR_TENANT } from '../../platform/operator-scope.js';
import { AppError } from '../../platform/errors.js';
import { readableAmount } from '../../platform/money.js';
import { nowIso, type Db } from '../../platform/db/database.js';
import { inGroup } from '../../platform/db/group-commit.js';
import type { PaymentRow } from '../../platform/db/schema.js';
import type { AlertsService } from '../alerts/alerts.service.js';
import { recordAudit } from '../audit/audit.service.js';
import { applyArrival } from './payment-rules.js';
import type { PaymentsRepo } from './payments.repo.js';
import type { Settlement } from './settlement.js';
import type { AllocateSurplus, SurplusDestination } from './surplus.js';

/** A verified credit notification, normalised by its provider adapter. */
export interface CreditNotice {
  provider: string;
  eventId: string;
  eventType: string;
  /** Our reference for the payment, as the payer's bank carried it. */
  reference: string;
  amountMinor: number;
  currency: string;
  raw: string;
}

/** A credit whose reference is no payment's: money received and matched to nothing. */
export const BANK_CREDIT_UNMATCHED = 'BANK_CREDIT_UNMATCHED';

export type CreditOutcome =
  | { outcome: 'duplicate' }
  | { outcome: 'unknown_reference' }
  | { outcome: 'currency_mismatch'; paymentId: string }
  | { outcome: 'underpaid'; paymentId: string; receivedMinor: number; missingMinor: number }
  | {
      outcome: 'settled';
      paymentId: string;
      receivedMinor: number;
      surplusMinor: number;
      surplusTo?: SurplusDestination;
    }
  | { outcome: 'not_pending'; paymentId: string; surplusTo: SurplusDestination };

export function createArrivals(deps: {
  db: Db;
  dialect: 'sqlite' | 'postgres';
  repo: Pick<
    PaymentsRepo,
    'byReference' | 'lock' | 'claimDelivery' | 'delivery' | 'insertEvent' | 'updateIfStatus'
  >;
  settlement: Pick<Settlement, 'succeed'>;
  allocateSurplus: AllocateSurplus;
  alerts: Pick<AlertsService, 'raise'>;
}) {
  const { db, repo } = deps;

  return {
    /** Applies one credit. Safe to call any number of times, concurrently. */
    credit(n: CreditNotice): Promise<CreditOutcome> {
      return inGroup(
        db,
        async (tx): Promise<CreditOutcome> => {
          const receivedAt = nowIso();
          const credit = { reference: n.reference, amountMinor: n.amountMinor, currency: n.currency };
          if (!(await repo.claimDelivery(n.provider, n.eventId, credit, tx))) {
            // The same event id for another credit: refused, the first delivery stands.
            const first = (await repo.delivery(n.provider, n.eventId, tx)) as Partial<typeof credit>;
            if (
              first.reference !== n.reference ||
              first.amountMinor !== n.amountMinor ||
              first.currency !== n.currency
            )
              throw new AppError(
                'CONFLICT',
                `event ${n.eventId} was already delivered for another credit (${first.amountMinor} ${first.currency} to ${first.reference})`,
              );
            return { outcome: 'duplicate' };
          }
          const found = await repo.byReference(null, n.reference, tx);
          const payment: PaymentRow | undefined =
            found && found.provider === n.provider ? await repo.lock(found.id, tx, deps.dialect) : undefined;
          const inbox = (status: 'PROCESSED' | 'IGNORED' | 'REJECTED', reason: string | null) =>
            repo.insertEvent(
              {
                provider: n.provider,
                // Each credit is its own bank transaction: the event id names it.
                provider_payment_id: n.eventId,
                event_id: n.eventId,
                event_type: n.eventType,
                tenant_id: payment?.tenant_id ?? null,
                status,
                reason,
                machine_id: payment?.machine_id ?? null,
                order_id: payment?.order_id ?? null,
                amount_minor: n.amountMinor,
                currency: n.currency,
                raw: n.raw,
                received_at: receivedAt,
              },
              tx,
            );
          if (!payment) {
            // Money received and matched to nothing: kept in the inbox as before, and staff are told
            // (once per credit: the event id was claimed above) so that it is returned or matched.
            await inbox('IGNORED', 'UNKNOWN_REFERENCE');
            const subjectId = `${n.provider}:${n.eventId}`;
            await deps.alerts.raise(tx, {
              tenantId: OPERATOR_TENANT,
              kind: BANK_CREDIT_UNMATCHED,
              subjectType: 'payment_event',
              subjectId,
              message:
                `A transfer of ${readableAmount(n.amountMinor, n.currency)} arrived with the ` +
                `reference "${n.reference}" (event ${n.eventId}), which is no payment's here: nothing ` +
                `was applied. Find the payer on the bank statement and return or match the money.`,
            });
            await recordAudit(tx, {
              tenantId: OPERATOR_TENANT,
              actor: `provider:${n.provider}`,
              action: 'payment.unmatched_credit',
              subjectType: 'payment_event',
              subjectId,
              after: {
                reference: n.reference,
                amountMinor: n.amountMinor,
                currency: n.currency,
                eventId: n.eventId,
              },
            });
            return { outcome: 'unknown_reference' };
          }
          const actor = `provider:${n.provider}`;
          if (n.currency !== payment.currency) {
            await inbox('REJECTED', 'CURRENCY_MISMATCH');
            await deps.alerts.raise(tx, {
              tenantId: payment.tenant_id,
              kind: 'PAYMENT_MISMATCH',
              subjectType: 'payment',
              subjectId: payment.id,
              message: `A transfer of ${n.amountMinor} ${n.currency} (minor units) for payment ${payment.id} is not in ${payment.currency}: not applied, check the bank statement`,
            });
            return { outcome: 'currency_mismatch', paymentId: payment.id };
          }
          if (payment.status !== 'PENDING') {
            await inbox('PROCESSED', 'PAYMENT_NOT_PENDING');
            const surplusTo = await deps.allocateSurplus(tx, payment, n.amountMinor, {
              reason: 'PAYMENT_NOT_PENDING',
              eventId: n.eventId,
              actor,
            });
            return { outcome: 'not_pending', paymentId: payment.id, surplusTo };
          }
          const amount = Number(payment.amount_minor);
          const arrival = applyArrival('cumulative', amount, Number(payment.received_minor), n.amountMinor);
          if (arrival.kind === 'wait') {
            await inbox('PROCESSED', 'UNDERPAID');
            await repo.updateIfStatus(
              payment.id,
              ['PENDING'],
              { received_minor: arrival.receivedMinor, updated_at: nowIso() },
              tx,
            );
            await recordAudit(tx, {
              tenantId: payment.tenant_id,
              actor,
              action: 'payment.partial',
              subjectType: 'payment',
              subjectId: payment.id,
              before: { receivedMinor: Number(payment.received_minor) },
              after: { receivedMinor: arrival.receivedMinor, eventId: n.eventId },
            });
            return {
              outcome: 'underpaid',
              paymentId: payment.id,
              receivedMinor: arrival.receivedMinor,
              missingMinor: arrival.missingMinor,
            };
          }
          if (arrival.kind === 'mismatch') throw new Error('a cumulative arrival never mismatches');
          const surplus = arrival.surplusMinor;
          await inbox('PROCESSED', surplus > 0 ? 'OVERPAID' : null);
          // The order takes what it costs; the rest is not revenue.
          await deps.settlement.succeed(tx, payment.id, arrival.receivedMinor, { actor });
          await recordAudit(tx, {
            tenantId: payment.tenant_id,
            actor,
            action: 'payment.received',
            subjectType: 'payment',
            subjectId: payment.id,
            before: { status: payment.status, receivedMinor: Number(payment.received_minor) },
            after: { status: 'SUCCEEDED', receivedMinor: arrival.receivedMinor, eventId: n.eventId },
          });
          const surplusTo =
            surplus > 0
              ? await deps.allocateSurplus(tx, payment, surplus, {
                  reason: 'OVERPAID',
                  eventId: n.eventId,
                  actor,
                })
              : undefined;
          return {
            outcome: 'settled',
            paymentId: payment.id,
            receivedMinor: arrival.receivedMinor,
            surplusMinor: surplus,
            ...(surplusTo ? { surplusTo } : {}),
          };
        },
        { replayable: true },
      );
    },
  };
}

export type Arrivals = ReturnType<typeof createArrivals>;
