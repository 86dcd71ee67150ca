// Field devices built for earlier systems, against the real server, speaking exactly as their
// public code does (read for the wire format only):
// - the vending machine of the earlier vending backend (Socket.IO v1 on `/`,
//   machine-simulator/src/index.js): reconnects by itself, and socket.io-client flushes what it
//   emitted while the link was down *before* its own `connect` handler sends machine:connect;
// - the restaurant kiosk's Raspberry Pi peripherals client (kiosk_peripherals.py): the cash reader
//   (X-API-Key, major-unit amounts, up to 3 tries on any answer but 200, no eventId) and the
//   receipt printer (no key at all, reads `receiptData.{jobId, receipt}`, prints amounts with
//   Python's `:.2f`, which needs numbers);
// - the water kiosk of the earlier hardware server (`POST /dispense-verification`, whose
//   documented request has no `timestamp`) and the Africa's Talking USSD gateway (form posts,
//   `CON `/`END ` text answers).
import { randomBytes } from 'node:crypto';
import { io, type Socket } from 'socket.io-client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { eventually, engines, qrCredited, startServer, type TestServer } from './harness.js';
import { createBurgerSite } from './restaurant-fixtures.js';

const wait = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The earlier vending backend's machine, as machine-simulator/src/index.js is written: websocket
 * only, `reconnection: true`, machine:connect (with an ack) on every `connect`, machine:done with
 * an ack after a dispense delay, heartbeats without an ack and only while connected. Only the
 * timings are shortened; `onDispense` lets a test act while the machine is "dispensing".
 */
class FieldVendingMachine {
  readonly socket: Socket;
  readonly connectAcks: any[] = [];
  readonly dispenses: any[] = [];
  readonly doneAcks: { orderId: string; ack: any }[] = [];
  private readonly heartbeat: NodeJS.Timeout;

  constructor(
    url: string,
    machineId: string,
    token: string,
    private readonly options: { dispenseDelayMs: number; onDispense?: () => void },
  ) {
    this.socket = io(url, {
      transports: ['websocket'],
      reconnection: true,
      reconnectionDelay: 300,
      reconnectionDelayMax: 400,
      forceNew: true,
    });
    this.socket.on('connect', () => {
      this.socket.emit('machine:connect', { machineId, token }, (ack: any) => this.connectAcks.push(ack));
    });
    this.socket.on('machine:dispense', async (payload: any = {}) => {
      const { orderId } = payload;
      if (!orderId) return;
      this.dispenses.push(payload);
      this.options.onDispense?.();
      await wait(this.options.dispenseDelayMs);
      this.socket.emit('machine:done', { orderId, result: 'SUCCESS' }, (ack: any) =>
        this.doneAcks.push({ orderId, ack }),
      );
    });
    this.heartbeat = setInterval(() => {
      if (!this.socket.connected) return;
      this.socket.emit('machine:heartbeat', { machineId, ts: Date.now() });
    }, 200);
  }

  /** The link drops (a network cut, not a server decision): the client reconnects by itself. */
  dropLink(): void {
    (this.socket.io as unknown as { engine: { close(): void } }).engine.close();
  }

  close(): void {
    clearInterval(this.heartbeat);
    this.socket.disconnect();
  }
}

