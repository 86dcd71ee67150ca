// `npm run demo`: the whole pipeline in one process. The server (in-memory database unless
// DATABASE_URL is set), five simulated vending machines, a payment generator posting
// signed Razorpay `qr_code.credited` webhooks to the server's own /webhooks/razorpay (every
// order followed live on /live), and two simulated water kiosks serving PIN customers through
// the kiosk firmware API (water-demo.ts). DEMO_DURATION_MS makes it stop by itself (tests).
// DEMO_MQTT=1 puts the last machine on the MQTT transport (embedded broker unless MQTT_URL is set).
import { qrCreditedEvent } from '../providers/razorpay/razorpay.events.js';
import { randomBytes } from 'node:crypto';
import { startFleet, type Fleet } from '@kioskhub/machine-simulator';
import {
  LIVE_EVENTS,
  LIVE_NAMESPACE,
  type OrderCreatedEvent,
  type OrderStatusEvent,
} from '@kioskhub/protocol';
import { io, type Socket } from 'socket.io-client';
import { buildApp, type KioskhubApp } from '../app.js';
import { ConfigError, loadConfig, type Config } from '../platform/config.js';
import { AppError } from '../platform/errors.js';
import { buildUpiLink, formatRupees } from '../modules/machines/upi-link.js';
import { DEFAULT_TENANT } from '../modules/tenants/tenants.service.js';
import { signRazorpayBody } from '../providers/razorpay/razorpay.webhook.js';
import { prepareWaterDemo, startWaterKiosks, WATER_CUSTOMERS, WATER_KIOSKS } from './water-demo.js';

const MACHINE_IDS = ['DEMO01', 'DEMO02', 'DEMO03', 'DEMO04', 'DEMO05'];
const PRICE_PAISE = 2000;
const PAYMENT_EVERY_MS = 2000;
/** Every REDELIVER_EVERY-th delivery repeats the previous one, as Razorpay's at-least-once delivery may. */
const REDELIVER_EVERY = 3;
const DRAIN_MS = 6000;
const ACTOR = 'cli:demo';
const TERMINAL = new Set(['COMPLETED', 'FAILED', 'NEEDS_REVIEW', 'CANCELLED', 'REFUNDED']);

const clock = (): string => new Date().toTimeString().slice(0, 8);
const log = (line: string): void => console.log(`${clock()}  ${line}`);
const plural = (n: number, one: string, many: string): string => `${n} ${n === 1 ? one : many}`;

function demoEnv(env: NodeJS.ProcessEnv): {
  env: Record<string, string | undefined>;
  durationMs: number | undefined;
  mqtt: boolean;
} {
  const mqtt = env['DEMO_MQTT'] === '1' || env['DEMO_MQTT'] === 'true';
  const raw = env['DEMO_DURATION_MS']?.trim();
  if (raw && (!/^\d+$/.test(raw) || Number(raw) < 1000))
    throw new ConfigError(
      'DEMO_DURATION_MS',
      `must be a whole number of milliseconds, at least 1000, got "${raw}"`,
    );
  return {
    durationMs: raw ? Number(raw) : undefined,
    mqtt,
    env: {
      ...env,
      ...(mqtt && !env['MQTT_URL'] ? { MQTT_PORT: env['MQTT_PORT'] || '0' } : {}),
      DATABASE_URL: env['DATABASE_URL'] || 'memory://',
      RAZORPAY_WEBHOOK_SECRET:
        env['RAZORPAY_WEBHOOK_SECRET'] || `whsec_demo_${randomBytes(16).toString('hex')}`,
      // A token known to this run, so it can be printed even when the database already had one.
      ADMIN_TOKEN: env['ADMIN_TOKEN'] || `kh_demo_${randomBytes(18).toString('base64url')}`,
    },
  };
}

