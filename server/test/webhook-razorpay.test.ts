// POST /webhooks/razorpay against the real server (CONTRACTS.md §6–§7, PROVIDERS.md §1–§2):
// signatures over the raw bytes, exactly one order per payment, duplicates, ignored events,
// malformed bodies, secret rotation and the counters in /metrics.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { SimulatedMachine } from '@kioskhub/machine-simulator';
import type { Socket } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signRazorpayBody } from '../src/providers/razorpay/razorpay.webhook.js';
import {
  connected,
  engines,
  eventually,
  machineSocket,
  nextEvent,
  qrCredited,
  startServer,
  WEBHOOK_SECRET,
  type TestServer,
} from './harness.js';

const newPaymentId = (): string => `pay_${randomBytes(7).toString('hex')}`;

/** A `payment.captured` event as Razorpay sends it (PROVIDERS.md §2); `notes` as given. */
function paymentCaptured(paymentId: string, amountPaise: number, notes: Record<string, string> | [] = []) {
  const now = Math.floor(Date.now() / 1000);
  return {
    entity: 'event',
    account_id: 'acc_TEST0000000001',
    event: 'payment.captured',
    contains: ['payment'],
    payload: {
      payment: {
        entity: {
          id: paymentId,
          entity: 'payment',
          amount: amountPaise,
          currency: 'INR',
          base_amount: amountPaise,
          status: 'captured',
          order_id: `order_${randomBytes(7).toString('hex')}`,
          invoice_id: null,
          international: false,
          method: 'upi',
          amount_refunded: 0,
          amount_transferred: 0,
          refund_status: null,
          captured: true,
          description: 'QRv2 Payment',
          card_id: null,
          bank: null,
          wallet: null,
          vpa: 'gauri.kumar@okhdfcbank',
          email: 'gauri.kumar@example.com',
          contact: '+919999999999',
          notes,
          fee: 0,
          tax: 0,
          error_code: null,
          error_description: null,
          error_source: null,
          error_step: null,
          error_reason: null,
          acquirer_data: { rrn: '116812981837' },
          upi: { payer_account_type: 'bank_account', vpa: 'gauri.kumar@okhdfcbank' },
          created_at: now,
        },
      },
    },
    created_at: now,
  };
}

/** Counter values of one metric family by `outcome` (or `provider` for families without it). */
function counters(text: string, name: string): Map<string, number> {
  const values = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = new RegExp(`^${name}\\{([^}]*)\\} (\\S+)$`).exec(line);
    if (!m) continue;
    const labels = Object.fromEntries(
      [...(m[1] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1], l[2]]),
    );
    if (labels['provider'] !== 'razorpay') continue;
    values.set(labels['outcome'] ?? 'all', Number(m[2]));
  }
  return values;
}

