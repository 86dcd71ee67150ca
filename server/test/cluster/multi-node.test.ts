// Several real server processes on one PostgreSQL schema and one Redis (ARCHITECTURE.md
// "Scaling past one machine"): a payment on one process reaches a machine on another, a
// process killed with commands in flight loses and duplicates nothing, and a storm of
// duplicate webhooks spread over all processes makes exactly one order per payment.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import type { Server as NetServer } from 'node:net';
import { promisify } from 'node:util';
import { SimulatedMachine } from '@kioskhub/machine-simulator';
import { io, type Socket } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBalancer } from '../../src/cluster/balancer.js';
import {
  ADMIN_TOKEN,
  START_TIMEOUT_MS,
  createVendingMachine,
  eventually,
  freePort,
  http,
  metric,
  newPaymentId,
  orderStatus,
  pool,
  postWebhook,
  qrCredited,
  sharedServices,
  sleep,
  startCluster,
  type Cluster,
  type Reply,
} from './helpers.js';

const services = sharedServices('the multi-node cluster tests (server/test/cluster/multi-node.test.ts)');
const suffix = randomBytes(3).toString('hex'); // machine ids unique on a Redis other clusters may share
const run = promisify(execFile);

/** PUBLISH calls Redis has served so far (to catch messages bouncing between processes). */
async function redisPublishes(redisUrl: string): Promise<number | undefined> {
  const u = new URL(redisUrl);
  try {
    const { stdout } = await run(
      'redis-cli',
      ['-h', u.hostname, '-p', u.port || '6379', 'info', 'commandstats'],
      { timeout: 5_000 },
    );
    const line = stdout.split('\n').find((l) => l.startsWith('cmdstat_publish:'));
    return line ? Number(/calls=(\d+)/.exec(line)?.[1] ?? 0) : 0;
  } catch {
    return undefined; // no redis-cli: the check is skipped
  }
}

