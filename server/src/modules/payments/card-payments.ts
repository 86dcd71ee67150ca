// Card payments through a hosted checkout, whatever the gateway (CardGateway): the one-off method
// that opens a checkout for a PENDING intent, and the gateway's verified events applied once each
// (the inbox), in the transaction of their effect: paid settles through the one settlement path,
// failed ends the intent, a refund made at the gateway is recorded (never more than was paid).
// A refund that names a payment no payment carries yet (the gateway delivers in any order) is
// parked, its event id unclaimed, and applied once, with the event id claimed then, in the
// transaction that makes the payment known by that id. One still parked after a while (a refund
// of a payment that is not ours, or whose checkout event was lost) raises an alert.
// News of a refund asked for here (made, failed, still pending) settles it by the gateway's refund
// id through the one refund path all providers share (`settleProviderRefund`).
import { OPERATOR_TENANT } from '../../platform/operator-scope.js';
import { AppError } from '../../platform/errors.js';
import { readableAmount } from '../../platform/money.js';
import { enqueueOutbox } from '../../platform/outbox.js';
import { nowIso, type Db, type Executor } from '../../platform/db/database.js';
import { inGroup } from '../../platform/db/group-commit.js';
import type { AlertsService } from '../alerts/alerts.service.js';
import { recordAudit } from '../audit/audit.service.js';
import type { PaymentRow } from '../../platform/db/schema.js';
import type { CardEvent, CardGateway } from './card-gateway.js';
import type { Intents, PaymentStatusSource } from './intents.js';
import type { OneOffMethod } from './methods.js';
import type { PaymentsRepo } from './payments.repo.js';
import { refundableMinor, wasTaken, type PaymentStatus } from './payment-rules.js';
import { refundFigures, type Refunds } from './refunds.js';
import type { Settlement } from './settlement.js';

/** How long a card checkout stays payable (Stripe takes 30 minutes to 24 hours). */
export const CARD_TTL_MS = 60 * 60_000;

export function cardMethod(deps: {
  gateway: CardGateway;
  repo: Pick<PaymentsRepo, 'updateIfStatus'>;
  /** Where the payer returns when the channel names no page of its own. */
  publicUrl: string;
}): OneOffMethod {
  const { gateway } = deps;
  return {
    method: 'card',
    provider: gateway.provider,
    ttlMs: CARD_TTL_MS,
    check({ currency }) {
      const problem = gateway.currencyProblem(currency);
      if (problem) throw new AppError('INVALID_STATE', `card payments are not possible here: ${problem}`);
    },
    async present(ex, payment, subject) {
      let checkout: { checkoutId: string; url: string };
      try {
        checkout = await deps.gateway.createCheckout({
          paymentId: payment.id,
          amountMinor: Number(payment.amount_minor),
          currency: payment.currency,
          description: subject.description,
          returnUrl: subject.returnUrl ?? deps.publicUrl,
          expiresAt: payment.expires_at ?? new Date(Date.now() + CARD_TTL_MS).toISOString(),
        });
      } catch (err) {
        // The intent ends PRESENT_FAILED (its channel does that); the guest may try again.
        const why = (err as Error).message.slice(0, 200);
        throw new AppError('UNAVAILABLE', `the card gateway could not open a checkout: ${why}`);
      }
      // The checkout's id until the money is taken; then the gateway's payment id (refunds name it).
      await deps.repo.updateIfStatus(
        payment.id,
        ['PENDING'],
        { provider_payment_id: checkout.checkoutId, updated_at: nowIso() },
        ex,
      );
      return { checkoutUrl: checkout.url };
    },
  };
}

/**
 * The gateway's checkout as a status source: a pending card payment is asked about now and then
 * and once more at its expiry, so a lost webhook or one late by seconds still counts.
 */
export function cardStatusSource(gateway: Pick<CardGateway, 'fetchCheckout'>): PaymentStatusSource {
  return {
    async fetchStatus(payment) {
      const checkoutId = payment.provider_payment_id;
      if (checkoutId === null) return { status: 'PENDING' };
      const c = await gateway.fetchCheckout(checkoutId);
      if (c.state === 'open') return { status: 'PENDING' };
      if (c.state === 'expired') return { status: 'FAILED', failureCode: 'CHECKOUT_EXPIRED' };
      const exact = c.amountMinor === Number(payment.amount_minor) && c.currency === payment.currency;
      return exact
        ? { status: 'SUCCEEDED', receivedMinor: c.amountMinor, providerPaymentId: c.providerPaymentId }
        : {
            status: 'FAILED',
            failureCode: 'AMOUNT_MISMATCH',
            providerPaymentId: c.providerPaymentId,
            paid: { amountMinor: c.amountMinor, currency: c.currency },
          };
    },
  };
}

