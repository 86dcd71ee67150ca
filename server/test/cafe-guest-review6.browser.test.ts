// Review 6 of the cafe guest page (/t/<tableToken>) in a phone browser: Debian's Chromium driven
// by playwright-core against the real server (SQLite, as cafe-ui.browser.test.ts; the cafe API
// tests cover PostgreSQL), with a local SMS API for wallet codes and signed bank notifications.
// Each test fails on the code it was written against, for a bug a guest sees.
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hasChromium, launchChromium, openPage } from './browser.js';
import { fakeSmsApi, makeBankCafe, type Cafe } from './cafe-fixtures.js';
import { eventually, startServer, type TestServer } from './harness.js';
import { signatureHeader } from '../src/providers/bank/bank.signature.js';

const withChromium = hasChromium('cafe guest review 6 browser tests');
const BANK_SECRET = 'bank-webhook-secret-review6';

describe.skipIf(!withChromium)('cafe guest page review 6 (browser)', { timeout: 120_000 }, () => {
  let server: TestServer;
  let sms: Awaited<ReturnType<typeof fakeSmsApi>>;
  let browser: Browser;
  let guest: Page;
  const orderIdOfPage = (p: Page) => decodeURIComponent(new URL(p.url()).pathname.split('/').pop()!);

  beforeAll(async () => {
    sms = await fakeSmsApi();
    server = await startServer({
      env: {
        BANK_WEBHOOK_SECRET: BANK_SECRET,
        AT_USERNAME: 'sandbox',
        AT_API_KEY: 'at-key',
        AT_API_BASE: sms.url,
      },
    });
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
    await sms?.close();
  });

  /** A fresh phone (nothing in localStorage) for each test. */
  async function newPhone(): Promise<Page> {
    await guest?.context().close();
    guest = await openPage(browser, {
      viewport: { width: 390, height: 844 },
      hasTouch: true,
      locale: 'en-IE',
    });
    return guest;
  }

  /** Orders one `name` at `table` and lands on the order page. */
  async function orderOne(cafe: Cafe, table: string, name: string): Promise<string> {
    await guest.goto(`${server.url}/t/${cafe.tokens[table]}`);
    await guest.getByRole('button', { name: `Add ${name}` }).click();
    await guest.getByRole('button', { name: /^View cart · 1 item/ }).click();
    await guest.getByRole('button', { name: /^Place order/ }).click();
    await guest.getByRole('heading', { name: 'Order placed. Please choose how to pay.' }).waitFor();
    return orderIdOfPage(guest);
  }

  /** The bank's signed notification of a credit to `reference` (docs/cafe-payments.md §3). */
  async function bankCredit(reference: string, amountMinor: number) {
    const raw = JSON.stringify({ eventId: `bank-${Date.now()}`, reference, amountMinor, currency: 'EUR' });
    const signature = signatureHeader(raw, BANK_SECRET, Math.floor(Date.now() / 1000));
    return server.request('POST', '/webhooks/bank', {
      raw,
      token: null,
      headers: { 'content-type': 'application/json', 'kioskhub-signature': signature },
    });
  }

  /** A soup (€5.00) ordered and paid by transfer, of which the bank reports €3.00 arrived. */
  async function underpaidTransfer(cafe: Cafe) {
    const orderId = await orderOne(cafe, cafe.tables[1]!, 'Soup');
    await guest.getByRole('radio', { name: /Bank transfer/ }).check();
    await guest.getByRole('button', { name: 'Show the bank transfer details' }).click();
    const reference = (await guest.getByTestId('rf-reference').textContent())!;
    const credit = await bankCredit(reference, 300);
    expect(credit.body).toMatchObject({ outcome: 'underpaid', receivedMinor: 300, missingMinor: 200 });
    const [payment] = (await server.request('GET', `/v1/payments?orderId=${orderId}`)).body.items as any[];
    expect(payment).toMatchObject({ status: 'PENDING', amountMinor: 500, receivedMinor: 300 });
    return orderId;
  }

  // Promise (docs/cafe.md §5): "Prices come from the catalog, never from the request"; and
  // docs/cafe-ui.md §3, sold out while ordering: "the cart names the items …, marks their lines and
  // the menu reloads". The cart's "Place order · €…" is what the guest agrees to pay.
  // At fault: dashboard/src/guest/cart.tsx:30 copies the price into the cart line when the item is
  // added, and cart.tsx:159 (`void props.reloadMenu()`) reloads the menu without refreshing the
  // lines: the cart keeps summing stale prices (cart.tsx:24, :264) while the server charges the
  // catalog's. Here the button says €11.50 and the order is placed at €12.20.
  // Fix: price the cart lines from the current menu (look the price up by sku when rendering, or
  // update the lines when the menu reloads), and say so when a price changed since it was added.
  it('after a refused order reloads the menu, the cart total is what the server will charge', async () => {
    await newPhone();
    const cafe = await makeBankCafe(server);
    await guest.goto(`${server.url}/t/${cafe.tokens[cafe.tables[0]!]}`);
    await guest.getByRole('button', { name: 'Add Latte' }).click();
    for (let i = 0; i < 3; i++) await guest.getByRole('button', { name: 'Add Cake' }).click();
    await guest.getByRole('button', { name: /^View cart · 4 items · €15\.50/ }).click();
    // Staff change the latte's price while the guest is in the cart (€3.50 → €4.20).
    expect(
      (await server.request('PATCH', `/v1/products/${cafe.sku.latte}`, { body: { priceMinor: 420 } })).status,
    ).toBe(200);
    await guest.getByRole('button', { name: /^Place order/ }).click();
    await guest.getByRole('alert').filter({ hasText: 'Only 2 Cake left (you asked for 3)' }).waitFor();
    await guest.getByRole('button', { name: 'One less Cake' }).click();
    // The menu was reloaded: 1 latte at €4.20 and 2 cakes at €4.00 cost €12.20.
    const placeButton = guest.getByRole('button', { name: /^Place order/ });
    await expect.poll(() => placeButton.textContent(), { timeout: 5_000 }).toBe('Place order · €12.20');
    await placeButton.click();
    await guest.getByRole('heading', { name: 'Order placed. Please choose how to pay.' }).waitFor();
    const placed = await server.request('GET', `/api/orders/${orderIdOfPage(guest)}`);
    expect(placed.body.totalMinor).toBe(1220);
  });

  // Promise (docs/cafe-payments.md §3, less than due): "payment stays PENDING with receivedMinor
  // (status route and staff overview) …; later credits add up"; §2: a new attempt is refused "so
  // what arrived is never left on an ended attempt while the guest is asked for everything again".
  // The staff see "only €3.00 arrived" (docs/cafe-ui.md §4); the guest's page must not ask for the
  // whole amount again: it says "Either way the amount and the reference must be exactly these"
  // next to Amount €5.00 and a QR code for EUR5.00, so the guest pays €5.00 more (€3.00 too much).
  // At fault: dashboard/src/guest/pay.tsx:133 and :172 show `payment.amountMinor` and the initial
  // EPC payload; `receivedMinor` of the status route (order.tsx resync) is never shown.
  // Fix: when receivedMinor > 0, show "€3.00 of €5.00 arrived: transfer the remaining €2.00 with the
  // same reference" (and a QR code for the rest, or none) instead of the full amount.
  it('a bank transfer of which part arrived tells the guest what arrived and what is still missing', async () => {
    await newPhone();
    const cafe = await makeBankCafe(server, { bic: 'COBADEFFXXX' });
    await underpaidTransfer(cafe);
    // A reload reads the payment from the status route (receivedMinor 300).
    await guest.reload();
    await guest.getByTestId('rf-reference').waitFor();
    const card = guest.locator('section[aria-labelledby="pending-title"]');
    await expect.poll(() => card.textContent(), { timeout: 5_000 }).toContain('€2.00');
    expect(await card.textContent()).toContain('€3.00');
    expect(await card.locator('dd strong').textContent()).not.toBe('€5.00');
  });

  // Promise (docs/cafe-ui.md §3): "Clear messages when something goes wrong", every amount "in that
  // currency with its ISO 4217 decimals"; dashboard/src/guest/parts.tsx:26 "An error as a guest
  // should read it: what happened and what to do". After part of a transfer arrived, "Pay another
  // way" → Cash is refused (docs/cafe.md §6, 409 with details {receivedMinor, missingMinor}) and
  // the guest reads "300 of the 500 due (minor units) already arrived for payment 01M…; …": minor
  // units and an internal payment id. The transfer details are gone from the page meanwhile.
  // At fault: dashboard/src/guest/parts.tsx:36 shows the server's staff-facing message
  // (server/src/modules/cafe/cafe-payments.ts:141) as it is, and ignores the error's details.
  // Fix: for INVALID_STATE with details.receivedMinor/missingMinor say "€3.00 of your transfer
  // arrived. Please transfer the remaining €2.00 with the same reference, or ask staff", in money.
  it('switching away from a part-paid transfer explains the refusal in money, not minor units', async () => {
    await newPhone();
    const cafe = await makeBankCafe(server, { bic: 'COBADEFFXXX' });
    await underpaidTransfer(cafe);
    await guest.getByRole('button', { name: 'Pay another way' }).click();
    await guest.getByRole('radio', { name: /Cash/ }).check();
    await guest.getByRole('button', { name: 'Pay with cash' }).click();
    const alert = guest.getByRole('alert').filter({ hasText: /arrived/ });
    await alert.waitFor();
    const text = (await alert.textContent())!;
    expect(text).not.toContain('minor units');
    expect(text).not.toMatch(/\b01[0-9A-HJKMNP-TV-Z]{24}\b/);
    expect(text).toContain('€3.00');
    expect(text).toContain('€2.00');
  });

  // Promise (docs/cafe.md §2): a customer token pays "the orders of the table it was signed in at
  // (another table's order: 404 …)"; docs/cafe-ui.md §3: "the wallet stays signed in for 12 h", and
  // "Clear messages when something goes wrong". A guest who signed in at one table and orders at
  // another (moved to the terrace) is shown as signed in with their balance, and paying answers
  // "Order "01M…" does not exist." about the very order on the screen, with no way forward offered.
  // At fault: dashboard/src/guest/api.ts:163 (savedCustomer) keeps the session for any table, and
  // dashboard/src/guest/wallet.tsx:39 drops it only on 401, so the 404 is shown as it is.
  // Fix: save the table (id or token) with the customer session and treat a session of another table
  // as signed out (or, on a 404 to a credit initiate, drop it and ask for a new SMS code).
  it('a wallet signed in at another table asks to sign in again instead of saying the order does not exist', async () => {
    await newPhone();
    const cafe = await makeBankCafe(server);
    const [first, second] = cafe.tables as [string, string];
    await orderOne(cafe, first, 'Latte');
    await guest.getByRole('radio', { name: /Wallet credit/ }).check();
    const phone = '+254713' + String(Date.now() % 1_000_000).padStart(6, '0');
    await guest.getByLabel('Phone number').fill(phone);
    await guest.getByRole('button', { name: 'Text me a code' }).click();
    const code = await eventually(() => sms.codeFor(phone), 10_000, 'the SMS code');
    await guest.getByLabel('Code from the SMS').fill(code);
    await guest.getByRole('button', { name: 'Sign in' }).click();
    await expect.poll(() => guest.getByTestId('wallet-balance').textContent()).toBe('€0.00');
    const customerId = await guest.evaluate<string>(
      "JSON.parse(localStorage.getItem('kioskhub.guest.customer')).customerId",
    );
    const added = await server.request('POST', '/api/credits/add', {
      body: { customerId, amountMinor: 5000, reason: 'gift card' },
    });
    expect(added.status).toBe(201);

    // The guest moves to the other table and orders there.
    const orderId = await orderOne(cafe, second, 'Latte');
    await guest.getByRole('radio', { name: /Wallet credit/ }).check();
    const pay = guest.getByRole('button', { name: 'Pay €3.50 from my wallet' });
    const phoneField = guest.getByLabel('Phone number');
    // Either the page asks for a new code straight away, or paying leads there (or pays).
    if ((await pay.count()) === 1 && (await phoneField.count()) === 0) await pay.click();
    const outcome = async () => {
      if ((await guest.getByText(/does not exist/).count()) > 0) return 'told the order does not exist';
      if ((await phoneField.count()) > 0) return 'asked to sign in';
      const read = await server.request('GET', `/api/orders/${orderId}`);
      return read.body.paidAt ? 'paid' : 'waiting';
    };
    await expect.poll(outcome, { timeout: 5_000 }).toMatch(/^(asked to sign in|paid)$/);
  });
});
