// The dashboard's customer pages in Debian's Chromium, driven by playwright-core, against the real
// server (SQLite; customers-api.test.ts covers PostgreSQL): search by a phone in its local form,
// page through 25 at a time, open a customer, adjust credit with a reason, see an error when
// taking more than there is, reset a PIN, create a plan; a technician sees no customer pages.
// Screenshots go to artifacts/screenshots/customers-*.png.
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hasChromium, launchChromium, openPage, screenshot, signIn } from './browser.js';
import { staffToken } from './dashboard-fixtures.js';
import { startServer, type TestServer } from './harness.js';

const withChromium = hasChromium('customers browser tests');

describe.skipIf(!withChromium)('customer pages in a browser', { timeout: 90_000 }, () => {
  let server: TestServer;
  let browser: Browser;
  let page: Page;
  let amina: { id: string; accountId: string; phone: string };
  const shot = (name: string, p: Page = page) => screenshot(p, `customers-${name}`);

  beforeAll(async () => {
    server = await startServer();
    await server.kioskhub.services.tenants.setDefaultCountryCode('default', '254');
    await staffToken(server, 'care@default.test', 'customer_service');
    await staffToken(server, 'tech@default.test', 'technician');
    const plan = await server.request('POST', '/v1/water/plans', {
      body: {
        id: 'month',
        name: 'Monthly water',
        kind: 'subscription',
        priceMinor: 150_000,
        currency: 'KES',
        days: 30,
        dailyLimitMl: 20_000,
      },
    });
    expect(plan.status).toBe(201);
    // 30 customers: more than one page.
    for (let i = 0; i < 29; i += 1) {
      const res = await server.request('POST', '/v1/customers', {
        body: { phone: `+2547000000${String(i).padStart(2, '0')}`, fullName: `Customer ${i + 1}` },
      });
      expect(res.status).toBe(201);
    }
    const res = await server.request('POST', '/v1/customers', {
      body: { phone: '0712 345 678', fullName: 'Amina Wanjiru', pin: '4821' },
    });
    expect(res.status).toBe(201);
    amina = res.body;
    expect(
      (
        await server.request('POST', `/v1/customers/${amina.id}/subscription`, {
          body: { planId: 'month' },
        })
      ).status,
    ).toBe(200);
    browser = await launchChromium();
    page = await openPage(browser);
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  it('lists customers 25 a page with next and previous', async () => {
    await signIn(page, server.url, 'care@default.test');
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Customers' }).click();
    await page.getByRole('heading', { name: 'Customers' }).waitFor();
    const rows = page.locator('[data-testid="customer-rows"] tr');
    await expect.poll(() => rows.count()).toBe(25);
    await expect.poll(() => rows.first().textContent()).toContain('Amina Wanjiru');
    await shot('list');
    await page.getByRole('button', { name: 'Next →' }).click();
    await expect.poll(() => rows.count()).toBe(5);
    await page.getByText('Page 2').waitFor();
    expect(await page.getByRole('button', { name: 'Next →' }).isDisabled()).toBe(true);
    await page.getByRole('button', { name: '← Previous' }).click();
    await expect.poll(() => rows.count()).toBe(25);
  });

  it('finds a customer by a local phone number, opens the page and adjusts credit with a reason', async () => {
    await page.getByLabel('Phone, account id or name').fill('0712345678');
    await page.getByRole('button', { name: 'Search', exact: true }).click();
    const rows = page.locator('[data-testid="customer-rows"] tr');
    await expect.poll(() => rows.count()).toBe(1);
    await shot('search');
    await rows.first().getByRole('link', { name: amina.accountId }).click();
    await page.getByRole('heading', { name: /Amina Wanjiru/ }).waitFor();
    await expect.poll(() => page.getByTestId('credit').textContent()).toBe('0.0 L');

    const credit = page.getByRole('form', { name: 'Adjust credit' });
    await credit.getByLabel('Litres (+ adds, − takes)').fill('20');
    await credit.getByLabel('Reason').fill('Goodwill after the outage');
    await credit.getByRole('button', { name: 'Apply' }).click();
    await expect.poll(() => page.getByTestId('credit').textContent()).toBe('20.0 L');
    const ledger = page.locator('[data-testid="ledger-rows"] tr');
    await expect.poll(() => ledger.count()).toBe(1);
    expect(await ledger.first().textContent()).toContain('Goodwill after the outage');

    // Taking more than there is: a clear error, and nothing changed.
    await credit.getByLabel('Litres (+ adds, − takes)').fill('-50');
    await credit.getByLabel('Reason').fill('Typo');
    await credit.getByRole('button', { name: 'Apply' }).click();
    await expect.poll(() => credit.getByRole('alert').textContent()).toContain('INSUFFICIENT_CREDIT');
    expect(await page.getByTestId('credit').textContent()).toBe('20.0 L');
    await shot('customer');

    const audit = await server.kioskhub.db
      .selectFrom('audit_log')
      .selectAll()
      .where('subject_id', '=', amina.id)
      .where('action', '=', 'customer.credit_adjusted')
      .execute();
    expect(audit).toHaveLength(1);
    expect(audit[0]!.actor).toMatch(/^user:/);
    expect(audit[0]!.after).toContain('Goodwill after the outage');
  });

  it('resets the PIN (shown once without SMS) and sets the daily limit', async () => {
    await page.getByRole('button', { name: 'Reset PIN' }).click();
    await page.getByRole('button', { name: 'Send a new PIN' }).click();
    await expect.poll(() => page.getByTestId('new-pin').textContent()).toMatch(/^\d{4}$/);
    const limit = page.getByRole('form', { name: 'Daily limit' });
    await limit.getByLabel('Litres a day (empty: none)').fill('25');
    await limit.getByRole('button', { name: 'Set limit' }).click();
    await expect.poll(() => page.getByTestId('customer-facts').textContent()).toContain('25.0 L a day');
    await shot('actions');
  });

  it('lists and creates plans', async () => {
    await page.goto(`${server.url}/plans`);
    await page.getByRole('heading', { name: 'Water plans' }).waitFor();
    const form = page.getByRole('form', { name: 'Create a plan' });
    await form.getByLabel('Id (what customers type: BUY month)').fill('jerry100');
    await form.getByLabel('Name').fill('100 litres');
    await form.getByLabel('Kind').selectOption('credit');
    await form.getByLabel('Price').fill('500');
    await form.getByLabel('Litres').fill('100');
    await form.getByRole('button', { name: 'Create plan' }).click();
    const rows = page.locator('[data-testid="plan-rows"] tr');
    await expect.poll(() => rows.count()).toBe(2);
    // The same id again: the server's CONFLICT is shown.
    await form.getByLabel('Id (what customers type: BUY month)').fill('jerry100');
    await form.getByLabel('Name').fill('Again');
    await form.getByLabel('Price').fill('500');
    await form.getByLabel('Litres').fill('100');
    await form.getByRole('button', { name: 'Create plan' }).click();
    await expect.poll(() => form.getByRole('alert').textContent()).toContain('CONFLICT');
    // Off sale and back: a plan is never deleted, and the server says so.
    const row = page.locator('[data-testid="plan-rows"] tr', { hasText: 'jerry100' });
    await row.getByRole('button', { name: 'Take off sale: jerry100' }).click();
    await expect.poll(() => row.textContent()).toContain('Off sale');
    const listed = async () =>
      ((await server.request('GET', '/v1/water/plans')).body.items as { id: string; active: boolean }[]).find(
        (p) => p.id === 'jerry100',
      )?.active;
    expect(await listed()).toBe(false);
    await row.getByRole('button', { name: 'Put on sale: jerry100' }).click();
    await expect.poll(() => row.textContent()).toContain('On sale');
    expect(await listed()).toBe(true);
    await shot('plans');
  });

  it('fits a phone: the list and the customer page', async () => {
    const p = await openPage(browser, { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2 });
    try {
      await signIn(p, server.url, 'care@default.test');
      await p.goto(`${server.url}/customers?q=Amina`);
      await expect.poll(() => p.locator('[data-testid="customer-rows"] tr').count()).toBe(1);
      await shot('phone-list', p);
      await p.goto(`${server.url}/customers/${amina.id}`);
      await p.getByRole('heading', { name: /Amina Wanjiru/ }).waitFor();
      const overflow = await p.evaluate<boolean>(
        'document.documentElement.scrollWidth > window.innerWidth + 1',
      );
      expect(overflow).toBe(false);
      await shot('phone-customer', p);
    } finally {
      await p.context().close();
    }
  });

  it('shows a technician no customer pages', async () => {
    const p = await openPage(browser);
    try {
      await signIn(p, server.url, 'tech@default.test');
      expect(
        await p.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Customers' }).count(),
      ).toBe(0);
      await p.goto(`${server.url}/customers/${amina.id}`);
      await expect.poll(() => p.getByRole('alert').first().textContent()).toContain('FORBIDDEN');
      await shot('technician', p);
    } finally {
      await p.context().close();
    }
  });
});
