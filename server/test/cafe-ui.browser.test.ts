// The cafe guest app (/t/<tableToken>) on a 390 px phone and the staff screens (/staff,
// /staff/kitchen, /staff/settings) in Debian's Chromium, driven by playwright-core against the
// real server (SQLite; the cafe API tests cover PostgreSQL) with a local SMS API for wallet
// codes and a local fake of Stripe (API, hosted Checkout page, signed webhooks) for cards.
// Screenshots go to artifacts/screenshots/cafe-*.png.
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ensureDashboardBuilt,
  hasChromium,
  imageLoaded,
  launchChromium,
  markPage,
  notReloaded,
  openPage,
  openSignedInPage,
  screenshot,
} from './browser.js';
import { fakeSmsApi, makeCafe, type Cafe } from './cafe-fixtures.js';
import { postStripe } from './fixtures/stripe-events.js';
import { fakeStripe, type FakeStripe } from './fixtures/stripe-fake.js';
import { staffToken } from './dashboard-fixtures.js';
import { eventually, startServer, type TestServer } from './harness.js';

const withChromium = hasChromium('cafe browser tests');
const WHSEC = 'whsec_cafe_browser';

describe.skipIf(!withChromium)('cafe guest app and staff screens in a browser', { timeout: 120_000 }, () => {
  let server: TestServer;
  let sms: Awaited<ReturnType<typeof fakeSmsApi>>;
  let stripe: FakeStripe;
  let browser: Browser;
  let guest: Page;
  let staff: Page;
  let cafe: Cafe;
  let table: string;
  const shot = (name: string, p: Page) => screenshot(p, `cafe-${name}`);
  const guestStatus = () => guest.getByTestId('order-status').getAttribute('data-status');
  const orderIdOfPage = (p: Page) => decodeURIComponent(new URL(p.url()).pathname.split('/').pop()!);

  beforeAll(async () => {
    sms = await fakeSmsApi();
    stripe = await fakeStripe({ webhookSecret: WHSEC });
    server = await startServer({
      env: {
        AT_USERNAME: 'sandbox',
        AT_API_KEY: 'at-key',
        AT_API_BASE: sms.url,
        STRIPE_SECRET_KEY: 'sk_test_browser',
        STRIPE_WEBHOOK_SECRET: WHSEC,
        STRIPE_API_BASE: stripe.url,
      },
    });
    // Webhooks wait until the test lets them go: the guest is back on the order page first.
    stripe.deliverTo(`${server.url}/webhooks/stripe`, { hold: true });
    cafe = await makeCafe(server);
    await server.request('PATCH', `/v1/sites/${cafe.siteId}`, { body: { cardGateway: 'stripe' } });
    table = cafe.tables[0]!;
    await server.request('PATCH', `/v1/cafe/menu/${cafe.sku.latte}`, {
      body: { description: 'Double shot, steamed milk', sort: 1 },
    });
    await server.request('PATCH', `/v1/cafe/menu/${cafe.sku.soup}`, {
      body: { category: 'Food', description: 'Tomato and basil, with bread' },
    });
    await server.request('PATCH', `/v1/sites/${cafe.siteId}`, {
      body: { tipPresetsPercent: [0, 5, 10, 15] },
    });
    const token = await staffToken(server, 'cafe-admin@default.test', 'admin');
    browser = await launchChromium();
    guest = await openPage(browser, {
      viewport: { width: 390, height: 844 },
      hasTouch: true,
      locale: 'en-IE',
    });
    staff = await openSignedInPage(browser, token, {
      viewport: { width: 1280, height: 860 },
      locale: 'en-IE',
    });
    for (const [name, p] of [
      ['guest', guest],
      ['staff', staff],
    ] as const) {
      p.on('pageerror', (err) => console.warn(`${name} page error: ${err.message} ${err.stack}`));
      p.on('console', (m) => m.type() === 'error' && console.warn(`${name} console: ${m.text()}`));
    }
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
    await sms?.close();
    await stripe?.close();
  });

  it('a guest orders two items with a note and a 10 % tip, pays cash; staff confirm; the kitchen moves it to READY live', async () => {
    await guest.goto(`${server.url}/t/${cafe.tokens[table]}`);
    await guest.getByRole('heading', { name: 'Corner Cafe' }).waitFor();
    await expect
      .poll(() => guest.locator(`li[data-sku="${cafe.sku.latte}"] .price`).textContent())
      .toBe('€3.50');
    await shot('guest-menu', guest);

    await guest.getByRole('button', { name: 'Add Latte' }).click();
    await guest.getByRole('button', { name: 'Add Soup' }).click();
    await guest.getByRole('button', { name: /View cart · 2 items · €8\.50/ }).click();
    await guest.getByLabel('Note for Latte (optional)').fill('oat milk, please');
    await guest.locator('label.chip', { hasText: '10%' }).click();
    await expect.poll(() => guest.getByTestId('cart-total').textContent()).toBe('€9.35');
    await shot('guest-cart', guest);
    await guest.getByRole('button', { name: 'Place order · €9.35' }).click();

    await guest.getByRole('heading', { name: 'Order placed. Please choose how to pay.' }).waitFor();
    const orderId = orderIdOfPage(guest);
    const placed = await server.request('GET', `/api/orders/${orderId}`);
    expect(placed.body).toMatchObject({
      subtotalMinor: 850,
      tipMinor: 85,
      totalMinor: 935,
      status: 'CREATED',
    });
    expect(placed.body.items).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ sku: cafe.sku.latte, qty: 1, notes: 'oat milk, please' }),
      ]),
    );
    await guest.getByRole('radio', { name: /Cash/ }).check();
    await guest.getByRole('button', { name: 'Pay with cash' }).click();
    await guest.getByRole('heading', { name: 'Pay €9.35 in cash' }).waitFor();
    await markPage(guest);

    await staff.goto(`${server.url}/staff?site=${cafe.siteId}`);
    const cashRow = staff.locator(`tr[data-order-id="${orderId}"]`);
    await cashRow.getByRole('button', { name: 'Confirm cash' }).click();
    await shot('staff', staff);
    await cashRow.getByRole('button', { name: 'Received €9.35' }).click();
    await expect.poll(guestStatus, { timeout: 10_000 }).toBe('PAID');
    await expect.poll(() => cashRow.count()).toBe(0);

    await staff.getByRole('link', { name: 'Kitchen' }).click();
    const ticket = staff.locator(`li.ticket[data-order-id="${orderId}"]`);
    await expect.poll(() => ticket.locator('.note').textContent()).toContain('oat milk');
    await ticket.getByRole('button', { name: /^Start preparing/ }).click();
    await expect.poll(guestStatus, { timeout: 10_000 }).toBe('PREPARING');
    await shot('staff-kitchen', staff);
    await staff
      .locator(`li.ticket[data-order-id="${orderId}"][data-status="PREPARING"]`)
      .getByRole('button', { name: /^Ready/ })
      .click();
    await expect.poll(guestStatus, { timeout: 10_000 }).toBe('READY');
    await guest.getByRole('heading', { name: 'Your order is ready!' }).waitFor();
    expect(await notReloaded(guest)).toBe(true);
    await shot('guest-status-ready', guest);

    // The connection drops; the order is served meanwhile; back online, the page catches up.
    await guest.context().setOffline(true);
    await guest.getByRole('alert').filter({ hasText: 'Connection lost' }).waitFor();
    await shot('guest-offline', guest);
    const served = await server.request('POST', `/v1/orders/${orderId}/kitchen-status`, {
      body: { status: 'SERVED' },
    });
    expect(served.status).toBe(200);
    await guest.context().setOffline(false);
    await expect.poll(guestStatus, { timeout: 15_000 }).toBe('SERVED');
    await expect
      .poll(() => guest.getByRole('alert').filter({ hasText: 'Connection lost' }).count(), {
        timeout: 10_000,
      })
      .toBe(0);
    expect(await notReloaded(guest)).toBe(true);
  });

  it('a sold-out item refuses the order with a clear message; an unconfigured method says so', async () => {
    const t2 = cafe.tables[1]!;
    await guest.goto(`${server.url}/t/${cafe.tokens[t2]}`);
    await guest.getByRole('heading', { name: 'Corner Cafe' }).waitFor();
    for (let i = 0; i < 3; i++) await guest.getByRole('button', { name: 'Add Cake' }).click();
    await guest.getByRole('button', { name: /View cart · 3 items/ }).click();
    await guest.getByRole('button', { name: /^Place order/ }).click();
    const alert = guest.getByRole('alert').filter({ hasText: 'Nothing was ordered yet' });
    await expect.poll(() => alert.textContent()).toContain('Only 2 Cake left (you asked for 3)');
    await shot('guest-sold-out', guest);
    await guest.getByRole('button', { name: 'One less Cake' }).click();
    await guest.getByRole('button', { name: /^Place order · €8\.00/ }).click();

    // Bank transfer before the cafe set it up: a plain message, and the other methods stay.
    await guest.getByRole('radio', { name: /Bank transfer/ }).check();
    await guest.getByRole('button', { name: 'Show the bank transfer details' }).click();
    await expect
      .poll(() => guest.getByRole('alert').first().textContent())
      .toContain('This payment method is not available here yet');
    await shot('guest-method-unavailable', guest);
    // The cake sold out for the next guest: the menu says so and offers no Add button.
    await server.request('PATCH', `/v1/products/${cafe.sku.cake}`, { body: { stock: 0 } });
    await guest.goto(`${server.url}/t/${cafe.tokens[t2]}`);
    await expect
      .poll(() => guest.locator(`li[data-sku="${cafe.sku.cake}"]`).textContent())
      .toContain('Sold out');
    expect(await guest.getByRole('button', { name: 'Add Cake' }).count()).toBe(0);
  });

  it('a bank transfer shows the EPC QR code, the payload text and the RF reference (or, without the adapter, says so)', async () => {
    const t2 = cafe.tables[1]!;
    const bank = { name: 'Corner Cafe BV', iban: 'DE89370400440532013000', bic: 'COBADEFFXXX' };
    expect(
      (await server.request('PATCH', `/v1/sites/${cafe.siteId}`, { body: { bankAccount: bank } })).status,
    ).toBe(200);
    await guest.goto(`${server.url}/t/${cafe.tokens[t2]}`);
    await guest.getByRole('button', { name: 'Add Soup' }).click();
    await guest.getByRole('button', { name: /View cart · 1 item/ }).click();
    await guest.getByRole('button', { name: 'Place order · €5.00' }).click();
    await guest.getByRole('radio', { name: /Bank transfer/ }).check();
    await guest.getByRole('button', { name: 'Show the bank transfer details' }).click();
    const reference = guest.getByTestId('rf-reference');
    const refused = guest.getByRole('alert').filter({ hasText: 'not available' });
    await expect.poll(async () => (await reference.count()) + (await refused.count())).toBe(1);
    if ((await reference.count()) === 1) {
      // The bank-transfer adapter is registered: what docs/cafe-ui.md promises the guest sees.
      expect(await reference.textContent()).toMatch(/^RF\d{2}/);
      await guest.getByRole('heading', { name: 'Pay €5.00 by bank transfer' }).waitFor();
      const img = guest.getByRole('img', { name: 'Bank transfer QR code for €5.00' });
      await expect.poll(() => imageLoaded(img)).toBe(true);
      await guest.getByText('Transfer details as text').click();
      expect(await guest.locator('pre.payload').textContent()).toContain('DE89370400440532013000');
      await shot('guest-bank-transfer', guest);
    } else {
      expect(await refused.textContent()).toContain('Please choose another one');
    }
    await server.request('PATCH', `/v1/sites/${cafe.siteId}`, { body: { bankAccount: null } });
  });

  it('orders with the keyboard only and pays from the wallet after an SMS code sign-in', async () => {
    await guest.goto(`${server.url}/t/${cafe.tokens[table]}`);
    await guest.getByRole('heading', { name: 'Corner Cafe' }).waitFor();
    /** Presses Tab until the focused element's text or label matches, then Enter. */
    const tabTo = async (name: RegExp) => {
      for (let i = 0; i < 40; i++) {
        await guest.keyboard.press('Tab');
        const focused = await guest.evaluate<string>(
          "(document.activeElement?.getAttribute('aria-label') || document.activeElement?.textContent || '').trim()",
        );
        if (name.test(focused)) return guest.keyboard.press('Enter');
      }
      throw new Error(`no focusable element matching ${name}`);
    };
    await tabTo(/^Add Latte$/);
    await tabTo(/^View cart · 1 item/);
    await guest.getByRole('heading', { name: 'Your order' }).waitFor();
    await tabTo(/^Place order · €3\.50/);
    await guest.getByRole('heading', { name: 'Order placed. Please choose how to pay.' }).waitFor();
    const orderId = orderIdOfPage(guest);

    await guest.getByRole('radio', { name: /Wallet credit/ }).check();
    const phone = '+254712' + String(Date.now() % 1_000_000).padStart(6, '0');
    await guest.getByLabel('Phone number').fill(phone);
    await guest.getByRole('button', { name: 'Text me a code' }).click();
    const code = await eventually(() => sms.codeFor(phone), 10_000, 'the SMS code');
    await guest.getByLabel('Code from the SMS').fill(code);
    await guest.getByRole('button', { name: 'Sign in' }).click();
    await expect.poll(() => guest.getByTestId('wallet-balance').textContent()).toBe('€0.00');

    // An empty wallet: a clear refusal, nothing charged.
    await guest.getByRole('button', { name: 'Pay €3.50 from my wallet' }).click();
    await expect
      .poll(() => guest.getByRole('alert').filter({ hasText: 'Not enough credit' }).textContent())
      .toContain('this order needs €3.50');
    await shot('guest-wallet-short', guest);

    const customerId = await guest.evaluate<string>(
      "JSON.parse(localStorage.getItem('kioskhub.guest.customer')).customerId",
    );
    const added = await server.request('POST', '/api/credits/add', {
      body: { customerId, amountMinor: 1000, reason: 'gift card' },
    });
    expect(added.status).toBe(201);
    await guest.getByRole('button', { name: 'Pay €3.50 from my wallet' }).click();
    await expect.poll(guestStatus, { timeout: 10_000 }).toBe('PAID');
    await guest.getByText('Paid €3.50 (wallet)').waitFor();
    const balance = await server.request('GET', `/api/orders/${orderId}`);
    expect(balance.body.paidAt).not.toBeNull();
    await shot('guest-status-paid', guest);
  });

  it('pays by card on the hosted checkout: back to the order, then paid; the signed webhook turns the page to Paid live', async () => {
    await guest.goto(`${server.url}/t/${cafe.tokens[table]}`);
    await guest.getByRole('heading', { name: 'Corner Cafe' }).waitFor();
    await guest.getByRole('button', { name: 'Add Latte' }).click();
    await guest.getByRole('button', { name: 'Add Soup' }).click();
    await guest.getByRole('button', { name: /View cart · 2 items/ }).click();
    await guest.locator('label.chip', { hasText: '15%' }).click();
    await guest.getByRole('button', { name: 'Place order · €9.78' }).click();
    await guest.getByRole('heading', { name: 'Order placed. Please choose how to pay.' }).waitFor();
    const orderId = orderIdOfPage(guest);
    await guest.getByRole('radio', { name: /Card/ }).check();
    await guest.getByRole('button', { name: 'Go to the card payment' }).click();

    // Stripe's hosted page (the fake's): the exact amount, a back link to cancel_url.
    await guest.waitForURL(`${stripe.url}/c/pay/**`);
    expect(await guest.getByTestId('checkout-amount').textContent()).toBe('€9.78');
    await shot('guest-card-checkout', guest);
    const payments = async () =>
      (await server.request('GET', `/v1/payments?orderId=${orderId}`)).body.items as any[];
    const [pending] = await payments();
    expect(pending).toMatchObject({ method: 'card', status: 'PENDING', amountMinor: 978 });
    const orderPage = (query: string) => (u: URL) =>
      u.origin === server.url && u.pathname === `/t/order/${orderId}` && u.search === query;
    await guest.getByRole('link', { name: '← Back' }).click();
    await guest.waitForURL(orderPage('?checkout=cancelled'));
    await guest.getByRole('heading', { name: 'Pay €9.78 by card' }).waitFor();
    await guest.getByText('You left the card page. Nothing was charged.').waitFor();
    expect((await payments()).map((p) => p.status)).toEqual(['PENDING']);
    await shot('guest-card-back', guest);

    // Back to the same checkout, and pay: Stripe redirects to success_url before its webhook.
    await guest.getByRole('link', { name: 'Continue to the card payment' }).click();
    await guest.waitForURL(`${stripe.url}/c/pay/${pending.providerPaymentId}`);
    await guest.getByRole('button', { name: 'Pay €9.78' }).click();
    await guest.waitForURL(orderPage('?checkout=done'));
    await guest.getByRole('heading', { name: 'Waiting for your payment.' }).waitFor();
    await guest.getByRole('heading', { name: 'Confirming your card payment of €9.78' }).waitFor();
    expect(await guest.getByRole('link', { name: 'Continue to the card payment' }).count()).toBe(0);
    expect(await guestStatus()).toBe('CREATED');
    await shot('guest-card-returned', guest);
    await markPage(guest);
    expect(stripe.held()).toHaveLength(1);
    expect((await payments()).map((p) => p.status)).toEqual(['PENDING']);

    const [delivered] = await stripe.release();
    expect(delivered).toEqual({ status: 200, body: { ok: true, outcome: 'settled' } });
    await expect.poll(guestStatus, { timeout: 10_000 }).toBe('PAID');
    await guest.getByText('Paid €9.78 (card)').waitFor();
    expect(await notReloaded(guest)).toBe(true);
    await shot('guest-card-paid', guest);
    const [paid] = await payments();
    expect(paid).toMatchObject({ status: 'SUCCEEDED', receivedMinor: 978 });
    expect(paid.providerPaymentId).toMatch(/^pi_/);
    // The paid checkout again (the browser's back button): Stripe sends the guest to success_url.
    await guest.goto(`${stripe.url}/c/pay/${pending.providerPaymentId}`);
    await guest.waitForURL(orderPage('?checkout=done'));
    await expect.poll(guestStatus).toBe('PAID');
  });

  it('a card refund still PENDING at Stripe, then FAILED, stays on the guest page across reloads', async () => {
    // The card order the test before paid, its page still open.
    const orderId = orderIdOfPage(guest);
    const [paid] = (await server.request('GET', `/v1/payments?orderId=${orderId}`)).body.items as any[];
    expect(paid).toMatchObject({ method: 'card', status: 'SUCCEEDED' });
    stripe.refundStatus(paid.providerPaymentId, 'pending');
    const refund = await server.request('POST', `/v1/payments/${paid.id}/refunds`, {
      body: { reason: 'cold soup', amountMinor: 300 },
    });
    expect(refund.status, JSON.stringify(refund.body)).toBe(201);
    const line = guest.getByTestId('refund-status');
    const refundShown = async () => `${await line.getAttribute('data-status')} ${await line.textContent()}`;
    const pending = 'PENDING A refund of €3.00 is on its way. It can take a few days to reach you.';
    await expect.poll(refundShown, { timeout: 10_000 }).toBe(pending);
    await guest.reload();
    await expect.poll(guestStatus).toBe('PAID');
    await expect.poll(refundShown, { timeout: 10_000 }).toBe(pending);
    await shot('guest-refund-pending', guest);

    // Stripe refuses it after all: the line says so live, and again after a reload.
    const reId = await eventually(async () => {
      const list = (await server.request('GET', `/v1/payments/${paid.id}/refunds`)).body.items as any[];
      return list.find((r) => r.id === refund.body.id)?.providerRefundId as string | null;
    });
    const told = await postStripe(
      server,
      WHSEC,
      stripe.refundUpdated(reId!, 'failed', { failureReason: 'expired_or_canceled_card' }),
    );
    expect(told.body.outcome).toBe('refund_failed');
    const failed = 'FAILED The refund of €3.00 did not go through. Please ask a member of staff.';
    await expect.poll(refundShown, { timeout: 10_000 }).toBe(failed);
    await guest.reload();
    await expect.poll(guestStatus).toBe('PAID');
    await expect.poll(refundShown, { timeout: 10_000 }).toBe(failed);
    await shot('guest-refund-failed', guest);
  });

  it('an order left unpaid past its deadline turns to cancelled on the guest page, live', async () => {
    await guest.goto(`${server.url}/t/${cafe.tokens[table]}`);
    await guest.getByRole('button', { name: 'Add Latte' }).click();
    await guest.getByRole('button', { name: /View cart · 1 item/ }).click();
    await guest.getByRole('button', { name: /^Place order/ }).click();
    await guest.getByRole('heading', { name: 'Order placed. Please choose how to pay.' }).waitFor();
    const orderId = orderIdOfPage(guest);
    await markPage(guest);
    // The guest walked away hours ago (CAFE_ORDER_TTL_MS, 3 h by default): the order's job runs.
    await server.kioskhub.db
      .updateTable('orders')
      .set({ created_at: new Date(Date.now() - 4 * 3_600_000).toISOString() })
      .where('id', '=', orderId)
      .execute();
    expect(await server.kioskhub.services.cafe.expiry.expire({ orderId })).toBe('cancelled');
    await guest
      .getByRole('heading', { name: 'This order was cancelled: it was not paid in time.' })
      .waitFor();
    await guest.getByTestId('order-expired').waitFor();
    expect(await guest.getByRole('button', { name: /^Pay with|^Go to the card/ }).count()).toBe(0);
    expect(await notReloaded(guest)).toBe(true);
    await shot('guest-order-expired', guest);
  });

  it('the settings page saves tip presets and shows the tables’ QR codes with a rotate button', async () => {
    await staff.goto(`${server.url}/staff/settings?site=${cafe.siteId}`);
    await staff.getByLabel('Tip presets (%)').fill('0, 8, 12');
    await staff.getByRole('button', { name: 'Save settings' }).click();
    await staff.getByRole('status').filter({ hasText: 'Saved.' }).waitFor();
    const settings = await server.request('GET', `/v1/cafe/sites/${cafe.siteId}/settings`);
    expect(settings.body.tipPresetsPercent).toEqual([0, 8, 12]);
    for (const id of cafe.tables) {
      const img = staff.locator(`figure[data-table-id="${id}"] img`);
      await expect.poll(() => imageLoaded(img)).toBe(true);
    }
    await expect.poll(() => staff.getByRole('region', { name: 'Tips per day and split' }).count()).toBe(1);
    await shot('staff-settings', staff);

    const first = cafe.tables[0]!;
    await staff.locator(`figure[data-table-id="${first}"]`).getByRole('button', { name: 'Rotate' }).click();
    await staff
      .locator(`figure[data-table-id="${first}"]`)
      .getByRole('button', { name: 'Yes, new QR code' })
      .click();
    await expect
      .poll(async () => (await server.request('GET', '/api/menu', { token: cafe.tokens[first]! })).status)
      .toBe(401);
    await guest.goto(`${server.url}/t/${cafe.tokens[first]}`);
    await guest.getByRole('heading', { name: 'This QR code no longer works' }).waitFor();

    // Staff on a phone: the same screens, one column.
    await staff.setViewportSize({ width: 390, height: 844 });
    await staff.goto(`${server.url}/staff?site=${cafe.siteId}`);
    await staff.getByRole('heading', { name: /^Tables/ }).waitFor();
    await shot('staff-phone', staff);
    await staff.goto(`${server.url}/staff/kitchen?site=${cafe.siteId}`);
    await staff.getByRole('heading', { name: /^Ready to serve/ }).waitFor();
    await shot('staff-kitchen-phone', staff);
    await staff.setViewportSize({ width: 1280, height: 860 });
  });
});

