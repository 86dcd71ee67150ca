// The print client against the real server: a paid cash order's receipt is long-polled and
// written to a file, pushed over /machines and written to a socat serial pair, and a
// failing printer is reported and retried until it works.
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  connected,
  engines,
  eventually,
  machineSocket,
  startServer,
  tempDir,
  type TestServer,
} from '../../../server/test/harness.js';
import { createBurgerSite } from '../../../server/test/restaurant-fixtures.js';
import {
  openFakeDevice,
  socatAvailable,
  virtualSerialPair,
} from '../../cash-reader/src/testing/virtual-serial.js';
import { startPrintClient, type PrintClient } from './client.js';
import type { PrintClientConfig } from './config.js';
import { memoryLogger } from '@kioskhub/agent-kit';

const hasSocat = socatAvailable();
const CUT = Buffer.from([0x1d, 0x56, 0x42, 0x00]);

describe.each(engines())('print client against the server (%s)', (engine) => {
  let tmp: ReturnType<typeof tempDir>;
  let server: TestServer;
  const keys: Record<string, string> = {};
  const running: PrintClient[] = [];
  const log = memoryLogger();

  const keyed = (machine: string) => ({ token: null, headers: { 'x-api-key': keys[machine] ?? '' } });
  /** A burger paid in cash at the kiosk; returns its order number and print job id. */
  async function paidOrder(): Promise<{ orderNumber: string; jobId: string }> {
    const order = await server.request('POST', '/v1/orders', {
      ...keyed('KIOSK1'),
      body: { items: [{ sku: 'burger', qty: 1 }], customerName: 'Ana' },
    });
    const orderNumber = order.body.orderNumber as string;
    await server.request('POST', '/api/cash-payment/init', {
      ...keyed('KIOSK1'),
      body: { orderNumber, totalAmount: 150 },
    });
    const paid = await server.request('POST', '/api/cash-payment/update', {
      ...keyed('KIOSK1'),
      body: { orderNumber, amountAdded: 200, eventId: `pay-${orderNumber}`, kind: 'BILL' },
    });
    expect(paid.body.status).toBe('PAID');
    const jobs = await server.request('GET', '/v1/print-jobs?siteId=manila1');
    const job = jobs.body.items.find((j: any) => j.orderId === order.body.id);
    expect(job).toBeTruthy();
    return { orderNumber, jobId: job.jobId as string };
  }
  const jobStatus = async (jobId: string) =>
    (await server.request('GET', `/api/receipt/queue/status/${jobId}`, keyed('PRN1'))).body;

  async function client(overrides: Partial<PrintClientConfig>): Promise<PrintClient> {
    const config: PrintClientConfig = {
      url: server.url,
      key: keys['PRN1'] ?? '',
      mode: 'poll',
      printerId: 'PRN1',
      output: join(tmp.path, 'receipts.bin'),
      outputKind: 'file',
      baudRate: 9600,
      stateDir: join(tmp.path, `state-${running.length}`),
      pollWaitSeconds: 2,
      heartbeatMs: 500,
      columns: 32,
      currencyLabel: 'PHP',
      timeZone: 'Asia/Manila',
      failurePauseMs: 100,
      writeTimeoutMs: 5000,
      requestTimeoutMs: 5000,
      retryBaseMs: 50,
      retryMaxMs: 500,
      logLevel: 'warn',
      ...overrides,
    };
    const started = await startPrintClient(config, { log });
    running.push(started);
    return started;
  }
  const stopAll = async () => {
    for (const c of running.splice(0)) await c.stop();
  };

  beforeAll(async () => {
    tmp = tempDir('print-client-it-');
    server = await startServer({ engine });
    Object.assign(
      keys,
      await createBurgerSite(server, {
        site: { taxRateBp: 1200, address: '1 Rizal Ave' },
        cola: false,
        machines: { KIOSK1: 'kiosk', PRN1: 'printer' },
      }),
    );
  });
  afterEach(stopAll);
  afterAll(async () => {
    await server?.close();
    tmp?.remove();
  });

  it('long-polls the queue, prints to a file and reports the job PRINTED', async () => {
    const out = join(tmp.path, 'poll.bin');
    await client({ output: out });
    const { orderNumber, jobId } = await paidOrder();
    await eventually(
      async () => (await jobStatus(jobId)).status === 'PRINTED',
      15_000,
      'the job to be PRINTED',
    );
    const bytes = readFileSync(out);
    expect(bytes.subarray(0, 2)).toEqual(Buffer.from([0x1b, 0x40]));
    expect(bytes.includes(Buffer.from(`Order #: ${orderNumber}`, 'latin1'))).toBe(true);
    expect(bytes.includes(Buffer.from('Change                 PHP 50.00', 'latin1'))).toBe(true);
    expect(bytes.subarray(-4)).toEqual(CUT);
  });

  it.skipIf(!hasSocat)(
    'takes pushed jobs on /machines, heartbeats, and prints through a serial line',
    async () => {
      const pair = await virtualSerialPair(tmp.path, 'printer');
      const printer = await openFakeDevice(pair.devicePath);
      try {
        await client({ mode: 'socket', output: pair.agentPath, outputKind: 'serial' });
        await eventually(
          async () => (await server.request('GET', '/v1/machines/PRN1')).body.status === 'IDLE',
          10_000,
          'the printer online',
        );
        const { orderNumber, jobId } = await paidOrder();
        await eventually(
          async () => (await jobStatus(jobId)).status === 'PRINTED',
          15_000,
          'the pushed job to be PRINTED',
        );
        await eventually(() => printer.bytes().includes(CUT), 5000, 'the cut command on the serial line');
        expect(printer.bytes().includes(Buffer.from(orderNumber, 'latin1'))).toBe(true);
        expect((await server.request('GET', '/v1/machines/PRN1')).body).toMatchObject({
          socketConnected: true,
        });

        // Another connection with the printer's id replaces ours; the client reconnects and takes over.
        const intruder = machineSocket(server.url, 'PRN1', keys['PRN1'] ?? '');
        await connected(intruder);
        await eventually(() => intruder.disconnected, 10_000, 'the client to reconnect');
        intruder.close();
        const second = await paidOrder();
        await eventually(
          async () => (await jobStatus(second.jobId)).status === 'PRINTED',
          15_000,
          'a job pushed after reconnecting',
        );
        expect(printer.bytes().includes(Buffer.from(second.orderNumber, 'latin1'))).toBe(true);
      } finally {
        await stopAll(); // before the serial pair goes away
        await printer.close();
        await pair.close();
      }
    },
  );

  it('reports a printer that cannot be written as failed, and the retried job prints once it works', async () => {
    const dir = join(tmp.path, 'not-yet');
    const out = join(dir, 'receipt.bin');
    await client({ output: out, failurePauseMs: 700 });
    const { orderNumber, jobId } = await paidOrder();
    const failed = await eventually(
      async () => {
        const s = await jobStatus(jobId);
        return s.attempts >= 2 && s.status !== 'PRINTED' && s.error ? s : undefined;
      },
      15_000,
      'failed attempts',
    );
    expect(failed.error).toContain('ENOENT');
    expect(log.lines.some((l) => l.includes('ERROR receipt did not print') && l.includes(jobId))).toBe(true);
    mkdirSync(dir);
    await eventually(
      async () => (await jobStatus(jobId)).status === 'PRINTED',
      15_000,
      'the job PRINTED after the fix',
    );
    expect(existsSync(out) && readFileSync(out).includes(Buffer.from(orderNumber, 'latin1'))).toBe(true);
  });
});
