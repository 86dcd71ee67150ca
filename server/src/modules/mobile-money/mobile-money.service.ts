// Water plans bought with mobile money (MTN MoMo, Airtel Money): the purchase is a PENDING
// payment of purpose `plan` whose request to the payer's phone goes out through the job table
// (retried while the provider is down); callbacks land once in the inbox and only schedule a
// status check, so nothing is credited until the provider's status API says the money arrived.
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { type Db, type Executor } from '../../platform/db/database.js';
import { inGroup } from '../../platform/db/group-commit.js';
import type { CustomerRow, PaymentRow, PlanRow } from '../../platform/db/schema.js';
import { formatMinor, minorToMajor } from '../../platform/money.js';
import { enqueueOutbox } from '../../platform/outbox.js';
import { AirtelRefusedError, type AirtelClient } from '../../providers/airtel/airtel.api.js';
import { MomoRefusedError, type MomoClient } from '../../providers/momo/momo.api.js';
import { msisdn, nationalNumber } from '../customers/phone.js';
import type { Sms } from '../messaging/sms.js';
import { mayBePaidAfterEnd, type Intents } from '../payments/intents.js';
import type { PaymentQueries } from '../payments/payment-queries.js';
import type { PaymentsService } from '../payments/payments.service.js';
import { CALLING_CODES, chooseWallet, WALLET_NAMES, type Wallet } from './network.js';
import { PLAN_NOT_APPLIED_SMS } from './plan-settlement.js';

declare module '../../platform/outbox.js' {
  interface OutboxTopics {
    /** Send a plan payment's request to the payer's phone (MoMo RequestToPay / Airtel push). */
    mobile_money_request: { tenantId: string; paymentId: string };
  }
}

export interface MobileMoneyDeps {
  db: Db;
  intents: Pick<Intents, 'create' | 'fail' | 'scheduleCheck' | 'onPaidAfterEnd'>;
  payments: Pick<PaymentQueries, 'find'>;
  /** The payments inbox: each (payment, reported status) callback is stored once. */
  inbox: Pick<PaymentsService, 'claimDelivery'>;
  customers: { get(tenantId: string | null, id: string, ex?: Executor): Promise<CustomerRow> };
  sms: Pick<Sms, 'queue'>;
  logger: Logger;
  momo?: {
    client: Pick<MomoClient, 'requestToPay'>;
    currency?: string | undefined;
    callbackUrl(id: string): string;
  };
  airtel?: { client: Pick<AirtelClient, 'collect' | 'currency' | 'country'> };
}

/** Why a purchase cannot start: shown to the customer as it is. */
export class PurchaseRefused extends Error {}