describe.each(engines())('Razorpay webhook (%s)', (engine) => {
  let server: TestServer;
  const machines: SimulatedMachine[] = [];
  const sockets: Socket[] = [];
  let seq = 0;
  const nextMachineId = (prefix = 'WH') => `${prefix}${String(++seq).padStart(3, '0')}`;

  beforeAll(async () => {
    server = await startServer({ engine });
  });
  afterAll(async () => {
    for (const m of machines) m.stop();
    for (const s of sockets) s.disconnect();
    await server?.close();
  });

  const ordersOf = async (machineId: string): Promise<any[]> => {
    const res = await server.request('GET', `/v1/orders?machineId=${machineId}&limit=200`);
    expect(res.status).toBe(200);
    return res.body.items as any[];
  };
  const paymentEvent = (paymentId: string) =>
    server.request('GET', `/v1/payment-events/razorpay/${paymentId}`);
  const metrics = async () => {
    const res = await server.request('GET', '/metrics');
    expect(res.status).toBe(200);
    return res.body as string;
  };
  const startMachine = async (id: string, key: string, dispenseDelayMs = 10) => {
    const machine = new SimulatedMachine({
      url: server.url,
      machineId: id,
      key,
      dispenseDelayMs,
      heartbeatMs: 1000,
    });
    machines.push(machine);
    await machine.start();
    return machine;
  };

  /** Asserts a rejected delivery stored nothing for that payment and machine. */
  async function expectNothingStored(machineId: string, paymentId: string) {
    expect(await ordersOf(machineId)).toEqual([]);
    const ev = await paymentEvent(paymentId);
    expect(ev.status).toBe(404);
    expect(ev.body.error.code).toBe('NOT_FOUND');
  }

  it('a valid qr_code.credited creates one PAID order, pending dispatch while the machine is offline', async () => {
    const m = await server.createVendingMachine(nextMachineId(), 2000);
    const paymentId = newPaymentId();
    const res = await server.postWebhook(qrCredited(m.qrCodeId, 2000, paymentId), {
      eventId: `evt_${paymentId}`,
    });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ ok: true, orderId: expect.any(String) });
    const orderId = res.body.orderId as string;

    const order = await server.request('GET', `/v1/orders/${orderId}`);
    expect(order.status).toBe(200);
    expect(order.body).toMatchObject({
      id: orderId,
      machineId: m.id,
      amount: 2000,
      currency: 'INR',
      source: 'upi_qr',
      provider: 'razorpay',
      providerPaymentId: paymentId,
      providerQrCodeId: m.qrCodeId,
      status: 'PAID',
      dispatchPending: true,
      failureCode: null,
    });
    expect(Number.isNaN(Date.parse(order.body.paidAt as string))).toBe(false);
    expect(Number.isNaN(Date.parse(order.body.createdAt as string))).toBe(false);

    const list = await ordersOf(m.id);
    expect(list.map((o) => o.id)).toEqual([orderId]);

    const ev = await paymentEvent(paymentId);
    expect(ev.status).toBe(200);
    expect(ev.body).toMatchObject({
      status: 'PROCESSED',
      reason: null,
      machineId: m.id,
      orderId,
      dispatch: 'PENDING',
    });
    expect(Number.isNaN(Date.parse(ev.body.processedAt as string))).toBe(false);
  });

  it('the same payment again (same event id, another event id, no event id) is a duplicate of the same order', async () => {
    const m = await server.createVendingMachine(nextMachineId(), 2000);
    const paymentId = newPaymentId();
    const event = qrCredited(m.qrCodeId, 2000, paymentId);
    const first = await server.postWebhook(event, { eventId: 'evt_dup_1' });
    expect(first.status).toBe(200);
    const orderId = first.body.orderId as string;
    expect(first.body).toEqual({ ok: true, orderId });

    for (const eventId of ['evt_dup_1', 'evt_dup_2', undefined, 'evt_dup_2']) {
      const again = await server.postWebhook(event, eventId ? { eventId } : {});
      expect(again.status).toBe(200);
      expect(again.body).toEqual({ ok: true, duplicate: true, orderId });
    }
    const list = await ordersOf(m.id);
    expect(list).toHaveLength(1);
    expect(list[0].id).toBe(orderId);
    expect(list[0].status).toBe('PAID');
  });

  it.each([
    ['without an event id', () => undefined],
    ['each with its own event id', (i: number) => `evt_conc_${i}_${randomBytes(3).toString('hex')}`],
    ['all with the same event id', () => 'evt_conc_same'],
  ])('20 concurrent deliveries of one payment (%s) make exactly one order', async (_label, eventIdOf) => {
    const m = await server.createVendingMachine(nextMachineId(), 2000);
    const paymentId = newPaymentId();
    const raw = JSON.stringify(qrCredited(m.qrCodeId, 2000, paymentId));
    const answers = await Promise.all(
      Array.from({ length: 20 }, (_, i) => {
        const eventId = eventIdOf(i);
        return server.postWebhook(raw, eventId ? { eventId } : {});
      }),
    );
    for (const a of answers) expect(a.status, JSON.stringify(a.body)).toBe(200);
    const orderIds = new Set(answers.map((a) => a.body.orderId as string));
    expect(orderIds.size).toBe(1);
    const [orderId] = [...orderIds];
    expect(typeof orderId).toBe('string');
    expect(answers.filter((a) => a.body.duplicate !== true)).toHaveLength(1);
    expect(answers.filter((a) => a.body.duplicate === true)).toHaveLength(19);
    const list = await ordersOf(m.id);
    expect(list.map((o) => o.id)).toEqual([orderId]);
    expect((await paymentEvent(paymentId)).body.orderId).toBe(orderId);
  });

  describe('signature', () => {
    it.each([
      ['missing', () => null],
      ['made with another secret', (raw: string) => signRazorpayBody(raw, 'not_the_secret')],
      [
        'of a different body',
        (raw: string) => signRazorpayBody(raw.replace('"amount":2000', '"amount":1'), WEBHOOK_SECRET),
      ],
      ['not hex', () => 'z'.repeat(64)],
      ['empty', () => ''],
      ['truncated', (raw: string) => signRazorpayBody(raw, WEBHOOK_SECRET).slice(0, 40)],
      ['with extra characters', (raw: string) => `${signRazorpayBody(raw, WEBHOOK_SECRET)}00`],
      [
        'base64 instead of hex',
        (raw: string) => Buffer.from(signRazorpayBody(raw, WEBHOOK_SECRET), 'hex').toString('base64'),
      ],
    ])('%s → 401 BAD_SIGNATURE and nothing stored', async (_label, signatureOf) => {
      const m = await server.createVendingMachine(nextMachineId('SIG'), 2000);
      const paymentId = newPaymentId();
      const raw = JSON.stringify(qrCredited(m.qrCodeId, 2000, paymentId));
      const eventId = `evt_${paymentId}`;
      const res = await server.postWebhook(raw, { signature: signatureOf(raw), eventId });
      expect(res.status).toBe(401);
      expect(res.body.error.code).toBe('BAD_SIGNATURE');
      await expectNothingStored(m.id, paymentId);

      // Nothing about the event was remembered either: the genuine delivery with the same
      // event id is applied, not taken for a duplicate.
      const genuine = await server.postWebhook(raw, { eventId });
      expect(genuine.status).toBe(200);
      expect(genuine.body).toEqual({ ok: true, orderId: expect.any(String) });
    });

    it('is checked over the raw bytes: a re-serialised body (escaped slashes lost) is rejected, the exact bytes are accepted', async () => {
      const m = await server.createVendingMachine(nextMachineId('SIG'), 2000);
      const paymentId = newPaymentId();
      const event = qrCredited(m.qrCodeId, 2000, paymentId);
      (event.payload.qr_code.entity as Record<string, unknown>)['short_url'] = 'https://rzp.io/i/X';
      // Razorpay escapes "/" as "\/" (PHP json_encode), PROVIDERS.md §1.3.
      const raw = JSON.stringify(event).replace(/\//g, '\\/');
      expect(raw).toContain('"https:\\/\\/rzp.io\\/i\\/X"');
      const signature = signRazorpayBody(raw, WEBHOOK_SECRET);
      const reserialised = JSON.stringify(JSON.parse(raw));
      expect(reserialised).not.toBe(raw);

      const rejected = await server.postWebhook(reserialised, { signature });
      expect(rejected.status).toBe(401);
      expect(rejected.body.error.code).toBe('BAD_SIGNATURE');
      await expectNothingStored(m.id, paymentId);

      const accepted = await server.postWebhook(raw, { signature });
      expect(accepted.status).toBe(200);
      expect(accepted.body).toEqual({ ok: true, orderId: expect.any(String) });
      const order = await server.request('GET', `/v1/orders/${accepted.body.orderId}`);
      expect(order.body).toMatchObject({
        status: 'PAID',
        providerPaymentId: paymentId,
        providerQrCodeId: m.qrCodeId,
      });
    });
  });

  it('secret rotation: every secret in the list is accepted, any other is not', async () => {
    const rotated = await startServer({ engine, env: { RAZORPAY_WEBHOOK_SECRET: 'new_secret,old_secret' } });
    try {
      const m = await rotated.createVendingMachine('ROT1', 2000);
      const viaNew = newPaymentId();
      const viaOld = newPaymentId();
      const viaOther = newPaymentId();
      const a = await rotated.postWebhook(qrCredited(m.qrCodeId, 2000, viaNew), { secret: 'new_secret' });
      expect(a.status).toBe(200);
      expect(a.body).toEqual({ ok: true, orderId: expect.any(String) });
      const b = await rotated.postWebhook(qrCredited(m.qrCodeId, 2000, viaOld), { secret: 'old_secret' });
      expect(b.status).toBe(200);
      expect(b.body).toEqual({ ok: true, orderId: expect.any(String) });
      expect(b.body.orderId).not.toBe(a.body.orderId);
      for (const secret of ['third_secret', WEBHOOK_SECRET, 'new_secret,old_secret']) {
        const c = await rotated.postWebhook(qrCredited(m.qrCodeId, 2000, viaOther), { secret });
        expect(c.status).toBe(401);
        expect(c.body.error.code).toBe('BAD_SIGNATURE');
      }
      expect((await rotated.request('GET', `/v1/payment-events/razorpay/${viaOther}`)).status).toBe(404);
      const list = await rotated.request('GET', `/v1/orders?machineId=${m.id}`);
      expect(list.body.items.map((o: any) => o.providerPaymentId).sort()).toEqual([viaNew, viaOld].sort());
    } finally {
      await rotated.close();
    }
  });

  it('no webhook secret configured → 503 PROVIDER_NOT_CONFIGURED and nothing stored', async () => {
    const bare = await startServer({ engine, env: { RAZORPAY_WEBHOOK_SECRET: '' } });
    try {
      const m = await bare.createVendingMachine('NOSEC1', 2000);
      const paymentId = newPaymentId();
      for (const options of [{}, { secret: '' }, { signature: null }]) {
        const res = await bare.postWebhook(qrCredited(m.qrCodeId, 2000, paymentId), options);
        expect(res.status).toBe(503);
        expect(res.body.error.code).toBe('PROVIDER_NOT_CONFIGURED');
      }
      expect((await bare.request('GET', `/v1/orders?machineId=${m.id}`)).body.items).toEqual([]);
      expect((await bare.request('GET', `/v1/payment-events/razorpay/${paymentId}`)).status).toBe(404);
      const text = (await bare.request('GET', '/metrics')).body as string;
      expect(counters(text, 'kioskhub_webhooks_total').get('not_configured')).toBe(3);
    } finally {
      await bare.close();
    }
  });

  it('an unknown QR id is acknowledged and recorded as an IGNORED payment event', async () => {
    const paymentId = newPaymentId();
    const res = await server.postWebhook(qrCredited('qr_nobody_knows_this', 2000, paymentId));
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ ok: true, ignored: 'UNKNOWN_QR' });
    const ev = await paymentEvent(paymentId);
    expect(ev.status).toBe(200);
    expect(ev.body).toMatchObject({
      status: 'IGNORED',
      reason: 'UNKNOWN_QR',
      machineId: null,
      orderId: null,
      dispatch: 'NONE',
    });

    // A retry is acknowledged again and still creates nothing.
    const again = await server.postWebhook(qrCredited('qr_nobody_knows_this', 2000, paymentId));
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({ ok: true, ignored: 'UNKNOWN_QR' });
    expect(again.body.orderId).toBeUndefined();
    const all = await server.request('GET', '/v1/orders?limit=200');
    expect(all.body.items.filter((o: any) => o.providerPaymentId === paymentId)).toEqual([]);
  });

  it('an amount different from fixedAmountPaise fails the order with AMOUNT_MISMATCH and is never dispensed', async () => {
    const m = await server.createVendingMachine(nextMachineId('AMT'), 2000);
    const machine = await startMachine(m.id, m.key);
    const commandsSeen: string[] = [];
    machine.on('command', ({ command }) => {
      if (command) commandsSeen.push(command.orderId);
    });

    const wrongPayment = newPaymentId();
    const res = await server.postWebhook(qrCredited(m.qrCodeId, 1999, wrongPayment));
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ ok: true, orderId: expect.any(String) });
    const mismatchId = res.body.orderId as string;
    const order = await server.request('GET', `/v1/orders/${mismatchId}`);
    expect(order.body).toMatchObject({
      status: 'FAILED',
      failureCode: 'AMOUNT_MISMATCH',
      amount: 1999,
      dispatchPending: false,
      providerPaymentId: wrongPayment,
    });
    const ev = await paymentEvent(wrongPayment);
    expect(ev.body).toMatchObject({
      status: 'PROCESSED',
      reason: 'AMOUNT_MISMATCH',
      machineId: m.id,
      orderId: mismatchId,
      dispatch: 'FAILED',
    });

    // Commands go out oldest paid first: once a later, correct payment has been dispensed,
    // the mismatched one would have been dispensed before it if it had been queued at all.
    const good = await server.postWebhook(qrCredited(m.qrCodeId, 2000));
    expect(good.status).toBe(200);
    const goodId = good.body.orderId as string;
    await eventually(
      async () => (await server.request('GET', `/v1/orders/${goodId}`)).body.status === 'COMPLETED',
      10_000,
      'the correct payment to be dispensed',
    );
    expect(machine.dispensed.map((d) => d.orderId)).toEqual([goodId]);
    expect(commandsSeen).not.toContain(mismatchId);
    expect((await server.request('GET', `/v1/orders/${mismatchId}`)).body.status).toBe('FAILED');
  });

  describe('payment.captured and qr_code.credited for the same payment', () => {
    it.each([
      ['qr_code.credited first', ['credited', 'captured'] as const],
      ['payment.captured first', ['captured', 'credited'] as const],
    ])('%s: the first creates the order, the second is a duplicate', async (_label, sequence) => {
      const m = await server.createVendingMachine(nextMachineId('CAP'), 2000);
      const paymentId = newPaymentId();
      const bodies = {
        credited: qrCredited(m.qrCodeId, 2000, paymentId),
        captured: paymentCaptured(paymentId, 2000, { qr_code_id: m.qrCodeId }),
      };
      const first = await server.postWebhook(bodies[sequence[0]], {
        eventId: `evt_${sequence[0]}_${paymentId}`,
      });
      expect(first.status).toBe(200);
      expect(first.body).toEqual({ ok: true, orderId: expect.any(String) });
      const orderId = first.body.orderId as string;
      const second = await server.postWebhook(bodies[sequence[1]], {
        eventId: `evt_${sequence[1]}_${paymentId}`,
      });
      expect(second.status).toBe(200);
      expect(second.body).toEqual({ ok: true, duplicate: true, orderId });

      const list = await ordersOf(m.id);
      expect(list).toHaveLength(1);
      expect(list[0]).toMatchObject({
        id: orderId,
        status: 'PAID',
        dispatchPending: true,
        source: 'upi_qr',
        provider: 'razorpay',
        providerPaymentId: paymentId,
        providerQrCodeId: m.qrCodeId,
        amount: 2000,
        currency: 'INR',
      });
    });

    it('payment.captured without notes.qr_code_id, and other event types, are EVENT_NOT_HANDLED', async () => {
      const m = await server.createVendingMachine(nextMachineId('NH'), 2000);
      const paymentIds: string[] = [];
      const bodies: unknown[] = [];
      const add = (paymentId: string, body: unknown) => {
        paymentIds.push(paymentId);
        bodies.push(body);
      };
      let p = newPaymentId();
      add(p, paymentCaptured(p, 2000, []));
      p = newPaymentId();
      add(p, paymentCaptured(p, 2000, { purpose: 'something else' }));
      p = newPaymentId();
      add(p, paymentCaptured(p, 2000, { qr_code_id: '' }));
      p = newPaymentId();
      add(p, { ...paymentCaptured(p, 2000, { qr_code_id: m.qrCodeId }), event: 'payment.failed' });
      p = newPaymentId();
      add(p, { ...paymentCaptured(p, 2000, { qr_code_id: m.qrCodeId }), event: 'payment.authorized' });
      p = newPaymentId();
      add(p, {
        ...paymentCaptured(p, 2000, { qr_code_id: m.qrCodeId }),
        event: 'order.paid',
        contains: ['payment', 'order'],
      });
      const created = qrCredited(m.qrCodeId, 2000);
      add(created.payload.payment.entity.id, {
        ...created,
        event: 'qr_code.created',
        contains: ['qr_code'],
        payload: { qr_code: created.payload.qr_code },
      });
      const closed = qrCredited(m.qrCodeId, 2000);
      add(closed.payload.payment.entity.id, {
        ...closed,
        event: 'qr_code.closed',
        contains: ['qr_code'],
        payload: { qr_code: closed.payload.qr_code },
      });

      for (const body of bodies) {
        const res = await server.postWebhook(body);
        expect(res.status, JSON.stringify(body).slice(0, 80)).toBe(200);
        expect(res.body).toEqual({ ok: true, ignored: 'EVENT_NOT_HANDLED' });
      }
      expect(await ordersOf(m.id)).toEqual([]);
      for (const id of paymentIds) expect((await paymentEvent(id)).status).toBe(404);
    });
  });

  describe('signed but malformed bodies', () => {
    const base = (qrCodeId: string, paymentId: string) => qrCredited(qrCodeId, 2000, paymentId);
    type Mutator = (event: ReturnType<typeof base>) => unknown;
    const withAmount =
      (amount: unknown): Mutator =>
      (e) => {
        (e.payload.payment.entity as Record<string, unknown>)['amount'] = amount;
        return e;
      };
    it.each<[string, Mutator | string]>([
      ['not JSON', 'this is not json'],
      ['truncated JSON', '{"event":"qr_code.credited","payload":{'],
      ['a JSON array', '[1,2,3]'],
      ['empty', ''],
      ['no event field', (e) => ({ ...e, event: undefined })],
      ['no payment entity', (e) => ({ ...e, payload: { qr_code: e.payload.qr_code } })],
      ['payment without entity', (e) => ({ ...e, payload: { ...e.payload, payment: {} } })],
      [
        'no payment id',
        (e) => {
          (e.payload.payment.entity as Record<string, unknown>)['id'] = undefined;
          return e;
        },
      ],
      ['amount as a string', withAmount('2000')],
      ['amount as a float', withAmount(2000.5)],
      ['amount negative', withAmount(-2000)],
      ['amount missing', withAmount(undefined)],
      ['no QR entity on qr_code.credited', (e) => ({ ...e, payload: { payment: e.payload.payment } })],
    ])('%s → 400 VALIDATION_FAILED and nothing stored', async (_label, mutate) => {
      const m = await server.createVendingMachine(nextMachineId('BAD'), 2000);
      const paymentId = newPaymentId();
      const raw = typeof mutate === 'string' ? mutate : JSON.stringify(mutate(base(m.qrCodeId, paymentId)));
      const eventId = `evt_bad_${paymentId}`;
      const res = await server.postWebhook(raw, { eventId });
      expect(res.status, raw.slice(0, 100)).toBe(400);
      expect(res.body.error.code).toBe('VALIDATION_FAILED');
      await expectNothingStored(m.id, paymentId);
      // The event id was not remembered: a correct delivery with it is applied.
      const good = await server.postWebhook(base(m.qrCodeId, paymentId), { eventId });
      expect(good.status).toBe(200);
      expect(good.body).toEqual({ ok: true, orderId: expect.any(String) });
    });
  });

  it('answers without waiting on a machine: offline, or connected and never acknowledging', async () => {
    // Offline: the answer comes back, the order waits for the machine.
    const offline = await server.createVendingMachine(nextMachineId('FAST'), 2000);
    const res = await server.postWebhook(qrCredited(offline.qrCodeId, 2000));
    expect(res.status).toBe(200);
    const order = await server.request('GET', `/v1/orders/${res.body.orderId}`);
    expect(order.body).toMatchObject({ status: 'PAID', dispatchPending: true });
    const machine = await server.request('GET', `/v1/machines/${offline.id}`);
    expect(machine.body.socketConnected).toBe(false);

    // Connected but silent: the webhook is answered before the command even reaches it,
    // and the order stays PAID / pending while the machine does not acknowledge.
    const silent = await server.createVendingMachine(nextMachineId('FAST'), 2000);
    const socket = machineSocket(server.url, silent.id, silent.key);
    sockets.push(socket);
    await connected(socket);
    const dispense = nextEvent<{ orderId: string; commandId: string }>(socket, 'machine:dispense');
    const paid = await server.postWebhook(qrCredited(silent.qrCodeId, 2000));
    expect(paid.status).toBe(200);
    expect(paid.body).toEqual({ ok: true, orderId: expect.any(String) });
    const command = await dispense;
    expect(command.orderId).toBe(paid.body.orderId);
    const pending = await server.request('GET', `/v1/orders/${paid.body.orderId}`);
    expect(pending.body).toMatchObject({ status: 'PAID', dispatchPending: true });
    socket.disconnect();
  });

  it.runIf(engine === 'postgres')(
    'a new payment is two statements: the machine, then every write as one statement (atomic without BEGIN)',
    async () => {
      const m = await server.createVendingMachine(nextMachineId('RT'), 2000);
      // The tenant's first payment creates its ledger accounts (a few statements more, once).
      expect((await server.postWebhook(qrCredited(m.qrCodeId, 2000))).status).toBe(200);
      // Every statement any connection of this process sends, by connection.
      const sent = new Map<object, string[]>();
      const query = pg.Client.prototype.query;
      const patched = function (this: object, ...args: unknown[]) {
        const first = args[0] as string | { text?: string };
        const text = typeof first === 'string' ? first : (first?.text ?? '');
        sent.set(this, [...(sent.get(this) ?? []), text]);
        return (query as (...a: unknown[]) => unknown).apply(this, args);
      };
      pg.Client.prototype.query = patched as typeof query;
      try {
        const paymentId = newPaymentId();
        const res = await server.postWebhook(qrCredited(m.qrCodeId, 2000, paymentId), {
          eventId: `evt_${paymentId}`,
        });
        expect(res.body).toEqual({ ok: true, orderId: expect.any(String) });
      } finally {
        pg.Client.prototype.query = query;
      }
      // On the connection that carried the payment's writes: the machine, then the writes, with
      // no BEGIN before and no COMMIT after (what follows is the job relay's own work).
      const all = [...sent.values()].find((statements) =>
        statements.some((t) => t.includes('"webhook_deliveries"')),
      )!;
      const end = all.findIndex((t) => t.includes('"webhook_deliveries"'));
      const tx = all.slice(end - 1, end + 1);
      expect(tx[0]).toMatch(/^select "id", .* from "machines" where "payment_qr_code_id" = \$1$/);
      expect(tx[1]!.slice(0, 40)).toBe('with w0 as (insert into "webhook_deliver');
      expect(all.slice(0, end - 1)).not.toContain('begin');
      expect(all.slice(end + 1)).not.toContain('commit');
      // Its row counts are checked inside it: a wrong one aborts the statement (nothing committed).
      expect(tx![1]).toMatch(/1 \/ \(case when .* then 1 else 0 end\) as ok$/);
      // The one batch holds the claims and every write of the payment.
      for (const table of [
        'payment_events',
        'orders',
        'order_events',
        'payments',
        'ledger_entries',
        // The site's revenue and the outside world: a balance slot each, not their account rows.
        'ledger_balance_slots',
        'commands',
        'outbox',
      ])
        expect(tx![1]).toContain(`"${table}"`);
      expect(tx![1]).not.toContain('update "ledger_accounts"');
    },
  );

  it('/metrics counts webhooks by outcome and duplicates', async () => {
    const before = await metrics();
    const w0 = counters(before, 'kioskhub_webhooks_total');
    const d0 = counters(before, 'kioskhub_webhook_duplicates_total').get('all') ?? 0;
    const get = (map: Map<string, number>, k: string) => map.get(k) ?? 0;

    const m = await server.createVendingMachine(nextMachineId('MET'), 2000);
    const paymentId = newPaymentId();
    const event = qrCredited(m.qrCodeId, 2000, paymentId);
    expect((await server.postWebhook(event)).status).toBe(200); // processed
    expect((await server.postWebhook(event)).body.duplicate).toBe(true); // duplicate
    expect((await server.postWebhook(event, { eventId: 'evt_met' })).body.duplicate).toBe(true); // duplicate
    expect((await server.postWebhook(qrCredited(m.qrCodeId, 2000), { signature: 'bad' })).status).toBe(401); // bad_signature
    expect((await server.postWebhook(qrCredited(m.qrCodeId, 2000), { signature: null })).status).toBe(401); // bad_signature
    expect((await server.postWebhook('not json')).status).toBe(400); // malformed
    expect((await server.postWebhook(paymentCaptured(newPaymentId(), 2000))).body.ignored).toBe(
      'EVENT_NOT_HANDLED',
    ); // not_handled
    expect((await server.postWebhook(qrCredited('qr_unknown_metrics', 2000))).body.ignored).toBe(
      'UNKNOWN_QR',
    ); // ignored
    expect((await server.postWebhook(qrCredited(m.qrCodeId, 1000))).status).toBe(200); // amount_mismatch

    const after = await metrics();
    expect(after).toContain('# TYPE kioskhub_webhooks_total counter');
    expect(after).toContain('# TYPE kioskhub_webhook_duplicates_total counter');
    const w1 = counters(after, 'kioskhub_webhooks_total');
    const d1 = counters(after, 'kioskhub_webhook_duplicates_total').get('all') ?? 0;
    expect(get(w1, 'processed') - get(w0, 'processed')).toBe(1);
    expect(get(w1, 'duplicate') - get(w0, 'duplicate')).toBe(2);
    expect(get(w1, 'bad_signature') - get(w0, 'bad_signature')).toBe(2);
    expect(get(w1, 'malformed') - get(w0, 'malformed')).toBe(1);
    expect(get(w1, 'not_handled') - get(w0, 'not_handled')).toBe(1);
    expect(get(w1, 'ignored') - get(w0, 'ignored')).toBe(1);
    expect(get(w1, 'amount_mismatch') - get(w0, 'amount_mismatch')).toBe(1);
    expect(d1 - d0).toBe(2);
    // On SQLite every applied webhook went through a group commit (duplicates too: each is a
    // transaction that claims its delivery); PostgreSQL commits each on its own.
    const groupEvents = (text: string) =>
      Number(/^kioskhub_commit_group_events_sum (\d+)/m.exec(text)?.[1] ?? 0);
    if (engine === 'sqlite') expect(groupEvents(after) - groupEvents(before)).toBeGreaterThanOrEqual(5);
    else expect(groupEvents(after)).toBe(0);
    // PostgreSQL counts its round trips, and the writes that travelled inside them (write-behind).
    const statements = (text: string, kind: string) =>
      Number(
        new RegExp(`^kioskhub_db_statements_total\\{kind="${kind}"\\} (\\d+)`, 'm').exec(text)?.[1] ?? NaN,
      );
    if (engine === 'sqlite') expect(after).not.toContain('kioskhub_db_statements_total');
    else {
      expect(statements(after, 'sent') - statements(before, 'sent')).toBeGreaterThan(0);
      // The processed payment alone holds its order, order event, payment, ledger entries and command.
      expect(statements(after, 'held') - statements(before, 'held')).toBeGreaterThanOrEqual(5);
    }
  });
});