describe.each(engines())('earlier vending machines on Socket.IO v1 (%s)', (engine) => {
  let server: TestServer;
  const machines: FieldVendingMachine[] = [];
  const order = async (id: string) => (await server.request('GET', `/v1/orders/${id}`)).body;
  const pay = async (qrCodeId: string): Promise<string> => {
    const res = await server.postWebhook(qrCredited(qrCodeId, 2000));
    expect(res.status).toBe(200);
    return res.body.orderId as string;
  };
  const online = async (m: FieldVendingMachine) =>
    eventually(() => m.connectAcks.find((a) => a?.ok === true), 5_000, 'machine:connect ack');

  beforeAll(async () => {
    server = await startServer({ engine });
  });
  afterEach(() => {
    for (const m of machines.splice(0)) m.close();
  });
  afterAll(async () => {
    await server?.close();
  });

  it('connects, dispenses a paid order and completes it; a repeated machine:done is acknowledged again', async () => {
    const vm = await server.createVendingMachine('M01');
    const m = new FieldVendingMachine(server.url, vm.id, vm.key, { dispenseDelayMs: 20 });
    machines.push(m);
    expect(await online(m)).toEqual({ ok: true, machineId: 'M01' });
    const orderId = await pay(vm.qrCodeId);
    const done = await eventually(() => m.doneAcks.find((d) => d.orderId === orderId), 5_000, 'done ack');
    // index.js: `if (!ack?.ok) { console.error(... ack?.error) }`
    expect(done.ack).toEqual({ ok: true, orderId });
    expect(m.dispenses).toEqual([{ type: 'DISPENSE', orderId }]);
    expect((await order(orderId)).status).toBe('COMPLETED');
    // The earlier backend's contract: "sending it twice for the same orderId is safe".
    const again = await m.socket.timeout(5_000).emitWithAck('machine:done', { orderId, result: 'SUCCESS' });
    expect(again).toEqual({ ok: true, orderId });
    expect((await order(orderId)).status).toBe('COMPLETED');
  });

  it('a result reported while the link was down arrives before machine:connect on the new socket, and still counts', async () => {
    const vm = await server.createVendingMachine('M02');
    let dropped = false;
    const m: FieldVendingMachine = new FieldVendingMachine(server.url, vm.id, vm.key, {
      dispenseDelayMs: 30,
      // The link drops while the machine dispenses: its machine:done is emitted while disconnected,
      // kept by socket.io-client, and sent first thing on the next connection.
      onDispense: () => {
        if (dropped) return;
        dropped = true;
        m.dropLink();
      },
    });
    machines.push(m);
    await online(m);
    const orderId = await pay(vm.qrCodeId);
    const done = await eventually(() => m.doneAcks.find((d) => d.orderId === orderId), 10_000, 'done ack');
    expect(dropped).toBe(true);
    // It did reconnect and register again.
    await eventually(() => m.connectAcks.filter((a) => a?.ok === true).length === 2, 5_000, 'reconnected');
    expect(done.ack).toEqual({ ok: true, orderId });
    expect((await order(orderId)).status).toBe('COMPLETED');
    expect(m.dispenses).toHaveLength(1); // never dispensed twice
    // And the machine goes on serving: the next order is dispensed and completed.
    const next = await pay(vm.qrCodeId);
    await eventually(async () => (await order(next)).status === 'COMPLETED', 5_000, 'next order completed');
  });

  it('a machine:done before machine:connect with no machine:connect following is still MACHINE_NOT_REGISTERED', async () => {
    const s = io(server.url, { transports: ['websocket'], reconnection: false, forceNew: true });
    try {
      await new Promise<void>((resolve) => s.once('connect', () => resolve()));
      const ack = await s
        .timeout(5_000)
        .emitWithAck('machine:done', { orderId: '01JNOORDER0000000000000000', result: 'SUCCESS' });
      expect(ack).toMatchObject({ ok: false, error: { code: 'MACHINE_NOT_REGISTERED' } });
    } finally {
      s.disconnect();
    }
  });
});

