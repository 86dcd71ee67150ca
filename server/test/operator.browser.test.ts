// The screens tell the truth (issue 13): every page of `npm run demo` shows no error, and the
// machine pages of a kiosk, a cash unit and a printer show what applies to their kind, online
// by their HTTP requests, in their site's currency. Chromium through playwright-core; each page
// leaves a screenshot in artifacts/screenshots/operator-*.png.
import { spawn, type ChildProcess } from 'node:child_process';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, hasChromium, launchChromium, openPage, screenshot, signInWithToken } from './browser.js';
import { ADMIN_TOKEN, eventually, startServer, type TestServer } from './harness.js';
import { freePort } from './ports.js';

/** Opens a client route, waits for its data, fails on any error note, leaves a screenshot. */
async function visit(page: Page, url: string, path: string, heading: RegExp, shot: string): Promise<void> {
  await page.goto(`${url}${path}`);
  await page.getByRole('heading', { level: 1, name: heading }).waitFor();
  await expect
    .poll(() => page.locator('main [role="status"]', { hasText: /^Loading/ }).count(), { timeout: 15_000 })
    .toBe(0);
  await page.waitForTimeout(1000); // queries that start after the first render (QR image, charts)
  const errors = await page.locator('[role="alert"], .error').allTextContents();
  await screenshot(page, `operator-${shot}`);
  expect(errors, `${path} shows an error`).toEqual([]);
}

const withChromium = hasChromium('operator browser tests');

describe.skipIf(!withChromium)('the screens tell the truth', { timeout: 180_000 }, () => {
  let browser: Browser;
  beforeAll(async () => {
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
  });

  describe('npm run demo', () => {
    let demo: ChildProcess | undefined;
    let url: string;
    let token: string;
    let output = '';
    beforeAll(async () => {
      const port = await freePort();
      const env = Object.fromEntries(
        Object.entries(process.env).filter(
          ([k]) => !/^(DATABASE_URL|DATA_DIR|ADMIN_TOKEN|RAZORPAY_.*|PORT|HOST)$/.test(k),
        ),
      );
      demo = spawn(process.execPath, ['--import', 'tsx', 'server/src/cli/demo.ts'], {
        cwd: ROOT,
        env: { ...env, PORT: String(port), DEMO_DURATION_MS: '600000' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      demo.stdout!.on('data', (d: Buffer) => (output += d));
      demo.stderr!.on('data', (d: Buffer) => (output += d));
      token = (await eventually(
        () => /ADMIN_TOKEN=(\S+)/.exec(output)?.[1],
        90_000,
        'the demo’s admin token',
      ))!;
      url = `http://127.0.0.1:${port}`;
      // Wait for a few orders, one of them completed, so every page has something to show.
      await eventually(
        async () => {
          const res = await fetch(`${url}/v1/orders?status=COMPLETED`, {
            headers: { authorization: `Bearer ${token}` },
          });
          return res.ok && ((await res.json()) as { items: unknown[] }).items.length > 0;
        },
        60_000,
        'a completed demo order',
      );
    });
    afterAll(async () => {
      if (demo && demo.exitCode === null) {
        demo.kill('SIGTERM');
        await new Promise((r) => demo!.once('exit', r));
      }
    });

    it('every page of the demo shows no error; the machine page shows its QR', async () => {
      const page = await openPage(browser, { viewport: { width: 1280, height: 900 } });
      try {
        await signInWithToken(page, url, token);
        const orders = (await (
          await fetch(`${url}/v1/orders?status=COMPLETED`, {
            headers: { authorization: `Bearer ${token}` },
          })
        ).json()) as { items: { id: string }[] };
        await visit(page, url, '/', /Fleet/, 'demo-fleet');
        await visit(page, url, '/machines/DEMO01', /DEMO01/, 'demo-machine');
        await expect.poll(() => page.locator('img.qr').count()).toBe(1);
        await visit(page, url, '/orders', /Orders/, 'demo-orders');
        await visit(page, url, `/orders/${orders.items[0]!.id}`, /Order/, 'demo-order');
        await visit(page, url, '/review', /review/i, 'demo-review');
        await visit(page, url, '/cash', /Cash/, 'demo-cash');
        await visit(page, url, '/catalog', /Sites/, 'demo-catalog');
        await visit(page, url, '/charts', /Charts/, 'demo-charts');
        await visit(page, url, '/alerts', /Alerts/, 'demo-alerts');
      } finally {
        await page.context().close();
      }
    });
  });

  describe('a restaurant’s kiosk, cash unit and printer', () => {
    let server: TestServer;
    beforeAll(async () => {
      server = await startServer({ env: { MACHINE_HEARTBEAT_TIMEOUT_MS: '60000' } });
      expect(
        (
          await server.request('POST', '/v1/sites', {
            body: { id: 'manila1', name: 'Burger Manila', currency: 'PHP', taxRateBp: 1200 },
          })
        ).status,
      ).toBe(201);
    });
    afterAll(async () => {
      await server?.close();
    });

    it('each machine page shows what its kind does, online by its requests, in PHP, with no UPI QR', async () => {
      const kiosk = await server.createMachine('KIOSK1', { kind: 'kiosk', siteId: 'manila1' });
      const cash = await server.createMachine('CASH1', { kind: 'cash', siteId: 'manila1' });
      const printer = await server.createMachine('PRINTER1', { kind: 'printer', siteId: 'manila1' });
      const calls: [string, string][] = [
        [kiosk.key, '/api/cash-payment/active-sessions'],
        [cash.key, '/api/cash-payment/active-sessions'],
        [printer.key, '/api/receipt/queue/next'],
      ];
      for (const [key, path] of calls)
        expect((await fetch(`${server.url}${path}`, { headers: { 'x-api-key': key } })).status).toBeLessThan(
          300,
        );
      for (const id of ['KIOSK1', 'CASH1', 'PRINTER1']) {
        await eventually(
          async () => (await server.request('GET', `/v1/machines/${id}`)).body.status === 'IDLE',
          8000,
          `${id} online`,
        );
      }
      const page = await openPage(browser, { viewport: { width: 1280, height: 900 } });
      try {
        await signInWithToken(page, server.url, ADMIN_TOKEN);
        for (const [id, shot, route] of [
          ['KIOSK1', 'kiosk', 'POST /api/cash-payment/init'],
          ['CASH1', 'cash-unit', 'POST /api/cash-payment/update'],
          ['PRINTER1', 'printer', 'GET /api/receipt/queue/next?wait=25'],
        ] as const) {
          await visit(page, server.url, `/machines/${id}`, new RegExp(id), shot);
          const text = await page.locator('main').innerText();
          expect(text).toContain('What this machine does');
          expect(text).toContain(route);
          expect(text).toContain('calling over HTTP with its key');
          expect(text).toMatch(/Currency\s+PHP/);
          expect(text).not.toMatch(/Provision UPI QR|Amount per vend|Payment QR|Recent commands/);
          expect(text).not.toMatch(/Offline|never/i);
        }
      } finally {
        await page.context().close();
      }
    });
  });
});
