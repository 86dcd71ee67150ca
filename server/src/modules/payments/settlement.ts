// One settlement path for every channel: a succeeded payment runs the handler registered for its
// purpose (`order`, `plan`, `wallet_topup`), in the transaction that recorded the money, so a QR
// payment, cash, a card or a bank transfer of the same purpose do exactly the same things after.
import { AppError } from '../../platform/errors.js';
import { nowIso, type Executor } from '../../platform/db/database.js';
import type { PaymentRow } from '../../platform/db/schema.js';
import { recordAudit } from '../audit/audit.service.js';
import type { Order } from '../orders/orders.service.js';
import { paymentSourcesOf } from './payment-rules.js';
import type { PaymentsRepo } from './payments.repo.js';

export const PAYMENT_PURPOSES = ['order', 'plan', 'wallet_topup'] as const;
export type PaymentPurpose = (typeof PAYMENT_PURPOSES)[number];
export const PAYMENT_METHODS = [
  'upi_qr',
  'cash',
  'momo',
  'airtel',
  'card',
  'bank_transfer',
  'credit',
] as const;
export const PAYMENT_STATUSES = [
  'PENDING',
  'SUCCEEDED',
  'FAILED',
  'EXPIRED',
  'PARTIALLY_REFUNDED',
  'REFUNDED',
] as const;

/** What the channel that took the money knows and the handler may use. */
export interface SettlementContext {
  actor: string;
  /** Right after the commit: a machine command was queued (start its dispatch at once). */
  onCommandQueued?(machineId: string, commandId: string): void;
  /** The order when its channel created it already PAID with the payment (saves two statements). */
  order?: Order;
  machine?: { status: string; socket_connected: number; protocol: string | null };
}

export type SettlementHandler = (ex: Executor, payment: PaymentRow, ctx: SettlementContext) => Promise<void>;

/**
 * Told, in the transaction, after a payment of its provider succeeded carrying the provider's own
 * id for it (a card's PaymentIntent): events that named that id before it was known apply now.
 */
export type ProviderPaymentKnownListener = (ex: Executor, payment: PaymentRow) => Promise<void>;

export function createSettlement(deps: { repo: Pick<PaymentsRepo, 'updateIfStatus'> }) {
  const handlers = new Map<string, SettlementHandler>();
  const knownListeners = new Map<string, ProviderPaymentKnownListener>();

  // Payments a handler refused (`refuse`) while `apply` ran it: their audit row says so.
  const refusedNow = new Map<string, string>();

  /** Runs the payment's handler, then audits the outcome: `payment.settled`, or `payment.refused`. */
  async function apply(ex: Executor, payment: PaymentRow, ctx: SettlementContext): Promise<void> {
    const handler = handlers.get(payment.purpose);
    if (!handler) throw new AppError('INTERNAL', `no settlement handler for purpose "${payment.purpose}"`);
    let refused: string | undefined;
    try {
      await handler(ex, payment, ctx);
    } finally {
      refused = refusedNow.get(payment.id);
      refusedNow.delete(payment.id);
    }
    await recordAudit(ex, {
      tenantId: payment.tenant_id,
      actor: ctx.actor,
      action: refused !== undefined ? 'payment.refused' : 'payment.settled',
      subjectType: 'payment',
      subjectId: payment.id,
      after: {
        purpose: payment.purpose,
        method: payment.method,
        provider: payment.provider,
        ...(payment.order_id !== null ? { orderId: payment.order_id } : {}),
        ...(payment.customer_id !== null ? { customerId: payment.customer_id } : {}),
        ...(payment.plan_id !== null ? { planId: payment.plan_id } : {}),
        amountMinor: Number(payment.amount_minor),
        receivedMinor: Number(payment.received_minor),
        currency: payment.currency,
        ...(refused !== undefined ? { failureCode: refused } : {}),
      },
    });
  }

  return {
    register(purpose: PaymentPurpose, handler: SettlementHandler): void {
      if (handlers.has(purpose))
        throw new Error(`a settlement handler for "${purpose}" is already registered`);
      handlers.set(purpose, handler);
    },
    /** Called after `succeed` names a provider's payment id for a payment of `provider`. */
    onProviderPaymentKnown(provider: string, listener: ProviderPaymentKnownListener): void {
      if (knownListeners.has(provider))
        throw new Error(`provider "${provider}" already has a payment-known listener`);
      knownListeners.set(provider, listener);
    },
    /** Runs the handler of a payment recorded as SUCCEEDED in this transaction. */
    apply,
    /**
     * Moves a PENDING payment to SUCCEEDED and runs its handler, once: a payment that is no longer
     * pending (settled by a concurrent delivery) is left alone and `undefined` returned.
     */
    async succeed(
      ex: Executor,
      paymentId: string,
      receivedMinor: number,
      ctx: SettlementContext,
      extra: { providerPaymentId?: string } = {},
    ) {
      const now = nowIso();
      const payment = await deps.repo.updateIfStatus(
        paymentId,
        paymentSourcesOf('SUCCEEDED'),
        {
          status: 'SUCCEEDED',
          received_minor: receivedMinor,
          completed_at: now,
          updated_at: now,
          ...(extra.providerPaymentId !== undefined ? { provider_payment_id: extra.providerPaymentId } : {}),
        },
        ex,
      );
      if (payment) {
        await apply(ex, payment, ctx);
        const known =
          extra.providerPaymentId !== undefined && payment.provider !== null
            ? knownListeners.get(payment.provider)
            : undefined;
        if (known) await known(ex, payment);
      }
      return payment;
    },

    /**
     * A handler that cannot apply the payment it was given (a plan paid with another amount) ends
     * it FAILED with `failureCode`, in the transaction that succeeded it, so it never commits paid.
     */
    async refuse(ex: Executor, paymentId: string, failureCode: string, at: string): Promise<void> {
      await deps.repo.updateIfStatus(
        paymentId,
        ['SUCCEEDED'],
        { status: 'FAILED', failure_code: failureCode, updated_at: at },
        ex,
      );
      refusedNow.set(paymentId, failureCode);
    },
  };
}

export type Settlement = ReturnType<typeof createSettlement>;
