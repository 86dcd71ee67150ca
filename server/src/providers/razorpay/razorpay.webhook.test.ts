// Unit tests for Razorpay webhook verification and parsing (PROVIDERS.md §1.2–§1.4, §2).
import { describe, expect, it } from 'vitest';
import { parseRazorpayEvent, signRazorpayBody, verifyRazorpaySignature } from './razorpay.webhook.js';

// PROVIDERS.md §1.4 test vector.
const VECTOR_SECRET = 'test_secret';
const VECTOR_BODY = '{"entity":"event","event":"qr_code.credited"}';
const VECTOR_SIGNATURE = '22649d470ef1bcaa166d0c380e881e220018dd993bee3a96ede16c9c923b6e2c';

const buf = (s: string) => Buffer.from(s, 'utf8');

describe('verifyRazorpaySignature', () => {
  it('verifies the PROVIDERS.md §1.4 test vector', () => {
    expect(signRazorpayBody(VECTOR_BODY, VECTOR_SECRET)).toBe(VECTOR_SIGNATURE);
    expect(verifyRazorpaySignature(buf(VECTOR_BODY), VECTOR_SIGNATURE, [VECTOR_SECRET])).toBe(true);
  });

  it('accepts the same digest written in uppercase hex', () => {
    expect(verifyRazorpaySignature(buf(VECTOR_BODY), VECTOR_SIGNATURE.toUpperCase(), [VECTOR_SECRET])).toBe(
      true,
    );
  });

  it('rejects a wrong secret, a changed body and a changed signature', () => {
    expect(verifyRazorpaySignature(buf(VECTOR_BODY), VECTOR_SIGNATURE, ['other_secret'])).toBe(false);
    expect(verifyRazorpaySignature(buf(VECTOR_BODY + ' '), VECTOR_SIGNATURE, [VECTOR_SECRET])).toBe(false);
    expect(
      verifyRazorpaySignature(buf('{"entity":"event","event":"qr_code.credited" }'), VECTOR_SIGNATURE, [
        VECTOR_SECRET,
      ]),
    ).toBe(false);
    const flipped = (VECTOR_SIGNATURE.startsWith('2') ? '3' : '2') + VECTOR_SIGNATURE.slice(1);
    expect(verifyRazorpaySignature(buf(VECTOR_BODY), flipped, [VECTOR_SECRET])).toBe(false);
  });

  it('is over the exact bytes: a re-serialised body (escaped slashes) does not verify', () => {
    const raw = '{"image_url":"https:\\/\\/rzp.io\\/i\\/X6QM7LL"}';
    const signature = signRazorpayBody(raw, VECTOR_SECRET);
    expect(verifyRazorpaySignature(buf(raw), signature, [VECTOR_SECRET])).toBe(true);
    const reserialised = JSON.stringify(JSON.parse(raw));
    expect(reserialised).not.toBe(raw);
    expect(verifyRazorpaySignature(buf(reserialised), signature, [VECTOR_SECRET])).toBe(false);
  });

  it.each([
    ['empty', ''],
    ['one hex digit short', VECTOR_SIGNATURE.slice(0, 63)],
    ['one hex digit long', VECTOR_SIGNATURE + '0'],
    ['two bytes long', VECTOR_SIGNATURE + '00'],
    ['doubled', VECTOR_SIGNATURE + VECTOR_SIGNATURE],
    ['half', VECTOR_SIGNATURE.slice(0, 32)],
    ['not hex', 'z'.repeat(64)],
    ['base64 of the digest', Buffer.from(VECTOR_SIGNATURE, 'hex').toString('base64')],
    ['with a sha256= prefix', `sha256=${VECTOR_SIGNATURE}`],
    ['with surrounding spaces', ` ${VECTOR_SIGNATURE} `],
  ])('rejects a signature that is %s, without throwing', (_label, signature) => {
    expect(verifyRazorpaySignature(buf(VECTOR_BODY), signature, [VECTOR_SECRET])).toBe(false);
  });

  it('rejects a missing signature and an empty secret list', () => {
    expect(verifyRazorpaySignature(buf(VECTOR_BODY), undefined, [VECTOR_SECRET])).toBe(false);
    expect(verifyRazorpaySignature(buf(VECTOR_BODY), VECTOR_SIGNATURE, [])).toBe(false);
  });

  it('accepts any secret of the rotation list, in any position', () => {
    expect(verifyRazorpaySignature(buf(VECTOR_BODY), VECTOR_SIGNATURE, ['new_secret', VECTOR_SECRET])).toBe(
      true,
    );
    expect(verifyRazorpaySignature(buf(VECTOR_BODY), VECTOR_SIGNATURE, [VECTOR_SECRET, 'new_secret'])).toBe(
      true,
    );
    const signedWithNew = signRazorpayBody(VECTOR_BODY, 'new_secret');
    expect(verifyRazorpaySignature(buf(VECTOR_BODY), signedWithNew, ['new_secret', VECTOR_SECRET])).toBe(
      true,
    );
    expect(verifyRazorpaySignature(buf(VECTOR_BODY), signedWithNew, [VECTOR_SECRET, 'older_secret'])).toBe(
      false,
    );
  });

  it('signs a Buffer and a string identically', () => {
    expect(signRazorpayBody(buf(VECTOR_BODY), VECTOR_SECRET)).toBe(VECTOR_SIGNATURE);
  });
});

