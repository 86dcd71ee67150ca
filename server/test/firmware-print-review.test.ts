// Review tests of firmware campaigns and the receipt print queue against the real server, on
// both engines: maxConcurrent after a timeout, reports to an aborted campaign, the version a
// device reports, two campaigns on one device, bad input; double printing, double acks,
// another site's job, retries and FAILED, receipts in currencies of exponent 0 and 3.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderReceipt } from '../../devices/print-client/src/receipt-layout.js';
import { engines, eventually, startServer, tempDir, type TestServer } from './harness.js';
import {
  HW,
  SIGNING_KEYS,
  act,
  campaign,
  device,
  drive,
  newCampaign,
  signedImage,
  uploadOk,
} from './firmware-fixtures.js';

let seq = 0;
const uid = (prefix: string) => `${prefix}${++seq}${Math.random().toString(36).slice(2, 6)}`;
const key = (k: string) => ({ token: null, headers: { 'x-api-key': k } }) as const;

describe.each(engines())('firmware review (%s)', (engine) => {
  let server: TestServer;
  const dir = tempDir('kioskhub-fwr-');

  beforeAll(async () => {
    server = await startServer({
      engine,
      env: { FIRMWARE_SIGNING_KEYS: SIGNING_KEYS, FIRMWARE_DIR: dir.path, FIRMWARE_TICK_MS: '40' },
    });
  });
  afterAll(async () => {
    await server?.close();
    dir.remove();
  });

  async function fleet(n: number) {
    const out: { id: string; key: string }[] = [];
    for (let i = 0; i < n; i++) out.push(await server.createMachine(uid('FR'), { kind: 'kiosk' }));
    return out;
  }
  const create = (artifactId: string, machineIds: string[], over: Record<string, unknown> = {}) =>
    newCampaign(server, artifactId, machineIds, over);
  const db = () => server.kioskhub.db;
  /** Makes a deployment look silent since long ago; the next tick times it out. */
  const silence = (deploymentId: string) =>
    db()
      .updateTable('firmware_deployments')
      .set({ active_at: '2000-01-01T00:00:00.000Z' })
      .where('id', '=', deploymentId)
      .execute();
  const IN_PROGRESS = ['NOTIFIED', 'DOWNLOADING', 'DOWNLOADED', 'VERIFIED', 'INSTALLING', 'REBOOTING'];
  const report = (m: { key: string }, deploymentId: string, body: Record<string, unknown>) =>
    server.request('POST', `/api/device/v1/ota/${deploymentId}/status`, { ...key(m.key), body });

  it('a timed-out device frees exactly its own slot: never more than maxConcurrent in progress', async () => {
    const artifactId = await uploadOk(server, signedImage('7.1.0'));
    const ms = await fleet(5);
    const c = await create(
      artifactId,
      ms.map((m) => m.id),
      { maxConcurrent: 2 },
    );
    await act(server, c.id, 'start');
    const released = await eventually(async () => {
      const x = await campaign(server, c.id);
      return x.counts.NOTIFIED === 2 ? x : undefined;
    });
    const victim = released.devices.find((d: any) => d.state === 'NOTIFIED');
    await silence(victim.deploymentId);
    await eventually(async () => {
      const x = await campaign(server, c.id);
      return x.counts.TIMED_OUT === 1 ? x : undefined;
    });
    // Let a few more ticks run: the freed slot is refilled by one device, not two.
    await new Promise((r) => setTimeout(r, 400));
    const after = await campaign(server, c.id);
    const busy = after.devices.filter((d: any) => IN_PROGRESS.includes(d.state)).length;
    expect(after.counts).toEqual({ TIMED_OUT: 1, NOTIFIED: 2, PENDING: 2 });
    expect(busy).toBeLessThanOrEqual(2);
  });

  it('a timed-out device of an aborted campaign cannot come back: 409 INVALID_STATE, nothing changes', async () => {
    const artifactId = await uploadOk(server, signedImage('7.2.0'));
    const ms = await fleet(2);
    // maxConcurrent 1: the second device keeps the campaign RUNNING after the first times out.
    const c = await create(
      artifactId,
      ms.map((m) => m.id),
      { maxConcurrent: 1 },
    );
    await act(server, c.id, 'start');
    const dep = await eventually(async () => {
      const x = await campaign(server, c.id);
      return x.devices.find((d: any) => d.state === 'NOTIFIED');
    });
    const m = ms.find((x) => x.id === dep.machineId);
    await silence(dep.deploymentId);
    await eventually(async () => {
      const x = await campaign(server, c.id);
      return x.counts.TIMED_OUT === 1 && x.counts.NOTIFIED === 1 ? x : undefined;
    });
    const aborted = await act(server, c.id, 'abort');
    expect(aborted.body.status, JSON.stringify(aborted.body)).toBe('ABORTED');
    const late = await report(m!, dep.deploymentId, {
      seq: 1,
      state: 'DOWNLOADING',
      currentVersion: '1.0.0',
    });
    expect(late.status, JSON.stringify(late.body)).toBe(409);
    expect(late.body.error.code).toBe('INVALID_STATE');
    const x = await campaign(server, c.id);
    expect(x.status).toBe('ABORTED');
    expect(x.counts).toEqual({ TIMED_OUT: 1, CANCELLED: 1 });
    expect(x.devices.find((d: any) => d.deploymentId === dep.deploymentId).state).toBe('TIMED_OUT');
  });

  it('SUCCEEDED with a version other than the one sent (another build: 7.3.0+dev) is 400, nothing changes', async () => {
    const artifactId = await uploadOk(server, signedImage('7.3.0'));
    const [m] = await fleet(1);
    const c = await create(artifactId, [m!.id]);
    await act(server, c.id, 'start');
    const next = await eventually(async () => {
      const r = await server.request('GET', `/api/device/v1/ota/next?current=1.0.0&hw=${HW}`, key(m!.key));
      return r.status === 200 ? r.body : undefined;
    });
    const id = next.deploymentId as string;
    expect((await report(m!, id, { seq: 1, state: 'DOWNLOADING', currentVersion: '1.0.0' })).status).toBe(
      200,
    );
    expect((await report(m!, id, { seq: 2, state: 'REBOOTING', currentVersion: '1.0.0' })).status).toBe(200);
    for (const [i, version] of ['7.2.0', '7.3.1', '7.3.0+dev', '7.3.0.0', '7.3'].entries()) {
      const res = await report(m!, id, {
        seq: 3 + i,
        state: 'SUCCEEDED',
        currentVersion: version,
        confirmed: true,
      });
      expect(res.status, `${version}: ${JSON.stringify(res.body)}`).toBe(400);
    }
    expect((await campaign(server, c.id)).devices[0].state).toBe('REBOOTING');
    const ok = await report(m!, id, {
      seq: 20,
      state: 'SUCCEEDED',
      currentVersion: '7.3.0',
      confirmed: true,
    });
    expect(ok.body).toMatchObject({ ok: true, state: 'SUCCEEDED' });
  });

  it('bad status reports (bytes/total beyond any image, unknown state, extra field) are 400 and change nothing', async () => {
    const artifactId = await uploadOk(server, signedImage('7.4.0'));
    const [m] = await fleet(1);
    const c = await create(artifactId, [m!.id]);
    await act(server, c.id, 'start');
    const dep = await eventually(async () => {
      const x = await campaign(server, c.id);
      return x.devices[0].state === 'NOTIFIED' ? x.devices[0] : undefined;
    });
    const bad: Record<string, unknown>[] = [
      { seq: 1, state: 'DOWNLOADING', currentVersion: '1.0.0', bytes: 1e20, total: 40000 },
      { seq: 1, state: 'DOWNLOADING', currentVersion: '1.0.0', bytes: 0, total: 1e20 },
      { seq: 1, state: 'PENDING', currentVersion: '1.0.0' },
      { seq: 1, state: 'DOWNLOADING', currentVersion: '1.0.0', extra: 1 },
      { seq: -1, state: 'DOWNLOADING', currentVersion: '1.0.0' },
      { seq: 1, state: 'DOWNLOADING', currentVersion: '' },
    ];
    for (const body of bad) {
      const res = await report(m!, dep.deploymentId, body);
      expect(res.status, `${JSON.stringify(body)} → ${JSON.stringify(res.body)}`).toBe(400);
    }
    const x = await campaign(server, c.id);
    expect(x.devices[0]).toMatchObject({ state: 'NOTIFIED', bytes: null, total: null });
    // A proper report still goes through afterwards.
    expect(
      (await report(m!, dep.deploymentId, { seq: 1, state: 'DOWNLOADING', currentVersion: '1.0.0' })).status,
    ).toBe(200);
  });

  it('two campaigns targeting one device: it installs one after the other and both succeed', async () => {
    const a = await uploadOk(server, signedImage('8.0.0'));
    const b = await uploadOk(server, signedImage('8.1.0'));
    const [m] = await fleet(1);
    const ca = await create(a, [m!.id]);
    const cb = await create(b, [m!.id]);
    await act(server, ca.id, 'start');
    await eventually(async () => ((await campaign(server, ca.id)).counts.NOTIFIED ? true : undefined));
    await act(server, cb.id, 'start');
    const dev = device(server, m!);
    await drive(server, cb.id, [dev], (x) => x.status === 'COMPLETED', 'second campaign completed');
    const first = await campaign(server, ca.id);
    const second = await campaign(server, cb.id);
    expect(first.devices[0]).toMatchObject({ state: 'SUCCEEDED', currentVersion: '8.0.0' });
    expect(second.devices[0]).toMatchObject({ state: 'SUCCEEDED', currentVersion: '8.1.0' });
  });
});

