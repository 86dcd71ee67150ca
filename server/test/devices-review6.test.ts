// Review 6 of the device agents (devices/cash-reader, devices/print-client, devices/agent-kit)
// against their READMEs and docs/api.md §14–§15: the agents' real code against the real server.
import { execFileSync, spawn } from 'node:child_process';
import {
  closeSync,
  constants,
  existsSync,
  openSync,
  readFileSync,
  readSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { memoryLogger } from '@kioskhub/agent-kit';
import { startCashReader, type CashReader } from '../../devices/cash-reader/src/index.js';
import type { CashReaderConfig } from '../../devices/cash-reader/src/config.js';
import { startPrintClient, type PrintClient } from '../../devices/print-client/src/client.js';
import type { PrintClientConfig } from '../../devices/print-client/src/config.js';
import { engines, eventually, startServer, tempDir, type TestServer } from './harness.js';
import { createBurgerSite } from './restaurant-fixtures.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

describe.each(engines())('device agents against the server, review 6 (%s)', (engine) => {
  let tmp: ReturnType<typeof tempDir>;
  let server: TestServer;
  const keys: Record<string, string> = {};
  const stops: (() => Promise<void>)[] = [];
  const keyed = (machine: string) => ({ token: null, headers: { 'x-api-key': keys[machine] ?? '' } });

  beforeAll(async () => {
    tmp = tempDir('devices-review6-');
    server = await startServer({ engine });
    Object.assign(
      keys,
      await createBurgerSite(server, { cola: false, machines: { KIOSK1: 'kiosk', PRN1: 'printer' } }),
    );
  });
  afterEach(async () => {
    for (const stop of stops.splice(0).reverse()) await stop().catch(() => undefined);
  });
  afterAll(async () => {
    await server?.close();
    tmp?.remove();
  });

  // Promise (devices/cash-reader/README.md, "How it keeps money safe"): "Nothing leaves the queue
  // until the server has the money." and the answer table: "`404 NOT_FOUND`, `409 INVALID_STATE` |
  // the server **recorded it as unallocated cash** for this machine | remove from the queue"; the
  // server says so with `details: {recordedAmount, amountMinor, currency, reason, orderNumber}`
  // (docs/api.md §14). KIOSKHUB_URL may carry "a path prefix" (README, Configuration).
  // At fault: devices/cash-reader/src/kioskhub-client.ts:114-115 maps every 404/409 to 'unallocated'
  // and insert-sender.ts:52-53 acknowledges it, so a 404 that recorded nothing (here the server's
  // own `no route` answer for a wrong prefix; equally a proxy's 404) deletes the bill from the queue.
  // Fix: count a 404/409 as "recorded as unallocated" only when its body carries the server's
  // unallocated details (error.details.reason / recordedAmount); retry (or dead-letter) any other.
  it('a 404 that recorded no money (wrong path prefix in KIOSKHUB_URL) does not take the bill out of the queue', async () => {
    const log = memoryLogger();
    const config: CashReaderConfig = {
      url: `${server.url}/kioskhub`, // a reverse-proxy prefix this server does not serve
      key: keys['KIOSK1'] ?? '',
      kioskId: 'KIOSK1',
      serialPort: '/dev/null',
      baudRate: 9600,
      queueDir: join(tmp.path, 'cash-queue'),
      pollIntervalMs: 100,
      pingIntervalMs: 60_000,
      pingTimeoutMs: 5000,
      requestTimeoutMs: 2000,
      retryBaseMs: 50,
      retryMaxMs: 300,
      logLevel: 'debug',
    };
    const agent: CashReader = await startCashReader(config, {
      log,
      openAcceptor: () => ({ send: () => false, close: async () => undefined }),
    });
    stops.push(() => agent.stop());

    await agent.handleLine('BILL:100');
    await agent.settled();
    // The agent has had the server's answer to its report.
    await eventually(
      () => log.lines.some((l) => /SERVER RECORDED THIS CASH|could not report insert/.test(l)),
      10_000,
      'an answer to the insert report',
    );
    // The server recorded nothing: no unallocated cash, no session.
    const unallocated = await server.request('GET', '/v1/cash/unallocated');
    expect(unallocated.status).toBe(200);
    expect(unallocated.body.items).toEqual([]);
    // So the ₱100 bill must still be the agent's to deliver: in its queue (or at least in dead-letter.jsonl).
    const deadLettered = existsSync(agent.queue.deadLetterPath)
      ? readFileSync(agent.queue.deadLetterPath, 'utf8').includes('"amountMinor":10000')
      : false;
    expect(
      { queued: agent.queue.pending().map((i) => i.amountMinor), deadLettered },
      log.lines.filter((l) => l.includes('ERROR')).join('\n'),
    ).toSatisfy((v: { queued: number[]; deadLettered: boolean }) => v.queued[0] === 10_000 || v.deadLettered);
  });

  // Promise (devices/print-client/README.md, "Printing and reporting"): "A write that takes longer
  // than `WRITE_TIMEOUT_MS` (printer offline, out of paper) fails." and "A failed write is reported
  // `failed {error}`".
  // At fault: devices/print-client/src/printer-output.ts:35-38: the timeout rejects, but `finally`
  // awaits `handle.close()`, and a FileHandle's close waits for its pending write, i.e. until the
  // printer takes the bytes. The job is neither reported nor abandoned for as long as the printer is
  // stuck, and when it takes the bytes, a receipt is printed that is then reported `failed` (and
  // printed again on the retry).
  // Fix: open the device with O_NONBLOCK and write in a loop (EAGAIN → short wait) under the
  // deadline, so nothing is pending when the timeout fires; then close at once and report failed.
  it('a printer that does not take the bytes (stuck write) is reported failed after WRITE_TIMEOUT_MS', async () => {
    // A printer device that accepts nothing: a FIFO under /dev (opened like /dev/usb/lp0) whose pipe is full.
    const fifo = `/dev/shm/kioskhub-review6-${process.pid}-${engine}`;
    rmSync(fifo, { force: true });
    execFileSync('mkfifo', [fifo]);
    const reader = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
    const filler = openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK);
    try {
      for (;;) writeSync(filler, Buffer.alloc(4096, 0x20));
    } catch {
      /* EAGAIN: the pipe is full */
    }
    closeSync(filler);
    const drain = () => {
      const buf = Buffer.alloc(65_536);
      try {
        for (;;) if (readSync(reader, buf) === 0) return;
      } catch {
        /* EAGAIN: empty */
      }
    };
    stops.push(async () => {
      drain(); // lets the stuck write finish so the client can stop
      closeSync(reader);
      rmSync(fifo, { force: true });
    });

    const log = memoryLogger();
    const config: PrintClientConfig = {
      url: server.url,
      key: keys['PRN1'] ?? '',
      mode: 'poll',
      printerId: 'PRN1',
      output: fifo,
      outputKind: 'file',
      baudRate: 9600,
      stateDir: join(tmp.path, `print-state-${engine}`),
      pollWaitSeconds: 2,
      heartbeatMs: 500,
      columns: 32,
      currencyLabel: 'PHP',
      timeZone: 'Asia/Manila',
      failurePauseMs: 100,
      writeTimeoutMs: 400,
      requestTimeoutMs: 5000,
      retryBaseMs: 50,
      retryMaxMs: 500,
      logLevel: 'debug',
    };
    const client: PrintClient = await startPrintClient(config, { log });
    stops.push(async () => {
      drain();
      await client.stop();
    });

    const order = await server.request('POST', '/v1/orders', {
      ...keyed('KIOSK1'),
      body: { items: [{ sku: 'burger', qty: 1 }] },
    });
    const orderNumber = order.body.orderNumber as string;
    await server.request('POST', '/api/cash-payment/init', {
      ...keyed('KIOSK1'),
      body: { orderNumber, totalAmount: 150 },
    });
    const paid = await server.request('POST', '/api/cash-payment/update', {
      ...keyed('KIOSK1'),
      body: { orderNumber, amountAdded: 150, eventId: `pay-${orderNumber}`, kind: 'BILL' },
    });
    expect(paid.body.status).toBe('PAID');
    const jobs = await server.request('GET', '/v1/print-jobs?siteId=manila1');
    const jobId = jobs.body.items.find((j: any) => j.orderId === order.body.id)?.jobId as string;
    expect(jobId).toBeTruthy();

    // Leased to the client, which starts writing...
    await eventually(
      async () =>
        (await server.request('GET', `/api/receipt/queue/status/${jobId}`, keyed('PRN1'))).body.status ===
        'LEASED',
      10_000,
      'the job leased to the print client',
    );
    // ...and, 0.4 s later, gives up and reports the job failed (10 s is 25 times the timeout).
    let last: unknown;
    const reported = await eventually(
      async () => {
        const s = (await server.request('GET', `/api/receipt/queue/status/${jobId}`, keyed('PRN1'))).body;
        last = s;
        return typeof s.error === 'string' && s.error.includes('took longer than 400 ms') ? s : undefined;
      },
      10_000,
      'the stuck write reported failed',
    ).catch(() => last);
    expect(reported).toMatchObject({ error: expect.stringContaining('took longer than 400 ms') });
  });
});

