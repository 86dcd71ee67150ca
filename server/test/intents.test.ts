// One-off payment intents through the job table: a provider whose callbacks are unsigned is
// confirmed only through its status API; pending payments are polled, expire, survive a restart,
// and settle once however many callbacks and polls race. The provider here is a test status
// source (the real MoMo and Airtel adapters have their own tests against local fakes).
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { PaymentRow } from '../src/platform/db/schema.js';
import type { ProviderStatus } from '../src/modules/payments/intents.js';
import {
  engines,
  eventually,
  newSchemaName,
  startServer,
  tempDir,
  dropSchema,
  type TestServer,
} from './harness.js';
import { ledgerInvariants } from './ledger-invariants.js';

/** What the fake provider's status API answers, per payment id; `down` makes it throw. */
class FakeProvider {
  answers = new Map<string, ProviderStatus>();
  asked = new Map<string, number>();
  down = false;
  source = {
    fetchStatus: async (payment: PaymentRow): Promise<ProviderStatus> => {
      this.asked.set(payment.id, (this.asked.get(payment.id) ?? 0) + 1);
      if (this.down) throw new Error('fakepay status API unreachable');
      return this.answers.get(payment.id) ?? { status: 'PENDING' };
    },
  };
}

const FAST = { PAYMENT_STATUS_POLL_MS: '100' };