describe('the guest page is served at /t/…', () => {
  let server: TestServer;
  beforeAll(async () => {
    ensureDashboardBuilt();
    server = await startServer();
  });
  afterAll(async () => {
    await server?.close();
  });

  it('answers /t/<table token> (a JWT, dots and all) and /t/order/<id> with the guest page, /staff with the dashboard', async () => {
    const cafe = await makeCafe(server);
    const page = async (path: string) => {
      const res = await fetch(`${server.url}${path}`);
      return { status: res.status, type: res.headers.get('content-type'), html: await res.text() };
    };
    const table = await page(`/t/${cafe.tokens[cafe.tables[0]!]}`);
    expect(table.status).toBe(200);
    expect(table.type).toContain('text/html');
    expect(table.html).toContain('<div id="guest">');
    expect(table.html).not.toContain('<div id="root">');
    expect((await page('/t/order/01J0000000000000000000000')).html).toContain('<div id="guest">');
    const staff = await page('/staff/kitchen');
    expect(staff.status).toBe(200);
    expect(staff.html).toContain('<div id="root">');
    // The guest bundle loads none of the dashboard's own code.
    const script = /<script type="module" crossorigin src="([^"]+)"/.exec(table.html)?.[1];
    expect(script).toMatch(/^\/assets\/guest-/);
    const js = await (await fetch(`${server.url}${script}`)).text();
    expect(js).not.toContain('Skip to content');
    expect(js).not.toContain('QueryClient');
  });
});