// Promise (devices/cash-reader/README.md, Configuration): "A bad value stops the agent with exit code
// 78 and a message naming the variable"; the same for the print client (devices/print-client/README.md:
// "a bad value stops the client with exit code 78 naming the variable"). The units run with
// `Restart=always`, `RestartPreventExitStatus=78` and `ProtectSystem=strict`, so a QUEUE_DIR /
// STATE_DIR outside the unit's StateDirectory (read-only there) or one that is not a directory is
// the likely bad value.
// At fault: devices/cash-reader/src/insert-queue.ts:102 and devices/print-client/src/print-state.ts:41
// let mkdir/open errors escape as plain errors; devices/agent-kit/src/run-agent.ts:48-49 then prints
// a stack trace without the variable's name and exits 1, which systemd restarts every 2 s for ever.
// Fix: in the agents' start, turn a failure to create/lock/write the directory into a ConfigError
// "QUEUE_DIR (…) cannot be used: <reason>" (STATE_DIR for the print client), which exits 78.
describe('device agents: an unusable state directory is a configuration error', { timeout: 60_000 }, () => {
  let tmp: ReturnType<typeof tempDir>;
  beforeAll(() => {
    tmp = tempDir('devices-review6-proc-');
    writeFileSync(join(tmp.path, 'not-a-dir'), 'a file where a directory should be\n');
  });
  afterAll(() => tmp?.remove());

  function run(main: string, env: Record<string, string>): Promise<{ code: number | null; stderr: string }> {
    const clean = Object.fromEntries(
      Object.entries(process.env).filter(
        ([k]) =>
          !/^(KIOSKHUB_URL|DEVICE_KEY|KIOSK_ID|SERIAL_PORT|QUEUE_DIR|STATE_DIR|OUTPUT|MODE|PRINTER_ID|LOG_LEVEL)$/.test(
            k,
          ),
      ),
    );
    const child = spawn(`${ROOT}node_modules/.bin/tsx`, [main, '--config', '/dev/null'], {
      cwd: ROOT,
      env: { ...clean, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    return new Promise((resolve) =>
      child.once('exit', (code) => {
        clearTimeout(timer);
        resolve({ code, stderr });
      }),
    );
  }

  it('cash reader: a QUEUE_DIR it cannot create exits 78 naming QUEUE_DIR, no stack trace', async () => {
    const queueDir = join(tmp.path, 'not-a-dir', 'queue');
    const result = await run('devices/cash-reader/src/main.ts', {
      KIOSKHUB_URL: 'http://127.0.0.1:9',
      DEVICE_KEY: 'mk_test',
      KIOSK_ID: 'KIOSK1',
      SERIAL_PORT: join(tmp.path, 'no-such-tty'),
      QUEUE_DIR: queueDir,
    });
    expect(result).toMatchObject({ code: 78, stderr: expect.stringContaining('QUEUE_DIR') });
    expect(result.stderr).not.toMatch(/\n\s+at /);
  });

  it('print client: a STATE_DIR it cannot create exits 78 naming STATE_DIR, no stack trace', async () => {
    const result = await run('devices/print-client/src/main.ts', {
      KIOSKHUB_URL: 'http://127.0.0.1:9',
      DEVICE_KEY: 'mk_test',
      OUTPUT: join(tmp.path, 'receipts.bin'),
      STATE_DIR: join(tmp.path, 'not-a-dir', 'state'),
    });
    expect(result).toMatchObject({ code: 78, stderr: expect.stringContaining('STATE_DIR') });
    expect(result.stderr).not.toMatch(/\n\s+at /);
  });
});
