// A signed Razorpay `qr_code.credited` delivery (PROVIDERS.md §1.2) with a unique payment id per call.
import { randomBytes } from 'node:crypto';
import { qrCreditedEvent } from '../../../server/src/providers/razorpay/razorpay.events.js';
import { signRazorpayBody } from '../../../server/src/providers/razorpay/razorpay.webhook.js';

let seq = 0;
const runTag = randomBytes(3).toString('hex');

export function newPaymentId(): string {
  return `pay_b${runTag}${(seq++).toString(36).padStart(7, '0')}`;
}

export function qrCreditedBody(qrCodeId: string, amountPaise: number, paymentId: string): string {
  return JSON.stringify(
    qrCreditedEvent({
      qrCodeId,
      amountPaise,
      paymentId,
      accountId: 'acc_BENCH000000001',
      notes: { machine: 'vending' },
    }),
  );
}

/** Body and headers of one signed delivery. */
export function signedDelivery(
  qrCodeId: string,
  amountPaise: number,
  secret: string,
  paymentId = newPaymentId(),
) {
  const body = qrCreditedBody(qrCodeId, amountPaise, paymentId);
  return {
    paymentId,
    body,
    headers: { 'content-type': 'application/json', 'x-razorpay-signature': signRazorpayBody(body, secret) },
  };
}
