// The water kiosk simulator (the firmware's side of CONTRACTS §11) against the real server:
// an online dispense from verification to settlement, an outage served from the signed
// credential cache and uploaded once from the SD card on reconnect, and heartbeats recorded;
// with `--transport mqtt` (CONTRACTS §14) presence and heartbeats over the embedded broker.
import { mqttTopics } from '@kioskhub/protocol';
import { WaterKiosk } from '@kioskhub/water-simulator';
import { connectAsync } from 'mqtt';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { engines, eventually, qrCredited, startServer, tempDir, type TestServer } from './harness.js';

const TENANT = 'default';

async function addCustomer(
  server: TestServer,
  c: { phone: string; pin: string; creditMl?: number; subscriptionDays?: number; dailyLimitMl?: number },
) {
  const { customers, ledger } = server.kioskhub.services;
  return server.kioskhub.db.transaction().execute(async (tx) => {
    let row = await customers.create({ tenantId: TENANT, phone: c.phone, actor: 'test' }, tx);
    row = await customers.setPin(row, c.pin, 'test', tx);
    if (c.subscriptionDays || c.dailyLimitMl)
      await customers.repo.update(
        row.id,
        {
          ...(c.subscriptionDays
            ? {
                subscription_expires_at: new Date(Date.now() + c.subscriptionDays * 86_400_000).toISOString(),
              }
            : {}),
          ...(c.dailyLimitMl ? { daily_limit_ml: c.dailyLimitMl } : {}),
        },
        tx,
      );
    if (c.creditMl) {
      const issued = await ledger.account(tx, {
        tenantId: TENANT,
        ownerType: 'tenant',
        ownerId: TENANT,
        kind: 'water_issued',
        unit: 'ml',
      });
      const credit = await customers.waterCredit(tx, TENANT, row.id);
      await ledger.transfer(tx, {
        tenantId: TENANT,
        from: issued.id,
        to: credit.id,
        amount: c.creditMl,
        unit: 'ml',
        cause: { type: 'test', id: row.id },
      });
    }
    return row;
  });
}

async function creditMl(server: TestServer, customerId: string): Promise<number> {
  return server.kioskhub.db
    .transaction()
    .execute(
      async (tx) => (await server.kioskhub.services.customers.waterCredit(tx, TENANT, customerId)).balance,
    );
}

