// A hard kill (SIGKILL, no shutdown code runs) of the real server process, then a restart on
// the same storage: a paid order is never forgotten and never dispensed twice (ARCHITECTURE.md
// invariant 2). The server runs as a child process exactly as `npm start` runs it.
import { randomBytes } from 'node:crypto';
import { SimulatedMachine, type CommandHandling } from '@kioskhub/machine-simulator';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { engines, eventually, qrCredited } from './harness.js';
import {
  http,
  startServerProcess,
  storageFor,
  createVendingMachine,
  postWebhook,
  orderStatus,
  within,
  type ServerProcess,
} from './crash-kit.js';

/** A failure names what the server process and the machine said, so a hang in CI can be read. */
function withTranscript(err: unknown, server: ServerProcess | undefined, machineLog: string[]): Error {
  const error = err instanceof Error ? err : new Error(String(err));
  error.message +=
    `\n--- machine ---\n${machineLog.slice(-40).join('\n')}` +
    `\n--- server output (last 4000 characters) ---\n${server?.output().slice(-4000) ?? ''}`;
  return error;
}
describe.each(engines())('hard kill with a paid order queued for an offline machine (%s)', (engine) => {
  it(
    'after the restart the order is still there and is dispensed exactly once',
    { timeout: 180_000 },
    async () => {
      const storage = await storageFor(engine);
      const machines: SimulatedMachine[] = [];
      const machineLog: string[] = [];
      let server: ServerProcess | undefined;
      try {
        server = await startServerProcess(storage.env);
        const m = await createVendingMachine(server.url, 'CRASH1');
        const paymentId = `pay_${randomBytes(7).toString('hex')}`;
        const event = qrCredited(m.qrCodeId, 2000, paymentId);
        const paid = await postWebhook(server.url, event);
        expect(paid.status).toBe(200);
        const orderId = paid.body.orderId as string;
        expect((await http(server.url, 'GET', `/v1/orders/${orderId}`)).body).toMatchObject({
          status: 'PAID',
          dispatchPending: true,
        });

        await server.hardKill();
        server = await startServerProcess(storage.env);

        // Everything committed before the kill is there.
        expect((await http(server.url, 'GET', `/v1/orders/${orderId}`)).body).toMatchObject({
          status: 'PAID',
          dispatchPending: true,
          providerPaymentId: paymentId,
        });
        expect(
          (await http(server.url, 'GET', `/v1/payment-events/razorpay/${paymentId}`)).body,
        ).toMatchObject({ status: 'PROCESSED', orderId, dispatch: 'PENDING' });
        // Razorpay retrying the delivery after the crash is still a duplicate.
        expect((await postWebhook(server.url, event)).body).toEqual({ ok: true, duplicate: true, orderId });

        const machine = new SimulatedMachine({
          url: server.url,
          machineId: m.id,
          key: m.key,
          dispenseDelayMs: 20,
          heartbeatMs: 500,
          logger: (line) => machineLog.push(`${new Date().toISOString()} ${line}`),
        });
        machines.push(machine);
        await within(machine.start(), 30_000, 'the machine connecting to the restarted server');
        await eventually(
          async () => (await orderStatus(server!.url, orderId)) === 'COMPLETED',
          20_000,
          'the order to complete after the restart',
        );
        expect(machine.dispensed.map((d) => d.orderId)).toEqual([orderId]);

        // Give the dispatcher more chances to (wrongly) send it again: a reconnect, then a new
        // payment that is dispensed after it (commands go out oldest first).
        const reconnected = new Promise<void>((done) => machine.once('connect', () => done()));
        machine.disconnectNow();
        await within(reconnected, 30_000, 'the machine reconnecting after a dropped connection');
        const next = await postWebhook(server.url, qrCredited(m.qrCodeId, 2000));
        expect(next.status).toBe(200);
        await eventually(
          async () => (await orderStatus(server!.url, next.body.orderId as string)) === 'COMPLETED',
          20_000,
          'the next order to complete',
        );
        expect(machine.dispensed.map((d) => d.orderId)).toEqual([orderId, next.body.orderId]);
        const timeline = await http(server.url, 'GET', `/v1/orders/${orderId}/timeline`);
        expect(timeline.body.items.filter((e: any) => e.type === 'dispensed')).toHaveLength(1);
        expect(await orderStatus(server.url, orderId)).toBe('COMPLETED');
      } catch (err) {
        throw withTranscript(err, server, machineLog);
      } finally {
        for (const machine of machines) machine.stop();
        await server?.hardKill();
        await storage.cleanup();
      }
    },
  );
});