for (const engine of engines()) {
  describe(`one-off intents (${engine})`, () => {
    let server: TestServer;
    let provider: FakeProvider;
    let customerId: string;
    const ended: string[] = [];

    async function start(
      env: Record<string, string> = {},
      extra: { dataDir?: string; schema?: string } = {},
    ) {
      server = await startServer({ engine, env: { ...FAST, ...env }, ...extra });
      provider = new FakeProvider();
      server.kioskhub.services.intents.registerStatusSource('fakepay', provider.source);
      return server;
    }

    beforeAll(async () => {
      await start();
      server.kioskhub.services.intents.onEnded('wallet_topup', async (_ex, p) => void ended.push(p.id));
      const db = server.kioskhub.db;
      const customer = await server.kioskhub.services.customers.create(
        { tenantId: 'default', phone: '+256772123456', actor: 'test' },
        db,
      );
      customerId = customer.id;
    });
    afterAll(async () => {
      await server.close();
    });
    afterEach(async () => {
      expect(await ledgerInvariants(server.kioskhub.db)).toEqual({ drift: [], units: [] });
    });

    async function intent(amountMinor: number, extra: { expiresAt?: string; provider?: string } = {}) {
      const { db, services } = server.kioskhub;
      return db.transaction().execute((tx) =>
        services.intents.create(tx, {
          tenantId: 'default',
          purpose: 'wallet_topup',
          method: 'momo',
          provider: extra.provider ?? 'fakepay',
          customerId,
          amountMinor,
          currency: 'UGX',
          ...(extra.expiresAt ? { expiresAt: extra.expiresAt } : {}),
        }),
      );
    }
    const payment = async (id: string) =>
      (await server.request('GET', `/v1/payments/${id}`)).body as {
        status: string;
        receivedMinor: number;
        failureCode: string | null;
        providerPaymentId: string | null;
      };
    async function wallet(): Promise<number> {
      const { db, services } = server.kioskhub;
      return (await services.customers.wallet(db, 'default', customerId, 'UGX')).balance;
    }
    async function callback(id: string) {
      const { db, services } = server.kioskhub;
      await db
        .transaction()
        .execute((tx) => services.intents.scheduleCheck(tx, { id, tenant_id: 'default' }));
      services.outbox.flushSoon();
    }

    it('a callback alone credits nothing: only the status API settles, once', async () => {
      const before = await wallet();
      const p = await intent(5_000);
      // A forged "it succeeded" callback: the provider still says PENDING.
      await callback(p.id);
      await eventually(async () => expect(provider.asked.get(p.id) ?? 0).toBeGreaterThan(0));
      expect((await payment(p.id)).status).toBe('PENDING');
      expect(await wallet()).toBe(before);

      provider.answers.set(p.id, {
        status: 'SUCCEEDED',
        receivedMinor: 5_000,
        providerPaymentId: `fp-${p.id}`,
      });
      // Callbacks repeated and the poll racing them: applied once.
      await Promise.all([callback(p.id), callback(p.id), callback(p.id)]);
      await eventually(async () => expect((await payment(p.id)).status).toBe('SUCCEEDED'));
      await new Promise((r) => setTimeout(r, 300)); // a few more polls and checks run
      expect(await wallet()).toBe(before + 5_000);
      expect(await payment(p.id)).toMatchObject({ receivedMinor: 5_000, providerPaymentId: `fp-${p.id}` });
    });

    it('a pending payment with no callback at all is polled until it succeeds', async () => {
      const before = await wallet();
      const p = await intent(1_500);
      await eventually(async () => expect(provider.asked.get(p.id) ?? 0).toBeGreaterThanOrEqual(2));
      expect((await payment(p.id)).status).toBe('PENDING');
      provider.answers.set(p.id, { status: 'SUCCEEDED', receivedMinor: 1_500 });
      await eventually(async () => expect((await payment(p.id)).status).toBe('SUCCEEDED'));
      expect(await wallet()).toBe(before + 1_500);
      const asked = provider.asked.get(p.id)!;
      await new Promise((r) => setTimeout(r, 400));
      expect(provider.asked.get(p.id)).toBe(asked); // polling stopped with the answer
    });

    it('a provider that is down is retried with backoff, and settles when it is back', async () => {
      const before = await wallet();
      provider.down = true;
      const p = await intent(700);
      provider.answers.set(p.id, { status: 'SUCCEEDED', receivedMinor: 700 });
      await callback(p.id);
      await eventually(async () => expect(provider.asked.get(p.id) ?? 0).toBeGreaterThanOrEqual(2));
      expect((await payment(p.id)).status).toBe('PENDING');
      provider.down = false;
      await eventually(async () => expect((await payment(p.id)).status).toBe('SUCCEEDED'), 15_000);
      expect(await wallet()).toBe(before + 700);
    });

    it('a failure answer ends the payment FAILED with its code, and nothing is credited', async () => {
      const before = await wallet();
      const p = await intent(900);
      provider.answers.set(p.id, { status: 'FAILED', failureCode: 'PAYER_REJECTED' });
      await callback(p.id);
      await eventually(async () => expect((await payment(p.id)).status).toBe('FAILED'));
      expect((await payment(p.id)).failureCode).toBe('PAYER_REJECTED');
      expect(ended).toContain(p.id);
      expect(await wallet()).toBe(before);
      // A late "success" from the provider changes nothing any more.
      provider.answers.set(p.id, { status: 'SUCCEEDED', receivedMinor: 900 });
      await callback(p.id);
      await new Promise((r) => setTimeout(r, 300));
      expect((await payment(p.id)).status).toBe('FAILED');
      expect(await wallet()).toBe(before);
    });

    it('an intent not paid by its expiry ends EXPIRED; one paid at the last second is asked first', async () => {
      const before = await wallet();
      const soon = () => new Date(Date.now() + 400).toISOString();
      const unpaid = await intent(300, { expiresAt: soon() });
      const lastSecond = await intent(400, { expiresAt: soon(), provider: 'nostatus' });
      const paidLate = await intent(500, { expiresAt: soon() });
      // The poll interval is 100 ms: stop fakepay from answering before the expiry for paidLate.
      provider.down = true;
      await new Promise((r) => setTimeout(r, 250));
      provider.answers.set(paidLate.id, { status: 'SUCCEEDED', receivedMinor: 500 });
      provider.down = false;
      await eventually(async () => expect((await payment(unpaid.id)).status).toBe('EXPIRED'));
      await eventually(async () => expect((await payment(lastSecond.id)).status).toBe('EXPIRED'));
      await eventually(async () => expect((await payment(paidLate.id)).status).toBe('SUCCEEDED'));
      expect(ended).toEqual(expect.arrayContaining([unpaid.id, lastSecond.id]));
      expect(ended).not.toContain(paidLate.id);
      expect(await wallet()).toBe(before + 500);
    });

    it('refuses an intent without a positive whole amount, and writes nothing', async () => {
      const { db } = server.kioskhub;
      const count = async () =>
        Number(
          (
            await db
              .selectFrom('payments')
              .select((eb) => eb.fn.countAll().as('n'))
              .executeTakeFirstOrThrow()
          ).n,
        );
      const n = await count();
      for (const amountMinor of [0, -5, 1.5, Number.NaN]) {
        await expect(intent(amountMinor)).rejects.toThrow(/positive whole amount/);
      }
      expect(await count()).toBe(n);
    });
  });

  describe(`one-off intents across a restart (${engine})`, () => {
    it('a payment pending when the server stopped is polled and settled by the next start', async () => {
      const dir = engine === 'sqlite' ? tempDir() : undefined;
      const schema = engine === 'postgres' ? newSchemaName() : undefined;
      const where = { ...(dir ? { dataDir: dir.path } : {}), ...(schema ? { schema } : {}) };
      try {
        let server = await startServer({ engine, env: { PAYMENT_STATUS_POLL_MS: '60000' }, ...where });
        const db = server.kioskhub.db;
        const customer = await server.kioskhub.services.customers.create(
          { tenantId: 'default', phone: '+256772000111', actor: 'test' },
          db,
        );
        const p = await db.transaction().execute((tx) =>
          server.kioskhub.services.intents.create(tx, {
            tenantId: 'default',
            purpose: 'wallet_topup',
            method: 'momo',
            provider: 'fakepay',
            customerId: customer.id,
            amountMinor: 2_000,
            currency: 'UGX',
          }),
        );
        await server.close();

        server = await startServer({ engine, env: FAST, ...where });
        try {
          const provider = new FakeProvider();
          provider.answers.set(p.id, { status: 'SUCCEEDED', receivedMinor: 2_000 });
          server.kioskhub.services.intents.registerStatusSource('fakepay', provider.source);
          // The first poll was scheduled a minute out by the first process; a callback now runs a
          // check at once, from the job table the restart kept.
          await server.kioskhub.db
            .transaction()
            .execute((tx) =>
              server.kioskhub.services.intents.scheduleCheck(tx, { id: p.id, tenant_id: 'default' }),
            );
          server.kioskhub.services.outbox.flushSoon();
          await eventually(async () =>
            expect((await server.request('GET', `/v1/payments/${p.id}`)).body.status).toBe('SUCCEEDED'),
          );
          const wallet = await server.kioskhub.services.customers.wallet(
            server.kioskhub.db,
            'default',
            customer.id,
            'UGX',
          );
          expect(wallet.balance).toBe(2_000);
          expect(await ledgerInvariants(server.kioskhub.db)).toEqual({ drift: [], units: [] });
        } finally {
          await server.close();
        }
      } finally {
        dir?.remove();
        if (schema) await dropSchema(schema);
      }
    });
  });
}