export function createMobileMoney(deps: MobileMoneyDeps) {
  const { db } = deps;

  function offered(wallet: Wallet, currency: string, country: string): boolean {
    if (wallet === 'momo') {
      return deps.momo !== undefined && (deps.momo.currency === undefined || deps.momo.currency === currency);
    }
    return (
      deps.airtel !== undefined &&
      deps.airtel.client.currency === currency &&
      deps.airtel.client.country === country
    );
  }

  /** The wallet this phone pays a plan with; PurchaseRefused with a customer-facing reason. */
  function walletFor(phone: string, networkCode: string | null | undefined, plan: PlanRow): Wallet {
    const choice = chooseWallet(phone, networkCode);
    if (!choice) throw new PurchaseRefused('Payment works with MTN MoMo or Airtel Money numbers only.');
    if (!offered(choice.wallet, plan.currency, choice.country)) {
      throw new PurchaseRefused(`${WALLET_NAMES[choice.wallet]} payments are not available here yet.`);
    }
    return choice.wallet;
  }

  /**
   * Starts a plan purchase in the caller's transaction: a PENDING `plan` payment for the plan's
   * price, and the job that sends the request to the phone once the transaction commits.
   */
  async function startPlanPurchase(
    ex: Executor,
    input: { customer: CustomerRow; plan: PlanRow; networkCode?: string | null; channel: string },
  ): Promise<{ payment: PaymentRow; wallet: Wallet }> {
    const { customer, plan } = input;
    if (plan.active !== 1) throw new PurchaseRefused('That plan is no longer sold.');
    if (customer.active !== 1) throw new PurchaseRefused('Your account is suspended. Please call us.');
    const wallet = walletFor(customer.phone, input.networkCode, plan);
    const payment = await deps.intents.create(ex, {
      tenantId: customer.tenant_id,
      purpose: 'plan',
      method: wallet,
      provider: wallet,
      customerId: customer.id,
      planId: plan.id,
      amountMinor: Number(plan.price_minor),
      currency: plan.currency,
      // MoMo wants a UUID v4 as X-Reference-Id; the payment id is that reference for both.
      id: randomUUID(),
    });
    await enqueueOutbox(ex, 'mobile_money_request', { tenantId: customer.tenant_id, paymentId: payment.id });
    deps.logger.info(
      { tenantId: customer.tenant_id, paymentId: payment.id, wallet, channel: input.channel },
      'plan purchase started',
    );
    return { payment, wallet };
  }

  /** The job `mobile_money_request`: one attempt; a refusal ends the payment FAILED, errors retry. */
  async function sendRequest(job: { tenantId: string; paymentId: string }): Promise<void> {
    const payment = await deps.payments.find(job.paymentId);
    if (!payment || payment.status !== 'PENDING' || payment.customer_id === null) return;
    if (payment.expires_at !== null && Date.parse(payment.expires_at) <= Date.now()) return;
    const customer = await deps.customers.get(payment.tenant_id, payment.customer_id);
    const amount = Number(payment.amount_minor);
    try {
      if (payment.provider === 'momo') {
        if (!deps.momo) throw new Error('MTN MoMo is not configured (MOMO_API_USER, MOMO_API_KEY, …)');
        await deps.momo.client.requestToPay({
          referenceId: payment.id,
          amount: formatMinor(amount, payment.currency),
          currency: payment.currency,
          msisdn: msisdn(customer.phone),
          externalId: payment.id,
          payerMessage: `Water plan ${payment.plan_id ?? ''}`.trim(),
          payeeNote: `Kioskhub plan payment ${payment.id}`,
          callbackUrl: deps.momo.callbackUrl(payment.id),
        });
      } else if (payment.provider === 'airtel') {
        if (!deps.airtel) throw new Error('Airtel Money is not configured (AIRTEL_CLIENT_ID, …)');
        const code = CALLING_CODES[deps.airtel.client.country] ?? '';
        await deps.airtel.client.collect({
          transactionId: payment.id,
          amount: minorToMajor(amount, payment.currency),
          msisdn: nationalNumber(customer.phone, code),
          reference: `Water plan ${payment.plan_id ?? ''}`.trim().slice(0, 30),
        });
      } else {
        return;
      }
    } catch (err) {
      if (err instanceof MomoRefusedError || err instanceof AirtelRefusedError) {
        // The customer hears of it from `ended` below, told by intents in this transaction.
        await db.transaction().execute((tx) => deps.intents.fail(tx, payment.id, err.code));
        deps.logger.warn({ paymentId: payment.id, code: err.code }, 'mobile-money request refused');
        return;
      }
      throw err;
    }
  }

  /**
   * An unsigned callback naming one of our payments. Stored once per (payment, reported status)
   * in the inbox; the first of each only schedules a status check. Nothing here is trusted.
   */
  async function recordCallback(
    provider: Wallet,
    paymentId: string,
    reportedStatus: string,
    raw: string,
  ): Promise<'scheduled' | 'duplicate' | 'unknown_payment' | 'not_pending'> {
    return inGroup(
      db,
      async (tx) => {
        const payment = await deps.payments.find(paymentId, tx);
        if (!payment || payment.provider !== provider) return 'unknown_payment';
        const fresh = await deps.inbox.claimDelivery(
          provider,
          `${paymentId}:${reportedStatus.slice(0, 40)}`,
          { paymentId, reportedStatus, raw: raw.slice(0, 4000) },
          tx,
        );
        // A wallet that took the money after the payment ended here (a prompt approved after our
        // expiry) says so only by this callback: the status API is asked about it too.
        const ask = payment.status === 'PENDING' || mayBePaidAfterEnd(payment);
        if (!ask) return fresh ? 'not_pending' : 'duplicate';
        // A repeat is stored once, yet still asks for a check: a forged first callback must not
        // make the real one wait for the next poll.
        await deps.intents.scheduleCheck(tx, payment);
        return fresh ? 'scheduled' : 'duplicate';
      },
      { replayable: true },
    );
  }

  /** A plan payment ended without money (FAILED or EXPIRED): the customer gets an SMS. */
  async function ended(ex: Executor, payment: PaymentRow): Promise<void> {
    if (payment.customer_id === null) return;
    const customer = await deps.customers.get(payment.tenant_id, payment.customer_id, ex);
    await deps.sms.queue(ex, {
      tenantId: payment.tenant_id,
      to: customer.phone,
      text:
        payment.status === 'EXPIRED'
          ? 'Your water plan payment was not approved in time. Dial again to buy.'
          : payment.failure_code === 'AMOUNT_MISMATCH'
            ? PLAN_NOT_APPLIED_SMS
            : 'Your water plan payment did not go through. Please try again.',
      kind: 'payment_failed',
    });
  }

  // The wallet took the money after the payment had ended: no plan, and the customer is told it
  // will be refunded (the alert asks staff to), not left with "not approved in time" alone.
  deps.intents.onPaidAfterEnd('plan', async (ex, payment) => {
    if (payment.customer_id === null) return;
    const customer = await deps.customers.get(payment.tenant_id, payment.customer_id, ex);
    const amount = `${payment.currency} ${formatMinor(Number(payment.received_minor), payment.currency)}`;
    await deps.sms.queue(ex, {
      tenantId: payment.tenant_id,
      to: customer.phone,
      text: `Your water plan payment of ${amount} arrived after the request had ended. No plan was added; we will refund it.`,
      kind: 'payment_failed',
    });
  });

  return {
    ended,
    walletFor,
    startPlanPurchase,
    sendRequest,
    recordCallback,
    configured: (wallet: Wallet) => (wallet === 'momo' ? deps.momo !== undefined : deps.airtel !== undefined),
  };
}

export type MobileMoney = ReturnType<typeof createMobileMoney>;
