// A cafe for the cafe tests: a site with products and tables, a local Africa's Talking SMS API
// that keeps what it was asked to send, and helpers for guests' tokens.
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, expect } from 'vitest';
import { startServer, type Engine, type TestServer } from './harness.js';
import { fakeStripe, type FakeStripe } from './fixtures/stripe-fake.js';

export const uid = (p: string) => `${p}${randomBytes(3).toString('hex')}`;

/** Africa's Talking's SMS API as documented: form-encoded POST, 201 with one recipient. */
export async function fakeSmsApi() {
  const sent: { to: string; message: string }[] = [];
  const server: Server = createServer((req, res) => {
    let raw = '';
    req.on('data', (c: Buffer) => (raw += c.toString()));
    req.on('end', () => {
      const form = new URLSearchParams(raw);
      sent.push({ to: form.get('to') ?? '', message: form.get('message') ?? '' });
      res.writeHead(201, { 'content-type': 'application/json' }).end(
        JSON.stringify({
          SMSMessageData: {
            Message: 'Sent to 1/1 Total Cost: KES 0.8000',
            Recipients: [
              {
                statusCode: 101,
                number: form.get('to'),
                status: 'Success',
                cost: 'KES 0.8000',
                messageId: `ATXid_${randomBytes(4).toString('hex')}`,
              },
            ],
          },
        }),
      );
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    sent,
    /** The last code texted to `phone`. */
    codeFor(phone: string): string | undefined {
      const last = [...sent].reverse().find((s) => s.to === phone);
      return last ? /(\d{6})/.exec(last.message)?.[1] : undefined;
    },
    close: () => new Promise((r) => server.close(r)),
  };
}

export interface Cafe {
  siteId: string;
  tables: string[];
  tokens: Record<string, string>;
  sku: { latte: string; cake: string; soup: string };
}

/** The bank account of the bank-transfer tests (a valid German IBAN). */
export const CAFE_IBAN = 'DE89370400440532013000';

/** `makeCafe` with a bank account, so guests can pay by transfer (`bic` optional). */
export async function makeBankCafe(server: TestServer, account: { bic?: string } = {}): Promise<Cafe> {
  const cafe = await makeCafe(server);
  const res = await server.request('PATCH', `/v1/sites/${cafe.siteId}`, {
    body: { bankAccount: { name: 'Corner Cafe', iban: CAFE_IBAN, ...account } },
  });
  if (res.status !== 200) throw new Error(`bank account: ${res.status} ${JSON.stringify(res.body)}`);
  return cafe;
}

/** A site in EUR with a latte (350), a cake (400, 2 in stock) and a soup (500), and two tables. */
export async function makeCafe(server: TestServer, tenantId?: string): Promise<Cafe> {
  const siteId = uid('cafe');
  const t = tenantId ? { tenantId } : {};
  const q = tenantId ? `?tenantId=${tenantId}` : '';
  const must = (res: { status: number; body: any }, what: string) => {
    if (res.status >= 300) throw new Error(`${what}: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body;
  };
  must(
    await server.request('POST', '/v1/sites', {
      body: { id: siteId, name: 'Corner Cafe', currency: 'EUR', ...t },
    }),
    'site',
  );
  const sku = { latte: uid('latte'), cake: uid('cake'), soup: uid('soup') };
  must(
    await server.request('POST', '/v1/products', {
      body: { sku: sku.latte, name: 'Latte', priceMinor: 350, siteId, ...t },
    }),
    'latte',
  );
  must(
    await server.request('POST', '/v1/products', {
      body: { sku: sku.cake, name: 'Cake', priceMinor: 400, stock: 2, siteId, ...t },
    }),
    'cake',
  );
  must(
    await server.request('POST', '/v1/products', {
      body: { sku: sku.soup, name: 'Soup', priceMinor: 500, siteId, ...t },
    }),
    'soup',
  );
  must(
    await server.request('PATCH', `/v1/cafe/menu/${sku.latte}${q}`, { body: { category: 'Drinks' } }),
    'menu',
  );
  must(
    await server.request('PATCH', `/v1/cafe/menu/${sku.cake}${q}`, { body: { category: 'Food' } }),
    'menu',
  );
  const tables = [uid('T'), uid('T')];
  const tokens: Record<string, string> = {};
  for (const id of tables) {
    await server.createMachine(id, { kind: 'table', siteId, name: `Table ${id}`, ...t });
    tokens[id] = must(await server.request('GET', `/v1/machines/${id}/table-link`), 'link').token;
  }
  return { siteId, tables, tokens, sku };
}

/** Orders as a guest of `table` (one latte, one soup unless told). */
export async function guestOrder(
  server: TestServer,
  cafe: Cafe,
  table = cafe.tables[0]!,
  body: Record<string, unknown> = {},
) {
  return server.request('POST', '/api/orders', {
    token: cafe.tokens[table]!,
    body: {
      siteId: cafe.siteId,
      tableId: table,
      items: [
        { sku: cafe.sku.latte, qty: 1 },
        { sku: cafe.sku.soup, qty: 1 },
      ],
      ...body,
    },
  });
}

export async function countRows(
  server: TestServer,
  table: 'orders' | 'payments' | 'cafe_orders' | 'refunds' | 'ledger_entries' | 'customer_otps',
) {
  const row = await server.kioskhub.db
    .selectFrom(table)
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

/**
 * A server on `engine` (with `env` besides) with a local Stripe (fake-stripe) and a cafe whose
 * site takes cards through it, started before the describe's tests and closed after them. Read `server`, `stripe`
 * and `cafe` inside tests (they are set by then).
 */
export function stripeCafe(engine: Engine, webhookSecret: string, env: Record<string, string> = {}) {
  const ctx = {} as { server: TestServer; stripe: FakeStripe; cafe: Cafe };
  beforeAll(async () => {
    ctx.stripe = await fakeStripe({ webhookSecret });
    ctx.server = await startServer({
      engine,
      env: {
        STRIPE_SECRET_KEY: 'sk_test_cafe',
        STRIPE_WEBHOOK_SECRET: webhookSecret,
        STRIPE_API_BASE: ctx.stripe.url,
        ...env,
      },
    });
    ctx.cafe = await makeCafe(ctx.server);
    const site = await ctx.server.request('PATCH', `/v1/sites/${ctx.cafe.siteId}`, {
      body: { cardGateway: 'stripe' },
    });
    expect(site.status).toBe(200);
  });
  afterAll(async () => {
    await ctx.server?.close();
    await ctx.stripe?.close();
  });
  return ctx;
}