export type CardOutcome =
  | 'settled'
  | 'duplicate'
  | 'awaiting'
  | 'failed'
  | 'amount_mismatch'
  | 'not_pending'
  | 'unknown_payment'
  | 'refund_recorded'
  | 'refund_in_step'
  | 'refund_parked'
  | 'ignored';

type RefundEvent = Extract<CardEvent, { kind: 'refunded' }>;
type RefundNewsEvent = Extract<CardEvent, { kind: 'refund_news' }>;

declare module '../../platform/outbox.js' {
  interface OutboxTopics {
    /** A refund was parked for a payment not known yet: alert if it still is (CARD_REFUND_UNMATCHED). */
    card_refund_parked: { providerPaymentId: string; eventId: string };
  }
}

/** Open while a refund made at the gateway waits for a payment that never became known. */
export const CARD_REFUND_UNMATCHED = 'CARD_REFUND_UNMATCHED';

export function createCardPayments(deps: {
  db: Db;
  dialect: 'sqlite' | 'postgres';
  gateway: Pick<CardGateway, 'provider' | 'fetchCheckout'>;
  repo: Pick<
    PaymentsRepo,
    | 'lock'
    | 'claimDelivery'
    | 'delivery'
    | 'insertEvent'
    | 'updateIfStatus'
    | 'byProviderPaymentId'
    | 'lockProviderPaymentId'
    | 'park'
    | 'parked'
    | 'unpark'
  >;
  settlement: Pick<Settlement, 'succeed' | 'onProviderPaymentKnown'>;
  intents: Pick<Intents, 'fail'>;
  refunds: Pick<Refunds, 'record' | 'settleProviderRefund' | 'refundedThroughProvider'>;
  alerts: Pick<AlertsService, 'raise' | 'raiseUnlessOpen' | 'resolveSubject'>;
  /** How long a parked refund may wait for its payment before an operator is told. */
  parkedAlertAfterMs: number;
}) {
  const { db, repo } = deps;
  const provider = deps.gateway.provider;
  const actor = `provider:${provider}`;
  const unmatchedSubject = (providerPaymentId: string) => `${provider}:${providerPaymentId}`;

  /**
   * Money a card took that cannot pay `payment` (another amount, or after it ended): staff are told
   * to refund it, once per PaymentIntent, whichever sees it first: the webhook or the status check.
   */
  async function alertMismatch(
    tx: Executor,
    payment: PaymentRow,
    providerPaymentId: string,
    message: string,
  ): Promise<void> {
    const key = `mismatch:${providerPaymentId}`;
    if (!(await repo.claimDelivery(provider, key, { paymentId: payment.id }, tx))) return;
    await deps.alerts.raise(tx, {
      tenantId: payment.tenant_id,
      kind: 'PAYMENT_MISMATCH',
      subjectType: 'payment',
      subjectId: payment.id,
      message,
    });
  }

  /** The parked refunds of `providerPaymentId` were applied: its alert, if raised, has cleared. */
  const matched = (tx: Executor, providerPaymentId: string) =>
    deps.alerts.resolveSubject(tx, CARD_REFUND_UNMATCHED, unmatchedSubject(providerPaymentId));

  /**
   * A refund made at the gateway, against its payment (locked): `refundedMinor` is all the gateway
   * has refunded so far, so only what our refunds through it do not count yet is recorded (cash
   * handed back and wallet credits are refunds the gateway never saw), capped at what remains.
   */
  async function recordRefund(tx: Executor, payment: PaymentRow, e: RefundEvent): Promise<CardOutcome> {
    if (payment.currency !== e.currency) return 'unknown_payment';
    // Refunds asked for here are counted when asked; only one made at the gateway is new.
    const remaining = refundableMinor(refundFigures(payment));
    const ours = await deps.refunds.refundedThroughProvider(tx, payment.id);
    const extra = Math.min(e.refundedMinor - ours, remaining);
    if (extra <= 0) return 'refund_in_step';
    await deps.refunds.record(tx, payment, {
      amountMinor: extra,
      reason: 'refunded at the card gateway',
      destination: 'original',
      actor,
      doneAtProvider: { providerRefundId: e.providerRefundId },
    });
    return 'refund_recorded';
  }

  /**
   * The payment is now known by `providerPaymentId` (in this transaction): the refunds parked for
   * that id apply, each as if it arrived now, its event id claimed then (once, whatever came first).
   * In the order of what the gateway had refunded in all, so each records only its own part. True
   * when there were any.
   */
  async function applyParked(tx: Executor, paymentId: string, providerPaymentId: string): Promise<boolean> {
    await repo.lockProviderPaymentId(provider, providerPaymentId, tx, deps.dialect);
    const parked = (await repo.parked(provider, providerPaymentId, tx))
      .map((p) => ({ eventId: p.eventId, event: p.event as RefundEvent }))
      .filter((p) => p.event.kind === 'refunded')
      .sort((a, b) => a.event.refundedMinor - b.event.refundedMinor);
    for (const { eventId, event } of parked) {
      await repo.unpark(provider, providerPaymentId, eventId, tx);
      if (!(await repo.claimDelivery(provider, eventId, { kind: event.kind }, tx))) continue;
      const payment = await repo.lock(paymentId, tx, deps.dialect);
      if (payment) await recordRefund(tx, payment, event);
    }
    if (parked.length > 0) await matched(tx, providerPaymentId);
    return parked.length > 0;
  }

  // A payment the status check settles with the gateway's id (before any webhook) applies them too.
  deps.settlement.onProviderPaymentKnown(provider, async (tx, payment) => {
    if (payment.provider_payment_id !== null) await applyParked(tx, payment.id, payment.provider_payment_id);
  });

  /**
   * The gateway's news of one refund (`refund_news`): settled once, by its refund id, as every
   * provider's refund news is (`settleProviderRefund`: made → SUCCEEDED, failed → FAILED with the
   * money back on the payment and an alert, news contrary to how it ended → a mismatch alert), the
   * event id claimed in the same transaction. Safe to call any number of times, concurrently.
   */
  function applyRefundNews(e: RefundNewsEvent) {
    const { news } = e;
    return deps.refunds.settleProviderRefund(news, (ex) =>
      repo.claimDelivery(provider, e.eventId, { kind: e.kind, providerRefundId: news.providerRefundId }, ex),
    );
  }

  /** Applies one verified gateway event. Safe to call any number of times, concurrently. */
  function apply(e: Exclude<CardEvent, RefundNewsEvent>, raw: string): Promise<CardOutcome> {
    return inGroup(
      db,
      async (tx): Promise<CardOutcome> => {
        if (e.kind === 'ignored') return 'ignored';

        if (e.kind === 'refunded') {
          // Decided under the lock that the transaction making the payment known takes too.
          await repo.lockProviderPaymentId(provider, e.providerPaymentId, tx, deps.dialect);
          const found = await repo.byProviderPaymentId(provider, e.providerPaymentId, tx);
          const payment = found ? await repo.lock(found.id, tx, deps.dialect) : undefined;
          // Its checkout event is still on its way (no payment has this id yet, or the one that has
          // it has recorded no money yet): kept for it, its event id left unclaimed.
          if (!payment || Number(payment.received_minor) === 0) {
            if ((await repo.delivery(provider, e.eventId, tx)) !== undefined) return 'duplicate';
            // A repeat delivery while it waits is parked once, with one look-again job.
            if (await repo.park(provider, e.providerPaymentId, e.eventId, e, tx)) {
              const runAt = new Date(Date.now() + deps.parkedAlertAfterMs).toISOString();
              const job = { providerPaymentId: e.providerPaymentId, eventId: e.eventId };
              await enqueueOutbox(tx, 'card_refund_parked', job, { runAt });
            }
            return 'refund_parked';
          }
          if (!(await repo.claimDelivery(provider, e.eventId, { kind: e.kind }, tx))) return 'duplicate';
          // Parked before and not applied since: it is applied now, once.
          if (await repo.unpark(provider, e.providerPaymentId, e.eventId, tx))
            await matched(tx, e.providerPaymentId);
          return recordRefund(tx, payment, e);
        }

        if (!(await repo.claimDelivery(provider, e.eventId, { kind: e.kind }, tx))) return 'duplicate';
        // Before the payment's row lock: a refund parked for this PaymentIntent meanwhile is seen.
        if (e.kind === 'paid')
          await repo.lockProviderPaymentId(provider, e.providerPaymentId, tx, deps.dialect);
        const payment = await repo.lock(e.paymentId, tx, deps.dialect);
        if (!payment || payment.provider !== provider || payment.method !== 'card') return 'unknown_payment';
        if (e.kind === 'awaiting') return 'awaiting';
        if (e.kind === 'failed') {
          return (await deps.intents.fail(tx, payment.id, 'CARD_PAYMENT_FAILED')) ? 'failed' : 'not_pending';
        }

        const fresh = await repo.insertEvent(
          {
            provider,
            provider_payment_id: e.providerPaymentId,
            event_id: e.eventId,
            event_type: e.eventType,
            tenant_id: payment.tenant_id,
            status: 'PROCESSED',
            reason: null,
            machine_id: payment.machine_id,
            order_id: payment.order_id,
            amount_minor: e.amountMinor,
            currency: e.currency,
            raw,
            received_at: nowIso(),
          },
          tx,
        );
        // `completed` and `async_payment_succeeded` of one checkout name the same money, and a
        // status check may have settled it already. A status check that found another amount
        // ended it FAILED and kept the money: this event records the same again below, and its
        // alert is not raised twice.
        const taken = wasTaken(payment.status as PaymentStatus);
        if (!fresh || (taken && payment.provider_payment_id === e.providerPaymentId)) return 'duplicate';
        const exact = e.amountMinor === Number(payment.amount_minor) && e.currency === payment.currency;
        if (payment.status === 'PENDING' && exact) {
          await deps.settlement.succeed(
            tx,
            payment.id,
            e.amountMinor,
            { actor },
            {
              providerPaymentId: e.providerPaymentId,
            },
          );
          return 'settled';
        }
        // Money taken that cannot pay the order (another amount, or the payment had ended): kept on
        // the payment, so staff refund it to the card, and an alert says so.
        if (payment.status === 'PENDING') await deps.intents.fail(tx, payment.id, 'AMOUNT_MISMATCH');
        const kept = await repo.updateIfStatus(
          payment.id,
          ['FAILED', 'EXPIRED'],
          { received_minor: e.amountMinor, provider_payment_id: e.providerPaymentId, updated_at: nowIso() },
          tx,
        );
        // Money kept on the payment is audited once: a status check that found it first did it.
        if (kept && Number(payment.received_minor) !== e.amountMinor)
          await recordAudit(tx, {
            tenantId: payment.tenant_id,
            actor,
            action: exact ? 'payment.paid_after_end' : 'payment.amount_mismatch',
            subjectType: 'payment',
            subjectId: payment.id,
            before: { status: payment.status, receivedMinor: Number(payment.received_minor) },
            after: {
              amountMinor: Number(payment.amount_minor),
              receivedMinor: e.amountMinor,
              currency: e.currency,
              providerPaymentId: e.providerPaymentId,
              foundBy: 'webhook',
            },
          });
        // Paid after the payment had ended (expired, its order cancelled as abandoned, or paid
        // another way): nothing can take this money, so it goes back to the card at once, through
        // the gateway's refund API (a durable job), never kept and never lost.
        // Refunds made at the gateway before this event arrived (parked) count first; what they
        // left is refunded here.
        const afterParked =
          kept && (await applyParked(tx, kept.id, e.providerPaymentId))
            ? await repo.lock(kept.id, tx, deps.dialect)
            : undefined;
        const toRefund = afterParked ? refundableMinor(refundFigures(afterParked)) : e.amountMinor;
        let refunded = afterParked !== undefined && toRefund === 0;
        if (exact && kept && toRefund > 0 && e.currency === payment.currency) {
          refunded = await deps.refunds
            .record(tx, afterParked ?? kept, {
              amountMinor: toRefund,
              reason: `paid after the payment had ended (${payment.status}${payment.failure_code ? ` ${payment.failure_code}` : ''})`,
              destination: 'original',
              actor,
            })
            .then(
              () => true,
              (err: unknown) => {
                // No refund API configured: staff refund it by hand (the alert below says so).
                if (err instanceof AppError && err.code === 'PROVIDER_NOT_CONFIGURED') return false;
                throw err;
              },
            );
        }
        // A status check that found this other amount first alerted already (once per PaymentIntent).
        await alertMismatch(
          tx,
          payment,
          e.providerPaymentId,
          refunded
            ? `A card paid ${readableAmount(e.amountMinor, e.currency)} for payment ${payment.id}, which was already ${payment.status}: refunded to the card`
            : exact
              ? `A card paid ${readableAmount(e.amountMinor, e.currency)} for payment ${payment.id}, which was already ${payment.status}: refund it`
              : `A card paid ${readableAmount(e.amountMinor, e.currency)} for payment ${payment.id} of ${readableAmount(Number(payment.amount_minor), payment.currency)}: not applied, refund it`,
        );
        return exact ? 'not_pending' : 'amount_mismatch';
      },
      { replayable: true },
    );
  }

  /**
   * The job queued when a refund was parked: if it is still parked, no payment has become known by
   * its payment id since, so an operator is told (once: the job runs once; and once per payment id:
   * the jobs of other refunds parked on it find its alert open, unless staff acknowledged it).
   * Under the same lock as `applyParked`, so a payment settling meanwhile either applies it first
   * or finds the alert.
   */
  async function alertIfStillParked(job: { providerPaymentId: string; eventId: string }): Promise<void> {
    await db.transaction().execute(async (tx) => {
      await repo.lockProviderPaymentId(provider, job.providerPaymentId, tx, deps.dialect);
      const waiting = (await repo.parked(provider, job.providerPaymentId, tx)).find(
        (p) => p.eventId === job.eventId,
      );
      if (!waiting) return;
      const e = waiting.event as RefundEvent;
      const refund = e.providerRefundId ? `refund ${e.providerRefundId}, ` : '';
      // One alert per PaymentIntent: another refund parked on it may have raised it (still open,
      // that is not yet acknowledged: one staff have acknowledged did not tell them of this refund).
      await deps.alerts.raiseUnlessOpen(
        tx,
        {
          tenantId: OPERATOR_TENANT,
          kind: CARD_REFUND_UNMATCHED,
          subjectType: 'provider_payment',
          subjectId: unmatchedSubject(job.providerPaymentId),
          message:
            `${provider} reported ${readableAmount(e.refundedMinor, e.currency)} refunded on ` +
            `${job.providerPaymentId} (${refund}event ${job.eventId}, received ${waiting.receivedAt}), and no ` +
            `payment here carries that id: it was not paid through this server's checkouts, or its ` +
            `checkout event never arrived. Look it up in the ${provider} dashboard; the refund is ` +
            `recorded if that payment becomes known.`,
        },
        { unacknowledged: true },
      );
    });
  }

  /**
   * The gateway's checkout as this provider's status source (`cardStatusSource`): a check that
   * finds the checkout paid with another amount or currency ends the payment FAILED and raises the
   * same PAYMENT_MISMATCH alert as its webhook would (which then raises none), so staff learn of
   * the money even if the webhook never arrives.
   */
  const statusSource: PaymentStatusSource = {
    ...cardStatusSource(deps.gateway),
    async checkFailed(tx, payment, answer) {
      if (!answer.paid || answer.providerPaymentId === undefined) return;
      const { amountMinor, currency } = answer.paid;
      // The money the card took is kept on the payment as its webhook would keep it, so staff can
      // refund it even if that webhook never comes (which then finds it recorded).
      const kept = await repo.updateIfStatus(
        payment.id,
        ['FAILED'],
        { received_minor: amountMinor, provider_payment_id: answer.providerPaymentId, updated_at: nowIso() },
        tx,
      );
      // The payment is now known by its PaymentIntent: refunds parked for it count against it.
      if (kept) await applyParked(tx, kept.id, answer.providerPaymentId);
      await recordAudit(tx, {
        tenantId: payment.tenant_id,
        actor,
        action: 'payment.amount_mismatch',
        subjectType: 'payment',
        subjectId: payment.id,
        after: {
          amountMinor: Number(payment.amount_minor),
          receivedMinor: amountMinor,
          currency,
          providerPaymentId: answer.providerPaymentId,
          foundBy: 'status_check',
        },
      });
      await alertMismatch(
        tx,
        payment,
        answer.providerPaymentId,
        `A card paid ${readableAmount(amountMinor, currency)} for payment ${payment.id} of ${readableAmount(Number(payment.amount_minor), payment.currency)}: not applied, refund it (${provider} ${answer.providerPaymentId}, found by the status check)`,
      );
    },
  };

  return { apply, applyRefundNews, alertIfStillParked, statusSource };
}

export type CardPayments = ReturnType<typeof createCardPayments>;
