// Airtel's status enquiry as the payments module's status source: only its answer settles an
// Airtel payment. The enquiry names no amount; Airtel collects exactly the amount we asked for
// in `transaction.amount`, so a `TS` (success) counts as the requested amount received.
import { formatMinor } from '../../platform/money.js';
import type { PaymentStatusSource, ProviderStatus } from '../../modules/payments/intents.js';
import type { AirtelClient } from './airtel.api.js';

/** Airtel's final statuses other than success, as our failure codes. */
const FAILURES: Record<string, string> = { TF: 'AIRTEL_FAILED', TE: 'AIRTEL_EXPIRED', TR: 'AIRTEL_REVERSED' };

export function airtelStatusSource(client: Pick<AirtelClient, 'status' | 'currency'>): PaymentStatusSource {
  return {
    // A prompt approved after our expiry (or an answer that was not final) still takes the money.
    checksAfterEnd: true,
    async fetchStatus(payment): Promise<ProviderStatus> {
      const s = await client.status(payment.id);
      if (s.status === 'NOT_FOUND' || s.status === 'TIP' || s.status === 'TA') return { status: 'PENDING' };
      const ref = s.airtelMoneyId !== null ? { providerPaymentId: s.airtelMoneyId } : {};
      if (s.status === 'TS') {
        if (payment.currency !== client.currency) {
          // Airtel took the amount asked, in its own currency (the request names none).
          const taken = {
            amount: formatMinor(Number(payment.amount_minor), payment.currency),
            currency: client.currency,
          };
          return { status: 'FAILED', failureCode: 'AMOUNT_MISMATCH', taken, ...ref };
        }
        return { status: 'SUCCEEDED', receivedMinor: Number(payment.amount_minor), ...ref };
      }
      return { status: 'FAILED', failureCode: FAILURES[s.status] ?? 'AIRTEL_FAILED', ...ref };
    },
  };
}
