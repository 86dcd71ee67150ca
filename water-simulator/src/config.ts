// Settings of `npm run water-sim` from flags and the environment (flags win).
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';

export const USAGE = `Usage: npm run water-sim -- --kiosk W01 [options]

  --kiosk ID              the kiosk's machine id (kind water)       (WATER_KIOSK_ID)
  --key KEY               the kiosk's key                           (WATER_KIOSK_KEY)
  --cache-secret HEX      the kiosk's credential-cache secret       (WATER_KIOSK_CACHE_SECRET; without it: no offline service)
  --url URL               server base URL                           (KIOSKHUB_URL, default http://127.0.0.1:8080)
  --taps N                taps (dispensers) on this kiosk, 1..6     (default 4)
  --customers LIST        phone:pin,phone:pin,… who walk up         (WATER_SIM_CUSTOMERS)
  --every-ms N            a customer arrives every N ms             (default 4000)
  --count N               stop after N customers; 0 runs until Ctrl-C (default 0)
  --volumes-ml LIST       volumes a customer asks for               (default 1000,5000,10000,20000)
  --flow-ml-per-s N       how fast a tap pours                      (default 200)
  --offline-after N       the modem drops after N customers         (default 0: never)
  --offline-for N         … and comes back after N more customers   (default 3)
  --heartbeat-ms N        heartbeat interval                        (default 120000)
  --sd-card FILE          the SD-card log (JSONL)                   (default data/water-sim/<kiosk>.jsonl;
                                                                    relative paths start where npm was run)
  --firmware VERSION      firmware version in heartbeats            (default kioskhub-water-sim/1.0.0)
  --transport T           http, or mqtt: presence and heartbeats over MQTT, the rest stays HTTP
                                                                    (WATER_SIM_TRANSPORT, default http)
  --mqtt-url URL          MQTT broker for --transport mqtt          (MQTT_URL, default mqtt://127.0.0.1:1883)
  --help                  show this text

Keys while it runs: o = modem off/on (offline mode), h = heartbeat now, q = quit.`;

/** A mistake in the command line; `showUsage`: an unknown option, answered with the whole usage. */
export class UsageError extends Error {
  constructor(
    message: string,
    readonly showUsage = false,
  ) {
    super(message);
  }
}

export interface WaterSimConfig {
  url: string;
  kioskId: string;
  key: string;
  cacheSecret: string | null;
  taps: number;
  customers: { phone: string; pin: string }[];
  everyMs: number;
  count: number;
  volumesMl: number[];
  flowMlPerSecond: number;
  offlineAfter: number;
  offlineFor: number;
  heartbeatMs: number;
  sdCardPath: string;
  firmware: string;
  /** Set with `--transport mqtt`: the broker the kiosk keeps its MQTT link to. */
  mqttUrl: string | null;
}

function whole(name: string, raw: string | undefined, fallback: number, min: number, max: number): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max)
    throw new UsageError(`--${name} must be a whole number ${min}..${max} (got "${raw}")`);
  return n;
}

export function parseCustomers(raw: string): { phone: string; pin: string }[] {
  return raw
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((entry) => {
      const m = /^(\+?\d{6,15}):(\d{4})$/.exec(entry);
      if (!m)
        throw new UsageError(`--customers wants phone:pin pairs like +254712345678:1234 (got "${entry}")`);
      return { phone: m[1]!, pin: m[2]! };
    });
}

