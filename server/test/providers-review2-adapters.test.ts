// Second review of the provider adapters against PROVIDERS.md, without a server: Africa's
// Talking's sandbox host (§3.3), Stripe refunds that give nothing back, the EPC payload (§7.2) and
// the RF reference as a bank carries it.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { atApiBase, createAtSmsClient } from '../src/providers/africastalking/at.api.js';
import { parseBankCredit } from '../src/providers/bank/bank.routes.js';
import { epcPayload } from '../src/providers/bank/epc-qr.js';
import { rfReferenceForPayment } from '../src/providers/bank/rf-reference.js';
import { createStripeGateway } from '../src/providers/stripe/stripe.gateway.js';

describe("Africa's Talking SMS host", () => {
  // PROVIDERS.md §3.3: the SDK sends a username of `sandbox` (any case) to the sandbox host; the
  // sandbox app's key is refused by the live one, so every SMS would fail and be retried.
  it('sends a sandbox app to the sandbox host, and keeps any base that was set', async () => {
    expect(atApiBase('https://api.africastalking.com', 'sandbox')).toBe(
      'https://api.sandbox.africastalking.com',
    );
    expect(atApiBase('https://api.africastalking.com/', 'Sandbox')).toBe(
      'https://api.sandbox.africastalking.com',
    );
    expect(atApiBase('https://api.africastalking.com', 'water-kiosks')).toBe(
      'https://api.africastalking.com',
    );
    expect(atApiBase('http://127.0.0.1:4010', 'sandbox')).toBe('http://127.0.0.1:4010');

    const urls: string[] = [];
    const client = createAtSmsClient({
      baseUrl: 'https://api.africastalking.com',
      username: 'sandbox',
      apiKey: 'k',
      fetch: (async (url: URL | string) => {
        urls.push(String(url));
        return new Response(
          JSON.stringify({
            SMSMessageData: {
              Message: 'Sent to 1/1 Total Cost: KES 0.8000',
              Recipients: [
                { statusCode: 101, number: '+254711000111', status: 'Success', messageId: 'ATXid_1' },
              ],
            },
          }),
          { status: 201 },
        );
      }) as unknown as typeof fetch,
    });
    expect(await client.send('+254711000111', 'hello')).toEqual({ messageId: 'ATXid_1' });
    expect(urls).toEqual(['https://api.sandbox.africastalking.com/version1/messaging']);
  });
});

describe('Stripe refunds', () => {
  // A refund Stripe answers `failed` or `canceled` gave nothing back: it must not become SUCCEEDED
  // (the refund job retries it, then ends FAILED with an alert, the money still owed).
  let url = '';
  let refundStatus = 'succeeded';
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json' }).end(
        JSON.stringify({
          id: 're_review2',
          object: 'refund',
          amount: 850,
          currency: 'eur',
          payment_intent: 'pi_review2',
          status: refundStatus,
          failure_reason: refundStatus === 'failed' ? 'expired_or_canceled_card' : null,
        }),
      );
    });
  });
  beforeAll(async () => {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('takes succeeded and pending refunds, and refuses failed or canceled ones', async () => {
    const gateway = createStripeGateway({ secretKey: 'sk_test_r2', webhookSecret: 'whsec_r2', apiBase: url });
    const ctx = { currency: 'EUR', refundId: 'rf1' };
    // Succeeded is made; pending and requires_action are on their way (a webhook or a check ends them).
    for (const status of ['succeeded', 'pending', 'requires_action']) {
      refundStatus = status;
      expect(await gateway.refund('pi_review2', 850, ctx)).toEqual({
        providerRefundId: 're_review2',
        pending: status !== 'succeeded',
      });
    }
    for (const [status, said] of [
      ['failed', 'Stripe refund re_review2 failed: '],
      ['canceled', 'Stripe refund re_review2 was canceled'],
    ] as const) {
      refundStatus = status;
      await expect(gateway.refund('pi_review2', 850, ctx)).rejects.toThrow(said);
    }
  });
});

describe('EPC069-12 payload', () => {
  const transfer = {
    name: 'Corner Cafe',
    iban: 'DE89 3704 0044 0532 0130 00',
    amountMinor: 850,
    currency: 'EUR',
    reference: 'RF18539007547034',
  };

  it('cuts a long name at 70 characters without splitting one, and writes the BIC as banks do', () => {
    const name = `${'A'.repeat(69)}😀 and more`;
    const line = epcPayload({ ...transfer, name }).split('\n')[5]!;
    expect(Array.from(line)).toHaveLength(70);
    expect(line.endsWith('😀')).toBe(true);
    expect(line).not.toMatch(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])/);
    expect(epcPayload({ ...transfer, bic: ' cobadeff xxx ' }).split('\n')[4]).toBe('COBADEFFXXX');
  });
});

describe('bank credit reference', () => {
  // A payer who types the reference by hand into the unstructured line adds words around it; the
  // RF check digits still find it, so the money matches its payment instead of nothing.
  const credit = (reference: string) => {
    const notice = parseBankCredit(
      Buffer.from(JSON.stringify({ eventId: 'e1', reference, amountMinor: 850, currency: 'EUR' })),
    );
    if (typeof notice === 'string') throw new Error(notice);
    return notice.reference;
  };
  const ref = rfReferenceForPayment('01KBN3Z7Q0ABCDEFGHJKMNPQRS');
  const grouped = ref.match(/.{1,4}/g)!.join(' ');

  it('finds our reference inside the words around it, grouped or not', () => {
    expect(credit(ref)).toBe(ref);
    expect(credit(grouped.toLowerCase())).toBe(ref);
    expect(credit(`Table 4 ${ref} thanks`)).toBe(ref);
    expect(credit(`Order: ${grouped} 42 thank you`)).toBe(ref);
    expect(credit(`coffee, ${ref.toLowerCase()}`)).toBe(ref);
  });

  it('keeps what it was given when no valid reference is in it', () => {
    expect(credit('Table 4 coffee')).toBe('Table 4 coffee');
    const mistyped = `${ref.slice(0, -1)}${ref.endsWith('S') ? 'T' : 'S'}`;
    expect(credit(` ${mistyped} `)).toBe(mistyped);
  });
});