describe.each(engines())('restaurant kiosk peripherals (kiosk_peripherals.py) (%s)', (engine) => {
  let server: TestServer;
  let keys: Record<string, string>;
  const SITE = '/sites/manila1';

  /** requests' `json=` body: Python's json.dumps (", " and ": " separators, floats as 100.0). */
  const py = (payload: Record<string, string | number>) =>
    `{${Object.entries(payload)
      .map(
        ([k, v]) => `"${k}": ${typeof v === 'number' ? (Number.isInteger(v) ? `${v}.0` : `${v}`) : `"${v}"`}`,
      )
      .join(', ')}}`;
  const cashUnit = (method: string, path: string, raw?: string) =>
    server.request(method, SITE + path, {
      token: null,
      headers: { 'x-api-key': keys['CASH1']!, ...(raw ? { 'content-type': 'application/json' } : {}) },
      ...(raw ? { raw } : {}),
    });
  /** The printer client sends no key and, for "complete", no body. */
  const printer = (method: string, path: string, raw?: string) =>
    server.request(method, SITE + path, {
      token: null,
      ...(raw ? { raw, headers: { 'content-type': 'application/json' } } : {}),
    });
  const kioskOrder = async () => {
    const keyed = { token: null, headers: { 'x-api-key': keys['KIOSK1']! } } as const;
    const created = await server.request('POST', '/v1/orders', {
      ...keyed,
      body: { items: [{ sku: 'burger', qty: 1 }] },
    });
    expect(created.status).toBe(201);
    const orderNumber = created.body.orderNumber as string;
    const init = await server.request('POST', '/api/cash-payment/init', {
      ...keyed,
      body: { orderNumber, totalAmount: 150 },
    });
    expect(init.status).toBe(200);
    return orderNumber;
  };

  beforeAll(async () => {
    server = await startServer({ engine });
    // No address or phone: the printer does `data.get('restaurantAddress', '') + '\n'`.
    keys = await createBurgerSite(server, {
      site: { printQueueOpen: true, keylessCashCancel: true },
      machines: { KIOSK1: 'kiosk', CASH1: 'cash' },
    });
  });
  afterAll(async () => {
    await server?.close();
  });

  it('cash reader: polls sessions, reports bills in major units, sees isComplete; the printer prints and reports', async () => {
    const orderNumber = await kioskOrder();

    // poll_active_sessions: data.get('success'); s['orderNumber']; session_data['totalRequired'];
    // session['amountInserted'].
    const polled = await cashUnit('GET', '/api/cash-payment/active-sessions');
    expect(polled.status).toBe(200);
    expect(polled.body.success).toBe(true);
    const session = polled.body.sessions.find((s: any) => s.orderNumber === orderNumber);
    expect(session).toMatchObject({ orderNumber, totalRequired: 150, amountInserted: 0 });

    // send_cash_update: {"orderNumber": …, "amountAdded": float}; reads data.get('isComplete').
    const bill = await cashUnit('POST', '/api/cash-payment/update', py({ orderNumber, amountAdded: 100 }));
    expect(bill.status).toBe(200);
    expect(bill.body).toMatchObject({ success: true, amountInserted: 100, isComplete: false });
    const coins = await cashUnit('POST', '/api/cash-payment/update', py({ orderNumber, amountAdded: 50.25 }));
    expect(coins.status).toBe(200);
    expect(coins.body).toMatchObject({ amountInserted: 150.25, isComplete: true, change: 0.25 });
    const after = await cashUnit('GET', '/api/cash-payment/active-sessions');
    expect(after.body.sessions.map((s: any) => s.orderNumber)).not.toContain(orderNumber);

    // check_for_print_jobs: 200 → data.get('hasPrintJob') → data.get('receiptData'); 204 → none.
    const next = await printer('GET', '/api/receipt/queue/next');
    expect(next.status).toBe(200);
    expect(next.body.hasPrintJob).toBe(true);
    const job = next.body.receiptData;
    expect(typeof job.jobId).toBe('string');
    // The later kiosk_peripherals.py reads the same at the top level (`job_data.get('jobId')`).
    expect(next.body.jobId).toBe(job.jobId);
    expect(next.body.receipt).toEqual(job.receipt);
    const receipt = job.receipt;
    // The printer concatenates these with '\n' (a null would raise TypeError).
    for (const field of [
      'restaurantName',
      'restaurantAddress',
      'restaurantPhone',
      'orderNumber',
      'orderDate',
    ])
      expect(typeof receipt[field], field).toBe('string');
    expect(receipt.orderNumber).toBe(orderNumber);
    // `{price:>7.2f}`, `{data['amountPaid']:.2f}`: numbers, in major units.
    expect(receipt.items).toEqual([{ productName: 'Burger', quantity: 1, lineTotal: 150 }]);
    expect(receipt).toMatchObject({
      subTotal: 150,
      tax: 0,
      totalAmount: 150,
      amountPaid: 150.25,
      change: 0.25,
    });
    for (const field of ['subTotal', 'tax', 'totalAmount', 'amountPaid', 'change'])
      expect(typeof receipt[field], field).toBe('number');
    expect(typeof receipt.paymentMethod).toBe('string');
    expect((await printer('GET', '/api/receipt/queue/next')).status).toBe(204);

    // mark_job_completed: a POST without a body; success is `status_code == 200`.
    const completed = await printer('POST', `/api/receipt/queue/complete/${job.jobId}`);
    expect(completed.status).toBe(200);
    // And again (a retry after a lost answer) is still 200.
    expect((await printer('POST', `/api/receipt/queue/complete/${job.jobId}`)).status).toBe(200);
  });

  it('printer: a failed print is reported with {"error": "Printing failed"} and the receipt comes back', async () => {
    const orderNumber = await kioskOrder();
    expect(
      (await cashUnit('POST', '/api/cash-payment/update', py({ orderNumber, amountAdded: 200 }))).body
        .isComplete,
    ).toBe(true);
    const first = await printer('GET', '/api/receipt/queue/next');
    expect(first.status).toBe(200);
    const jobId = first.body.receiptData.jobId as string;
    const failed = await printer(
      'POST',
      `/api/receipt/queue/failed/${jobId}`,
      '{"error": "Printing failed"}',
    );
    expect(failed.status).toBe(200);
    const again = await printer('GET', '/api/receipt/queue/next');
    expect(again.status).toBe(200);
    expect(again.body.receiptData.jobId).toBe(jobId);
    expect(again.body.receiptData.receipt.orderNumber).toBe(orderNumber);
    expect((await printer('POST', `/api/receipt/queue/complete/${jobId}`)).status).toBe(200);
  });

  // send_cash_update tries up to 3 times on any answer but 200 (`if attempt < max_retries - 1:
  // time.sleep(2); continue`) and sends no eventId, so a retry cannot be told from a second coin.
  // The earlier server answered a bill for a paid order with 400 and changed nothing; Kioskhub
  // records such money as unallocated (never dropped) and answers 409, so one late ₱20 coin is
  // reported three times. Nothing is dropped: the two repeats name the first report, and staff who
  // count the cash box void them; the site's unallocated cash is then ₱20.
  it('a late coin retried 3 times by the cash reader (409 each time): the repeats are flagged and can be voided', async () => {
    const orderNumber = await kioskOrder();
    await cashUnit('POST', '/api/cash-payment/update', py({ orderNumber, amountAdded: 150 }));
    for (let attempt = 0; attempt < 3; attempt += 1) {
      const late = await cashUnit('POST', '/api/cash-payment/update', py({ orderNumber, amountAdded: 20 }));
      expect(late.status).toBe(409);
    }
    const list = async () =>
      ((await server.request('GET', '/v1/cash/unallocated?limit=200')).body.items as any[])
        .filter((u) => u.orderNumber === orderNumber)
        .reverse();
    const parked = await list();
    expect(parked.map((u) => u.amount)).toEqual([20, 20, 20]);
    const [first, ...repeats] = parked;
    expect(first.possibleRepeatOf).toBeNull();
    expect(repeats.map((u) => u.possibleRepeatOf)).toEqual([first.id, first.id]);
    const alerts = (await server.request('GET', '/v1/alerts?limit=200')).body.items as any[];
    const told = alerts.filter((a) => a.kind === 'UNALLOCATED_CASH' && a.message.includes(orderNumber));
    expect(told.filter((a) => a.message.includes(`probably a repeat of ${first.id}`))).toHaveLength(2);

    const unallocatedBalance = async () =>
      (
        await server.request(
          'GET',
          '/v1/ledger/accounts?ownerType=site&ownerId=manila1&kind=unallocated_cash&unit=PHP',
        )
      ).body.items[0]?.balance ?? 0;
    const before = await unallocatedBalance();
    for (const u of repeats) {
      const voided = await server.request('POST', `/v1/cash/unallocated/${u.id}/resolve`, {
        body: { action: 'void', note: 'cash box holds one ₱20 coin: a repeated report' },
      });
      expect(voided.status).toBe(200);
      expect(voided.body).toMatchObject({ status: 'VOID', possibleRepeatOf: first.id });
    }
    expect(await unallocatedBalance()).toBe(before - 4000);
    expect((await list()).map((u) => u.status)).toEqual(['OPEN', 'VOID', 'VOID']);
    const again = await server.request('POST', `/v1/cash/unallocated/${repeats[0].id}/resolve`, {
      body: { action: 'void', note: 'twice' },
    });
    expect(again.status).toBe(409);
    const audit = (await server.request('GET', `/v1/audit?subjectId=${repeats[0].id}`)).body.items as any[];
    expect(audit.map((r) => r.action)).toEqual(['unallocated_cash.void', 'unallocated_cash.recorded']);
  });

  // FINDING (served when the site opts in): arduino_cash_reader.py (the standalone cash reader of
  // the same kiosk) cancels when the acceptor sends "CANCEL":
  // `self.session.post(f"{self.api_url}/api/cash-payment/cancel/{order_number}", timeout=5)`,
  // without the X-API-Key it sends on every other call; the earlier server checked no key on cancel
  // (ValidateApiKey() only guards /update). Kioskhub answers that 401 unless the site has
  // `keylessCashCancel: true` (this one does) and the reader's api_url is /sites/<site id>: then the
  // site's own sessions are cancelled key-less, audited as `legacy-cash-reader`
  // (keyless-cash-cancel.test.ts covers the refusals).
  it('the cash reader’s key-less cancel (the acceptor’s CANCEL) cancels the session of a site that opted in', async () => {
    const orderNumber = await kioskOrder();
    await cashUnit('POST', '/api/cash-payment/update', py({ orderNumber, amountAdded: 100 }));
    const cancelled = await server.request('POST', `${SITE}/api/cash-payment/cancel/${orderNumber}`, {
      token: null,
    });
    expect(cancelled.status).toBe(200);
    expect(cancelled.body).toMatchObject({ success: true, amountReturned: 100 });
    // The reader's next poll_active_sessions drops it.
    const polled = await cashUnit('GET', '/api/cash-payment/active-sessions');
    expect(polled.body.sessions.map((s: any) => s.orderNumber)).not.toContain(orderNumber);
  });
});

