// What /docs shows for POST /webhooks/razorpay: the event body Razorpay sends, with examples.
// Documentation only: the route keeps its raw bytes for the signature check, so this schema is
// added to the OpenAPI document (swagger transform), never to the route's validation.
import { Type, type TSchema } from '@sinclair/typebox';
import type { FastifySchema } from 'fastify';
import { qrCreditedEvent } from './razorpay.events.js';

const Notes = Type.Record(Type.String(), Type.String(), {
  description: 'free-form notes; `machine_id` when the QR was made by qr:provision',
});

const PaymentEntity = Type.Object({
  id: Type.String({ description: 'Razorpay payment id (pay_…); one order per payment id' }),
  entity: Type.Literal('payment'),
  amount: Type.Integer({ description: 'paise; must equal the machine’s fixed amount' }),
  currency: Type.String({ description: 'INR' }),
  status: Type.String({ description: '`captured` makes an order; anything else is ignored (NOT_CAPTURED)' }),
  method: Type.Optional(Type.String()),
  notes: Type.Optional(Type.Union([Notes, Type.Array(Type.Unknown())])),
  created_at: Type.Optional(Type.Integer()),
});

const QrCodeEntity = Type.Object({
  id: Type.String({
    description: 'Razorpay QR id (qr_…): the machine whose payment profile holds it gets the order',
  }),
  entity: Type.Literal('qr_code'),
  payment_amount: Type.Optional(Type.Integer()),
  usage: Type.Optional(Type.String()),
  type: Type.Optional(Type.String()),
  notes: Type.Optional(Type.Union([Notes, Type.Array(Type.Unknown())])),
});

const example = qrCreditedEvent({
  qrCodeId: 'qr_NgQbXyZ123',
  amountPaise: 2000,
  paymentId: 'pay_NgQc7u6bVgX0Rz',
  notes: { machine_id: 'M01' },
});

export const RazorpayWebhookBody = Type.Object(
  {
    entity: Type.Literal('event'),
    account_id: Type.String(),
    event: Type.String({
      description:
        '`qr_code.credited` or `payment.captured` (with notes.qr_code_id); `refund.processed`, `refund.failed`, `refund.created` (payload.refund.entity); others: ignored EVENT_NOT_HANDLED',
    }),
    contains: Type.Array(Type.String()),
    payload: Type.Object({
      payment: Type.Object({ entity: PaymentEntity }),
      qr_code: Type.Optional(Type.Object({ entity: QrCodeEntity })),
    }),
    created_at: Type.Integer(),
  },
  {
    description:
      'Sent by Razorpay, signed: X-Razorpay-Signature is the hex HMAC-SHA256 of the exact body bytes with ' +
      'RAZORPAY_WEBHOOK_SECRET; X-Razorpay-Event-Id identifies a delivery (a repeat answers duplicate: true). ' +
      '`npm run pay -- M01` sends one to a running server.',
    examples: [example],
  },
);

const answerExamples = [
  { ok: true, orderId: '01KBXQ4V7M9T2C8N5R3H6J1W0E' },
  { ok: true, orderId: '01KBXQ4V7M9T2C8N5R3H6J1W0E', duplicate: true },
  { ok: true, ignored: 'UNKNOWN_QR' },
];

/** @fastify/swagger transform: adds the documented body and answer examples to the webhook route. */
export function documentWebhookRoutes({ schema, url }: { schema: FastifySchema; url: string }) {
  if (url !== '/webhooks/razorpay' || !schema) return { schema, url };
  const response = { ...(schema.response as Record<string, TSchema> | undefined) };
  if (response['200']) response['200'] = { ...response['200'], examples: answerExamples };
  return { schema: { ...schema, body: RazorpayWebhookBody, response }, url };
}