// The two cases below share one kill and one restart (each start of the server process compiles
// and loads the whole server, seconds of CPU): before the kill a machine is in the middle of a
// dispense (CRASH2) and 24 senders are posting webhooks for another machine (GROUP1) without
// pause; the kill lands while both are under way. Each case then checks its own machine's orders.
describe('hard kill while a machine is in the middle of a dispense and webhooks are being committed in groups (sqlite)', () => {
  let storage: Awaited<ReturnType<typeof storageFor>> | undefined;
  let server: ServerProcess | undefined;
  let machine: SimulatedMachine | undefined;
  // CRASH2: the order whose dispense the machine holds, its command, what came after the restart.
  let orderId = '';
  let commandId = '';
  const afterRestart: { commandId: string; handling: CommandHandling }[] = [];
  // GROUP1: every payment sent, and those acknowledged before the kill (paymentId → orderId).
  let group: { id: string; key: string; qrCodeId: string };
  const acked = new Map<string, string>();
  const sent: string[] = [];

  beforeAll(async () => {
    storage = await storageFor('sqlite');
    server = await startServerProcess(storage.env);
    const m = await createVendingMachine(server.url, 'CRASH2');
    group = await createVendingMachine(server.url, 'GROUP1');

    // The dispense outlasts the kill, the restart and the machine's reconnect backoff: it runs
    // until the test ends it, once the restarted server has sent the command again.
    machine = new SimulatedMachine({
      url: server.url,
      machineId: m.id,
      key: m.key,
      holdDispense: true,
      heartbeatMs: 500,
    });
    let restarted = false;
    machine.on('command', ({ command, handling }) => {
      if (restarted && command) afterRestart.push({ commandId: command.commandId, handling });
    });
    const firstDispense = new Promise<string>((done) =>
      machine!.once('dispense', ({ command }) => done(command.commandId)),
    );
    await within(machine.start(), 30_000, 'machine CRASH2 connecting');

    const paid = await postWebhook(server.url, qrCredited(m.qrCodeId, 2000));
    expect(paid.status).toBe(200);
    orderId = paid.body.orderId as string;
    commandId = await within(firstDispense, 30_000, 'the first dispense command reaching CRASH2');
    // The server has recorded the machine's acceptance before it dies.
    await eventually(
      async () => (await orderStatus(server!.url, orderId)) === 'DISPATCHED',
      20_000,
      'the order to be DISPATCHED',
    );
    expect(machine.dispensed).toEqual([]);

    // 24 senders without pause: the server commits their webhooks several to a transaction.
    let stop = false;
    const sender = async () => {
      while (!stop) {
        const paymentId = `pay_${randomBytes(7).toString('hex')}`;
        sent.push(paymentId);
        try {
          const reply = await postWebhook(server!.url, qrCredited(group.qrCodeId, 2000, paymentId));
          if (reply.status === 200 && reply.body?.orderId) acked.set(paymentId, reply.body.orderId as string);
        } catch {
          return; // the connection died with the server
        }
      }
    };
    const senders = Array.from({ length: 24 }, sender);
    await eventually(async () => acked.size >= 80, 60_000, '80 acknowledged webhooks');

    restarted = true;
    await server.hardKill(); // mid-stream: some requests are in a group being written
    stop = true;
    await Promise.all(senders);
    server = await startServerProcess(storage.env);
  }, 180_000);
  afterAll(async () => {
    machine?.stop();
    await server?.hardKill();
    await storage?.cleanup();
  });

  it(
    'after the restart the command is re-sent with the same commandId and dispensed once',
    { timeout: 180_000 },
    async () => {
      await eventually(
        () => afterRestart.some((c) => c.commandId === commandId),
        30_000,
        'the command to be re-sent after the restart',
      );
      expect(machine!.dispensed).toEqual([]);
      expect(machine!.releaseDispense()).toBe(true);
      expect(
        afterRestart
          .filter((c) => c.commandId === commandId)
          .every((c) => c.handling === 'in-progress' || c.handling === 'repeat'),
      ).toBe(true);
      expect(afterRestart.every((c) => c.commandId === commandId)).toBe(true);

      await eventually(
        async () => (await orderStatus(server!.url, orderId)) === 'COMPLETED',
        30_000,
        'the order to complete',
      );
      expect(machine!.dispensed).toHaveLength(1);
      expect(machine!.dispensed[0]).toMatchObject({ commandId, orderId, status: 'SUCCESS' });
      const timeline = await http(server!.url, 'GET', `/v1/orders/${orderId}/timeline`);
      const types = (timeline.body.items as { type: string }[]).map((e) => e.type);
      expect(types.filter((t) => t === 'dispensed')).toHaveLength(1);
      expect(types.at(-1)).toBe('dispensed');
      for (const e of timeline.body.items.filter((x: any) => x.type !== 'payment_received'))
        expect(e.detail.commandId).toBe(commandId);
    },
  );

  it(
    'every webhook answered 2xx before the kill is on disk after it, and each payment counts once',
    { timeout: 180_000 },
    async () => {
      const url = server!.url;
      // Every acknowledged payment kept its order; redelivering any sent event never makes a
      // second order: acknowledged ones are duplicates of their order, the rest are new once.
      for (const [paymentId, orderId] of acked) {
        const again = await postWebhook(url, qrCredited(group.qrCodeId, 2000, paymentId));
        expect(again.body).toEqual({ ok: true, duplicate: true, orderId });
      }
      const unacked = sent.filter((p) => !acked.has(p));
      for (const paymentId of unacked) {
        const first = await postWebhook(url, qrCredited(group.qrCodeId, 2000, paymentId));
        const second = await postWebhook(url, qrCredited(group.qrCodeId, 2000, paymentId));
        expect(first.status).toBe(200);
        expect(second.body).toMatchObject({ ok: true, duplicate: true, orderId: first.body.orderId });
      }
      const ids: string[] = [];
      let cursor: string | null = null;
      do {
        const page = await http(
          url,
          'GET',
          `/v1/orders?machineId=GROUP1&limit=200${cursor ? `&cursor=${cursor}` : ''}`,
        );
        expect(page.status).toBe(200);
        ids.push(...(page.body.items as { providerPaymentId: string }[]).map((o) => o.providerPaymentId));
        cursor = page.body.nextCursor as string | null;
      } while (cursor);
      expect(new Set(ids).size).toBe(ids.length);
      expect(new Set(ids)).toEqual(new Set(sent));
    },
  );
});