/** Creates (or re-keys) the demo machines and gives each a Razorpay-style QR profile. */
async function prepareMachines(
  kioskhub: KioskhubApp,
): Promise<{ machineId: string; key: string; qrCodeId: string }[]> {
  const { machines } = kioskhub.services;
  const prepared = [];
  for (const id of MACHINE_IDS) {
    let key: string;
    try {
      key = (await machines.create({ id, tenantId: DEFAULT_TENANT, name: `Demo ${id}` }, ACTOR)).key;
    } catch (err) {
      if (!(err instanceof AppError && err.code === 'CONFLICT')) throw err;
      key = (await machines.rotateKey(id, DEFAULT_TENANT, ACTOR)).key; // kept database: a fresh key for this run
    }
    const qrCodeId = `qr_demo_${id}`;
    // A QR the dashboard can draw, as Razorpay's image_content would be; its payee does not exist.
    const qrContent = buildUpiLink({
      vpa: 'kioskhub-demo@example',
      payeeName: 'Kioskhub demo (not payable)',
      amountPaise: PRICE_PAISE,
      reference: id,
      note: `Kioskhub demo ${id}`,
    });
    const profile = {
      provider: 'razorpay',
      qrCodeId,
      qrImageUrl: null,
      qrShortUrl: null,
      qrContent,
      fixedAmountPaise: PRICE_PAISE,
    };
    await machines.setPaymentProfile(id, DEFAULT_TENANT, profile, ACTOR);
    prepared.push({ machineId: id, key, qrCodeId });
  }
  return prepared;
}

/** A `qr_code.credited` event shaped like Razorpay's (PROVIDERS.md §1.2). */
function creditedEvent(qrCodeId: string, machineId: string, paymentId: string): string {
  return JSON.stringify(
    qrCreditedEvent({
      qrCodeId,
      amountPaise: PRICE_PAISE,
      paymentId,
      accountId: 'acc_DEMO0000000000',
      notes: { machine_id: machineId },
    }),
  );
}

function startPayments(url: string, secret: string, targets: { machineId: string; qrCodeId: string }[]) {
  let timer: NodeJS.Timeout | undefined;
  let sent = 0;
  let duplicates = 0;
  let previous: { raw: string; eventId: string; machineId: string; paymentId: string } | undefined;

  async function deliver(
    raw: string,
    eventId: string,
  ): Promise<{
    ok?: boolean;
    orderId?: string;
    duplicate?: boolean;
    ignored?: string;
    error?: { message?: string };
  }> {
    const res = await fetch(`${url}/webhooks/razorpay`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'x-razorpay-signature': signRazorpayBody(raw, secret),
        'x-razorpay-event-id': eventId,
      },
      body: raw,
    });
    return (await res.json()) as Awaited<ReturnType<typeof deliver>>;
  }

  async function tick(): Promise<void> {
    sent += 1;
    if (previous && sent % REDELIVER_EVERY === 0) {
      const answer = await deliver(previous.raw, previous.eventId);
      if (answer.duplicate) duplicates += 1;
      log(
        `${previous.machineId}  ↺ ${previous.paymentId} delivered again (same event id): ${answer.duplicate ? `de-duplicated, still order ${answer.orderId ?? '-'}` : `UNEXPECTED answer ${JSON.stringify(answer)}`}`,
      );
      return;
    }
    const target = targets[Math.floor(Math.random() * targets.length)]!;
    const paymentId = `pay_demo${randomBytes(7).toString('hex')}`;
    const eventId = `evt_demo${randomBytes(7).toString('hex')}`;
    const raw = creditedEvent(target.qrCodeId, target.machineId, paymentId);
    previous = { raw, eventId, machineId: target.machineId, paymentId };
    const answer = await deliver(raw, eventId);
    if (!answer.orderId)
      log(`${target.machineId}  webhook for ${paymentId} answered ${JSON.stringify(answer)}`);
  }

  const schedule = (delay: number): void => {
    timer = setTimeout(() => {
      tick()
        .catch((err: unknown) =>
          log(`payment generator: ${err instanceof Error ? err.message : String(err)}`),
        )
        .finally(() => {
          if (timer) schedule(PAYMENT_EVERY_MS - 300 + Math.floor(Math.random() * 600));
        });
    }, delay);
  };
  schedule(500);
  return {
    stop(): void {
      clearTimeout(timer);
      timer = undefined;
    },
    get duplicates() {
      return duplicates;
    },
  };
}