describe.skipIf(!services)('three processes on one PostgreSQL and one Redis', () => {
  let cluster: Cluster | undefined;
  const machines: SimulatedMachine[] = [];
  const sockets: Socket[] = [];
  let balancer: NetServer | undefined;

  beforeAll(async () => {
    const startedAt = Date.now();
    cluster = await startCluster({
      nodes: 3,
      databaseUrl: services!.databaseUrl,
      redisUrl: services!.redisUrl,
    });
    console.log(`[cluster] 3 processes ready in ${Date.now() - startedAt} ms`);
  }, 3 * START_TIMEOUT_MS);

  afterAll(async () => {
    for (const m of machines) m.stop();
    for (const s of sockets) s.disconnect();
    balancer?.close();
    await cluster?.stop();
  }, 60_000);

  const track = (m: SimulatedMachine): SimulatedMachine => {
    machines.push(m);
    return m;
  };

  it(
    'a payment that lands on process A is dispensed by a machine on process B; /live on C sees it',
    { timeout: 120_000 },
    async () => {
      const c = cluster!;
      const m = await createVendingMachine(c.url(0), `MNA${suffix}`);

      const events: { event: string; data: any }[] = [];
      const live = io(`${c.url(2)}/live`, {
        auth: { token: ADMIN_TOKEN },
        transports: ['websocket'],
        reconnection: false,
        forceNew: true,
      });
      sockets.push(live);
      live.onAny((event: string, data: unknown) => events.push({ event, data }));
      await new Promise<void>((resolve, reject) => {
        live.once('connect', () => resolve());
        live.once('connect_error', reject);
      });
      expect(await live.timeout(10_000).emitWithAck('subscribe', { room: 'tenant:default' })).toMatchObject({
        ok: true,
      });

      const machine = track(
        new SimulatedMachine({ url: c.url(1), machineId: m.id, key: m.key, dispenseDelayMs: 50 }),
      );
      await machine.start();
      await eventually(
        async () => (await metric(c.url(1), 'kioskhub_machines_online')) === 1,
        20_000,
        'the machine to be online on B',
      );

      const paid = await postWebhook(c.url(0), qrCredited(m.qrCodeId, 2000));
      expect(paid.status, JSON.stringify(paid.body)).toBe(200);
      const orderId = paid.body.orderId as string;
      await eventually(
        async () => (await orderStatus(c.url(2), orderId)) === 'COMPLETED',
        30_000,
        'the order to complete',
      );
      expect(machine.dispensed.map((d) => d.orderId)).toEqual([orderId]);

      await eventually(
        () =>
          events.some(
            (e) =>
              e.event === 'order_status_updated' &&
              e.data?.orderId === orderId &&
              e.data?.status === 'COMPLETED',
          ),
        20_000,
        'order_status_updated COMPLETED on C',
      );
      expect(
        events.some(
          (e) => e.event === 'order_created' && e.data?.orderId === orderId && e.data?.tenantId === 'default',
        ),
      ).toBe(true);

      // The kick that told B about the payment must not bounce between the processes for ever
      // (it did: every process not holding the machine passed it on, ~80,000 PUBLISH in 3 s).
      const before = await redisPublishes(services!.redisUrl);
      await sleep(2_000);
      const after = await redisPublishes(services!.redisUrl);
      if (before !== undefined && after !== undefined) {
        console.log(`[cluster] Redis PUBLISH in the 2 s after a dispatch: ${after - before}`);
        expect(after - before).toBeLessThan(2_000);
      }
      expect(machine.dispensed).toHaveLength(1);
      machine.stop();
    },
  );

  it(
    'kill -9 of a process with machines connected and commands in flight: every paid order is dispensed exactly once',
    { timeout: 240_000 },
    async () => {
      const c = cluster!;
      const victim = 1;
      const balancerPort = await freePort();
      balancer = await startBalancer({
        host: '127.0.0.1',
        port: balancerPort,
        backends: c.nodes.map((n) => ({ host: '127.0.0.1', port: n.port })),
      });
      const via = `http://127.0.0.1:${balancerPort}`;

      const baseline = (await metric(c.url(victim), 'kioskhub_machines_online')) ?? 0;
      const fleet: {
        m: Awaited<ReturnType<typeof createVendingMachine>>;
        sim: SimulatedMachine;
        connects: number;
        disconnects: number;
      }[] = [];
      for (let i = 0; i < 6; i++) {
        const m = await createVendingMachine(c.url(0), `MNB${suffix}${i}`);
        const sim = track(
          new SimulatedMachine({
            url: via,
            machineId: m.id,
            key: m.key,
            dispenseDelayMs: 1_500,
            heartbeatMs: 1_000,
          }),
        );
        const entry = { m, sim, connects: 0, disconnects: 0 };
        sim.on('connect', () => entry.connects++);
        sim.on('disconnect', () => entry.disconnects++);
        fleet.push(entry);
        // One at a time: the balancer deals connections round-robin, two machines per process.
        await sim.start();
      }
      await eventually(
        async () => (await metric(c.url(victim), 'kioskhub_machines_online')) === baseline + 2,
        30_000,
        'two machines on the victim process',
      );

      // Three payments per machine, posted to every process in turn.
      const orders: string[] = [];
      for (let round = 0; round < 3; round++) {
        for (const [i, f] of fleet.entries()) {
          const res = await postWebhook(c.url((round * 6 + i) % 3), qrCredited(f.m.qrCodeId, 2000));
          expect(res.status, JSON.stringify(res.body)).toBe(200);
          orders.push(res.body.orderId as string);
        }
      }
      // Machines 1 and 4 went to the victim (round-robin); kill it while both are dispensing.
      const onVictim = fleet.filter((_, i) => i % 3 === victim);
      await eventually(
        () => onVictim.every((f) => f.sim.status === 'BUSY'),
        30_000,
        "the victim's machines to be dispensing",
      );
      const inFlight = await c.query<{ n: number }>(
        `select count(*)::int as n from commands where status in ('SENT', 'ACCEPTED')`,
      );
      const killedAt = Date.now();
      await c.kill(victim);
      console.log(
        `[cluster] killed process ${victim} with ${inFlight[0]!.n} commands in flight and ${orders.length - fleet.reduce((n, f) => n + f.sim.dispensed.length, 0)} orders not yet dispensed`,
      );

      try {
        // The victim's machines (and only they) lost their connection, and come back through the
        // balancer on the surviving processes.
        await eventually(
          () => onVictim.every((f) => f.connects >= 2 && f.sim.connected),
          60_000,
          "the victim's machines to reconnect",
        );
        expect(fleet.map((f) => f.disconnects > 0)).toEqual(fleet.map((_, i) => i % 3 === victim));
        await eventually(
          async () => {
            const rows = await c.query<{ status: string; n: number }>(
              `select status, count(*)::int as n from orders where id = any($1) group by status`,
              [orders],
            );
            return rows.length === 1 && rows[0]!.status === 'COMPLETED' && rows[0]!.n === orders.length;
          },
          120_000,
          'every paid order to be COMPLETED',
          250,
        );
        console.log(
          `[cluster] all ${orders.length} orders COMPLETED ${Date.now() - killedAt} ms after the kill`,
        );
        const online =
          (await metric(c.url(0), 'kioskhub_machines_online'))! +
          (await metric(c.url(2), 'kioskhub_machines_online'))!;
        expect(online).toBe(6);

        const dispensed = fleet.flatMap((f) => f.sim.dispensed.map((d) => d.orderId));
        expect(dispensed.slice().sort()).toEqual(orders.slice().sort());
        expect(new Set(dispensed).size).toBe(dispensed.length);
        // Each order had one command, and it is DONE.
        const commands = await c.query<{ order_id: string; n: number; done: number }>(
          `select order_id, count(*)::int as n, sum(case when status = 'DONE' then 1 else 0 end)::int as done from commands where order_id = any($1) group by order_id`,
          [orders],
        );
        expect(commands).toHaveLength(orders.length);
        expect(commands.every((r) => r.n === 1 && r.done === 1)).toBe(true);
      } finally {
        // A stopped server is always started again.
        if (!c.nodes[victim]!.alive) await c.restart(victim);
      }

      // The restarted process takes part again: a payment posted to it reaches a machine elsewhere.
      const target = fleet[0]!;
      const next = await postWebhook(c.url(victim), qrCredited(target.m.qrCodeId, 2000));
      expect(next.status).toBe(200);
      await eventually(
        async () => (await orderStatus(c.url(2), next.body.orderId as string)) === 'COMPLETED',
        30_000,
        'a payment on the restarted process to complete',
      );
      expect(target.sim.dispensed.filter((d) => d.orderId === next.body.orderId)).toHaveLength(1);
    },
  );

  it(
    '1,000 webhooks with 10% duplicates and 5% concurrent duplicates over 3 processes: one order per payment',
    { timeout: 240_000 },
    async () => {
      const c = cluster!;
      const qrs: string[] = [];
      for (let i = 0; i < 5; i++)
        qrs.push((await createVendingMachine(c.url(i % 3), `MNC${suffix}${i}`)).qrCodeId);

      interface Payment {
        id: string;
        qr: string;
        eventId: string;
        answers: Reply[];
      }
      const unique: Payment[] = Array.from({ length: 850 }, (_, i) => ({
        id: newPaymentId(),
        qr: qrs[i % qrs.length]!,
        eventId: `evt_${randomBytes(7).toString('hex')}`,
        answers: [],
      }));
      // What Razorpay may send for one payment: the same delivery again, or the payment's other
      // event (payment.captured naming the QR) under an event id of its own.
      const delivery = (p: Payment, kind: 'same' | 'other') => {
        if (kind === 'same') return { event: qrCredited(p.qr, 2000, p.id), eventId: p.eventId };
        const captured = qrCredited(p.qr, 2000, p.id) as any;
        captured.event = 'payment.captured';
        captured.contains = ['payment'];
        captured.payload.payment.entity.notes = { qr_code_id: p.qr };
        delete captured.payload.qr_code;
        return { event: captured, eventId: `evt_${randomBytes(7).toString('hex')}` };
      };
      type Task = { kind: 'single'; p: Payment; dup?: 'same' | 'other' } | { kind: 'concurrent'; p: Payment };
      const tasks: Task[] = unique.map((p) => ({ kind: 'single', p }));
      // 50 payments delivered twice at the same moment, to two different processes.
      for (let i = 0; i < 50; i++) tasks[i * 17] = { kind: 'concurrent', p: unique[i * 17]! };
      // 100 later re-deliveries, each at least 40 tasks after the first delivery of its payment.
      for (let i = 0; i < 100; i++) {
        const p = unique[i * 8 + 3]!;
        tasks.splice(Math.min(tasks.length, i * 8 + 3 + 40 + i * 2), 0, {
          kind: 'single',
          p,
          dup: i % 3 === 0 ? 'other' : 'same',
        });
      }
      const deliveries = tasks.reduce((n, t) => n + (t.kind === 'concurrent' ? 2 : 1), 0);
      expect(deliveries).toBe(1_000);

      let k = 0;
      const startedAt = Date.now();
      await pool(tasks, 20, async (task) => {
        if (task.kind === 'single') {
          const d = delivery(task.p, task.dup ?? 'same');
          task.p.answers.push(await postWebhook(c.url(k++ % 3), d.event, { eventId: d.eventId }));
        } else {
          const d = delivery(task.p, 'same');
          const a = k++ % 3;
          const answers = await Promise.all([
            postWebhook(c.url(a), d.event, { eventId: d.eventId }),
            postWebhook(c.url((a + 1) % 3), d.event, { eventId: d.eventId }),
          ]);
          task.p.answers.push(...answers);
        }
      });
      const elapsed = Date.now() - startedAt;
      console.log(
        `[cluster] 1,000 webhook deliveries (850 payments) over 3 processes in ${elapsed} ms (${Math.round(1_000_000 / elapsed)}/s, 20 in flight)`,
      );

      const bad = unique.flatMap((p) =>
        p.answers
          .filter((a) => a.status !== 200)
          .map((a) => ({ payment: p.id, status: a.status, body: a.body })),
      );
      expect(bad, JSON.stringify(bad.slice(0, 5))).toEqual([]);
      for (const p of unique) {
        const orderIds = new Set(p.answers.map((a) => a.body?.orderId as string | undefined));
        expect(orderIds.size, `${p.id}: ${JSON.stringify(p.answers.map((a) => a.body))}`).toBe(1);
        expect([...orderIds][0]).toMatch(/^[0-9A-Z]{26}$/);
        // Exactly one delivery created the order; every other one says duplicate.
        expect(p.answers.filter((a) => a.body.duplicate !== true)).toHaveLength(1);
      }
      expect(unique.reduce((n, p) => n + p.answers.length, 0)).toBe(1_000);

      const ids = unique.map((p) => p.id);
      const [orders] = await c.query<{ n: number; payments: number }>(
        `select count(*)::int as n, count(distinct provider_payment_id)::int as payments from orders where provider_payment_id = any($1)`,
        [ids],
      );
      expect(orders).toEqual({ n: 850, payments: 850 });
      const [events] = await c.query<{ n: number }>(
        `select count(*)::int as n from payment_events where provider = 'razorpay' and provider_payment_id = any($1)`,
        [ids],
      );
      expect(events!.n).toBe(850);
      const [commands] = await c.query<{ n: number; orders: number }>(
        `select count(*)::int as n, count(distinct c.order_id)::int as orders from commands c join orders o on o.id = c.order_id where o.provider_payment_id = any($1)`,
        [ids],
      );
      expect(commands).toEqual({ n: 850, orders: 850 });
    },
  );

  it(
    'SIGTERM with machines connected: the process exits 0 after writing them OFFLINE and announcing it over Redis',
    { timeout: 240_000 },
    async () => {
      const c = cluster!;
      const victim = 2;
      const ms = await Promise.all([0, 1, 2].map((i) => createVendingMachine(c.url(0), `MND${suffix}${i}`)));
      const live = io(`${c.url(0)}/live`, {
        auth: { token: ADMIN_TOKEN },
        transports: ['websocket'],
        reconnection: false,
        forceNew: true,
      });
      sockets.push(live);
      const offline = new Set<string>();
      live.on('machine_status', (d: { machineId: string; socketConnected: boolean }) => {
        if (!d.socketConnected) offline.add(d.machineId);
      });
      await new Promise<void>((resolve, reject) => {
        live.once('connect', () => resolve());
        live.once('connect_error', reject);
      });
      for (const m of ms)
        expect(
          await live.timeout(10_000).emitWithAck('subscribe', { room: `machine:${m.id}` }),
        ).toMatchObject({ ok: true });
      for (const m of ms) {
        const s = io(`${c.url(victim)}/machines`, {
          auth: { machineId: m.id, key: m.key },
          transports: ['websocket'],
          reconnection: false,
          forceNew: true,
        });
        sockets.push(s);
        await new Promise<void>((resolve, reject) => {
          s.once('connect', () => resolve());
          s.once('connect_error', reject);
        });
      }
      for (const m of ms)
        await eventually(
          async () => (await http(c.url(0), 'GET', `/v1/machines/${m.id}`)).body?.socketConnected === true,
          10_000,
          `${m.id} connected`,
        );
      // A v1 machine (default namespace) on another process must not notice the shutdown.
      const bystander = await createVendingMachine(c.url(0), `MNE${suffix}`);
      const v1 = io(c.url(0), { transports: ['websocket'], reconnection: false, forceNew: true });
      sockets.push(v1);
      let v1Disconnects = 0;
      v1.on('disconnect', () => v1Disconnects++);
      expect(
        await v1
          .timeout(10_000)
          .emitWithAck('machine:connect', { machineId: bystander.id, token: bystander.key }),
      ).toMatchObject({ ok: true });

      const code = await c.nodes[victim]!.terminate();
      const output = c.nodes[victim]!.output();
      await c.restart(victim);
      expect(code, output.slice(-4_000)).toBe(0);
      expect(output).not.toMatch(/unhandled|Connection is closed|driver has already been destroyed/i);
      for (const m of ms) {
        const row = (await http(c.url(0), 'GET', `/v1/machines/${m.id}`)).body;
        expect(row).toMatchObject({ status: 'OFFLINE', socketConnected: false });
      }
      await eventually(
        () => ms.every((m) => offline.has(m.id)),
        10_000,
        'OFFLINE announced to /live on another process',
      );
      expect(v1Disconnects).toBe(0);
      expect(v1.connected).toBe(true);
      expect(
        await v1.timeout(5_000).emitWithAck('machine:heartbeat', { machineId: bystander.id, ts: Date.now() }),
      ).toMatchObject({ ok: true });
    },
  );
});