// ---- parsing -------------------------------------------------------------------------------

function paymentEntity(overrides: Record<string, unknown> = {}) {
  return {
    id: 'pay_HO2fEpc9JeOQU5',
    entity: 'payment',
    amount: 2000,
    currency: 'INR',
    status: 'captured',
    order_id: null,
    method: 'upi',
    captured: true,
    vpa: 'gauri.kumar@okhdfcbank',
    notes: { purpose: 'vending' },
    created_at: 1623914419,
    ...overrides,
  };
}

function credited(options: { payment?: Record<string, unknown>; qr?: Record<string, unknown> | null } = {}) {
  const payload: Record<string, unknown> = { payment: { entity: paymentEntity(options.payment) } };
  if (options.qr !== null)
    payload['qr_code'] = {
      entity: { id: 'qr_HMsVL8HOpbMcjU', entity: 'qr_code', usage: 'multiple_use', ...options.qr },
    };
  return {
    entity: 'event',
    account_id: 'acc_TEST',
    event: 'qr_code.credited',
    contains: ['payment', 'qr_code'],
    payload,
    created_at: 1623914419,
  };
}

function captured(notes: Record<string, unknown> | undefined, extra: Record<string, unknown> = {}) {
  return {
    entity: 'event',
    account_id: 'acc_TEST',
    event: 'payment.captured',
    contains: ['payment'],
    payload: { payment: { entity: paymentEntity({ notes, ...extra }) } },
    created_at: 1623914420,
  };
}

const parse = (body: unknown, eventId?: string) =>
  parseRazorpayEvent(buf(typeof body === 'string' ? body : JSON.stringify(body)), eventId);