/** Follows tenant:default on /live and prints one line per order transition. */
async function followLive(url: string, token: string): Promise<Socket> {
  const socket = io(`${url}${LIVE_NAMESPACE}`, { auth: { token }, transports: ['websocket'] });
  socket.on(LIVE_EVENTS.orderCreated, (e: OrderCreatedEvent) => {
    log(
      `${e.machineId ?? '-'}  order ${e.orderId}  ${e.status === 'PAID' ? 'paid' : e.status} ₹${formatRupees(e.amount)}`,
    );
  });
  socket.on(LIVE_EVENTS.orderStatusUpdated, (e: OrderStatusEvent) => {
    const what =
      e.status === 'DISPATCHED'
        ? 'dispatched'
        : e.status === 'COMPLETED'
          ? 'completed ✓'
          : e.status === 'FAILED'
            ? `failed ✗ (${e.failureCode ?? 'no code'})`
            : e.status;
    log(`${e.machineId ?? '-'}  order ${e.orderId}  ${what}`);
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('connect_error', (err) => reject(new Error(`cannot follow /live: ${err.message}`)));
  });
  const ack = (await socket.timeout(5000).emitWithAck('subscribe', { room: `tenant:${DEFAULT_TENANT}` })) as {
    ok?: boolean;
  };
  if (!ack.ok) throw new Error(`cannot subscribe to tenant:${DEFAULT_TENANT}: ${JSON.stringify(ack)}`);
  return socket;
}

