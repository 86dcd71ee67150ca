// A signed Razorpay `qr_code.credited` delivery, shaped like server/test/harness.ts's
// qrCredited (PROVIDERS.md §1.2), with a unique payment id per call.
import { randomBytes } from 'node:crypto';
import { signRazorpayBody } from '../../../server/src/providers/razorpay/razorpay.webhook.js';

let seq = 0;
const runTag = randomBytes(3).toString('hex');

export function newPaymentId(): string {
  return `pay_b${runTag}${(seq++).toString(36).padStart(7, '0')}`;
}

export function qrCreditedBody(qrCodeId: string, amountPaise: number, paymentId: string): string {
  const now = Math.floor(Date.now() / 1000);
  return JSON.stringify({
    entity: 'event',
    account_id: 'acc_BENCH000000001',
    event: 'qr_code.credited',
    contains: ['payment', 'qr_code'],
    payload: {
      payment: {
        entity: {
          id: paymentId,
          entity: 'payment',
          amount: amountPaise,
          currency: 'INR',
          status: 'captured',
          order_id: null,
          invoice_id: null,
          international: false,
          method: 'upi',
          amount_refunded: 0,
          refund_status: null,
          captured: true,
          description: 'QRv2 Payment',
          vpa: 'gauri.kumar@okhdfcbank',
          email: 'gauri.kumar@example.com',
          contact: '+919999999999',
          notes: { machine: 'vending' },
          fee: 0,
          tax: 0,
          acquirer_data: { rrn: '116812981837' },
          created_at: now,
        },
      },
      qr_code: {
        entity: {
          id: qrCodeId,
          entity: 'qr_code',
          created_at: now - 3600,
          name: 'Vending',
          usage: 'multiple_use',
          type: 'upi_qr',
          image_url: 'https://rzp.io/i/BWcUVrLp',
          payment_amount: amountPaise,
          status: 'active',
          description: 'Vending machine',
          fixed_amount: true,
          payments_amount_received: 0,
          payments_count_received: 0,
          notes: {},
          customer_id: null,
          close_by: null,
          closed_at: null,
          close_reason: null,
        },
      },
    },
    created_at: now,
  });
}

/** Body and headers of one signed delivery. */
export function signedDelivery(qrCodeId: string, amountPaise: number, secret: string, paymentId = newPaymentId()) {
  const body = qrCreditedBody(qrCodeId, amountPaise, paymentId);
  return {
    paymentId,
    body,
    headers: { 'content-type': 'application/json', 'x-razorpay-signature': signRazorpayBody(body, secret) },
  };
}