describe.each(engines())('print queue review (%s)', (engine) => {
  let server: TestServer;

  beforeAll(async () => {
    server = await startServer({ engine });
  });
  afterAll(async () => {
    await server?.close();
  });

  async function printSite(currency: string, priceMinor: number, taxRateBp = 0) {
    const siteId = uid('prv');
    const res = await server.request('POST', '/v1/sites', {
      body: { id: siteId, name: `Diner ${siteId}`, currency, taxRateBp },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    const sku = `${siteId}-meal`;
    const p = await server.request('POST', '/v1/products', {
      body: { sku, name: 'Meal', priceMinor, siteId },
    });
    expect(p.status, JSON.stringify(p.body)).toBe(201);
    return {
      siteId,
      sku,
      kiosk: await server.createMachine(uid('K'), { kind: 'kiosk', siteId }),
      printerA: await server.createMachine(uid('PA'), { kind: 'printer', siteId }),
      printerB: await server.createMachine(uid('PB'), { kind: 'printer', siteId }),
    };
  }
  type Site = Awaited<ReturnType<typeof printSite>>;

  /** A paid cash order (`total` and `given` in major units); returns its print job id. */
  async function paid(site: Site, total: number, given: number): Promise<string> {
    const order = await server.request('POST', '/v1/orders', {
      ...key(site.kiosk.key),
      body: { items: [{ sku: site.sku, qty: 1 }] },
    });
    expect(order.status, JSON.stringify(order.body)).toBe(201);
    const orderNumber = order.body.orderNumber as string;
    const init = await server.request('POST', '/api/cash-payment/init', {
      ...key(site.kiosk.key),
      body: { orderNumber, totalAmount: total },
    });
    expect(init.status, JSON.stringify(init.body)).toBe(200);
    const upd = await server.request('POST', '/api/cash-payment/update', {
      ...key(site.kiosk.key),
      body: { orderNumber, amountAdded: given },
    });
    expect(upd.body.status, JSON.stringify(upd.body)).toBe('PAID');
    const jobs = (await server.request('GET', `/v1/print-jobs?siteId=${site.siteId}&limit=200`)).body.items;
    const job = jobs.find((j: any) => j.orderId === order.body.id);
    expect(job).toBeDefined();
    return job.jobId as string;
  }
  const next = (k: string) => server.request('GET', '/api/receipt/queue/next', key(k));
  const complete = (k: string, jobId: string) =>
    server.request('POST', `/api/receipt/queue/complete/${jobId}`, key(k));
  const failed = (k: string, jobId: string, body?: unknown) =>
    server.request('POST', `/api/receipt/queue/failed/${jobId}`, {
      ...key(k),
      ...(body !== undefined ? { body } : {}),
    });
  const status = async (k: string, jobId: string) =>
    (await server.request('GET', `/api/receipt/queue/status/${jobId}`, key(k))).body;

  it('two printers polling at once never get the same job', async () => {
    const site = await printSite('PHP', 12_000);
    const jobs: string[] = [];
    for (let i = 0; i < 12; i++) jobs.push(await paid(site, 120, 120));
    const got: string[] = [];
    const poll = async (k: string) => {
      for (;;) {
        const res = await next(k);
        if (res.status === 204) return;
        expect(res.status).toBe(200);
        got.push(res.body.jobId as string);
      }
    };
    await Promise.all([poll(site.printerA.key), poll(site.printerB.key), poll(site.printerA.key)]);
    expect(new Set(got).size).toBe(got.length);
    expect([...got].sort()).toEqual([...jobs].sort());
  });

  it('an ack twice is fine and prints once; a failure after the ack changes nothing', async () => {
    const site = await printSite('PHP', 12_000);
    const jobId = await paid(site, 120, 120);
    expect((await next(site.printerA.key)).body.jobId).toBe(jobId);
    expect((await complete(site.printerA.key, jobId)).body).toEqual({ success: true });
    expect((await complete(site.printerA.key, jobId)).body).toEqual({ success: true });
    expect((await failed(site.printerA.key, jobId, { error: 'jam' })).body).toEqual({
      success: true,
      status: 'PRINTED',
    });
    expect(await status(site.printerA.key, jobId)).toMatchObject({ status: 'PRINTED', attempts: 1 });
    expect((await next(site.printerB.key)).status).toBe(204);
  });

  it("another site's job cannot be acked or failed (404) and stays leased", async () => {
    const mine = await printSite('PHP', 12_000);
    const other = await printSite('PHP', 12_000);
    const jobId = await paid(mine, 120, 120);
    expect((await next(mine.printerA.key)).body.jobId).toBe(jobId);
    expect((await complete(other.printerA.key, jobId)).status).toBe(404);
    expect((await failed(other.printerA.key, jobId)).status).toBe(404);
    expect(await status(mine.printerA.key, jobId)).toMatchObject({ status: 'LEASED', attempts: 1 });
  });

  it('five failures → FAILED (ack 409, not handed out again); retry puts it back with fresh attempts', async () => {
    const site = await printSite('PHP', 12_000);
    const jobId = await paid(site, 120, 120);
    for (let i = 1; i <= 5; i++) {
      expect((await next(site.printerA.key)).body.jobId).toBe(jobId);
      expect((await failed(site.printerA.key, jobId, { error: `jam ${i}` })).body.status).toBe(
        i < 5 ? 'PENDING' : 'FAILED',
      );
    }
    expect((await next(site.printerA.key)).status).toBe(204);
    const late = await complete(site.printerA.key, jobId);
    expect(late.status).toBe(409);
    expect(await status(site.printerA.key, jobId)).toMatchObject({ status: 'FAILED', attempts: 5 });
    expect((await server.request('POST', `/v1/print-jobs/${jobId}/retry`)).status).toBe(200);
    expect((await next(site.printerB.key)).body.jobId).toBe(jobId);
    expect(await status(site.printerB.key, jobId)).toMatchObject({ status: 'LEASED', attempts: 1 });
  });

  it('bad input is a clear 400/404 and changes nothing', async () => {
    const site = await printSite('PHP', 12_000);
    const jobId = await paid(site, 120, 120);
    expect(
      (await server.request('GET', '/api/receipt/queue/next?wait=31', key(site.printerA.key))).status,
    ).toBe(400);
    expect((await next(site.printerA.key)).body.jobId).toBe(jobId);
    expect((await failed(site.printerA.key, jobId, { error: 'x'.repeat(2001) })).status).toBe(400);
    expect((await failed(site.printerA.key, jobId, { error: 'x', extra: 1 })).status).toBe(400);
    expect((await complete(site.printerA.key, 'no-such-job')).status).toBe(404);
    expect(await status(site.printerA.key, jobId)).toMatchObject({ status: 'LEASED', attempts: 1 });
  });

  it('receipts in UGX (exponent 0) and KWD (exponent 3) carry amounts with the currency’s decimals', async () => {
    const ugx = await printSite('UGX', 5_000, 1_800);
    const ugxJob = await paid(ugx, 5_000, 10_000);
    const u = await next(ugx.printerA.key);
    expect(u.body.jobId).toBe(ugxJob);
    // 18 % VAT included: round(5000 × 1800 / 11800) = 763.
    expect(u.body.receipt).toMatchObject({
      items: [{ productName: 'Meal', quantity: 1, lineTotal: 5_000 }],
      subTotal: 4_237,
      tax: 763,
      totalAmount: 5_000,
      amountPaid: 10_000,
      change: 5_000,
    });
    const kwd = await printSite('KWD', 1_255, 1_500);
    const kwdJob = await paid(kwd, 1.255, 2);
    const k = await next(kwd.printerA.key);
    expect(k.body.jobId).toBe(kwdJob);
    // 15 % VAT included: round(1255 × 1500 / 11500) = 164 fils.
    expect(k.body.receipt).toMatchObject({
      items: [{ productName: 'Meal', quantity: 1, lineTotal: 1.255 }],
      subTotal: 1.091,
      tax: 0.164,
      totalAmount: 1.255,
      amountPaid: 2,
      change: 0.745,
    });
  });

  // The print client used to print every amount with two decimals (the receipt named no
  // currency): a KWD receipt printed 1.255 as "1.26", UGX 5000 as "5,000.00".
  it('the print client prints a KWD receipt from the queue with 3 decimals and UGX with none', async () => {
    const kwd = await printSite('KWD', 1_255);
    await paid(kwd, 1.255, 2);
    const k = await next(kwd.printerA.key);
    const kText = renderReceipt(k.body.receipt, { columns: 42, currencyLabel: 'KWD' }).toString('latin1');
    expect(kText).toContain('1.255');
    expect(kText).toContain('0.745');
    const ugx = await printSite('UGX', 5_000);
    await paid(ugx, 5_000, 10_000);
    const u = await next(ugx.printerA.key);
    const uText = renderReceipt(u.body.receipt, { columns: 42, currencyLabel: 'UGX' }).toString('latin1');
    expect(uText).toContain('5,000');
    expect(uText).not.toContain('5,000.00');
  });
});
