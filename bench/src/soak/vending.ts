// Vending: signed Razorpay `qr_code.credited` webhooks for six machines on the v2 gateway (the
// simulator, dropping its connection now and then, and one machine's network cut every few
// seconds on top), one delivery in ten repeated later as
// Razorpay does. Exactly once: every acknowledged payment is one payment row and one order,
// every paid order dispensed once (or waiting in review), never twice.
import { SimulatedMachine } from '@kioskhub/machine-simulator';
import { AMOUNT_PAISE, WEBHOOK_SECRET, createMachines, type MachineCredentials } from '../lib/kioskhub.js';
import { signedDelivery } from '../lib/webhook-body.js';
import { sleep } from '../lib/wait.js';
import { call } from './client.js';
import { loop, type AuditLine, type Flow } from './flow.js';

export function vendingFlow(options: { machines: number; gapMs: number; dropEveryMs: number }): Flow {
  let creds: MachineCredentials[] = [];
  const fleet: SimulatedMachine[] = [];
  const acked = new Map<string, string>(); // payment id → order id
  let duplicatesSent = 0;
  let duplicateAnswersDiffering = 0;
  const repeats: Promise<void>[] = [];
  let drops = 0;
  let away = 0;

  const deliver = async (url: string, d: ReturnType<typeof signedDelivery>) =>
    call(url, 'POST', '/webhooks/razorpay', null, undefined, { raw: d.body, headers: d.headers });

  return {
    name: 'vending webhooks',
    async setup(ctx) {
      creds = await createMachines(ctx.url, options.machines, { prefix: 'SV' });
      for (const c of creds) {
        const m = new SimulatedMachine({
          url: ctx.url,
          machineId: c.machineId,
          key: c.key,
          heartbeatMs: 2_000,
          dispenseDelayMs: 150,
          disconnectRate: 0.03,
          autoReconnect: true,
          logger: () => {},
        });
        fleet.push(m);
        await m.start();
      }
    },
    async run(ctx) {
      // Besides the simulator's own random losses: one machine's network drops every few
      // seconds, in the middle of whatever it was doing (a dispense, an ack, a result).
      const churn = loop(ctx, options.dropEveryMs, async () => {
        const m = fleet[Math.floor(Math.random() * fleet.length)]!;
        if (!m.connected) return;
        drops++;
        m.disconnectNow();
      });
      await loop(ctx, options.gapMs, async () => {
        const c = creds[Math.floor(Math.random() * creds.length)]!;
        const d = signedDelivery(c.qrCodeId, AMOUNT_PAISE, WEBHOOK_SECRET);
        const res = await deliver(ctx.url, d);
        if (res.status !== 200 || !res.body?.orderId) {
          ctx.log(`vending: webhook answered ${res.status} ${JSON.stringify(res.body).slice(0, 200)}`);
          return;
        }
        acked.set(d.paymentId, String(res.body.orderId));
        if (Math.random() < 0.1) {
          duplicatesSent++;
          repeats.push(
            sleep(Math.random() * 3_000).then(async () => {
              const again = await deliver(ctx.url, d);
              if (again.status !== 200 || (again.body?.orderId && again.body.orderId !== res.body.orderId))
                duplicateAnswersDiffering++;
            }),
          );
        }
      });
      await churn;
    },
    count: () => acked.size,
    async drain() {
      await Promise.all(repeats);
      // Paid orders still on their way to a machine (it may be reconnecting): give them time.
      const dispensedOrders = () => new Set(fleet.flatMap((m) => m.dispensed.map((d) => d.orderId)));
      for (let i = 0; i < 60 && dispensedOrders().size < acked.size; i++) await sleep(1_000);
      for (let i = 0; i < 30 && fleet.some((m) => !m.connected); i++) await sleep(1_000);
      away = fleet.filter((m) => !m.connected).length;
    },
    async audit(db) {
      const lines: AuditLine[] = [];
      const payments = await db
        .selectFrom('payments')
        .select(['provider_payment_id', 'order_id', 'status'])
        .where('provider', '=', 'razorpay')
        .execute();
      const byProviderId = new Map<string, number>();
      for (const p of payments)
        byProviderId.set(
          String(p.provider_payment_id),
          (byProviderId.get(String(p.provider_payment_id)) ?? 0) + 1,
        );
      const missing = [...acked.keys()].filter((id) => !byProviderId.has(id));
      const twice = [...byProviderId.entries()].filter(([, n]) => n > 1);
      lines.push({
        check: 'vending: every acknowledged webhook is one payment',
        ok: missing.length === 0 && twice.length === 0,
        detail: `${acked.size} acknowledged, ${payments.length} payment rows, ${missing.length} missing, ${twice.length} counted twice; ${duplicatesSent} repeated deliveries, ${duplicateAnswersDiffering} answered differently`,
      });
      const orders = await db
        .selectFrom('orders')
        .select(['id', 'status'])
        .where('source', '=', 'upi_qr')
        .execute();
      const dispenses = new Map<string, number>();
      for (const m of fleet)
        for (const d of m.dispensed) dispenses.set(d.orderId, (dispenses.get(d.orderId) ?? 0) + 1);
      const dispensedTwice = [...dispenses.values()].filter((n) => n > 1).length;
      const stranded = orders.filter(
        (o) => !dispenses.has(o.id) && !['NEEDS_REVIEW', 'FAILED', 'REFUNDED'].includes(o.status),
      );
      lines.push({
        check: 'vending: every paid order dispensed once or in review',
        ok: dispensedTwice === 0 && stranded.length === 0 && orders.length === acked.size,
        detail: `${orders.length} orders, ${dispenses.size} dispensed, ${dispensedTwice} twice, ${orders.filter((o) => o.status === 'NEEDS_REVIEW').length} in review, ${stranded.length} stranded${
          stranded.length
            ? ` (${stranded
                .slice(0, 3)
                .map((o) => `${o.id}:${o.status}`)
                .join(', ')})`
            : ''
        }`,
      });
      lines.push({
        check: 'vending: machines whose network dropped came back',
        ok: away === 0,
        detail: `${drops} forced drops (besides the simulator's random ones), ${away} of ${fleet.length} machines still away at the end`,
      });
      return lines;
    },
    async close() {
      for (const m of fleet) m.stop();
    },
  };
}
