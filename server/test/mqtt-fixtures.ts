// MQTT devices for the transport tests (CONTRACTS §14): real MQTT.js clients whose every report
// is decided by the test, the suite setup every broker shares (a server per engine, devices closed
// after each test) and the scenarios both brokers (embedded, Mosquitto) must pass.
import { mqttTopics, type MqttCommand } from '@kioskhub/protocol';
import { connectAsync, type MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { engines, eventually, qrCredited, startServer, type TestServer } from './harness.js';

export class MqttDevice {
  readonly commands: MqttCommand[] = [];
  readonly acks: string[][] = [];
  closedAt: number | undefined;

  private constructor(
    readonly client: MqttClient,
    readonly id: string,
    readonly bootId: string,
    onCommand?: (command: MqttCommand) => void,
  ) {
    client.on('message', (topic, payload) => {
      const body = JSON.parse(payload.toString('utf8')) as unknown;
      if (topic.startsWith(`${mqttTopics.downPrefix(id)}cmd/`)) {
        this.commands.push(body as MqttCommand);
        onCommand?.(body as MqttCommand);
      } else if (topic === mqttTopics.eventAck(id)) this.acks.push((body as { eventIds: string[] }).eventIds);
    });
    client.on('close', () => (this.closedAt ??= Date.now()));
  }

  /**
   * Connects as the machine, subscribes to its down/ topics and publishes its birth. `onCommand`
   * sees every command as it arrives (before this resolves, too).
   */
  static async connect(
    url: string,
    id: string,
    key: string,
    options: {
      clientId?: string;
      username?: string;
      birth?: boolean;
      firmware?: string;
      /** Named in birth and will; new per connection unless the test picks one. */
      bootId?: string;
      onCommand?: (command: MqttCommand) => void;
    } = {},
  ): Promise<MqttDevice> {
    const bootId = options.bootId ?? `boot-${Math.random().toString(36).slice(2, 10)}`;
    const client = await connectAsync(url, {
      clientId: options.clientId ?? id,
      username: options.username ?? id,
      password: key,
      clean: true,
      reconnectPeriod: 0,
      connectTimeout: 5_000,
      will: {
        topic: mqttTopics.status(id),
        payload: Buffer.from(JSON.stringify({ online: false, bootId })),
        qos: 1,
        retain: true,
      },
    });
    const device = new MqttDevice(client, id, bootId, options.onCommand);
    await client.subscribeAsync(`${mqttTopics.downPrefix(id)}#`, { qos: 1 });
    if (options.birth !== false) await device.birth(options.firmware);
    return device;
  }

  birth(firmware = 'esp-1.0.0'): Promise<unknown> {
    return this.client.publishAsync(
      mqttTopics.status(this.id),
      JSON.stringify({ online: true, firmware, bootId: this.bootId }),
      { qos: 1, retain: true },
    );
  }

  publish(topic: string, body: unknown, qos: 0 | 1 = 1): Promise<unknown> {
    return this.client.publishAsync(topic, typeof body === 'string' ? body : JSON.stringify(body), { qos });
  }

  report(commandId: string, body: Record<string, unknown>): Promise<unknown> {
    return this.publish(mqttTopics.commandReport(this.id, commandId), body);
  }

  nth(n: number, timeoutMs = 10_000): Promise<MqttCommand> {
    return eventually(() => this.commands[n], timeoutMs, `command #${n + 1} on ${this.id}`);
  }

  /** Ends the connection without a DISCONNECT (the broker publishes the will). */
  drop(): void {
    this.client.stream.destroy();
    this.client.end(true);
  }

  async close(): Promise<void> {
    await this.client.endAsync(true).catch(() => undefined);
  }
}

export interface MqttContext {
  server(): TestServer;
  brokerUrl(): string;
  /** Ack timeout the server was started with (ms). */
  ackTimeoutMs: number;
  /** The server's log lines so far. */
  logs(): string[];
}

/** A broker for a suite: the server's environment for it, and where devices connect. */
export interface SuiteBroker {
  env: Record<string, string>;
  deviceUrl(server: TestServer): string;
  stop(): Promise<void>;
}

export const embeddedBroker = async (): Promise<SuiteBroker> => ({
  env: { MQTT_PORT: '0' },
  deviceUrl: (server) => `mqtt://127.0.0.1:${server.kioskhub.mqtt!.port()}`,
  stop: async () => undefined,
});

const SUITE_ACK_TIMEOUT_MS = 400;

/**
 * A describe block per database engine with a server on `broker` (started before the server,
 * stopped after it) and the devices a test opened closed after it; `body` declares the tests.
 */
export function describeMqtt(
  title: string,
  options: { broker: () => Promise<SuiteBroker>; env?: Record<string, string>; skip?: boolean },
  body: (ctx: MqttContext, devices: MqttDevice[]) => void,
): void {
  describe.skipIf(options.skip ?? false).each(engines())(`${title} (%s)`, (engine) => {
    let broker: SuiteBroker | undefined;
    let server: TestServer;
    const devices: MqttDevice[] = [];
    const logs: string[] = [];
    const logStream = { write: (line: string) => void logs.push(line) };
    beforeAll(async () => {
      broker = await options.broker();
      server = await startServer({
        engine,
        logStream,
        env: { ...broker.env, DISPATCH_ACK_TIMEOUT_MS: String(SUITE_ACK_TIMEOUT_MS), ...options.env },
      });
    });
    afterEach(async () => {
      await Promise.all(devices.splice(0).map((d) => d.close()));
    });
    afterAll(async () => {
      await server?.close();
      await broker?.stop();
    });
    body(
      {
        server: () => server,
        brokerUrl: () => broker!.deviceUrl(server),
        ackTimeoutMs: SUITE_ACK_TIMEOUT_MS,
        logs: () => logs,
      },
      devices,
    );
  });
}

/** Short command expiry for `expiryScenario`. */
export const EXPIRY_ENV = { COMMAND_EXPIRY_MS: '1500', DISPATCH_RESULT_TIMEOUT_MS: '2000' };

async function pay(server: TestServer, qrCodeId: string): Promise<string> {
  const res = await server.postWebhook(qrCredited(qrCodeId, 2000));
  expect(res.status).toBe(200);
  return res.body.orderId as string;
}

const orderOf = async (server: TestServer, id: string) =>
  (await server.request('GET', `/v1/orders/${id}`)).body;
const machineOf = async (server: TestServer, id: string) =>
  (await server.request('GET', `/v1/machines/${id}`)).body;

/** The scenarios every broker must pass; `prefix` keeps machine ids apart between suites. */
export function mqttScenarios(ctx: MqttContext, prefix: string, devices: MqttDevice[]): void {
  const track = (d: MqttDevice) => (devices.push(d), d);
  const connect = async (id: string, key: string) =>
    track(await MqttDevice.connect(ctx.brokerUrl(), id, key));

  it('refuses a wrong key, another machine’s key, an unknown machine and a client id that is not the machine', async () => {
    const a = await ctx.server().createMachine(`${prefix}AUTH1`);
    const b = await ctx.server().createMachine(`${prefix}AUTH2`);
    const attempts = [
      MqttDevice.connect(ctx.brokerUrl(), a.id, 'mk_wrong_key_0000000000000000000000'),
      MqttDevice.connect(ctx.brokerUrl(), a.id, b.key),
      MqttDevice.connect(ctx.brokerUrl(), `${prefix}NOPE`, a.key),
      MqttDevice.connect(ctx.brokerUrl(), a.id, a.key, { clientId: `${prefix}OTHER` }),
    ];
    const outcomes = await Promise.all(
      attempts.map((p) =>
        p.then(
          (d) => (track(d), 'connected'),
          () => 'refused',
        ),
      ),
    );
    expect(outcomes).toEqual(['refused', 'refused', 'refused', 'refused']);
    expect((await machineOf(ctx.server(), a.id)).status).toBe('OFFLINE');
  });

  it('is online from its connection and offline after it goes away', async () => {
    const m = await ctx.server().createMachine(`${prefix}PRES`);
    const d = await connect(m.id, m.key);
    await eventually(
      async () => (await machineOf(ctx.server(), m.id)).socketConnected === true,
      5_000,
      'online',
    );
    const row = await machineOf(ctx.server(), m.id);
    expect(row.status).toBe('IDLE');
    await eventually(
      async () => (await machineOf(ctx.server(), m.id)).firmware === 'esp-1.0.0',
      5_000,
      'firmware',
    );
    d.drop();
    await eventually(
      async () => (await machineOf(ctx.server(), m.id)).status === 'OFFLINE',
      10_000,
      'offline',
    );
  });

  it('dispatches a paid order end to end: SENT on publish, DISPATCHED on received, COMPLETED on done; repeats change nothing', async () => {
    const server = ctx.server();
    const m = await server.createVendingMachine(`${prefix}E2E`);
    const d = await connect(m.id, m.key);
    await eventually(async () => (await machineOf(server, m.id)).socketConnected === true, 5_000, 'online');
    const orderId = await pay(server, m.qrCodeId);
    const cmd = await d.nth(0);
    expect(cmd).toMatchObject({ orderId, kind: 'dispense', amountMinor: 2000, currency: 'INR', attempt: 1 });
    expect(Date.parse(cmd.expiresAt!)).toBeGreaterThan(Date.now());
    expect((await orderOf(server, orderId)).status).toBe('PAID');
    const [row] = await server.kioskhub.services.commands.listForOrder(orderId);
    expect(row?.status).toBe('SENT');
    expect(row?.protocol).toBe('mqtt');

    await d.report(cmd.commandId, { phase: 'received' });
    await eventually(
      async () => (await orderOf(server, orderId)).status === 'DISPATCHED',
      5_000,
      'DISPATCHED',
    );
    await d.report(cmd.commandId, { phase: 'done', status: 'SUCCESS' });
    await eventually(async () => (await orderOf(server, orderId)).status === 'COMPLETED', 5_000, 'COMPLETED');
    const events = (await server.request('GET', `/v1/orders/${orderId}/timeline`)).body.items
      .length as number;
    // The same result again, and a late `received`: nothing changes.
    await d.report(cmd.commandId, { phase: 'done', status: 'FAILED', failureCode: 'JAM' });
    await d.report(cmd.commandId, { phase: 'received' });
    await new Promise((r) => setTimeout(r, 300));
    const after = await orderOf(server, orderId);
    expect(after.status).toBe('COMPLETED');
    expect((await server.request('GET', `/v1/orders/${orderId}/timeline`)).body.items).toHaveLength(events);
  });

  it('a rejected command finishes the order as FAILED with the reason', async () => {
    const server = ctx.server();
    const m = await server.createVendingMachine(`${prefix}REJ`);
    const d = await connect(m.id, m.key);
    await eventually(async () => (await machineOf(server, m.id)).socketConnected === true, 5_000, 'online');
    const orderId = await pay(server, m.qrCodeId);
    const cmd = await d.nth(0);
    await d.report(cmd.commandId, { phase: 'rejected', reason: 'OUT_OF_STOCK' });
    await eventually(async () => (await orderOf(server, orderId)).status === 'FAILED', 5_000, 'FAILED');
    expect((await orderOf(server, orderId)).failureCode).toBe('OUT_OF_STOCK');
  });

  it('a result for its own command still queued (never sent) changes nothing and is logged', async () => {
    const server = ctx.server();
    const m = await server.createVendingMachine(`${prefix}UNSENT`);
    const d = await connect(m.id, m.key);
    await eventually(async () => (await machineOf(server, m.id)).socketConnected === true, 5_000, 'online');
    const first = await pay(server, m.qrCodeId);
    const inFlight = await d.nth(0);
    await d.report(inFlight.commandId, { phase: 'received' });
    await eventually(async () => (await orderOf(server, first)).status === 'DISPATCHED', 5_000, 'DISPATCHED');
    const second = await pay(server, m.qrCodeId); // queued behind the one in flight
    const [queued] = await server.kioskhub.services.commands.listForOrder(second);
    expect(queued?.status).toBe('QUEUED');
    await d.report(queued!.id, { phase: 'done', status: 'SUCCESS' });
    await eventually(
      () => ctx.logs().some((l) => l.includes('not sent to this machine') && l.includes(queued!.id)),
      5_000,
      'the refusal logged',
    );
    expect((await orderOf(server, second)).status).toBe('PAID');
    expect((await server.kioskhub.services.commands.listForOrder(second))[0]?.status).toBe('QUEUED');
    // The one in flight finishes, and the queued one goes out and counts once it is sent.
    await d.report(inFlight.commandId, { phase: 'done', status: 'SUCCESS' });
    const next = await d.nth(1);
    expect(next.commandId).toBe(queued!.id);
    await d.report(next.commandId, { phase: 'received' });
    await d.report(next.commandId, { phase: 'done', status: 'SUCCESS' });
    await eventually(async () => (await orderOf(server, second)).status === 'COMPLETED', 5_000, 'COMPLETED');
  });

  it('PUBACK is not delivery: without `received` the same command goes out again after the ack timeout', async () => {
    const server = ctx.server();
    const m = await server.createVendingMachine(`${prefix}NORCV`);
    const d = await connect(m.id, m.key);
    await eventually(async () => (await machineOf(server, m.id)).socketConnected === true, 5_000, 'online');
    const orderId = await pay(server, m.qrCodeId);
    const first = await d.nth(0);
    const again = await eventually(
      () => d.commands.find((c) => c.attempt > first.attempt),
      ctx.ackTimeoutMs * 10,
      're-send',
    );
    expect(again.commandId).toBe(first.commandId);
    expect((await orderOf(server, orderId)).status).toBe('PAID');
    await d.report(first.commandId, { phase: 'received' });
    await eventually(
      async () => (await orderOf(server, orderId)).status === 'DISPATCHED',
      5_000,
      'DISPATCHED',
    );
    // Accepted: no more re-sends.
    const count = d.commands.length;
    await new Promise((r) => setTimeout(r, ctx.ackTimeoutMs * 3));
    expect(d.commands.length).toBe(count);
  });

  it('re-sends the command in flight with the same commandId after a reconnect', async () => {
    const server = ctx.server();
    const m = await server.createVendingMachine(`${prefix}RECON`);
    const d1 = await connect(m.id, m.key);
    await eventually(async () => (await machineOf(server, m.id)).socketConnected === true, 5_000, 'online');
    const orderId = await pay(server, m.qrCodeId);
    const first = await d1.nth(0);
    await d1.report(first.commandId, { phase: 'received' });
    await eventually(
      async () => (await orderOf(server, orderId)).status === 'DISPATCHED',
      5_000,
      'DISPATCHED',
    );
    await d1.close();
    const d2 = await connect(m.id, m.key);
    const again = await d2.nth(0);
    expect(again.commandId).toBe(first.commandId);
    expect(again.orderId).toBe(orderId);
    await d2.report(again.commandId, { phase: 'done', status: 'SUCCESS' });
    await eventually(async () => (await orderOf(server, orderId)).status === 'COMPLETED', 5_000, 'COMPLETED');
  });

  it('after ERROR and a reconnect, a new command waits for the birth (it counts as IDLE), then goes out', async () => {
    const server = ctx.server();
    const m = await server.createVendingMachine(`${prefix}ERRBACK`);
    const d1 = await connect(m.id, m.key);
    await eventually(async () => (await machineOf(server, m.id)).socketConnected === true, 5_000, 'online');
    await d1.publish(mqttTopics.telemetry(m.id), { status: 'ERROR' }, 0);
    await eventually(async () => (await machineOf(server, m.id)).status === 'ERROR', 5_000, 'ERROR');
    d1.drop();
    await eventually(async () => (await machineOf(server, m.id)).status === 'OFFLINE', 10_000, 'offline');
    const orderId = await pay(server, m.qrCodeId);

    // Connected and subscribed, no birth yet: nothing new goes out.
    const d2 = track(await MqttDevice.connect(ctx.brokerUrl(), m.id, m.key, { birth: false }));
    await new Promise((r) => setTimeout(r, 500));
    expect(d2.commands).toHaveLength(0);
    await d2.birth();
    const cmd = await d2.nth(0);
    expect(cmd.orderId).toBe(orderId);
    await d2.report(cmd.commandId, { phase: 'done', status: 'SUCCESS' });
    await eventually(async () => (await orderOf(server, orderId)).status === 'COMPLETED', 5_000, 'COMPLETED');
  });

  it('drops a publish to another machine’s topics and refuses a subscription to them', async () => {
    const server = ctx.server();
    const victim = await server.createVendingMachine(`${prefix}VICT`);
    const m = await server.createMachine(`${prefix}ATCK`);
    const v = await connect(victim.id, victim.key);
    await eventually(
      async () => (await machineOf(server, victim.id)).socketConnected === true,
      5_000,
      'online',
    );
    const orderId = await pay(server, victim.qrCodeId);
    const cmd = await v.nth(0);
    const attacker = await connect(m.id, m.key);
    // MQTT.js turns the SUBACK failure code (0x80) into an error.
    const granted = await attacker.client
      .subscribeAsync(`${mqttTopics.downPrefix(victim.id)}#`, { qos: 1 })
      .then(
        (g) => g[0]?.qos,
        () => 128,
      );
    expect(granted).toBe(128);
    // Not awaited: a broker that disconnects the offender never acknowledges the publish.
    void attacker
      .publish(mqttTopics.commandReport(victim.id, cmd.commandId), { phase: 'done', status: 'SUCCESS' })
      .catch(() => undefined);
    await new Promise((r) => setTimeout(r, 500));
    expect((await orderOf(server, orderId)).status).toBe('PAID');
  });

  it('ignores bad payloads with a log line and changes nothing', async () => {
    const server = ctx.server();
    const m = await server.createVendingMachine(`${prefix}BAD`);
    const d = await connect(m.id, m.key);
    await eventually(async () => (await machineOf(server, m.id)).socketConnected === true, 5_000, 'online');
    const orderId = await pay(server, m.qrCodeId);
    const cmd = await d.nth(0);
    await d.publish(mqttTopics.commandReport(m.id, cmd.commandId), 'not json');
    await d.report(cmd.commandId, { phase: 'done', status: 'MAYBE' });
    await d.report(cmd.commandId, { phase: 'exploded' });
    await d.publish(`${mqttTopics.upPrefix(m.id)}nonsense`, { a: 1 });
    await d.publish(mqttTopics.event(m.id), { type: 'no-id' });
    await new Promise((r) => setTimeout(r, 500));
    const ignored = ctx
      .logs()
      .filter((l) => l.includes('bad message from a device ignored') && l.includes(m.id));
    expect(ignored.length).toBeGreaterThanOrEqual(5);
    expect((await orderOf(server, orderId)).status).toBe('PAID');
    const [row] = await server.kioskhub.services.commands.listForOrder(orderId);
    expect(row?.status).toBe('SENT');
    // The device is still connected and still works.
    await d.report(cmd.commandId, { phase: 'done', status: 'SUCCESS' });
    await eventually(async () => (await orderOf(server, orderId)).status === 'COMPLETED', 5_000, 'COMPLETED');
  });

  it('acknowledges device events on down/ack', async () => {
    const m = await ctx.server().createMachine(`${prefix}EVT`);
    const d = await connect(m.id, m.key);
    await d.publish(mqttTopics.event(m.id), { eventId: 'e-1', type: 'door.opened' });
    await eventually(() => d.acks.find((ids) => ids.includes('e-1')), 5_000, 'event ack');
  });

  it('rotating the key disconnects the device; the old key no longer logs in, the new one does', async () => {
    const server = ctx.server();
    const m = await server.createMachine(`${prefix}ROT`);
    const d = await connect(m.id, m.key);
    await eventually(async () => (await machineOf(server, m.id)).socketConnected === true, 5_000, 'online');
    const rotated = await server.request('POST', `/v1/machines/${m.id}/rotate-key`);
    expect(rotated.status).toBe(200);
    await eventually(() => d.closedAt, 5_000, 'device disconnected');
    await expect(MqttDevice.connect(ctx.brokerUrl(), m.id, m.key)).rejects.toThrow();
    track(await MqttDevice.connect(ctx.brokerUrl(), m.id, rotated.body.key as string));
  });
}

/** A separate server whose commands expire fast: an expired command is never sent again and its order goes to review. */
export function expiryScenario(ctx: MqttContext, prefix: string, devices: MqttDevice[]): void {
  it('a command past expiresAt is never sent again and the order goes to review', async () => {
    const server = ctx.server();
    const m = await server.createVendingMachine(`${prefix}EXP`);
    const d = await MqttDevice.connect(ctx.brokerUrl(), m.id, m.key);
    devices.push(d);
    await eventually(async () => (await machineOf(server, m.id)).socketConnected === true, 5_000, 'online');
    const orderId = await pay(server, m.qrCodeId);
    const first = await d.nth(0);
    await eventually(
      async () => (await orderOf(server, orderId)).status === 'NEEDS_REVIEW',
      10_000,
      'NEEDS_REVIEW',
    );
    const order = await orderOf(server, orderId);
    expect(order.failureCode).toBe('EXPIRED');
    const sent = d.commands.length;
    expect(d.commands.every((c) => c.commandId === first.commandId)).toBe(true);
    // Neither the ack timeout nor a reconnect sends it again.
    await d.close();
    const d2 = await MqttDevice.connect(ctx.brokerUrl(), m.id, m.key);
    devices.push(d2);
    await new Promise((r) => setTimeout(r, ctx.ackTimeoutMs * 3));
    expect(d2.commands).toHaveLength(0);
    expect(d.commands).toHaveLength(sent);
  });

  it('a command accepted by a device that then stays away expires all the same', async () => {
    const server = ctx.server();
    const m = await server.createVendingMachine(`${prefix}AWAY`);
    const d = await MqttDevice.connect(ctx.brokerUrl(), m.id, m.key);
    devices.push(d);
    await eventually(async () => (await machineOf(server, m.id)).socketConnected === true, 5_000, 'online');
    const orderId = await pay(server, m.qrCodeId);
    const cmd = await d.nth(0);
    await d.report(cmd.commandId, { phase: 'received' });
    await eventually(
      async () => (await orderOf(server, orderId)).status === 'DISPATCHED',
      5_000,
      'DISPATCHED',
    );
    await d.close();
    await eventually(
      async () => (await orderOf(server, orderId)).status === 'NEEDS_REVIEW',
      10_000,
      'NEEDS_REVIEW',
    );
    expect((await orderOf(server, orderId)).failureCode).toBe('EXPIRED');
  });

  it('commands still queued for a device that stays away expire all the same, and are never sent', async () => {
    const server = ctx.server();
    const m = await server.createVendingMachine(`${prefix}QAWAY`);
    const d = await MqttDevice.connect(ctx.brokerUrl(), m.id, m.key);
    devices.push(d);
    await eventually(async () => (await machineOf(server, m.id)).socketConnected === true, 5_000, 'online');
    const o1 = await pay(server, m.qrCodeId);
    const cmd = await d.nth(0);
    expect(cmd.orderId).toBe(o1);
    // Queued behind the one in flight.
    const o2 = await pay(server, m.qrCodeId);
    // The device goes away (its will says so) and stays away; an order is paid meanwhile.
    d.drop();
    await eventually(async () => (await machineOf(server, m.id)).status === 'OFFLINE', 10_000, 'offline');
    const o3 = await pay(server, m.qrCodeId);
    for (const id of [o2, o3])
      expect((await server.kioskhub.services.commands.listForOrder(id))[0]?.status).toBe('QUEUED');

    const orders = { 'o1 (in flight)': o1, 'o2 (queued behind it)': o2, 'o3 (paid while away)': o3 };
    for (const [name, id] of Object.entries(orders))
      await eventually(
        async () => (await orderOf(server, id)).status === 'NEEDS_REVIEW',
        10_000,
        `${name} NEEDS_REVIEW`,
      );
    for (const id of [o1, o2, o3]) {
      expect((await orderOf(server, id)).failureCode).toBe('EXPIRED');
      expect((await server.kioskhub.services.commands.listForOrder(id))[0]?.status).toBe('NEEDS_REVIEW');
    }
    // Back again: none of them is sent.
    const d2 = await MqttDevice.connect(ctx.brokerUrl(), m.id, m.key);
    devices.push(d2);
    await eventually(async () => (await machineOf(server, m.id)).socketConnected === true, 5_000, 'online');
    await new Promise((r) => setTimeout(r, ctx.ackTimeoutMs * 3));
    expect(d2.commands).toHaveLength(0);
  });
}