for (const engine of engines()) {
  describe(`water kiosk simulator against the server (${engine})`, () => {
    let server: TestServer;
    const sd = tempDir('water-sim-sd-');
    let kioskKey: string;
    let cacheSecret: string;
    let seq = 0;
    const newKiosk = (over: { url?: string; sdFile?: string } = {}) =>
      new WaterKiosk({
        url: over.url ?? server.url,
        kioskId: 'W01',
        key: kioskKey,
        cacheSecret,
        taps: 4,
        heartbeatMs: 0,
        sdCardPath: join(sd.path, over.sdFile ?? `sd-${++seq}.jsonl`),
        pulseTickMs: 0,
      });

    const logs: string[] = [];
    beforeAll(async () => {
      server = await startServer({
        engine,
        env: { MQTT_PORT: '0' },
        logStream: { write: (line: string) => void logs.push(line) },
      });
      kioskKey = (await server.createMachine('W01', { kind: 'water' })).key;
      const secret = await server.request('POST', '/v1/water/kiosks/W01/secret', {
        body: { reason: 'test' },
      });
      expect(secret.status, JSON.stringify(secret.body)).toBe(200);
      cacheSecret = secret.body.kioskSecret;
    });
    afterAll(async () => {
      await server?.close();
      sd.remove();
    });

    it('online: verification → flow-meter pulses → settlement under a unique kioskTxnId, once', async () => {
      const c = await addCustomer(server, { phone: '+254711000001', pin: '2468', creditMl: 20_000 });
      const kiosk = newKiosk();
      const pours: number[] = [];
      kiosk.on('pour', (e) => pours.push(e.pulses));
      const served = await kiosk.serve({
        phone: '+254711000001',
        pin: '2468',
        volumeMl: 5000,
        pourShare: 0.6,
      });
      expect(served).toMatchObject({ approved: true, offline: false, dispensedMl: 3000 });
      if (!served.approved) throw new Error('refused');
      expect(served.authorizationId).toBeTruthy();
      expect(served.settled).toEqual({ duplicate: false, creditsMl: 17_000 });
      expect(pours.at(-1)).toBe(1350); // 3 L at 450 pulses per litre
      expect(await creditMl(server, c.id)).toBe(17_000); // the rest of the 5 L hold was released

      // The firmware retries a settlement it got no answer to: counted once.
      const again = await kiosk.api.settle({
        authorizationId: served.authorizationId!,
        dispensedMl: 3000,
        kioskTxnId: served.kioskTxnId,
        tap: served.tap,
      });
      expect(again).toMatchObject({ ok: true, duplicate: true });
      expect(await creditMl(server, c.id)).toBe(17_000);

      const wrong = await kiosk.serve({ phone: '+254711000001', pin: '1111', volumeMl: 1000 });
      expect(wrong).toMatchObject({ approved: false, code: 'INVALID_PIN', offline: false });
      const unknown = await kiosk.serve({ phone: '+254711999999', pin: '1111', volumeMl: 1000 });
      expect(unknown).toMatchObject({ approved: false, code: 'UNKNOWN_CUSTOMER' });
      expect(kiosk.sd.entries()).toEqual([]);
    });

    it('offline: serves cached customers by PIN verifier, logs to the SD card, uploads once on reconnect', async () => {
      const a = await addCustomer(server, { phone: '+254711000002', pin: '1357', creditMl: 10_000 });
      const b = await addCustomer(server, {
        phone: '+254711000003',
        pin: '8642',
        subscriptionDays: 30,
        dailyLimitMl: 20_000,
      });
      const kiosk = newKiosk({ sdFile: 'outage.jsonl' });
      const trusted: boolean[] = [];
      kiosk.on('cache', (e) => trusted.push(e.trusted));
      await kiosk.start();
      expect(trusted).toEqual([true]);
      expect(kiosk.cache.size).toBeGreaterThanOrEqual(2);

      kiosk.goOffline();
      const poured = [
        await kiosk.serve({ phone: '+254711000002', pin: '1357', volumeMl: 4000 }),
        await kiosk.serve({ phone: '0711000003', pin: '8642', volumeMl: 5000, tap: 2 }),
        await kiosk.serve({ phone: '+254711000002', pin: '1357', volumeMl: 3000, pourShare: 0.5 }),
      ];
      expect(poured.map((r) => r.approved && r.offline)).toEqual([true, true, true]);
      // Refused offline without asking anyone: a wrong PIN, more than the cached credit, a stranger.
      expect(await kiosk.serve({ phone: '+254711000002', pin: '0000', volumeMl: 1000 })).toMatchObject({
        approved: false,
        code: 'INVALID_PIN',
        offline: true,
      });
      expect(await kiosk.serve({ phone: '+254711000002', pin: '1357', volumeMl: 5000 })).toMatchObject({
        approved: false,
        code: 'INSUFFICIENT_CREDIT',
      });
      expect(await kiosk.serve({ phone: '+254711888888', pin: '1357', volumeMl: 1000 })).toMatchObject({
        approved: false,
        code: 'UNKNOWN_CUSTOMER',
      });
      const card = kiosk.sd.entries();
      expect(card.map((t) => t.dispensedMl)).toEqual([4000, 5000, 1500]);
      expect(new Set(card.map((t) => t.kioskTxnId)).size).toBe(3);
      expect(await creditMl(server, a.id)).toBe(10_000); // the server knows nothing yet

      const report = await kiosk.goOnline();
      expect(report).toMatchObject({ sent: 3, applied: 3, duplicate: 0, rejected: [], left: 0 });
      expect(await creditMl(server, a.id)).toBe(10_000 - 5500);
      const bRows = await server.kioskhub.db
        .selectFrom('water_dispenses')
        .select(['dispensed_ml', 'kiosk_txn_id'])
        .where('customer_id', '=', b.id)
        .execute();
      expect(bRows.map((r) => Number(r.dispensed_ml))).toEqual([5000]);

      // Power cut after the upload but before the card was rewritten: the same lines go again.
      for (const t of card) kiosk.sd.append(t);
      const again = await kiosk.uploadBacklog();
      expect(again).toMatchObject({ sent: 3, applied: 0, duplicate: 3, left: 0 });
      expect(await creditMl(server, a.id)).toBe(10_000 - 5500);
      const all = await server.kioskhub.db
        .selectFrom('water_dispenses')
        .select('kiosk_txn_id')
        .where(
          'kiosk_txn_id',
          'in',
          card.map((t) => t.kioskTxnId),
        )
        .execute();
      expect(all).toHaveLength(3);
      kiosk.stop();
    });

    it('an unreachable server is an outage too: served from the cache, uploaded when it answers', async () => {
      const c = await addCustomer(server, { phone: '+254711000004', pin: '4321', creditMl: 8000 });
      const online = newKiosk({ sdFile: 'flaky.jsonl' });
      await online.refreshCache();
      // The same kiosk (same SD card) whose modem reaches nothing: a closed port.
      const cut = newKiosk({ url: 'http://127.0.0.1:9', sdFile: 'flaky.jsonl' });
      const body = await online.api.credentialCache();
      expect(cut.cache.apply(body)).toBe(true);
      const served = await cut.serve({ phone: '+254711000004', pin: '4321', volumeMl: 2000 });
      expect(served).toMatchObject({ approved: true, offline: true, settled: null });
      expect((await online.uploadBacklog()).applied).toBe(1);
      expect(await creditMl(server, c.id)).toBe(6000);
    });

    it('refuses a credential cache whose signature is not under its own secret', async () => {
      const kiosk = new WaterKiosk({
        url: server.url,
        kioskId: 'W01',
        key: kioskKey,
        cacheSecret: 'ab'.repeat(32),
        heartbeatMs: 0,
        sdCardPath: join(sd.path, 'wrong-secret.jsonl'),
        pulseTickMs: 0,
      });
      const trusted: boolean[] = [];
      kiosk.on('cache', (e) => trusted.push(e.trusted));
      await kiosk.refreshCache();
      expect(trusted).toEqual([false]);
      kiosk.goOffline();
      expect(await kiosk.serve({ phone: '+254711000004', pin: '4321', volumeMl: 500 })).toMatchObject({
        approved: false,
        code: 'UNKNOWN_CUSTOMER',
        offline: true,
      });
    });

    it('heartbeats are recorded with firmware, taps and cache version', async () => {
      const kiosk = newKiosk();
      await kiosk.refreshCache();
      kiosk.taps[1]!.status = 'fault';
      expect(await kiosk.heartbeat()).toBe(true);
      const list = await server.request('GET', '/v1/water/kiosks');
      expect(list.status).toBe(200);
      const w01 = (list.body.items as any[]).find((k) => k.machineId === 'W01');
      expect(w01).toMatchObject({
        status: 'ONLINE',
        firmware: 'kioskhub-water-sim/1.0.0',
        cacheVersion: kiosk.cache.version,
        signalDbm: -71,
      });
      expect(w01.taps).toHaveLength(4);
      expect(w01.taps[1]).toMatchObject({ tap: 2, status: 'fault' });
    });

    it('over MQTT: online by birth and will, heartbeats as telemetry, commands refused for good; the rest stays HTTP', async () => {
      const w = await server.createMachine('W02', { kind: 'water' });
      const brokerUrl = `mqtt://127.0.0.1:${server.kioskhub.mqtt!.port()}`;
      await addCustomer(server, { phone: '+254711000009', pin: '9753', creditMl: 8_000 });
      const kiosk = new WaterKiosk({
        url: server.url,
        kioskId: 'W02',
        key: w.key,
        taps: 3,
        heartbeatMs: 0,
        sdCardPath: join(sd.path, 'sd-mqtt.jsonl'),
        pulseTickMs: 0,
        firmware: 'water-fw-2.1.0',
        mqtt: { url: brokerUrl },
      });
      const machine = async () => (await server.request('GET', '/v1/machines/W02')).body;
      const kioskRow = async () =>
        ((await server.request('GET', '/v1/water/kiosks')).body.items as any[]).find(
          (k) => k.machineId === 'W02',
        );
      try {
        await kiosk.start(); // connects, born, and its first heartbeat goes as telemetry
        await eventually(async () => (await machine()).socketConnected === true, 5_000, 'W02 online');
        expect((await machine()).firmware).toBe('water-fw-2.1.0');
        // (The credential cache fetched at start makes the kiosk's row; the heartbeat fills it.)
        const first = await eventually(
          async () => ((await kioskRow())?.lastHeartbeatAt ? kioskRow() : undefined),
          5_000,
          'W02 heartbeat recorded',
        );
        expect(first).toMatchObject({ status: 'ONLINE', firmware: 'water-fw-2.1.0', signalDbm: -71 });
        expect(first.taps).toEqual([1, 2, 3].map((tap) => ({ tap, status: 'idle', totalMl: 0 })));

        // Verification and settlement are HTTP whatever the transport.
        const served = await kiosk.serve({ phone: '+254711000009', pin: '9753', volumeMl: 2000 });
        expect(served).toMatchObject({ approved: true, offline: false, settled: { creditsMl: 6_000 } });
        kiosk.taps[2]!.status = 'fault';
        expect(await kiosk.heartbeat()).toBe(true);
        const later = await eventually(
          async () => ((await kioskRow())?.taps[2]?.status === 'fault' ? kioskRow() : undefined),
          5_000,
          'second heartbeat',
        );
        expect(later.taps[served.approved ? served.tap - 1 : 0].totalMl).toBe(2000);

        // A command reaching a water kiosk is refused for good (never re-sent): the order fails.
        const qrCodeId = `qr_W02_${Date.now()}`;
        const profile = await server.request('PUT', '/v1/machines/W02/payment-profile', {
          body: {
            provider: 'razorpay',
            qrCodeId,
            fixedAmountPaise: 2000,
            qrImageUrl: 'https://rzp.io/i/W02',
          },
        });
        expect(profile.status).toBe(200);
        const paid = await server.postWebhook(qrCredited(qrCodeId, 2000));
        const orderId = paid.body.orderId as string;
        await eventually(
          async () => (await server.request('GET', `/v1/orders/${orderId}`)).body.status === 'FAILED',
          5_000,
          'order refused by the kiosk',
        );
        expect((await server.request('GET', `/v1/orders/${orderId}`)).body.failureCode).toBe('UNSUPPORTED');
        expect(kiosk.mqtt!.answered.size).toBe(1);

        // The modem drops: the broker's will marks it offline; heartbeats fail until it is back.
        kiosk.goOffline();
        await eventually(async () => (await machine()).status === 'OFFLINE', 10_000, 'W02 offline');
        expect(await kiosk.heartbeat()).toBe(false);

        // Telemetry that is not a §11 heartbeat is logged and changes nothing.
        const before = await kioskRow();
        const raw = await connectAsync(brokerUrl, {
          clientId: 'W02',
          username: 'W02',
          password: w.key,
          reconnectPeriod: 0,
        });
        await raw.publishAsync(
          mqttTopics.telemetry('W02'),
          JSON.stringify({ status: 'IDLE', firmware: 'x', taps: 'all fine' }),
          { qos: 1 },
        );
        await eventually(
          () => logs.some((l) => l.includes('bad message from a device ignored') && l.includes('W02')),
          5_000,
          'bad telemetry logged',
        );
        await raw.endAsync();
        expect(await kioskRow()).toEqual(before);

        await kiosk.goOnline();
        await eventually(async () => (await machine()).socketConnected === true, 5_000, 'W02 back');
      } finally {
        kiosk.stop();
      }
    });
  });
}
