// Review 6 of the operator dashboard as a user sees it in Chromium (playwright-core with Debian's
// /usr/bin/chromium, set up as in dashboard.browser.test.ts / customers.browser.test.ts). Each
// test failed before its fix (2026-12-06) because of a bug in what the screens show or offer: figures that
// ignore paging, a list that never shows what is past its first page, a date saved on the wrong
// day, and a button offered to a role the API refuses. SQLite only, like the other browser tests
// (the routes behind these screens run on both engines in their API tests).
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hasChromium, launchChromium, openSignedInPage, screenshot } from './browser.js';
import { makeCafe, type Cafe } from './cafe-fixtures.js';
import { staffToken } from './dashboard-fixtures.js';
import { startServer, type TestServer } from './harness.js';

const withChromium = hasChromium('dashboard review 6 browser tests');

describe.skipIf(!withChromium)('dashboard review 6 in a browser', { timeout: 180_000 }, () => {
  let server: TestServer;
  let browser: Browser;
  let adminToken: string;
  let techToken: string;
  let customer: { id: string; accountId: string };
  let cafe: Cafe;
  let cashPaymentId: string;
  const pages: Page[] = [];
  const open = async (token: string, options: Parameters<typeof openSignedInPage>[2] = {}) => {
    const page = await openSignedInPage(browser, token, options);
    pages.push(page);
    return page;
  };

  beforeAll(async () => {
    server = await startServer();
    adminToken = await staffToken(server, 'boss@default.test', 'admin');
    techToken = await staffToken(server, 'tech@default.test', 'technician');

    // 105 machines: more than the Fleet page's first page of 100.
    for (let i = 0; i < 105; i += 1) await server.createMachine(`M${String(i).padStart(3, '0')}`);

    // A water customer with 55 credit adjustments: more than the customer page's 50 ledger rows.
    const created = await server.request('POST', '/v1/customers', {
      body: { phone: '+254711000111', fullName: 'Ledger Person' },
    });
    expect(created.status).toBe(201);
    customer = created.body;
    for (let i = 1; i <= 55; i += 1) {
      const res = await server.request('POST', `/v1/customers/${customer.id}/credits`, {
        body: { deltaMl: 1000, reason: `adjustment-${String(i).padStart(2, '0')}` },
      });
      expect(res.status).toBe(200);
    }

    // A cafe with one order waiting for its cash to be collected.
    cafe = await makeCafe(server);
    const table = cafe.tables[0]!;
    const order = await server.request('POST', '/api/orders', {
      token: cafe.tokens[table]!,
      body: { siteId: cafe.siteId, tableId: table, items: [{ sku: cafe.sku.latte, qty: 1 }] },
    });
    expect(order.status).toBe(201);
    const cash = await server.request('POST', '/api/payments/initiate', {
      token: cafe.tokens[table]!,
      body: { orderId: order.body.id, method: 'cash' },
    });
    expect(cash.status).toBeLessThan(300);
    cashPaymentId = cash.body.paymentId as string;

    browser = await launchChromium();
  });

  afterAll(async () => {
    for (const page of pages) await page.context().close();
    await browser?.close();
    await server?.close();
  });

  // Promise (docs/dashboard.md, "What it shows"): Fleet (`/`) shows "every machine: status, …";
  // the page's summary line says "<online> of <total> machines online · <n> orders queued".
  // Code at fault: dashboard/src/pages/fleet.tsx:29-39 — the summary is computed from
  // `machines`, the pages loaded so far (100 a page, line 24), so with 105 machines it reads
  // "… of 100 machines online" (and queued orders of those 100 only).
  // Fix: compute the summary over every machine (fetch all pages for it, as useAllMachines does,
  // or have GET /v1/fleet return counts), not over the rows loaded for the table.
  it('the Fleet summary counts every machine, not only the first page of 100', async () => {
    const page = await open(adminToken);
    await page.goto(`${server.url}/`);
    await page.getByRole('heading', { name: 'Fleet' }).waitFor();
    await page.locator('tr[data-machine-id]').first().waitFor();
    const summary = page.locator('p.summary');
    await expect.poll(() => summary.textContent()).toMatch(/machines online/);
    await screenshot(page, 'dashboard-review6-fleet');
    // Every machine of the tenant: the 105 above and the cafe's tables, counted from the list.
    const listed = await server.request('GET', '/v1/fleet?limit=200', { token: adminToken });
    const all = (listed.body.items as unknown[]).length;
    expect(all).toBeGreaterThan(105);
    expect(await summary.textContent()).toContain(`of ${all} machines online`);
  });

  // Promise (docs/dashboard.md, "Customers and plans"): the customer page shows "Below: the
  // ledger (signed, in litres or money, with cause and memo), payments and dispenses"; the API is
  // paged (`{items, nextCursor}`, docs/customers.md "GET /v1/customers/:id/ledger"), and every
  // other paged list of the dashboard has a `LoadMore` (docs/dashboard.md "Code layout").
  // Code at fault: dashboard/src/pages/customer.tsx:226-229 (also Payments :254-257 and
  // Dispenses :282-285) — one request with `limit=50`, `nextCursor` ignored, no button: the 51st
  // and older entries can never be seen, and nothing says the list is cut.
  // Fix: use useInfiniteQuery with getNextPageParam from nextCursor and a `<LoadMore>` under each
  // of the three tables, as the Orders and Alerts pages do.
  it("a customer's ledger shows entries past its first page of 50", async () => {
    const page = await open(adminToken);
    await page.goto(`${server.url}/customers/${encodeURIComponent(customer.id)}`);
    await page.getByRole('heading', { name: /Ledger Person/ }).waitFor();
    const rows = page.locator('[data-testid="ledger-rows"] tr');
    await expect.poll(() => rows.count()).toBeGreaterThan(0);
    const ledger = page.getByRole('region', { name: 'Ledger' });
    const more = ledger.getByRole('button', { name: /more|older/i });
    if ((await more.count()) > 0) await more.first().click();
    await screenshot(page, 'dashboard-review6-ledger');
    // The first adjustment made (the oldest entry) must be reachable.
    await expect
      .poll(() => page.locator('[data-testid="ledger-rows"]').textContent(), { timeout: 3_000 })
      .toContain('adjustment-01');
  });

  // Promise (docs/dashboard.md, "Customers and plans"): `Extend subscription` "(by a plan's days,
  // or until a date)"; the page then shows the subscription "until <date>".
  // Code at fault: dashboard/src/pages/customer.tsx:178 — `new Date(expiresAt).toISOString()` of
  // a `type="date"` value ("2027-01-31") is UTC midnight, so in a browser west of UTC the
  // subscription ends the evening before the chosen day and the page shows "until 1/30/2027,
  // 7:00:00 PM" (east of UTC it ends hours into the chosen day instead of at its end).
  // Fix: read the date in the browser's zone and end the subscription at the end of that day
  // (e.g. `new Date(`${expiresAt}T00:00`)` plus one day, or `T23:59:59.999` local).
  it('"Extend subscription … until (date)" keeps the chosen day in the browser\'s zone', async () => {
    const page = await open(adminToken, { timezoneId: 'America/New_York', locale: 'en-US' });
    await page.goto(`${server.url}/customers/${encodeURIComponent(customer.id)}`);
    await page.getByRole('heading', { name: /Ledger Person/ }).waitFor();
    const form = page.getByRole('form', { name: 'Extend subscription' });
    await form.getByLabel('Or until (date)').fill('2027-01-31');
    await form.getByRole('button', { name: 'Extend' }).click();
    await form.getByRole('status').waitFor();
    const facts = page.getByTestId('customer-facts');
    await expect.poll(() => facts.textContent()).toMatch(/until /);
    await screenshot(page, 'dashboard-review6-subscription');
    const saved = (await server.request('GET', `/v1/customers/${customer.id}`)).body.subscription
      .expiresAt as string;
    // Shown in New York: the chosen day, 31 January, not the 30th.
    expect(await facts.textContent()).toContain('until 1/31/2027');
    // And the subscription lasts at least into the chosen day in New York (05:00 UTC).
    expect(Date.parse(saved)).toBeGreaterThan(Date.parse('2027-01-31T05:00:00Z'));
  });

  // Promise (docs/dashboard.md, "Roles": "The screens offer an action only to roles the server
  // accepts for it"; "Cafe screens": "Roles: viewing and confirming cash, transfers and kitchen
  // steps: `admin`, `customer_service`, `staff`"). POST /api/payments/:id/verify refuses a
  // technician (server/src/modules/cafe/guest.routes.ts:35,241, `request.staff(STAFF)`).
  // Code at fault: dashboard/src/pages/staff.tsx:80-84 — `PendingTable` renders `Confirm cash` /
  // `Confirm transfer` for every role (no `can(…)` check; auth.tsx has no action for it), so a
  // technician is offered the button and gets 403 FORBIDDEN (the kitchen's buttons in
  // staff-kitchen.tsx:56-67 are offered the same way).
  // Fix: add a `confirmCafe` action (admin, customer_service, staff) to ROLES_FOR in auth.tsx
  // and render the confirm and kitchen buttons only when `can('confirmCafe')`.
  it('a technician is not offered "Confirm cash", which the server refuses', async () => {
    const page = await open(techToken);
    await page.goto(`${server.url}/staff?site=${encodeURIComponent(cafe.siteId)}`);
    const row = page.locator(`tr[data-payment-id="${cashPaymentId}"]`);
    await row.waitFor();
    await screenshot(page, 'dashboard-review6-technician-cafe');
    const confirm = row.getByRole('button', { name: 'Confirm cash' });
    const offered = await confirm.count();
    if (offered > 0) {
      // What the technician meets when using it: the server's refusal.
      await confirm.click();
      await row.getByRole('button', { name: /^Received / }).click();
      await expect.poll(() => row.getByRole('alert').textContent()).toContain('FORBIDDEN');
    }
    expect(offered).toBe(0);
  });
});
