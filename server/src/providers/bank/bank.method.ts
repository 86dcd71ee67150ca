// The `bank_transfer` method: a unique RF reference per payment, and for the payer an EPC069-12
// QR code (payload, reference, PNG) for the exact amount into the cafe's bank account, read from
// the cafe settings. The money is matched later by that reference (POST /webhooks/bank) or
// confirmed by staff from the statement.
import { AppError } from '../../platform/errors.js';
import type { Executor } from '../../platform/db/database.js';
import type { OneOffMethod } from '../../modules/payments/methods.js';
import { EpcError, epcPayload, epcQrPngUrl } from './epc-qr.js';
import { rfReferenceForPayment } from './rf-reference.js';

export interface BankAccount {
  name: string;
  iban: string;
  bic?: string | undefined;
}

/** A transfer (instant or next-day SEPA) has a day to arrive before the intent expires. */
export const BANK_TRANSFER_TTL_MS = 24 * 3_600_000;

const notSetUp = () => new AppError('PROVIDER_NOT_CONFIGURED', 'this cafe has no bank account for transfers');

export function bankTransferMethod(deps: {
  /** The cafe settings' bank account of a site. */
  bankAccount(tenantId: string, siteId: string, ex?: Executor): Promise<BankAccount | null>;
}): OneOffMethod {
  return {
    method: 'bank_transfer',
    provider: 'bank',
    ttlMs: BANK_TRANSFER_TTL_MS,
    reference: rfReferenceForPayment,
    async check({ tenantId, siteId, currency }) {
      if (!siteId || !(await deps.bankAccount(tenantId, siteId))) throw notSetUp();
      if (currency !== 'EUR')
        throw new AppError(
          'INVALID_STATE',
          `bank transfers by EPC QR code are in euros only; this cafe charges ${currency}`,
        );
    },
    async present(ex, payment, subject) {
      const account = subject.siteId ? await deps.bankAccount(subject.tenantId, subject.siteId, ex) : null;
      if (!account) throw notSetUp();
      let payload: string;
      try {
        payload = epcPayload({
          ...account,
          amountMinor: Number(payment.amount_minor),
          currency: payment.currency,
          reference: payment.reference!,
        });
      } catch (err) {
        if (err instanceof EpcError) throw new AppError('INVALID_STATE', err.message);
        throw err;
      }
      return { epc: { payload, reference: payment.reference, qrPngUrl: await epcQrPngUrl(payload) } };
    },
  };
}
