// The cash reader against the real server: Arduino lines over a socat serial pair, a server
// restart in the middle of a payment, two kiosks on one site, cash without a session.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  dropSchema,
  engines,
  eventually,
  newSchemaName,
  startServer,
  tempDir,
  type TestServer,
} from '../../../server/test/harness.js';
import { createBurgerSite } from '../../../server/test/restaurant-fixtures.js';
import { startCashReader, type CashReader } from './agent.js';
import type { CashReaderConfig } from './config.js';
import { openInsertQueue } from './insert-queue.js';
import { memoryLogger } from '@kioskhub/agent-kit';
import {
  openFakeDevice,
  socatAvailable,
  virtualSerialPair,
  type FakeDevice,
  type VirtualSerialPair,
} from './testing/virtual-serial.js';

const hasSocat = socatAvailable();

describe.each(engines())('cash reader against the server (%s)', (engine) => {
  let tmp: ReturnType<typeof tempDir>;
  const schema = engine === 'postgres' ? newSchemaName() : undefined;
  const start = (env: Record<string, string> = {}) =>
    startServer({ engine, env, ...(schema ? { schema } : { dataDir: join(tmp.path, 'server') }) });
  let server: TestServer;
  const keys: Record<string, string> = {};
  const cleanups: (() => Promise<void>)[] = [];

  const keyed = (machine: string) => ({ token: null, headers: { 'x-api-key': keys[machine] ?? '' } });
  async function openSession(kiosk: string): Promise<string> {
    const order = await server.request('POST', '/v1/orders', {
      ...keyed(kiosk),
      body: {
        items: [
          { sku: 'burger', qty: 1 },
          { sku: 'cola', qty: 2 },
        ],
      },
    });
    expect(order.status).toBe(201);
    const init = await server.request('POST', '/api/cash-payment/init', {
      ...keyed(kiosk),
      body: { orderNumber: order.body.orderNumber, totalAmount: 250 },
    });
    expect(init.body).toMatchObject({ status: 'PENDING', totalRequired: 250 });
    return order.body.orderNumber as string;
  }
  const inserted = async (orderNumber: string) =>
    (await server.request('GET', `/api/cash-payment/status/${orderNumber}`)).body.amountInserted as number;

  function agentConfig(
    name: string,
    kioskId: string,
    key: string,
    serialPort = '/dev/null',
  ): CashReaderConfig {
    return {
      url: server.url,
      key,
      kioskId,
      serialPort,
      baudRate: 9600,
      queueDir: join(tmp.path, `queue-${name}`),
      pollIntervalMs: 100,
      pingIntervalMs: 300,
      // Generous: the fake Arduino answers at once, but a loaded CI box can hold the relay back.
      pingTimeoutMs: 2000,
      requestTimeoutMs: 2000,
      retryBaseMs: 50,
      retryMaxMs: 300,
      logLevel: 'debug',
    };
  }
  const noAcceptor = () => ({ send: () => false, close: async () => undefined });

  /** An Arduino on one end of a socat pair that answers PING; the agent on the other end. */
  async function serialAgent(name: string, kioskId: string, key: string) {
    const pair: VirtualSerialPair = await virtualSerialPair(tmp.path, name);
    cleanups.push(() => pair.close());
    const arduino: FakeDevice = await openFakeDevice(pair.devicePath, (line) =>
      line === 'PING' ? 'PONG\n' : undefined,
    );
    cleanups.push(() => arduino.close());
    const log = memoryLogger();
    const agent: CashReader = await startCashReader(agentConfig(name, kioskId, key, pair.agentPath), { log });
    cleanups.push(() => agent.stop());
    return { arduino, agent, log };
  }

  beforeAll(async () => {
    tmp = tempDir('cash-reader-it-');
    server = await start();
    Object.assign(
      keys,
      await createBurgerSite(server, {
        machines: { KIOSK1: 'kiosk', KIOSK2: 'kiosk', KIOSK3: 'kiosk', CASH2: 'cash' },
      }),
    );
  });
  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
    await server?.close();
    if (schema) await dropSchema(schema);
    tmp?.remove();
  });

  it.skipIf(!hasSocat)(
    'reads bills and coins from the serial line and keeps a bill inserted while the server is down',
    async () => {
      const orderNumber = await openSession('KIOSK1');
      const { arduino, agent, log } = await serialAgent('k1', 'KIOSK1', keys['KIOSK1'] ?? '');
      await eventually(
        () => log.lines.some((l) => l.includes('cash session open for this kiosk')),
        10_000,
        'the agent to see its session',
      );

      for (const line of ['READY\r\n', '# debug: coin pulses=1\r\n', 'BILL:100\r\n', 'COIN:5\r\n'])
        await arduino.write(line);
      await eventually(async () => (await inserted(orderNumber)) === 105, 10_000, '105 inserted');
      await eventually(
        () => arduino.received.includes('PING') && log.lines.some((l) => l.includes('acceptor ready')),
        5000,
        'PING answered',
      );
      expect(log.lines.some((l) => l.includes('acceptor did not answer PING'))).toBe(false);

      const port = new URL(server.url).port;
      await server.close();
      await arduino.write('BILL:50\n');
      await eventually(
        () => log.lines.some((l) => l.includes('could not report insert')),
        10_000,
        'a failed report',
      );
      expect(agent.queue.pending()).toMatchObject([{ kind: 'BILL', amountMinor: 5000, orderNumber }]);

      server = await start({ PORT: port });
      await eventually(
        async () => (await inserted(orderNumber)) === 155,
        15_000,
        '155 inserted after the restart',
      );
      await eventually(() => agent.queue.size() === 0, 5000, 'an empty queue');
      await new Promise((r) => setTimeout(r, 300));
      expect(await inserted(orderNumber)).toBe(155);
      const unallocated = await server.request('GET', '/v1/cash/unallocated');
      expect(unallocated.body.items.filter((u: any) => u.orderNumber === orderNumber)).toEqual([]);
    },
  );

  it.skipIf(!hasSocat)('two kiosks of one site: each agent credits its own kiosk’s session', async () => {
    const older = await openSession('KIOSK1');
    const newer = await openSession('KIOSK2');
    const one = await serialAgent('two-a', 'KIOSK1', keys['KIOSK1'] ?? '');
    const two = await serialAgent('two-b', 'KIOSK2', keys['CASH2'] ?? ''); // the cash unit's key, a machine of the same site
    await eventually(
      () => [one, two].every((a) => a.log.lines.some((l) => l.includes('cash session open for this kiosk'))),
      10_000,
      'both sessions seen',
    );

    const active = await server.request('GET', '/api/cash-payment/active-sessions', keyed('CASH2'));
    expect(active.body.sessions).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ orderNumber: older, kioskId: 'KIOSK1' }),
        expect.objectContaining({ orderNumber: newer, kioskId: 'KIOSK2' }),
      ]),
    );

    await two.arduino.write('BILL:20\nCOIN:1\n');
    await one.arduino.write('BILL:50\n');
    await eventually(
      async () => (await inserted(newer)) === 21 && (await inserted(older)) === 50,
      10_000,
      'each session credited',
    );
    await two.arduino.write('BILL:500\n');
    await eventually(
      async () => (await server.request('GET', `/api/cash-payment/status/${newer}`)).body.status === 'PAID',
      10_000,
      'KIOSK2 paid',
    );
    expect(await inserted(older)).toBe(50);
    expect((await server.request('GET', `/api/cash-payment/status/${newer}`)).body).toMatchObject({
      amountInserted: 521,
      change: 271,
    });
  });

  it('cash with no session for its kiosk is recorded as unallocated for that machine, never credited to another kiosk', async () => {
    await openSession('KIOSK1'); // another kiosk's open session must not take this money
    const log = memoryLogger();
    const agent = await startCashReader(agentConfig('k3', 'KIOSK3', keys['KIOSK3'] ?? ''), {
      log,
      openAcceptor: noAcceptor,
    });
    cleanups.push(() => agent.stop());
    await agent.handleLine('BILL:20');
    await agent.settled();
    await eventually(() => agent.queue.size() === 0, 10_000, 'the insert to be reported');
    const unallocated = await server.request('GET', '/v1/cash/unallocated');
    expect(unallocated.body.items).toContainEqual(
      expect.objectContaining({
        orderNumber: 'NO-SESSION-KIOSK3',
        machineId: 'KIOSK3',
        amount: 20,
        reason: 'UNKNOWN_ORDER',
      }),
    );
    expect(log.lines.some((l) => l.includes('SERVER RECORDED THIS CASH AS UNALLOCATED'))).toBe(true);
  });

  it('replays an insert the server got but the agent never saw acknowledged, and it counts once', async () => {
    const orderNumber = await openSession('KIOSK3');
    const insert = {
      eventId: 'crash-between-send-and-ack',
      kind: 'BILL' as const,
      amountMinor: 10_000,
      orderNumber,
      detectedAt: new Date().toISOString(),
    };
    const config = agentConfig('replay', 'KIOSK3', keys['KIOSK3'] ?? '');
    const before = await openInsertQueue({ dir: config.queueDir });
    await before.append(insert);
    await before.close();
    const sent = await server.request('POST', '/api/cash-payment/update', {
      ...keyed('KIOSK3'),
      body: { orderNumber, amountAdded: 100, eventId: insert.eventId, kind: 'BILL' },
    });
    expect(sent.body.amountInserted).toBe(100);

    const agent = await startCashReader(config, { log: memoryLogger(), openAcceptor: noAcceptor });
    cleanups.push(() => agent.stop());
    await eventually(() => agent.queue.size() === 0, 10_000, 'the replay to be acknowledged');
    expect(await inserted(orderNumber)).toBe(100);
  });
});
