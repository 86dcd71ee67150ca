// MoMo's status API as the payments module's status source: only its answer settles a MoMo
// payment. An amount in another currency than asked is never taken as paid.
import { majorToMinor } from '../../platform/money.js';
import type { PaymentStatusSource, ProviderStatus } from '../../modules/payments/intents.js';
import type { MomoClient } from './momo.api.js';

/** Major units as MoMo writes them ("5000", "10.50") → minor units; undefined when not exact. */
export function momoAmountToMinor(amount: string | null, currency: string): number | undefined {
  if (amount === null || !/^\d+(\.\d+)?$/.test(amount.trim())) return undefined;
  return majorToMinor(Number(amount.trim()), currency);
}

export function momoStatusSource(client: Pick<MomoClient, 'status'>): PaymentStatusSource {
  return {
    // A prompt approved after our expiry (or an answer that was not final) still takes the money.
    checksAfterEnd: true,
    async fetchStatus(payment): Promise<ProviderStatus> {
      const s = await client.status(payment.id);
      // Not found: our request has not reached MoMo yet (its job is still retrying).
      if (s.status === 'NOT_FOUND' || s.status === 'PENDING') return { status: 'PENDING' };
      const providerPaymentId = s.financialTransactionId ?? undefined;
      const ref = providerPaymentId !== undefined ? { providerPaymentId } : {};
      if (s.status === 'FAILED') return { status: 'FAILED', failureCode: s.reason ?? 'FAILED', ...ref };
      // Money taken that cannot be applied: failed, with what MoMo says it took (staff refund it).
      const taken = { amount: s.amount, currency: s.currency };
      if (s.currency !== null && s.currency !== payment.currency) {
        return { status: 'FAILED', failureCode: 'AMOUNT_MISMATCH', taken, ...ref };
      }
      const received = momoAmountToMinor(s.amount, payment.currency);
      if (received === undefined) return { status: 'FAILED', failureCode: 'AMOUNT_MISMATCH', taken, ...ref };
      return { status: 'SUCCEEDED', receivedMinor: received, ...ref };
    },
  };
}
