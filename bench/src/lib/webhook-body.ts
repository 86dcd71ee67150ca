// A signed Razorpay `qr_code.credited` delivery (PROVIDERS.md §1.2) with a unique payment id per call.
import { randomBytes } from 'node:crypto';
import type http from 'node:http';
import { qrCreditedEvent } from '../../../server/src/providers/razorpay/razorpay.events.js';
import { signRazorpayBody } from '../../../server/src/providers/razorpay/razorpay.webhook.js';
import { postJson } from './open-loop.js';

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

/**
 * Posts one signed payment for a machine's QR to `url` (keep-alive): the order it made with the
 * send and response times, `failed` (no 200) or `unexpected` (no order, or a duplicate).
 */
export async function payOnce(
  agent: http.Agent,
  url: string,
  qrCodeId: string,
  amountPaise: number,
  secret: string,
): Promise<{ orderId: string; t0: number; tResponse: number } | 'failed' | 'unexpected'> {
  const delivery = signedDelivery(qrCodeId, amountPaise, secret);
  const t0 = performance.now();
  const res = await postJson(agent, url, '/webhooks/razorpay', delivery.body, delivery.headers).catch(() => ({
    status: 0,
    body: '',
  }));
  const tResponse = performance.now();
  if (res.status !== 200) return 'failed';
  const answer = JSON.parse(res.body) as { orderId?: string; duplicate?: boolean };
  if (!answer.orderId || answer.duplicate) return 'unexpected';
  return { orderId: answer.orderId, t0, tResponse };
}
