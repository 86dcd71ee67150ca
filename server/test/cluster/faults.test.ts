// Storage and fan-out faults under load, against real server processes:
// - PostgreSQL restarts while webhooks are being posted: the outage is answered with 503
//   (never a 500, never a wrong answer), the process recovers by itself, and re-posting every
//   payment that did not get a 2xx makes exactly one order per payment.
// - Redis stops and starts: each process keeps serving the machines connected to it, and
//   cross-process dispatch and live fan-out work again once Redis is back.
//
// By default PostgreSQL and Redis are private, throw-away instances on their own ports (so a
// restart disturbs no other test running on this machine at the same time). With
// KIOSKHUB_FAULTS_SHARED=1 the machine's shared ones from TEST_DATABASE_URL / TEST_REDIS_URL
// are restarted instead, with pg_ctlcluster and redis-cli shutdown as CI starts them.
import { randomBytes } from 'node:crypto';
import { SimulatedMachine } from '@kioskhub/machine-simulator';
import { io, type Socket } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ADMIN_TOKEN,
  START_TIMEOUT_MS,
  createVendingMachine,
  eventually,
  http,
  newPaymentId,
  orderStatus,
  postWebhook,
  qrCredited,
  sharedPostgres,
  sharedRedis,
  sharedServices,
  startCluster,
  startPrivatePostgres,
  startPrivateRedis,
  type Cluster,
  type Reply,
  type ServiceController,
} from './helpers.js';

const services = sharedServices('the PostgreSQL/Redis fault tests (server/test/cluster/faults.test.ts)');
const shared = process.env['KIOSKHUB_FAULTS_SHARED'] === '1';
const suffix = randomBytes(3).toString('hex');