async function summarize(
  kioskhub: KioskhubApp,
  since: string,
  drainMs: number,
): Promise<{ paid: number; completed: number; failed: number; pending: number }> {
  const deadline = Date.now() + drainMs;
  for (;;) {
    const page = await kioskhub.services.orders.list({ tenantId: DEFAULT_TENANT, limit: 500 });
    const ours = page.items.filter(
      (o) => o.machineId !== null && MACHINE_IDS.includes(o.machineId) && o.createdAt >= since,
    );
    const count = (s: string) => ours.filter((o) => o.status === s).length;
    const pending = ours.filter((o) => !TERMINAL.has(o.status)).length;
    if (pending === 0 || Date.now() >= deadline)
      return { paid: ours.length, completed: count('COMPLETED'), failed: count('FAILED'), pending };
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function main(): Promise<number> {
  let config: Config;
  let durationMs: number | undefined;
  let mqtt = false;
  try {
    const prepared = demoEnv(process.env);
    durationMs = prepared.durationMs;
    mqtt = prepared.mqtt;
    config = loadConfig(prepared.env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    console.error(`demo: bad configuration: ${err.message}`);
    return 2;
  }
  const since = new Date().toISOString();
  const kioskhub = await buildApp(config, { quiet: !process.env['LOG_LEVEL'] });
  let url: string;
  try {
    url = await kioskhub.listen();
  } catch (err) {
    await kioskhub.close();
    const inUse = (err as NodeJS.ErrnoException).code === 'EADDRINUSE';
    console.error(
      inUse
        ? `demo: ${config.host}:${config.port} is already in use; run with PORT=<another port>`
        : `demo: cannot listen: ${(err as Error).message}`,
    );
    return 1;
  }

  // Filled in as each part starts; stop() takes down whatever is running.
  const running: {
    fleet?: Fleet;
    mqttFleet?: Fleet;
    live?: Socket;
    payments?: ReturnType<typeof startPayments>;
    water?: Awaited<ReturnType<typeof startWaterKiosks>>;
  } = {};
  let stopping: Promise<number> | undefined;
  const stop = (reason: 'done' | 'interrupted'): Promise<number> =>
    (stopping ??= (async () => {
      running.payments?.stop();
      if (reason === 'done') log('demo: no more payments; letting the machines finish');
      const water = await running.water?.stop();
      const s = await summarize(kioskhub, since, reason === 'done' ? DRAIN_MS : 0);
      console.log(
        `demo: ${s.paid} orders paid, ${s.completed} completed, ${s.failed} failed, ${s.pending} pending; ${plural(running.payments?.duplicates ?? 0, 'duplicate delivery', 'duplicate deliveries')} de-duplicated`,
      );
      if (water)
        console.log(
          `demo: water: ${plural(water.served, 'customer', 'customers')} served (${water.offlineServed} offline), ${water.refused} refused, ${water.litres.toFixed(1)} L; SD-card uploads ${water.uploaded.applied} applied, ${water.uploaded.duplicate} duplicate, ${water.uploaded.rejected} rejected; ${water.leftOnCards} left on the cards`,
        );
      running.live?.close();
      running.fleet?.stop();
      running.mqttFleet?.stop();
      await kioskhub.close();
      return 0;
    })());

  process.on('SIGINT', () => {
    if (stopping) process.exit(130); // a second Ctrl-C does not wait
    console.log('\ndemo: stopping');
    void stop('interrupted').then((code) => process.exit(code));
  });
  process.on('SIGTERM', () => void stop('interrupted').then((code) => process.exit(code)));

  const machines = await prepareMachines(kioskhub);
  if (stopping) return stopping;
  // With DEMO_MQTT the last machine speaks MQTT to the broker; the others Socket.IO.
  const mqttUrl = mqttDemoUrl(kioskhub, config, mqtt);
  const overMqtt = mqttUrl ? machines.slice(-1) : [];
  if (mqttUrl)
    running.mqttFleet = await startFleet({
      url,
      machines: overMqtt,
      transport: 'mqtt',
      mqttUrl,
      dispenseDelayMs: 1500,
      failureRate: 0.05,
      heartbeatMs: 5000,
      progress: null,
    });
  if (stopping) return stopping;
  running.fleet = await startFleet({
    url,
    machines: machines.slice(0, machines.length - overMqtt.length),
    dispenseDelayMs: 1500,
    failureRate: 0.05,
    heartbeatMs: 5000,
    progress: null,
  });
  if (stopping) return stopping;
  running.live = await followLive(url, config.adminToken!);
  if (stopping) return stopping;
  const waterKiosks = await prepareWaterDemo(kioskhub, url, config.adminToken!);
  if (stopping) return stopping;
  const storage =
    config.database.kind === 'sqlite-memory'
      ? 'in-memory database, nothing is kept'
      : config.database.kind === 'postgres'
        ? 'PostgreSQL'
        : `SQLite ${config.database.file}`;
  console.log(
    [
      '',
      'Kioskhub demo',
      `  dashboard ${url}/  (sign in with the admin token below)`,
      `  server    ${url}  (${storage}; API docs ${url}/docs)`,
      `  admin     ADMIN_TOKEN=${config.adminToken!}`,
      `            curl -H "Authorization: Bearer ${config.adminToken!}" ${url}/v1/orders`,
      `  machines  ${MACHINE_IDS.join(', ')}: simulated, 1.5 s per vend, 5% jam; ₹${formatRupees(PRICE_PAISE)} QR each`,
      ...(mqttUrl
        ? [
            `  mqtt      ${overMqtt.map((m) => m.machineId).join(', ')} over MQTT (${mqttUrl}), the others over Socket.IO`,
          ]
        : []),
      `  payments  a signed Razorpay qr_code.credited about every ${PAYMENT_EVERY_MS / 1000} s; one delivery in ${REDELIVER_EVERY} repeats the previous one (Razorpay delivers at least once)`,
      `  live      following ${LIVE_NAMESPACE} room tenant:${DEFAULT_TENANT}`,
      `  water     ${WATER_KIOSKS.map((k) => `${k.id} (${k.taps} taps)`).join(', ')}: simulated kiosks on the firmware API; a customer about every 1.5 s; ${WATER_KIOSKS[0]!.id} loses its modem after ${WATER_KIOSKS[0]!.offlineAfter} customers for 2 more`,
      `  customers ${WATER_CUSTOMERS.map((c) => `${c.phone} PIN ${c.pin}`).join(', ')}`,
      durationMs
        ? `Stops by itself after ${durationMs / 1000} s (DEMO_DURATION_MS), or on Ctrl-C.`
        : 'Ctrl-C stops everything.',
      '',
    ].join('\n'),
  );
  running.payments = startPayments(url, config.razorpay.webhookSecrets[0]!, machines);
  running.water = await startWaterKiosks(url, waterKiosks, log);
  if (durationMs) {
    await new Promise((r) => setTimeout(r, durationMs));
    return stop('done');
  }
  return new Promise<number>(() => undefined); // runs until a signal
}

/** The broker the demo's MQTT machine uses, when DEMO_MQTT is on. */
function mqttDemoUrl(kioskhub: KioskhubApp, config: Config, on: boolean): string | undefined {
  if (!on) return undefined;
  if (config.mqtt.url) return config.mqtt.url.replace(/\/\/[^@/]*@/, '//');
  const port = kioskhub.mqtt?.port();
  return port === undefined ? undefined : `mqtt://${config.host}:${port}`;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error('demo: failed:', err instanceof Error ? err.message : err);
    process.exit(1);
  },
);