/** Null: `--help` was asked for. */
export function loadWaterSimConfig(argv: string[], env: NodeJS.ProcessEnv): WaterSimConfig | null {
  let values;
  try {
    values = parseArgs({
      args: argv,
      options: {
        kiosk: { type: 'string' },
        key: { type: 'string' },
        'cache-secret': { type: 'string' },
        url: { type: 'string' },
        taps: { type: 'string' },
        customers: { type: 'string' },
        'every-ms': { type: 'string' },
        count: { type: 'string' },
        'volumes-ml': { type: 'string' },
        'flow-ml-per-s': { type: 'string' },
        'offline-after': { type: 'string' },
        'offline-for': { type: 'string' },
        'heartbeat-ms': { type: 'string' },
        'sd-card': { type: 'string' },
        firmware: { type: 'string' },
        transport: { type: 'string' },
        'mqtt-url': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }).values;
  } catch (err) {
    const { code, message } = err as NodeJS.ErrnoException;
    if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
      const option = /'([^']+)'/.exec(message)?.[1];
      throw new UsageError(option ? `unknown option ${option}` : message, true);
    }
    throw new UsageError(message);
  }
  if (values.help) return null;
  const kioskId = values.kiosk ?? env['WATER_KIOSK_ID'];
  if (!kioskId) throw new UsageError('--kiosk is required (the kiosk machine id, e.g. W01)');
  const key = values.key ?? env['WATER_KIOSK_KEY'];
  if (!key) throw new UsageError('--key is required (the kiosk key returned when the machine was created)');
  const cacheSecret = values['cache-secret'] ?? env['WATER_KIOSK_CACHE_SECRET'] ?? null;
  if (cacheSecret !== null && !/^[0-9a-f]{64}$/i.test(cacheSecret))
    throw new UsageError(
      '--cache-secret must be 64 hex digits (the secret given when the kiosk was provisioned)',
    );
  const rawUrl = values.url ?? env['KIOSKHUB_URL'] ?? 'http://127.0.0.1:8080';
  let url: string;
  try {
    url = new URL(rawUrl).origin;
  } catch {
    throw new UsageError(`--url must be a URL like http://127.0.0.1:8080 (got "${rawUrl}")`);
  }
  const customers = parseCustomers(values.customers ?? env['WATER_SIM_CUSTOMERS'] ?? '');
  if (customers.length === 0)
    throw new UsageError('--customers is required: phone:pin,… of registered customers');
  const transport = values.transport ?? env['WATER_SIM_TRANSPORT'] ?? 'http';
  if (transport !== 'http' && transport !== 'mqtt')
    throw new UsageError(`--transport must be http or mqtt (got "${transport}")`);
  const mqttUrl = values['mqtt-url'] ?? env['MQTT_URL'] ?? 'mqtt://127.0.0.1:1883';
  if (transport === 'mqtt' && !/^(mqtts?|tcp|ssl|tls|wss?):\/\/./.test(mqttUrl))
    throw new UsageError(`--mqtt-url must be a broker URL like mqtt://127.0.0.1:1883 (got "${mqttUrl}")`);
  const volumesMl = (values['volumes-ml'] ?? '1000,5000,10000,20000')
    .split(',')
    .map((v) => whole('volumes-ml', v.trim(), 0, 1, 100_000));
  return {
    url,
    kioskId,
    key,
    cacheSecret,
    taps: whole('taps', values.taps, 4, 1, 6),
    customers,
    everyMs: whole('every-ms', values['every-ms'], 4000, 10, 3_600_000),
    count: whole('count', values.count, 0, 0, 1_000_000),
    volumesMl,
    flowMlPerSecond: whole('flow-ml-per-s', values['flow-ml-per-s'], 200, 1, 100_000),
    offlineAfter: whole('offline-after', values['offline-after'], 0, 0, 1_000_000),
    offlineFor: whole('offline-for', values['offline-for'], 3, 1, 1_000_000),
    heartbeatMs: whole('heartbeat-ms', values['heartbeat-ms'], 120_000, 0, 86_400_000),
    // npm runs the script in the repository root; a relative path means the user's directory.
    sdCardPath: resolve(
      env['INIT_CWD'] || process.cwd(),
      values['sd-card'] ?? `data/water-sim/${kioskId}.jsonl`,
    ),
    firmware: values.firmware ?? 'kioskhub-water-sim/1.0.0',
    mqttUrl: transport === 'mqtt' ? mqttUrl : null,
  };
}