describe.skipIf(!services)('faults: PostgreSQL restart and Redis outage under load', () => {
  let postgres: ServiceController | undefined;
  let redis: ServiceController | undefined;
  let cluster: Cluster | undefined;
  const machines: SimulatedMachine[] = [];
  const sockets: Socket[] = [];

  beforeAll(
    async () => {
      postgres = shared ? sharedPostgres(services!.databaseUrl) : await startPrivatePostgres();
      redis = shared ? sharedRedis(services!.redisUrl) : await startPrivateRedis();
      if (!postgres || !redis) return;
      const startedAt = Date.now();
      // A long heartbeat timeout: machines here heartbeat rarely on purpose (see the Redis test).
      cluster = await startCluster({
        nodes: 2,
        databaseUrl: postgres.url,
        redisUrl: redis.url,
        env: { MACHINE_HEARTBEAT_TIMEOUT_MS: '300000' },
      });
      console.log(
        `[faults] 2 processes ready in ${Date.now() - startedAt} ms (${shared ? 'shared' : 'private'} PostgreSQL and Redis)`,
      );
    },
    2 * START_TIMEOUT_MS + 60_000,
  );

  afterAll(async () => {
    for (const m of machines) m.stop();
    for (const s of sockets) s.disconnect();
    // Stopped servers are always started again (the shared ones) or removed (private ones).
    await redis?.start().catch(() => undefined);
    await postgres?.start().catch(() => undefined);
    await cluster?.stop();
    await redis?.destroy();
    await postgres?.destroy();
  }, 120_000);

  it(
    'PostgreSQL restart mid-load: 503 during the outage, recovery by itself, one order per payment',
    { timeout: 240_000 },
    async (ctx) => {
      if (!cluster) return ctx.skip();
      const c = cluster;
      const A = c.url(0);
      const m = await createVendingMachine(A, `FPG${suffix}`);
      const simLog: string[] = [];
      const machine = new SimulatedMachine({
        url: A,
        machineId: m.id,
        key: m.key,
        dispenseDelayMs: 20,
        heartbeatMs: 1_000,
        logger: (l) => simLog.push(`${Date.now()} ${l}`),
      });
      machines.push(machine);
      await machine.start();

      interface Attempt {
        paymentId: string;
        event: unknown;
        reply: Reply & { error?: string };
        sentAt: number;
        answeredAt: number;
      }
      const attempts: Attempt[] = [];
      let loading = true;
      const worker = async () => {
        while (loading) {
          const paymentId = newPaymentId();
          const event = qrCredited(m.qrCodeId, 2000, paymentId);
          const sentAt = Date.now();
          const reply = await postWebhook(A, event, { eventId: `evt_${paymentId}`, timeoutMs: 30_000 });
          attempts.push({ paymentId, event, reply, sentAt, answeredAt: Date.now() });
        }
      };
      const workers = Array.from({ length: 6 }, () => worker());
      try {
        await eventually(() => attempts.length >= 30, 60_000, 'load to build up');
        const restartAt = Date.now();
        await postgres!.restart();
        const backAt = Date.now();
        // Keep the load on while the pool finds its feet again.
        await eventually(
          async () => (await http(A, 'GET', '/readyz', { token: null })).status === 200,
          60_000,
          'A /readyz 200 after the restart',
          100,
        );
        const readyAt = Date.now();
        await eventually(
          () => attempts.filter((a) => a.sentAt > readyAt && a.reply.status === 200).length >= 30,
          60_000,
          'webhooks to succeed again',
        );
        loading = false;
        await Promise.all(workers);

        const unavailable = attempts.filter((a) => a.reply.status === 503);
        const firstFail = Math.min(...unavailable.map((a) => a.answeredAt));
        const lastFail = Math.max(...unavailable.map((a) => a.answeredAt));
        console.log(
          `[faults] PostgreSQL restart took ${backAt - restartAt} ms (restart command until it answers); A ready again ${readyAt - restartAt} ms after the restart began; ` +
            `${attempts.length} webhooks posted, ${unavailable.length} answered 503` +
            (unavailable.length
              ? ` between +${firstFail - restartAt} ms and +${lastFail - restartAt} ms`
              : '') +
            `, others: ${JSON.stringify(attempts.reduce<Record<number, number>>((acc, a) => ({ ...acc, [a.reply.status]: (acc[a.reply.status] ?? 0) + 1 }), {}))}`,
        );

        // Never a 500, never a network error, never a wrong answer.
        const wrong = attempts.filter((a) => {
          if (a.reply.status === 503)
            return (
              a.reply.body?.error?.code !== 'UNAVAILABLE' || typeof a.reply.body?.error?.message !== 'string'
            );
          if (a.reply.status === 200)
            return (
              a.reply.body?.ok !== true ||
              typeof a.reply.body?.orderId !== 'string' ||
              a.reply.body?.ignored !== undefined
            );
          return true;
        });
        expect(
          wrong
            .map((a) => ({ status: a.reply.status, body: a.reply.body, error: a.reply.error }))
            .slice(0, 5),
        ).toEqual([]);
        expect(c.nodes.every((n) => n.alive)).toBe(true);
        await eventually(
          async () => (await http(c.url(1), 'GET', '/readyz', { token: null })).status === 200,
          60_000,
          'B /readyz 200',
        );

        // Razorpay retries everything without a 2xx: now each retry gets one (a new order, or the
        // one the first attempt committed before its answer was lost).
        const firstAnswer = new Map<string, string>();
        for (const a of attempts)
          if (a.reply.status === 200) firstAnswer.set(a.paymentId, a.reply.body.orderId as string);
        for (const a of attempts.filter((x) => x.reply.status !== 200)) {
          const retry = await postWebhook(A, a.event, { eventId: `evt_${a.paymentId}` });
          expect(retry.status, JSON.stringify(retry.body)).toBe(200);
          expect(typeof retry.body.orderId).toBe('string');
          firstAnswer.set(a.paymentId, retry.body.orderId as string);
        }
        const ids = attempts.map((a) => a.paymentId);
        const rows = await c.query<{ id: string; provider_payment_id: string }>(
          `select id, provider_payment_id from orders where provider_payment_id = any($1)`,
          [ids],
        );
        expect(rows).toHaveLength(ids.length);
        expect(new Set(rows.map((r) => r.provider_payment_id)).size).toBe(ids.length);
        for (const r of rows) expect(firstAnswer.get(r.provider_payment_id)).toBe(r.id);

        // Every paid order reaches the machine once.
        const orderIds = rows.map((r) => r.id);
        await eventually(
          async () => {
            const done = await c.query<{ n: number }>(
              `select count(*)::int as n from orders where id = any($1) and status = 'COMPLETED'`,
              [orderIds],
            );
            return done[0]!.n === orderIds.length;
          },
          60_000,
          'every order to be COMPLETED',
          250,
        ).catch(async (err: unknown) => {
          const stuck = await c.query(
            `select o.id, o.status, c.id as command_id, c.status as command_status, c.attempts, c.sent_at, c.accepted_at from orders o join commands c on c.order_id = o.id where o.id = any($1) and o.status <> 'COMPLETED'`,
            [orderIds],
          );
          console.log(
            '[faults] stuck:',
            JSON.stringify(stuck, null, 1),
            '\nsimulator:',
            simLog
              .filter((l) =>
                stuck.some((r) => l.includes(String(r['command_id'])) || l.includes(String(r['id']))),
              )
              .join('\n'),
            '\n',
            simLog.slice(-30).join('\n'),
            c.nodes[0]!.output().slice(-5000),
          );
          throw err;
        });
        const dispensed = machine.dispensed.map((d) => d.orderId);
        expect(dispensed.slice().sort()).toEqual(orderIds.slice().sort());
        const log = c.nodes[0]!.output();
        const count = (msg: string) => log.split('\n').filter((l) => l.includes(msg)).length;
        console.log(
          `[faults] machine results not recorded during the outage: ${count('"machine:done failed"')}, acks not recorded: ${count('"could not record the ack"')}; all ${orderIds.length} orders dispensed once`,
        );
      } finally {
        loading = false;
        await Promise.all(workers);
      }
    },
  );

  it(
    'Redis stop/start: each process keeps serving its machines; cross-process dispatch works again afterwards',
    { timeout: 240_000 },
    async (ctx) => {
      if (!cluster) return ctx.skip();
      const c = cluster;
      const [A, B] = [c.url(0), c.url(1)];
      const onA = await createVendingMachine(A, `FRA${suffix}`);
      const onB = await createVendingMachine(A, `FRB${suffix}`);
      const onB2 = await createVendingMachine(A, `FRD${suffix}`);
      // simB heartbeats rarely: a payment posted to A reaches it through A's notice over Redis,
      // not through its own heartbeat. simB2 heartbeats every second, as field machines do.
      const simA = new SimulatedMachine({
        url: A,
        machineId: onA.id,
        key: onA.key,
        dispenseDelayMs: 20,
        heartbeatMs: 1_000,
      });
      const simB = new SimulatedMachine({
        url: B,
        machineId: onB.id,
        key: onB.key,
        dispenseDelayMs: 20,
        heartbeatMs: 120_000,
      });
      const simB2 = new SimulatedMachine({
        url: B,
        machineId: onB2.id,
        key: onB2.key,
        dispenseDelayMs: 20,
        heartbeatMs: 1_000,
      });
      machines.push(simA, simB, simB2);
      await Promise.all([simA.start(), simB.start(), simB2.start()]);

      const before = await postWebhook(A, qrCredited(onB.qrCodeId, 2000));
      expect(before.status).toBe(200);
      await eventually(
        async () => (await orderStatus(A, before.body.orderId as string)) === 'COMPLETED',
        30_000,
        'cross-process dispatch before the outage',
      );

      let redisDown = true;
      await redis!.stop();
      const stoppedAt = Date.now();
      try {
        // The process keeps serving: webhooks, the API (rate limits fall back to serving), and
        // dispatch to a machine connected to the same process.
        const paid = await postWebhook(A, qrCredited(onA.qrCodeId, 2000), { timeoutMs: 15_000 });
        expect(paid.status, JSON.stringify(paid.body ?? paid.error)).toBe(200);
        const local = paid.body.orderId as string;
        await eventually(
          async () =>
            (await http(A, 'GET', `/v1/orders/${local}`, { timeoutMs: 5_000 })).body?.status === 'COMPLETED',
          30_000,
          'a local dispense while Redis is down',
        );
        expect(simA.dispensed.filter((d) => d.orderId === local)).toHaveLength(1);
        expect((await http(B, 'GET', '/v1/machines', { timeoutMs: 5_000 })).status).toBe(200);
        // A payment for a machine on B, posted to A while Redis is down, is not lost: A's notice
        // cannot reach B (Redis pub/sub keeps nothing), but the command is a row and goes out at
        // the machine's next IDLE heartbeat.
        const remote = await postWebhook(A, qrCredited(onB2.qrCodeId, 2000), { timeoutMs: 15_000 });
        expect(remote.status).toBe(200);
        const remoteOrder = remote.body.orderId as string;
        await eventually(
          async () => (await orderStatus(A, remoteOrder)) === 'COMPLETED',
          30_000,
          'a cross-process payment during the outage to be dispensed',
        );
        expect(simB2.dispensed.filter((d) => d.orderId === remoteOrder)).toHaveLength(1);
        expect(c.nodes.every((n) => n.alive)).toBe(true);
        // Long enough for the Redis clients' reconnect backoff to grow.
        while (Date.now() - stoppedAt < 4_000) await new Promise((r) => setTimeout(r, 100));
        console.log(
          `[faults] Redis down for ${Date.now() - stoppedAt} ms: local dispatch, webhooks, the API and heartbeat-driven dispatch kept working`,
        );

        await redis!.start();
        redisDown = false;
      } finally {
        if (redisDown) await redis!.start();
      }

      // After Redis is back: live fan-out across processes (a machine_status published by A is
      // seen by a /live client on B) and cross-process dispatch (a payment on A, a machine on B).
      const live = io(`${B}/live`, {
        auth: { token: ADMIN_TOKEN },
        transports: ['websocket'],
        reconnection: false,
        forceNew: true,
      });
      sockets.push(live);
      const seen: any[] = [];
      live.on('machine_status', (data: unknown) => seen.push(data));
      await new Promise<void>((resolve, reject) => {
        live.once('connect', () => resolve());
        live.once('connect_error', reject);
      });
      const third = await createVendingMachine(A, `FRC${suffix}`);
      expect(
        await live.timeout(10_000).emitWithAck('subscribe', { room: `machine:${third.id}` }),
      ).toMatchObject({ ok: true });
      await eventually(
        async () => {
          // The adapter resubscribes after a reconnect; until then a connect may go unseen.
          const sim = new SimulatedMachine({
            url: A,
            machineId: third.id,
            key: third.key,
            heartbeatMs: 60_000,
          });
          machines.push(sim);
          await sim.start();
          const ok = await eventually(
            () => seen.some((s) => s.machineId === third.id && s.socketConnected === true),
            3_000,
            'machine_status on B',
          ).then(
            () => true,
            () => false,
          );
          if (!ok) sim.stop();
          return ok;
        },
        60_000,
        'a machine_status from A to reach a /live client on B',
        500,
      );
      const after = await postWebhook(A, qrCredited(onB.qrCodeId, 2000));
      expect(after.status).toBe(200);
      await eventually(
        async () => (await orderStatus(A, after.body.orderId as string)) === 'COMPLETED',
        30_000,
        'cross-process dispatch after the outage',
      );
      expect(simB.dispensed.map((d) => d.orderId)).toEqual([before.body.orderId, after.body.orderId]);
      expect(c.nodes.every((n) => n.alive)).toBe(true);
    },
  );
});