describe.each(engines())('earlier water kiosks and the USSD gateway (%s)', (engine) => {
  let server: TestServer;
  let kioskKey: string;
  const AT_KEY = `at-callback-${randomBytes(8).toString('hex')}`;
  const phone = `+2547${String(randomBytes(4).readUInt32BE(0) % 100_000_000).padStart(8, '0')}`;

  /** Africa's Talking posts each hop as a form; the whole input so far is in `text`. */
  const ussd = async (sessionId: string, text: string) => {
    const res = await fetch(`${server.url}/webhooks/africastalking/ussd?key=${AT_KEY}`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded; charset=UTF-8' },
      body: new URLSearchParams({ sessionId, serviceCode: '*384*7#', phoneNumber: phone, text }).toString(),
    });
    return { status: res.status, type: res.headers.get('content-type') ?? '', text: await res.text() };
  };
  const verify = (body: unknown) =>
    server.request('POST', '/dispense-verification', {
      body,
      token: null,
      headers: { 'x-api-key': kioskKey },
    });

  beforeAll(async () => {
    server = await startServer({ engine, env: { AT_CALLBACK_KEY: AT_KEY } });
    kioskKey = (await server.createMachine('KIOSK001', { kind: 'water' })).key;
  });
  afterAll(async () => {
    await server?.close();
  });

  it('USSD registration (CON/END as text/plain), then the kiosk verifies that PIN with the README’s request, which has no timestamp', async () => {
    const session = `ATUid_${randomBytes(6).toString('hex')}`;
    const screens: string[] = [];
    for (const text of ['', '1', '1234', '1234*1234', '1234*1234*1']) {
      const res = await ussd(session, text);
      expect(res.status).toBe(200);
      expect(res.type).toMatch(/^text\/plain/);
      screens.push(res.text);
    }
    expect(screens.slice(0, -1).every((s) => s.startsWith('CON '))).toBe(true);
    expect(screens.at(-1)).toMatch(/^END Registration complete!/);

    const customer = (await server.request('GET', `/v1/customers?query=${encodeURIComponent(phone)}`)).body
      .items[0];
    expect(customer).toBeDefined();
    const credit = await server.request('POST', `/v1/customers/${customer.id}/credits`, {
      body: { deltaMl: 20_000, reason: 'test top-up' },
    });
    expect(credit.status).toBe(200);

    // water-kiosk-hardware-server README, "Request": no timestamp. The earlier server required
    // only kiosk_id, user_id and pin (`if not all([kiosk_id, phone_number, pin])`).
    const readme = { kiosk_id: 'KIOSK001', user_id: phone, pin: '1234', volume_ml: 500 };
    const first = await verify(readme);
    expect(first.status).toBe(200);
    expect(first.body).toMatchObject({
      type: 'dispense_response',
      user_id: phone,
      approved: true,
      kiosk_id: 'KIOSK001',
      volume_ml: 500,
      user_data: { phone_number: phone, account_id: customer.accountId, active: true },
    });
    expect(typeof first.body.reason).toBe('string');
    expect(typeof first.body.timestamp).toBe('string');
    expect(first.body).not.toHaveProperty('pin');
    // Without a timestamp the kiosk cannot mark a retry: each request is a new authorization.
    const second = await verify(readme);
    expect(second.status).toBe(200);
    expect(second.body.approved).toBe(true);
    expect(second.body.authorization_id).not.toBe(first.body.authorization_id);
    const wrong = await verify({ ...readme, pin: '9999' });
    expect(wrong.status).toBe(200);
    expect(wrong.body).toMatchObject({ approved: false, reason: 'Invalid PIN' });
    // Each settles on its own.
    for (const [i, auth] of [first.body.authorization_id, second.body.authorization_id].entries()) {
      const settled = await server.request('POST', '/v1/water/dispenses', {
        token: null,
        headers: { 'x-api-key': kioskKey },
        body: { authorizationId: auth, dispensedMl: 500, kioskTxnId: `readme-${i}` },
      });
      expect(settled.status).toBe(200);
    }
    const after = await server.request('GET', `/v1/customers/${customer.id}`);
    expect(after.body.creditsMl).toBe(19_000);
  });

  // FINDING (not fixed: a security decision). The earlier hardware server checked no credential
  // at all: `dispense_verification()` reads the JSON body and nothing else, so its kiosks send no
  // key. Kioskhub answers them 401 (approved: false). Serving them would mean an unauthenticated
  // PIN oracle (10,000 PINs, every customer lockable by anyone), so it needs an owner's decision,
  // e.g. an opt-in per kiosk like the key-less printers' `printQueueOpen`.
  it.skip('a kiosk of the earlier hardware server, which sends no key, is served', async () => {
    const res = await server.request('POST', '/dispense-verification', {
      token: null,
      body: { kiosk_id: 'KIOSK001', user_id: phone, pin: '1234', volume_ml: 500 },
    });
    expect(res.status).toBe(200);
  });
});
