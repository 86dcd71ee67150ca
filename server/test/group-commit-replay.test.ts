// Group commit's replay on the real server (SQLite file): webhooks that arrive together run in one
// transaction with no savepoints; when one of them fails after writing, the transaction is rolled
// back and the others run again, each in a savepoint. Nothing may be lost or done twice: every other
// payment is one order, one ledger movement and one dispense; the failed one leaves nothing, and
// Razorpay's retry of it then succeeds. The failure is the database's own (a trigger that aborts the
// order insert of one payment, after that webhook has claimed its delivery and written its event).
import { randomBytes } from 'node:crypto';
import { SimulatedMachine } from '@kioskhub/machine-simulator';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ledgerInvariants } from './ledger-invariants.js';
import { eventually, qrCredited, startServer, tempDir, type TestServer } from './harness.js';

const newPaymentId = (): string => `pay_${randomBytes(7).toString('hex')}`;

describe('group commit replay (SQLite file)', () => {
  const dir = tempDir('kioskhub-replay-');
  let server: TestServer;
  let machine: SimulatedMachine;
  let qrCodeId: string;
  const logs: string[] = [];

  beforeAll(async () => {
    server = await startServer({ dataDir: dir.path, logStream: { write: (line) => void logs.push(line) } });
    const m = await server.createVendingMachine('RP001', 2000);
    qrCodeId = m.qrCodeId;
    machine = new SimulatedMachine({ url: server.url, machineId: m.id, key: m.key, dispenseDelayMs: 1 });
    await machine.start();
  });
  afterAll(async () => {
    machine?.stop();
    await server?.close();
    dir.remove();
  });

  const replays = async (): Promise<number> => {
    const res = await server.request('GET', '/metrics');
    return Number(/^kioskhub_commit_group_replays_total (\d+)/m.exec(res.body as string)?.[1] ?? NaN);
  };
  const failOrdersOf = (paymentId: string) =>
    sql
      .raw(
        `create trigger fail_one before insert on orders when new.provider_payment_id = '${paymentId}' ` +
          `begin select raise(abort, 'refused by the test trigger'); end`,
      )
      .execute(server.kioskhub.db);

  it('a webhook that fails after writing fails alone: the others of its group are applied once each', async () => {
    const before = await replays();
    const sent: string[] = [];
    const failed: string[] = [];
    // The failing webhook must not be the first of its group for a replay to happen; the order in
    // which concurrent requests reach the group is the network's, so rounds repeat until one did.
    for (let round = 0; round < 5 && (await replays()) === before; round += 1) {
      const paymentIds = Array.from({ length: 24 }, newPaymentId);
      const failing = paymentIds[16]!;
      await failOrdersOf(failing);
      const answers = await Promise.all(
        paymentIds.map((id) => server.postWebhook(qrCredited(qrCodeId, 2000, id), { eventId: `evt_${id}` })),
      );
      await sql`drop trigger fail_one`.execute(server.kioskhub.db);
      for (const [i, answer] of answers.entries()) {
        if (paymentIds[i] === failing) {
          expect(answer.status).toBe(500);
          failed.push(failing);
        } else {
          expect(answer.status).toBe(200);
          expect(answer.body).toEqual({ ok: true, orderId: expect.any(String) });
          sent.push(paymentIds[i]!);
        }
      }
    }
    expect(await replays()).toBeGreaterThan(before);
    // The operator sees each failure in the log, with its cause.
    expect(logs.filter((l) => l.includes('refused by the test trigger'))).toHaveLength(failed.length);

    // Each applied payment: one order, dispensed once.
    const orders = async () =>
      (await server.request('GET', `/v1/orders?machineId=RP001&limit=200`)).body.items as any[];
    await eventually(
      () => machine.dispensed.length >= sent.length,
      10_000,
      'every applied payment dispensed',
    );
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(machine.dispensed.length).toBe(sent.length);
    const listed = await orders();
    expect(listed.map((o) => o.providerPaymentId).sort()).toEqual([...sent].sort());
    expect(new Set(machine.dispensed.map((d) => d.orderId)).size).toBe(sent.length);
    expect(new Set(machine.dispensed.map((d) => d.orderId))).toEqual(new Set(listed.map((o) => o.id)));
    // The failed ones left nothing: no payment event, no payment.
    for (const id of failed) {
      expect((await server.request('GET', `/v1/payment-events/razorpay/${id}`)).status).toBe(404);
    }
    const db = server.kioskhub.db;
    const payments = await db.selectFrom('payments').select('provider_payment_id').execute();
    expect(payments.map((p) => p.provider_payment_id).sort()).toEqual([...sent].sort());
    const { drift } = await ledgerInvariants(db);
    expect(drift).toEqual([]);
    const revenue = await db
      .selectFrom('ledger_entries')
      .select((eb) => eb.fn.sum<number>('amount').as('total'))
      .where('amount', '>', 0)
      .executeTakeFirstOrThrow();
    expect(Number(revenue.total)).toBe(2000 * sent.length);

    // Razorpay retries the failed deliveries: now they go through, once.
    for (const id of failed) {
      const retry = await server.postWebhook(qrCredited(qrCodeId, 2000, id), { eventId: `evt_${id}` });
      expect(retry.status).toBe(200);
      expect(retry.body).toEqual({ ok: true, orderId: expect.any(String) });
    }
    await eventually(
      () => machine.dispensed.length >= sent.length + failed.length,
      10_000,
      'the retried payments dispensed',
    );
    // Settled: nothing dispensed twice.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(machine.dispensed.length).toBe(sent.length + failed.length);
    expect((await orders()).length).toBe(sent.length + failed.length);
    expect((await ledgerInvariants(db)).drift).toEqual([]);
  });
});
