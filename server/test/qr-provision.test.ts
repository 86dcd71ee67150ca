// `npm run qr:provision` end to end: the real CLI as a child process against a local fake of
// the Razorpay QR Codes API (PROVIDERS.md §1.1 shapes), then the real server on the same file.
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import QRCode from 'qrcode';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { buildUpiLink } from '../src/modules/machines/upi-link.js';
import {
  dropSchema,
  engines,
  newSchemaName,
  qrCredited,
  startServer,
  tempDir,
  type StartOptions,
  type TestServer,
} from './harness.js';
import { spawnTs } from './operator-process.js';

const KEY_ID = 'rzp_test_FAKEKEY0000001';
const KEY_SECRET = 'fake_key_secret_0123456789';
const PNG = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
// Each test runs the CLI (a tsx child process) up to twice; slow CI machines need the room.
vi.setConfig({ testTimeout: 90_000 });

const ALLOWED_FIELDS = new Set([
  'type',
  'name',
  'usage',
  'fixed_amount',
  'payment_amount',
  'description',
  'customer_id',
  'close_by',
  'notes',
]);

interface FakeRazorpay {
  url: string;
  created: { body: Record<string, unknown>; entity: Record<string, unknown> }[];
  closed: string[];
  /** Machine id → Razorpay error answer for its create call. */
  failFor: Map<string, { status: number; code: string; description: string }>;
  /** Machines whose QR entity comes without image_content (the image is downloaded). */
  noImageContent: Set<string>;
  images: Map<string, Buffer>;
  /** Authorization headers seen on image downloads (must stay empty). */
  imageAuth: string[];
  close(): Promise<void>;
}

function razorpayError(res: ServerResponse, status: number, code: string, description: string): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(
    JSON.stringify({
      error: {
        code,
        description,
        source: 'business',
        step: 'payment_initiation',
        reason: 'input_validation_failed',
        metadata: {},
      },
    }),
  );
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

async function startFakeRazorpay(): Promise<FakeRazorpay> {
  const entities = new Map<string, Record<string, unknown>>();
  const fake = {
    created: [],
    closed: [],
    failFor: new Map(),
    noImageContent: new Set(),
    images: new Map(),
    imageAuth: [],
  } as unknown as FakeRazorpay;
  const expectedAuth = `Basic ${Buffer.from(`${KEY_ID}:${KEY_SECRET}`).toString('base64')}`;

  const server: Server = createServer((req, res) => {
    void (async () => {
      const path = req.url ?? '/';
      const image = /^\/(?:i|images)\/(\w+)/.exec(path);
      if (req.method === 'GET' && image) {
        if (req.headers.authorization) fake.imageAuth.push(req.headers.authorization);
        const id = image[1]!;
        if (path.startsWith('/i/')) return res.writeHead(302, { location: `/images/${id}.png` }).end();
        const bytes = fake.images.get(id);
        if (!bytes) return res.writeHead(404).end();
        return res.writeHead(200, { 'content-type': 'image/png' }).end(bytes);
      }
      if (req.headers.authorization !== expectedAuth)
        return razorpayError(res, 401, 'BAD_REQUEST_ERROR', 'The api key provided is invalid');
      const close = /^\/v1\/payments\/qr_codes\/([^/]+)\/close$/.exec(path);
      if (req.method === 'POST' && close) {
        const entity = entities.get(close[1]!);
        if (!entity) return razorpayError(res, 400, 'BAD_REQUEST_ERROR', 'The id provided does not exist');
        Object.assign(entity, {
          status: 'closed',
          close_reason: 'on_demand',
          closed_at: Math.floor(Date.now() / 1000),
        });
        fake.closed.push(close[1]!);
        return res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(entity));
      }
      if (req.method !== 'POST' || path !== '/v1/payments/qr_codes')
        return razorpayError(res, 404, 'BAD_REQUEST_ERROR', 'The requested URL was not found on the server.');
      if (!req.headers['content-type']?.startsWith('application/json'))
        return razorpayError(res, 400, 'BAD_REQUEST_ERROR', 'content-type must be application/json');
      let body: Record<string, unknown>;
      try {
        body = JSON.parse(await readBody(req)) as Record<string, unknown>;
      } catch {
        return razorpayError(res, 400, 'BAD_REQUEST_ERROR', 'The request body is not valid JSON');
      }
      const unknown = Object.keys(body).filter((k) => !ALLOWED_FIELDS.has(k));
      if (unknown.length > 0)
        return razorpayError(
          res,
          400,
          'BAD_REQUEST_ERROR',
          `${unknown.join(', ')} is/are not required and should not be sent`,
        );
      if (body['type'] !== 'upi_qr')
        return razorpayError(res, 400, 'BAD_REQUEST_ERROR', 'The type field is invalid.');
      if (body['usage'] !== 'single_use' && body['usage'] !== 'multiple_use')
        return razorpayError(res, 400, 'BAD_REQUEST_ERROR', 'The usage field is required.');
      if (body['usage'] === 'multiple_use' && body['close_by'] !== undefined)
        return razorpayError(res, 400, 'BAD_REQUEST_ERROR', 'close_by is not allowed for multiple_use');
      const amount = body['payment_amount'];
      if (
        body['fixed_amount'] === true &&
        (typeof amount !== 'number' || !Number.isInteger(amount) || amount < 1)
      ) {
        return razorpayError(res, 400, 'BAD_REQUEST_ERROR', 'The payment amount must be at least 1');
      }
      const notes = body['notes'] as Record<string, string> | undefined;
      const machineId = notes?.['machine_id'] ?? '';
      const failure = fake.failFor.get(machineId);
      if (failure) return razorpayError(res, failure.status, failure.code, failure.description);

      const id = `qr_${randomBytes(7).toString('hex')}`;
      const content = `upi://pay?pa=razorpay.merchant@icici&pn=Kioskhub&tr=RZP${id.slice(3)}qrv2&tn=${machineId}&cu=INR&mc=5411&am=${(Number(amount) / 100).toFixed(2)}`;
      fake.images.set(id.slice(3), await QRCode.toBuffer(content, { type: 'png' }));
      const entity: Record<string, unknown> = {
        id,
        entity: 'qr_code',
        created_at: Math.floor(Date.now() / 1000),
        name: body['name'],
        usage: body['usage'],
        type: 'upi_qr',
        image_url: `${fake.url}/i/${id.slice(3)}`,
        payment_amount: amount,
        status: 'active',
        description: body['description'],
        fixed_amount: body['fixed_amount'] ?? false,
        payments_amount_received: 0,
        payments_count_received: 0,
        notes: notes ?? [],
        customer_id: null,
        close_by: null,
        closed_at: null,
        close_reason: null,
        ...(fake.noImageContent.has(machineId) ? {} : { image_content: content }),
      };
      entities.set(id, entity);
      fake.created.push({ body, entity });
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(entity));
    })().catch(() => res.writeHead(500).end());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  fake.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  fake.close = () => new Promise((resolve) => server.close(() => resolve()));
  return fake;
}

interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
  output: string;
}

/** Runs the real CLI with only the variables given (none inherited from this shell's Kioskhub setup). */
function runCli(args: string[], env: Record<string, string>): Promise<CliRun> {
  const clean = Object.fromEntries(
    Object.entries(process.env).filter(
      ([k]) => !/^(RAZORPAY_|UPI_|DATABASE_URL$|DATA_DIR$|ADMIN_TOKEN$|JWT_SECRET$)/.test(k),
    ),
  );
  return new Promise((resolve, reject) => {
    const child = spawnTs('server/src/cli/qr-provision.ts', args, {
      env: { ...clean, ...env },
    });
    let stdout = '';
    let stderr = '';
    let output = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d;
      output += d;
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d;
      output += d;
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr, output }));
  });
}

const isPng = (path: string) => readFileSync(path).subarray(0, 8).equals(PNG);

describe.each(engines())('qr:provision with Razorpay (local fake of the QR Codes API) (%s)', (engine) => {
  const dir = tempDir('kioskhub-qr-');
  // PostgreSQL: the CLI and the server share one fresh schema.
  const schema = engine === 'postgres' ? newSchemaName() : undefined;
  const storage: Record<string, string> = schema
    ? { DATABASE_URL: process.env['TEST_DATABASE_URL']!, DATABASE_SCHEMA: schema }
    : { DATA_DIR: dir.path };
  const serverOptions: StartOptions = schema ? { engine, schema } : { dataDir: dir.path };
  const out = join(dir.path, 'qr');
  let fake: FakeRazorpay;
  let server: TestServer | undefined;
  let env: Record<string, string>;
  const provision = (...args: string[]) => runCli([...args, '--out', out], env);

  beforeAll(async () => {
    fake = await startFakeRazorpay();
    env = {
      ...storage,
      RAZORPAY_KEY_ID: KEY_ID,
      RAZORPAY_KEY_SECRET: KEY_SECRET,
      RAZORPAY_WEBHOOK_SECRET: 'whsec_test_secret',
      RAZORPAY_API_BASE: fake.url,
    };
  });
  afterAll(async () => {
    await server?.close();
    await fake?.close();
    if (schema) await dropSchema(schema);
    dir.remove();
  });

  it('creates the machines, their QR codes, profiles and PNGs', async () => {
    fake.noImageContent.add('M02');
    const run = await provision('M01,M02');
    expect(run.code, run.output).toBe(0);
    expect(run.stdout).toMatch(
      /\[1\/2\] M01 \.\.\. created machine \(key: mk_[\w-]+ — shown once\), QR qr_\w+ -> \S*M01\.png/,
    );
    expect(run.stdout).toMatch(
      /\[2\/2\] M02 \.\.\. created machine \(key: mk_[\w-]+ — shown once\), QR qr_\w+ -> \S*M02\.png/,
    );
    expect(run.stdout).toContain('Done: 2 provisioned, 0 skipped, 0 failed.');

    // Exactly the documented request, nothing else (the fake would also reject unknown fields).
    expect(fake.created.map((c) => c.body)).toEqual(
      ['M01', 'M02'].map((id) => ({
        type: 'upi_qr',
        name: `Kioskhub ${id}`,
        usage: 'multiple_use',
        fixed_amount: true,
        payment_amount: 2000,
        description: `Machine ${id}, ₹20.00`,
        notes: { machine_id: id },
      })),
    );
    const [m01, m02] = fake.created.map((c) => c.entity);
    expect(isPng(join(out, 'M01.png'))).toBe(true);
    // Without image_content the image Razorpay rendered is saved byte for byte, fetched without our credentials.
    expect(readFileSync(join(out, 'M02.png')).equals(fake.images.get(String(m02!['id']).slice(3))!)).toBe(
      true,
    );
    expect(fake.imageAuth).toEqual([]);

    server = await startServer(serverOptions);
    const machine = await server.request('GET', '/v1/machines/M01');
    expect(machine.body.paymentProfile).toEqual({
      provider: 'razorpay',
      qrCodeId: m01!['id'],
      qrImageUrl: m01!['image_url'],
      qrShortUrl: null,
      fixedAmountPaise: 2000,
      qrContent: m01!['image_content'],
    });
    expect((await server.request('GET', '/v1/machines/M02')).body.paymentProfile).toMatchObject({
      qrCodeId: m02!['id'],
      qrContent: null,
    });
    // The printed key is the machine's real key.
    const key = /M01 \.\.\. created machine \(key: (mk_[\w-]+)/.exec(run.stdout)![1]!;
    expect(
      (await server.request('GET', '/v1/machines/M01', { token: null, headers: { 'x-api-key': key } }))
        .status,
    ).toBe(200);
  });

  it('a signed qr_code.credited for the created QR creates an order for that machine', async () => {
    const qrCodeId = String(fake.created[0]!.entity['id']);
    const res = await server!.postWebhook(qrCredited(qrCodeId, 2000));
    expect(res.status).toBe(200);
    const order = await server!.request('GET', `/v1/orders/${res.body.orderId as string}`);
    expect(order.body).toMatchObject({
      machineId: 'M01',
      providerQrCodeId: qrCodeId,
      provider: 'razorpay',
      amount: 2000,
      status: 'PAID',
    });
  });

  it('a re-run (next to the running server) skips provisioned machines', async () => {
    const run = await provision('M01,M02');
    expect(run.code, run.output).toBe(0);
    expect(run.stdout).toMatch(/M01 \.\.\. already has QR qr_\w+ -> \S*M01\.png; skipped/);
    expect(run.stdout).toContain('Done: 0 provisioned, 2 skipped, 0 failed.');
    expect(run.stdout).not.toContain('key:');
    expect(fake.created).toHaveLength(2);
  });

  it('--force replaces the QR, closes the old one and remaps payments', async () => {
    const oldId = String(fake.created[1]!.entity['id']);
    const run = await provision('M02', '--force');
    expect(run.code, run.output).toBe(0);
    const newId = String(fake.created[2]!.entity['id']);
    expect(newId).not.toBe(oldId);
    expect(run.stdout).toContain(`M02 ... QR ${newId} -> `);
    expect(run.stdout).toContain(`closed the old QR ${oldId}`);
    expect(fake.closed).toEqual([oldId]);
    expect((await server!.request('GET', '/v1/machines/M02')).body.paymentProfile.qrCodeId).toBe(newId);
    expect((await server!.postWebhook(qrCredited(oldId, 2000))).body).toEqual({
      ok: true,
      ignored: 'UNKNOWN_QR',
    });
    expect((await server!.postWebhook(qrCredited(newId, 2000))).body.orderId).toEqual(expect.any(String));
  });

  it('a Razorpay error for one machine is reported, the others are provisioned, the exit code is non-zero', async () => {
    fake.failFor.set('M04', {
      status: 400,
      code: 'BAD_REQUEST_ERROR',
      description: 'UPI QR is not enabled for this merchant',
    });
    const run = await provision('M03,M04,M05');
    expect(run.code, run.output).toBe(1);
    expect(run.stderr).toMatch(
      /\[2\/3\] M04 \.\.\. created machine \(key: mk_[\w-]+ — shown once\), FAILED: .*Razorpay answered 400 BAD_REQUEST_ERROR: UPI QR is not enabled for this merchant/,
    );
    expect(run.stdout).toContain('Done: 2 provisioned, 0 skipped, 1 failed (M04).');
    expect(isPng(join(out, 'M03.png'))).toBe(true);
    expect(isPng(join(out, 'M05.png'))).toBe(true);
    expect(existsSync(join(out, 'M04.png'))).toBe(false);
    expect((await server!.request('GET', '/v1/machines/M04')).body.paymentProfile).toBeUndefined();

    fake.failFor.clear();
    const retry = await provision('M03,M04,M05');
    expect(retry.code, retry.output).toBe(0);
    expect(retry.stdout).toMatch(/\[2\/3\] M04 \.\.\. QR qr_\w+ -> \S*M04\.png/);
    expect(retry.stdout).toContain('Done: 1 provisioned, 2 skipped, 0 failed.');
  });

  it('wrong API keys are reported plainly', async () => {
    const run = await runCli(['M06', '--out', out], { ...env, RAZORPAY_KEY_SECRET: 'wrong_secret' });
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(
      /M06 .*FAILED: .*401 BAD_REQUEST_ERROR: The api key provided is invalid \(check RAZORPAY_KEY_ID and RAZORPAY_KEY_SECRET\)/,
    );
  });
});

describe('qr:provision without Razorpay', () => {
  const dir = tempDir('kioskhub-qr-local-');
  const out = join(dir.path, 'qr');
  afterAll(() => dir.remove());

  it('says what to set when no payment provider is configured, and touches nothing', async () => {
    const run = await runCli(['M01', '--out', out], { DATA_DIR: dir.path });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('RAZORPAY_KEY_ID and RAZORPAY_KEY_SECRET');
    expect(run.stderr).toContain('UPI_VPA');
    // The way to try it without Razorpay keys, as the README walkthrough does it.
    expect(run.stderr).toContain('UPI_VPA=shop@okaxis npm run qr:provision -- M01 --amount 2000');
    expect(run.stderr).toContain('npm run pay -- M01');
    expect(existsSync(join(dir.path, 'kioskhub.db'))).toBe(false);
  });

  it('rejects invalid machine ids with a clear error', async () => {
    const run = await runCli(['M01,bad id!', '--out', out], { DATA_DIR: dir.path, UPI_VPA: 'shop@okaxis' });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('invalid machine id "bad id!"');
  });

  it('with UPI_VPA makes local UPI QR codes and warns that payments are not confirmed', async () => {
    const run = await runCli(['L01', '--amount', '2550', '--out', out], {
      DATA_DIR: dir.path,
      UPI_VPA: 'kiosk.hub@okaxis',
      UPI_PAYEE_NAME: 'Kiosk Hub',
    });
    expect(run.code, run.output).toBe(0);
    expect(run.stdout).toContain('payments to a local UPI QR cannot be confirmed automatically');
    expect(run.stdout).toMatch(
      /\[1\/1\] L01 \.\.\. created machine \(key: mk_[\w-]+ — shown once\), QR local_L01 -> \S*L01\.png/,
    );
    expect(isPng(join(out, 'L01.png'))).toBe(true);

    const server = await startServer({ dataDir: dir.path });
    try {
      const machine = await server.request('GET', '/v1/machines/L01');
      expect(machine.body.paymentProfile).toEqual({
        provider: 'upi_local',
        qrCodeId: 'local_L01',
        qrImageUrl: null,
        qrShortUrl: null,
        fixedAmountPaise: 2550,
        qrContent: buildUpiLink({
          vpa: 'kiosk.hub@okaxis',
          payeeName: 'Kiosk Hub',
          amountPaise: 2550,
          reference: 'L01',
          note: 'Kioskhub L01',
        }),
      });
      expect(machine.body.paymentProfile.qrContent).toBe(
        'upi://pay?pa=kiosk.hub@okaxis&pn=Kiosk%20Hub&am=25.50&cu=INR&tr=L01&tn=Kioskhub%20L01',
      );
    } finally {
      await server.close();
    }
  });
});
