// CLI: `npm run water-sim -- --kiosk W01 --key … --customers …` runs one simulated water kiosk
// against a Kioskhub server until Ctrl-C (or --count customers); `o` toggles the modem.
import { printKioskActivity, startCustomerStream } from './customer-stream.js';
import { loadWaterSimConfig, USAGE, UsageError, type WaterSimConfig } from './config.js';
import { WaterKiosk } from './water-kiosk.js';

const clock = (): string => new Date().toTimeString().slice(0, 8);
const log = (line: string): void => console.log(`${clock()}  ${line}`);

async function main(): Promise<number> {
  let config: WaterSimConfig | null;
  try {
    config = loadWaterSimConfig(process.argv.slice(2), process.env);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    console.error(
      err.showUsage
        ? `water-sim: ${err.message}\n\n${USAGE}`
        : `water-sim: ${err.message}\n(npm run water-sim -- --help shows the usage)`,
    );
    return 2;
  }
  if (!config) {
    console.log(USAGE);
    return 0;
  }
  const kiosk = new WaterKiosk({
    url: config.url,
    kioskId: config.kioskId,
    key: config.key,
    cacheSecret: config.cacheSecret,
    taps: config.taps,
    firmware: config.firmware,
    heartbeatMs: config.heartbeatMs,
    sdCardPath: config.sdCardPath,
    flowMlPerSecond: config.flowMlPerSecond,
    ...(config.mqttUrl ? { mqtt: { url: config.mqttUrl } } : {}),
  });
  printKioskActivity(kiosk, log);
  kiosk.on('heartbeat', (h) => {
    if (h.ok)
      log(
        `${config.kioskId}  heartbeat sent (${kiosk.taps.map((t) => `tap ${t.tap} ${t.status}`).join(', ')})`,
      );
  });
  log(
    `water-sim: kiosk ${config.kioskId}, ${config.taps} taps → ${config.url}` +
      `${config.mqttUrl ? ` (heartbeats over MQTT: ${config.mqttUrl})` : ''}; SD card ${config.sdCardPath}`,
  );
  const backlog = kiosk.sd.entries().length;
  if (backlog > 0)
    log(`${config.kioskId}  ${backlog} dispenses on the SD card from an earlier run: uploading`);
  await kiosk.start(); // its first heartbeat uploads what is on the card
  const stream = startCustomerStream(
    kiosk,
    {
      customers: config.customers,
      everyMs: config.everyMs,
      volumesMl: config.volumesMl,
      walkAwayRate: 0.1,
      offlineAfter: config.offlineAfter,
      offlineFor: config.offlineFor,
      count: config.count,
    },
    (err) => log(`${config.kioskId}  ${err.message}`),
  );

  let stopping: Promise<number> | undefined;
  const stop = (): Promise<number> =>
    (stopping ??= (async () => {
      await stream.stop();
      kiosk.stop();
      if (!kiosk.offline && kiosk.sd.entries().length > 0) await kiosk.uploadBacklog().catch(() => undefined);
      const s = stream.stats;
      const left = kiosk.sd.entries().length;
      console.log(
        `water-sim: ${s.served} served (${s.offlineServed} offline), ${s.refused} refused, ${s.litres.toFixed(1)} L; ${left} dispenses left on the SD card${left ? ' (uploaded at the next start)' : ''}`,
      );
      return 0;
    })());

  if (process.stdin.isTTY) {
    process.stdin.setRawMode(true);
    process.stdin.setEncoding('utf8');
    process.stdin.on('data', (key: string) => {
      if (key === 'q' || key === '\u0003') void stop().then((c) => process.exit(c));
      else if (key === 'o') {
        if (kiosk.offline) void kiosk.goOnline().catch((err: Error) => log(err.message));
        else kiosk.goOffline();
      } else if (key === 'h') void kiosk.heartbeat();
    });
    log(`water-sim: keys: o = modem off/on, h = heartbeat, q = quit`);
  }
  process.on('SIGINT', () => void stop().then((c) => process.exit(c)));
  process.on('SIGTERM', () => void stop().then((c) => process.exit(c)));
  if (config.count > 0) {
    await stream.finished;
    if (kiosk.offline) await kiosk.goOnline().catch((err: Error) => log(err.message));
    return stop();
  }
  return new Promise<number>(() => undefined);
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error('water-sim: failed:', err instanceof Error ? err.message : err);
    process.exit(1);
  },
);