describe('parseRazorpayEvent', () => {
  it('normalises qr_code.credited into a PaymentNotification', () => {
    const raw = JSON.stringify(credited());
    const parsed = parseRazorpayEvent(buf(raw), 'evt_1');
    expect(parsed).toEqual({
      kind: 'payment',
      notification: {
        provider: 'razorpay',
        eventId: 'evt_1',
        eventType: 'qr_code.credited',
        providerPaymentId: 'pay_HO2fEpc9JeOQU5',
        amountMinor: 2000,
        currency: 'INR',
        reference: 'qr_HMsVL8HOpbMcjU',
        captured: true,
        raw,
      },
    });
  });

  it('takes the reference from the QR entity, not from the payment notes', () => {
    const parsed = parse(credited({ payment: { notes: { qr_code_id: 'qr_FROM_NOTES' } } }));
    expect(parsed.kind === 'payment' && parsed.notification.reference).toBe('qr_HMsVL8HOpbMcjU');
  });

  it('keeps eventId null when the header is absent or absurdly long', () => {
    const none = parse(credited());
    expect(none.kind === 'payment' && none.notification.eventId).toBeNull();
    const long = parse(credited(), 'e'.repeat(201));
    expect(long.kind === 'payment' && long.notification.eventId).toBeNull();
  });

  it('reports captured false for a payment that is not captured', () => {
    const parsed = parse(credited({ payment: { status: 'authorized', captured: false } }));
    expect(parsed.kind).toBe('payment');
    expect(parsed.kind === 'payment' && parsed.notification.captured).toBe(false);
  });

  it('accepts a zero amount as a number (the amount check is the service’s job)', () => {
    const parsed = parse(credited({ payment: { amount: 0 } }));
    expect(parsed.kind === 'payment' && parsed.notification.amountMinor).toBe(0);
  });

  it('normalises payment.captured whose notes.qr_code_id names a QR code', () => {
    const parsed = parse(captured({ qr_code_id: 'qr_HMsVL8HOpbMcjU' }), 'evt_2');
    expect(parsed.kind).toBe('payment');
    if (parsed.kind !== 'payment') return;
    expect(parsed.notification).toMatchObject({
      provider: 'razorpay',
      eventId: 'evt_2',
      eventType: 'payment.captured',
      providerPaymentId: 'pay_HO2fEpc9JeOQU5',
      amountMinor: 2000,
      currency: 'INR',
      reference: 'qr_HMsVL8HOpbMcjU',
      captured: true,
    });
  });

  it.each([
    ['no notes', undefined],
    ['empty notes', {}],
    ['notes without qr_code_id', { purpose: 'subscription' }],
    ['an empty qr_code_id', { qr_code_id: '' }],
    ['a numeric qr_code_id', { qr_code_id: 42 }],
  ])('treats payment.captured with %s as not handled', (_label, notes) => {
    expect(parse(captured(notes))).toEqual({ kind: 'not-handled', eventType: 'payment.captured' });
  });

  it('treats payment.captured with notes as an array (PHP-style empty notes) as not handled', () => {
    expect(parse(captured(undefined, { notes: [] }))).toEqual({
      kind: 'not-handled',
      eventType: 'payment.captured',
    });
  });

  it.each([
    'qr_code.created',
    'qr_code.closed',
    'payment.authorized',
    'payment.failed',
    'order.paid',
    'refund.speed_changed',
  ])('treats %s as not handled', (event) => {
    expect(parse({ entity: 'event', event, payload: {} })).toEqual({ kind: 'not-handled', eventType: event });
  });

  const refundBody = (event: string, status: string) => ({
    entity: 'event',
    event,
    contains: ['refund', 'payment'],
    payload: {
      refund: { entity: { id: 'rfnd_1', entity: 'refund', amount: 500, payment_id: 'pay_1', status } },
    },
  });
  it.each([
    ['refund.processed', 'processed', 'processed'],
    ['refund.failed', 'failed', 'failed'],
    ['refund.created', 'pending', 'pending'],
    ['refund.created', 'processed', 'processed'],
  ])('reads %s (refund %s) as news that it is %s', (event, status, outcome) => {
    expect(parse(refundBody(event, status))).toMatchObject({
      kind: 'refund',
      eventType: event,
      news: {
        provider: 'razorpay',
        providerRefundId: 'rfnd_1',
        providerPaymentId: 'pay_1',
        amountMinor: 500,
        outcome,
      },
    });
  });

  it('treats a refund event without its refund entity as malformed', () => {
    expect(parse({ entity: 'event', event: 'refund.failed', payload: {} }).kind).toBe('malformed');
  });

  it('treats the bare test-vector body as malformed (no payment in it)', () => {
    expect(parse(VECTOR_BODY).kind).toBe('malformed');
  });

  const withoutQrId = credited({ qr: {} });
  delete (withoutQrId.payload['qr_code'] as { entity: Record<string, unknown> }).entity['id'];

  it.each<[string, unknown]>([
    ['not JSON', '{"event": "qr_code.credited"'],
    ['empty', ''],
    ['a JSON array', [credited()]],
    ['JSON null', 'null'],
    ['a JSON string', '"qr_code.credited"'],
    ['a JSON number', '42'],
    ['without event', { entity: 'event', payload: credited().payload }],
    ['with a numeric event', { entity: 'event', event: 7, payload: credited().payload }],
    ['with an empty event', { entity: 'event', event: '', payload: credited().payload }],
    ['without payload', { entity: 'event', event: 'qr_code.credited' }],
    ['with a null payload', { entity: 'event', event: 'qr_code.credited', payload: null }],
    [
      'without payload.payment',
      { entity: 'event', event: 'qr_code.credited', payload: { qr_code: credited().payload['qr_code'] } },
    ],
    [
      'with payment but no entity',
      {
        entity: 'event',
        event: 'qr_code.credited',
        payload: { payment: {}, qr_code: credited().payload['qr_code'] },
      },
    ],
    ['without payment id', credited({ payment: { id: undefined } })],
    ['with an empty payment id', credited({ payment: { id: '' } })],
    ['with a string amount', credited({ payment: { amount: '2000' } })],
    ['with a fractional amount', credited({ payment: { amount: 20.5 } })],
    ['with a negative amount', credited({ payment: { amount: -1 } })],
    ['with a null amount', credited({ payment: { amount: null } })],
    [
      'with an unsafe integer amount',
      '{"event":"qr_code.credited","payload":{"payment":{"entity":{"id":"pay_1","amount":9007199254740993,"currency":"INR"}},"qr_code":{"entity":{"id":"qr_1"}}}}',
    ],
    ['without currency', credited({ payment: { currency: undefined } })],
    ['with a lowercase currency', credited({ payment: { currency: 'inr' } })],
    ['with a long currency', credited({ payment: { currency: 'RUPEE' } })],
    ['without the qr_code entity', credited({ qr: null })],
    ['without the QR id', withoutQrId],
    ['payment.captured without payment entity', { entity: 'event', event: 'payment.captured', payload: {} }],
  ])('reports a qr/payment event %s as malformed', (_label, body) => {
    const parsed = parse(body);
    expect(parsed.kind).toBe('malformed');
    if (parsed.kind === 'malformed') expect(parsed.message.length).toBeGreaterThan(0);
  });
});
