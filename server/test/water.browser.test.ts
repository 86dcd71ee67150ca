// Water kiosks on the operator dashboard, in Debian's Chromium (playwright-core), against the real
// server (SQLite; water-ui.test.ts covers PostgreSQL). Heartbeats and verifications go through
// the real HTTP firmware API; the kiosk page's feed must follow them live, without a reload.
// Each test leaves a screenshot in artifacts/screenshots/ (run `npm run build` first).
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newId } from '../src/platform/db/database.js';
import {
  hasChromium,
  launchChromium,
  markPage,
  notReloaded,
  openPage,
  openSignedInPage,
  screenshot,
  signIn,
} from './browser.js';
import { staffToken } from './dashboard-fixtures.js';
import { startServer, type TestServer } from './harness.js';

const PIN = '4821';
const PHONE = '+254711000001';

const withChromium = hasChromium('water browser tests');

describe.skipIf(!withChromium)('water kiosks in the dashboard', { timeout: 90_000 }, () => {
  let server: TestServer;
  let browser: Browser;
  let page: Page;
  const keys: Record<string, string> = {};
  const shot = (name: string, p: Page = page) => screenshot(p, `water-${name}`);
  const kiosk = (id: string, path: string, body: unknown) =>
    server.request('POST', path, { token: null, headers: { 'x-api-key': keys[id]! }, body });
  const verify = (id: string, pin: string, volumeMl: number, phone = PHONE) =>
    kiosk(id, '/dispense-verification', {
      kiosk_id: id,
      user_id: phone,
      pin,
      volume_ml: volumeMl,
      timestamp: new Date().toISOString(),
    });
  const feedCodes = () =>
    page
      .locator('[data-testid="verification-feed"] tr')
      .evaluateAll((rows) => rows.map((r) => r.getAttribute('data-code')));

  beforeAll(async () => {
    server = await startServer({ env: { WATER_ALERT_SWEEP_MS: '86400000' } });
    for (const [id, name] of [
      ['W1', 'Kibera North'],
      ['W2', 'Mathare Gate'],
    ] as const)
      keys[id] = (await server.createMachine(id, { kind: 'water', name })).key;
    await staffToken(server, 'ops@water.test', 'admin');
    const c = await server.request('POST', '/v1/customers', {
      body: { phone: PHONE, pin: PIN, fullName: 'Amina W' },
    });
    expect(c.status, JSON.stringify(c.body)).toBe(201);
    await server.request('POST', `/v1/customers/${c.body.id}/credits`, {
      body: { deltaMl: 40_000, reason: 'test' },
    });
    for (const plan of [
      {
        id: 'MONTH',
        name: 'Monthly unlimited',
        kind: 'subscription',
        priceMinor: 50_000,
        currency: 'KES',
        days: 30,
      },
      {
        id: 'JERRY',
        name: '20 L jerrycan',
        kind: 'credit',
        priceMinor: 3_000,
        currency: 'KES',
        creditMl: 20_000,
      },
    ])
      expect((await server.request('POST', '/v1/water/plans', { body: plan })).status).toBe(201);
    // Plan payments as settlement leaves them (the charts read them; their path is tested elsewhere).
    const now = new Date().toISOString();
    for (const [planId, amount] of [
      ['MONTH', 50_000],
      ['MONTH', 50_000],
      ['JERRY', 3_000],
    ] as const)
      await server.kioskhub.db
        .insertInto('payments')
        .values({
          id: newId(),
          tenant_id: 'default',
          site_id: null,
          purpose: 'plan',
          order_id: null,
          customer_id: c.body.id,
          plan_id: planId,
          machine_id: null,
          method: 'momo',
          provider: 'momo',
          provider_payment_id: newId(),
          reference: null,
          amount_minor: amount,
          received_minor: amount,
          currency: 'KES',
          status: 'SUCCEEDED',
          failure_code: null,
          refunded_minor: 0,
          created_at: now,
          completed_at: now,
          updated_at: now,
        })
        .execute();

    // W1 speaks and serves water; W2 has never been heard from.
    const hb = await kiosk('W1', '/v1/water/heartbeat', {
      firmware: 'esp32s3-2.4.1',
      taps: [
        { tap: 1, status: 'OK', totalMl: 152_300 },
        { tap: 2, status: 'OK', totalMl: 98_000 },
        { tap: 3, status: 'VALVE_STUCK', totalMl: 4_100 },
      ],
      signalDbm: -73,
      sdFreeMb: 1840,
      cacheVersion: 12,
    });
    expect(hb.status, JSON.stringify(hb.body)).toBe(200);
    const ok = await verify('W1', PIN, 5000);
    expect(ok.body.approved).toBe(true);
    const settled = await kiosk('W1', '/v1/water/dispenses', {
      authorizationId: ok.body.authorization_id,
      dispensedMl: 4800,
      kioskTxnId: 'b-1',
      tap: 1,
    });
    expect(settled.status).toBe(200);

    browser = await launchChromium();
    page = await openPage(browser);
    await signIn(page, server.url, 'ops@water.test');
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  it('lists water kiosks with status, taps, firmware, cache and today’s water', async () => {
    const nav = page.getByRole('navigation', { name: 'Main' });
    // Every link of the header fits at 1280 px: none is cut off by the bar's scrolling.
    const navBox = (await nav.boundingBox())!;
    const last = (await nav.getByRole('link', { name: 'Charts' }).boundingBox())!;
    expect(last.x + last.width).toBeLessThanOrEqual(navBox.x + navBox.width + 1);
    await nav.getByRole('link', { name: 'Water', exact: true }).click();
    await page.getByRole('heading', { name: 'Water kiosks' }).waitFor();
    const w1 = page.locator('tr[data-kiosk-id="W1"]');
    await w1.waitFor();
    await expect.poll(() => w1.textContent()).toContain('Online');
    const text = (await w1.textContent()) ?? '';
    expect(text).toContain('Kibera North (W1)');
    expect(text).toContain('esp32s3-2.4.1');
    expect(text).toContain('3 taps, 1 in fault');
    expect(text).toContain('4.8 L');
    expect(await page.locator('tr[data-kiosk-id="W2"]').textContent()).toContain('Offline');
    await expect.poll(() => page.locator('.summary').textContent()).toContain('1 of 2 kiosks online');
    await shot('kiosks');
  });

  it('shows a kiosk’s taps and a verification feed that updates live, without a reload', async () => {
    await page.getByRole('link', { name: 'Kibera North (W1)' }).click();
    await page.getByRole('heading', { name: /Kibera North/ }).waitFor();
    await expect.poll(feedCodes).toEqual(['VERIFIED']);
    expect(await page.locator('tr[data-tap="3"]').textContent()).toContain('Fault: VALVE_STUCK');
    expect(await page.locator('[data-testid="verification-feed"] tr').first().textContent()).toContain(
      'Amina W',
    );
    expect(await page.getByTestId('litres-today').textContent()).toBe('4.8 L');
    await markPage(page);

    // The kiosk asks again: a wrong PIN, an unknown phone, then a good one.
    expect((await verify('W1', '0000', 5000)).body.code).toBe('INVALID_PIN');
    await expect.poll(feedCodes).toEqual(['INVALID_PIN', 'VERIFIED']);
    expect((await verify('W1', PIN, 1000, '+254799000000')).body.code).toBe('UNKNOWN_CUSTOMER');
    expect((await verify('W1', PIN, 2000)).body.code).toBe('VERIFIED');
    await expect.poll(feedCodes).toEqual(['VERIFIED', 'UNKNOWN_CUSTOMER', 'INVALID_PIN', 'VERIFIED']);
    await expect
      .poll(() => page.getByTestId('verifications-today').textContent())
      .toBe('2 approved · 2 denied');
    expect(await page.locator('tr[data-code="INVALID_PIN"]').textContent()).toContain('Wrong PIN');
    expect(await page.locator('tr[data-code="UNKNOWN_CUSTOMER"]').textContent()).toContain(
      'No customer with this phone number',
    );
    expect(await notReloaded(page)).toBe(true);
    await shot('kiosk');
    // The same page on a phone (a screenshot to look at).
    const token = await page.evaluate<string>("localStorage.getItem('kioskhub.token')");
    const p = await openSignedInPage(browser, token, { viewport: { width: 390, height: 844 } });
    await p.goto(`${server.url}/water/W1`);
    await p.locator('[data-testid="verification-feed"] tr').first().waitFor();
    await shot('phone-kiosk', p);
    await p.goto(`${server.url}/water`);
    await p.locator('tr[data-kiosk-id="W1"]').waitFor();
    await shot('phone-kiosks', p);
    await p.context().close();
  });

  it('charts water: litres per day, approvals and denials by reason, revenue by plan', async () => {
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Charts' }).click();
    await page.getByRole('heading', { name: 'Water' }).waitFor();
    await expect.poll(() => page.getByTestId('water-litres').textContent()).toBe('4.8 L');
    await expect
      .poll(() => page.getByTestId('water-verifications').textContent())
      .toBe('2 approved · 2 denied');
    const kes = page.locator('[data-currency="KES"]');
    await expect.poll(() => kes.textContent()).toContain('Monthly unlimited');
    expect(await kes.textContent()).toContain('20 L jerrycan');
    await shot('charts');
  });

  it('shows water alerts raised by the sweep, linked to the kiosk', async () => {
    await server.kioskhub.services.waterOps.alerts.sweepOnce();
    await page
      .getByRole('link', { name: /Alerts/ })
      .first()
      .click();
    const row = page.locator('tr[data-alert-kind="WATER_TAP_FAULT"]');
    await row.waitFor();
    expect(await row.textContent()).toContain('Tap 3 of water kiosk Kibera North (W1) reports VALVE_STUCK');
    await shot('alerts');
    await row.getByRole('link', { name: 'W1 tap 3' }).click();
    await page.getByRole('heading', { name: /Kibera North/ }).waitFor();
  });
});
