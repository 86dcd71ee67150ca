// `npm run pay -- M01`: the real CLI in a child process against a running server sharing its
// database (SQLite file, or one PostgreSQL schema): a signed qr_code.credited makes an order
// the machine dispenses; a wrong secret, a machine without QR and a server that is not there
// each get a message saying what to do.
import { createServer, type AddressInfo } from 'node:net';
import { SimulatedMachine } from '@kioskhub/machine-simulator';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  engines,
  eventually,
  newSchemaName,
  startServer,
  tempDir,
  WEBHOOK_SECRET,
  type Engine,
  type TestServer,
} from './harness.js';
import { spawnTs } from './operator-process.js';

/** A port nobody listens on (taken, then released). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  await new Promise((r) => server.close(r));
  return port;
}

function pay(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const clean = Object.fromEntries(
    Object.entries(process.env).filter(
      ([k]) => !/^(RAZORPAY_|UPI_|DATABASE_|DATA_DIR$|PORT$|HOST$|ADMIN_TOKEN$)/.test(k),
    ),
  );
  return new Promise((resolve, reject) => {
    const child = spawnTs('server/src/cli/pay.ts', args, {
      env: { ...clean, ...env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d));
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe.each(engines())('npm run pay (%s)', { timeout: 120_000 }, (engine: Engine) => {
  const dir = tempDir('kioskhub-pay-');
  const schema = engine === 'postgres' ? newSchemaName() : undefined;
  const storage: Record<string, string> = schema
    ? { DATABASE_URL: process.env['TEST_DATABASE_URL']!, DATABASE_SCHEMA: schema }
    : { DATA_DIR: dir.path };
  let server: TestServer;
  let env: Record<string, string>;
  let machine: SimulatedMachine;

  beforeAll(async () => {
    server = await startServer(schema ? { engine, schema } : { dataDir: dir.path });
    env = { ...storage, PORT: new URL(server.url).port, RAZORPAY_WEBHOOK_SECRET: WEBHOOK_SECRET };
    const vm = await server.createVendingMachine('PAY01', 2500);
    machine = new SimulatedMachine({
      url: server.url,
      machineId: vm.id,
      key: vm.key,
      dispenseDelayMs: 10,
      autoReconnect: false,
    });
    await machine.start();
  });
  afterAll(async () => {
    machine?.stop();
    await server?.close();
    dir.remove();
  });

  it('pays the machine’s QR at its fixed amount; the order is created, dispensed, and the output says where to watch it', async () => {
    const run = await pay(['PAY01'], env);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const orderId = /^Order (\S+) created for PAY01 \(payment (pay_test\w+)\)\.$/m.exec(run.stdout);
    expect(orderId, run.stdout).not.toBeNull();
    expect(run.stdout).toContain('Paying ₹25.00 to PAY01');
    expect(run.stdout).toContain(`${server.url}/orders/${orderId![1]}`);
    expect(run.stdout).toContain(`/v1/orders/${orderId![1]}/timeline`);
    await eventually(
      async () => (await server.request('GET', `/v1/orders/${orderId![1]}`)).body.status === 'COMPLETED',
      10_000,
      'order completed',
    );
    const event = await server.request('GET', `/v1/payment-events/razorpay/${orderId![2]}`);
    expect(event.body).toMatchObject({ status: 'PROCESSED', machineId: 'PAY01', orderId: orderId![1] });
    expect(machine.dispensed).toHaveLength(1);
  });

  it('--amount other than the QR’s: the order is FAILED (AMOUNT_MISMATCH), and the output says so', async () => {
    const run = await pay(['PAY01', '--amount', '2000'], env);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('FAILED with AMOUNT_MISMATCH');
    const id = /^Order (\S+) created/m.exec(run.stdout)![1];
    expect((await server.request('GET', `/v1/orders/${id}`)).body).toMatchObject({
      status: 'FAILED',
      failureCode: 'AMOUNT_MISMATCH',
    });
  });

  it('says what is wrong: a wrong secret, no secret, a machine without QR, a server that is not there', async () => {
    const wrong = await pay(['PAY01'], { ...env, RAZORPAY_WEBHOOK_SECRET: 'whsec_not_the_servers' });
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain('401 BAD_SIGNATURE): RAZORPAY_WEBHOOK_SECRET here is not the server’s');
    const none = await pay(['PAY01'], { ...env, RAZORPAY_WEBHOOK_SECRET: '' });
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('RAZORPAY_WEBHOOK_SECRET is not set');
    await server.createMachine('PAY02');
    const noQr = await pay(['PAY02'], env);
    expect(noQr.code).toBe(2);
    expect(noQr.stderr).toContain(
      'machine PAY02 has no payment QR yet: run npm run qr:provision -- PAY02 first',
    );
    const closed = await closedPort();
    const away = await pay(['PAY01', '--url', `http://127.0.0.1:${closed}`], env);
    expect(away.code).toBe(1);
    expect(away.stderr).toContain(`cannot reach the server at http://127.0.0.1:${closed} (ECONNREFUSED)`);
  });
});
