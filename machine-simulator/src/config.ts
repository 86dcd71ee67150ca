// Simulator settings from machine-simulator/.env, the environment and command-line flags.
import { existsSync, readFileSync } from 'node:fs';

export interface SimulatorConfig {
  url: string;
  machines: { machineId: string; key: string }[];
  heartbeatMs: number;
  dispenseDelayMs: number;
  failureRate: number;
  disconnectRate: number;
  transport: 'socketio' | 'mqtt';
  /** Broker URL for --transport mqtt. */
  mqttUrl?: string;
}

/** A bad setting; the message names the variable or flag. */
export class ConfigError extends Error {}

/** A flag the simulator does not know: answered with the whole usage. */
export class UnknownArgumentError extends ConfigError {}

export const USAGE = `Usage: npm run simulator -- [--machines M01,M02] [options]
       (inside machine-simulator/: npx tsx src/main.ts [--machines M01,M02] [options])

Runs simulated vending machines against a Kioskhub server until Ctrl-C. Flags override
environment variables, which override machine-simulator/.env (KEY=VALUE lines).

  --machines IDS            comma-separated machine ids (default: every machine in MACHINE_KEYS)
  --url URL                 server base URL                         (KIOSKHUB_URL, default http://127.0.0.1:8080)
  --keys ID=KEY,...         machine keys, merged over MACHINE_KEYS  (MACHINE_KEYS)
  --heartbeat-ms N          heartbeat interval, 100..3600000        (SIM_HEARTBEAT_MS, default 10000)
  --dispense-delay-ms N     time one dispense takes, 0..3600000     (SIM_DISPENSE_DELAY_MS, default 500)
  --failure-rate P          share of dispenses that fail, 0..1      (SIM_FAILURE_RATE, default 0)
  --disconnect-rate P       chance per heartbeat of a network drop  (SIM_DISCONNECT_RATE, default 0)
  --transport T             socketio or mqtt                        (SIM_TRANSPORT, default socketio)
  --mqtt-url URL            MQTT broker for --transport mqtt        (MQTT_URL, default mqtt://127.0.0.1:1883)
  -h, --help                show this text

Each flag takes its value as "--flag value" or "--flag=value".`;

const FLAGS = {
  '--machines': 'machines',
  '--url': 'url',
  '--keys': 'keys',
  '--heartbeat-ms': 'heartbeatMs',
  '--dispense-delay-ms': 'dispenseDelayMs',
  '--failure-rate': 'failureRate',
  '--disconnect-rate': 'disconnectRate',
  '--transport': 'transport',
  '--mqtt-url': 'mqttUrl',
} as const;
type FlagName = keyof typeof FLAGS;
type Setting = (typeof FLAGS)[FlagName];

const ENV_NAMES: Record<Exclude<Setting, 'machines'>, string> = {
  url: 'KIOSKHUB_URL',
  keys: 'MACHINE_KEYS',
  heartbeatMs: 'SIM_HEARTBEAT_MS',
  dispenseDelayMs: 'SIM_DISPENSE_DELAY_MS',
  failureRate: 'SIM_FAILURE_RATE',
  disconnectRate: 'SIM_DISCONNECT_RATE',
  transport: 'SIM_TRANSPORT',
  mqttUrl: 'MQTT_URL',
};

/** Parses KEY=VALUE lines (blank lines and # comments skipped, optional quotes and `export`). */
export function parseEnvFile(text: string, fileName = '.env'): Record<string, string> {
  const values: Record<string, string> = {};
  text.split(/\r?\n/).forEach((rawLine, index) => {
    const line = rawLine.trim();
    if (line === '' || line.startsWith('#')) return;
    const match = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$/.exec(line);
    if (!match) throw new ConfigError(`${fileName} line ${index + 1}: expected KEY=VALUE, got "${line}"`);
    const [, name = '', rawValue = ''] = match;
    const quoted = /^(["'])(.*)\1$/.exec(rawValue);
    values[name] = quoted ? (quoted[2] ?? '') : rawValue.replace(/\s+#.*$/, '');
  });
  return values;
}

/** Reads an env file if it exists. */
export function readEnvFile(path: string): Record<string, string> {
  return existsSync(path) ? parseEnvFile(readFileSync(path, 'utf8'), path) : {};
}

/** Flag values by setting; `--flag value` and `--flag=value` are both accepted. Null means --help. */
export function parseFlags(argv: readonly string[]): Partial<Record<Setting, string>> | null {
  const flags: Partial<Record<Setting, string>> = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    if (arg === '--help' || arg === '-h') return null;
    const eq = arg.indexOf('=');
    const name = eq > 0 ? arg.slice(0, eq) : arg;
    if (!(name in FLAGS)) throw new UnknownArgumentError(`unknown argument "${arg}"`);
    const value = eq > 0 ? arg.slice(eq + 1) : argv[++i];
    if (value === undefined || (eq < 0 && value.startsWith('--'))) {
      throw new ConfigError(`${name} needs a value`);
    }
    flags[FLAGS[name as FlagName]] = value;
  }
  return flags;
}

function flagOf(setting: Setting): string {
  return Object.entries(FLAGS).find(([, s]) => s === setting)?.[0] ?? setting;
}

function parseNumber(label: string, raw: string, min: number, max: number, integer: boolean): number {
  const value = Number(raw.trim());
  const kind = integer ? 'an integer' : 'a number';
  if (raw.trim() === '' || !Number.isFinite(value) || (integer && !Number.isInteger(value))) {
    throw new ConfigError(`${label} must be ${kind} between ${min} and ${max} (got "${raw}")`);
  }
  if (value < min || value > max) {
    throw new ConfigError(`${label} must be ${kind} between ${min} and ${max} (got "${raw}")`);
  }
  return value;
}

function parseUrl(label: string, raw: string): string {
  let url: URL;
  try {
    url = new URL(raw.trim());
  } catch {
    throw new ConfigError(`${label} must be a URL like http://127.0.0.1:8080 (got "${raw}")`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ConfigError(`${label} must be an http:// or https:// URL (got "${raw}")`);
  }
  if (url.pathname !== '/' || url.search || url.hash) {
    throw new ConfigError(`${label} must be the server's base URL without a path (got "${raw}")`);
  }
  return url.origin;
}

function parseIdList(label: string, raw: string): string[] {
  const ids = raw.split(',').map((s) => s.trim());
  if (ids.some((id) => id === '' || /\s/.test(id))) {
    throw new ConfigError(
      `${label} must be a comma-separated list of machine ids like M01,M02 (got "${raw}")`,
    );
  }
  return [...new Set(ids)];
}

function parseKeys(label: string, raw: string): Map<string, string> {
  const keys = new Map<string, string>();
  if (raw.trim() === '') return keys;
  for (const entry of raw.split(',')) {
    const eq = entry.indexOf('=');
    const machineId = entry.slice(0, Math.max(eq, 0)).trim();
    const key = entry.slice(eq + 1).trim();
    if (eq <= 0 || machineId === '' || key === '' || /\s/.test(machineId)) {
      throw new ConfigError(`${label} must look like M01=key1,M02=key2 (bad entry "${entry.trim()}")`);
    }
    if (keys.has(machineId)) throw new ConfigError(`${label} lists machine ${machineId} twice`);
    keys.set(machineId, key);
  }
  return keys;
}

/** Builds the config: flags override the environment, which overrides the .env file. */
export function loadConfig(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
): SimulatorConfig | null {
  const flags = parseFlags(argv);
  if (flags === null) return null;
  // The source that won, and its name for error messages.
  const pick = (setting: Exclude<Setting, 'machines'>): { label: string; raw: string } | null => {
    const flag = flags[setting];
    if (flag !== undefined) return { label: flagOf(setting), raw: flag };
    const envValue = env[ENV_NAMES[setting]];
    return envValue !== undefined && envValue !== '' ? { label: ENV_NAMES[setting], raw: envValue } : null;
  };
  type NumericSetting = Exclude<Setting, 'machines' | 'url' | 'keys' | 'transport' | 'mqttUrl'>;
  const number = (
    setting: NumericSetting,
    fallback: number,
    min: number,
    max: number,
    integer: boolean,
  ): number => {
    const source = pick(setting);
    return source ? parseNumber(source.label, source.raw, min, max, integer) : fallback;
  };

  const urlSource = pick('url');
  const url = urlSource ? parseUrl(urlSource.label, urlSource.raw) : 'http://127.0.0.1:8080';
  const envKeys = env.MACHINE_KEYS ? parseKeys('MACHINE_KEYS', env.MACHINE_KEYS) : new Map<string, string>();
  const flagKeys = flags.keys !== undefined ? parseKeys('--keys', flags.keys) : new Map<string, string>();
  const keys = new Map([...envKeys, ...flagKeys]);
  const machineIds =
    flags.machines !== undefined ? parseIdList('--machines', flags.machines) : [...keys.keys()];
  if (machineIds.length === 0) {
    throw new ConfigError(
      'no machines: pass --machines M01,M02 or set MACHINE_KEYS=M01=key1,M02=key2 in machine-simulator/.env',
    );
  }
  const machines = machineIds.map((machineId) => {
    const key = keys.get(machineId);
    if (key === undefined) {
      throw new ConfigError(
        `no key for machine ${machineId}: add ${machineId}=<key> to MACHINE_KEYS or pass --keys ${machineId}=<key>`,
      );
    }
    return { machineId, key };
  });

  const transportSource = pick('transport');
  const transport = transportSource?.raw.trim() ?? 'socketio';
  if (transport !== 'socketio' && transport !== 'mqtt')
    throw new ConfigError(
      `${transportSource?.label ?? '--transport'} must be socketio or mqtt (got "${transport}")`,
    );
  const mqttSource = pick('mqttUrl');
  const mqttUrl = mqttSource?.raw.trim() ?? 'mqtt://127.0.0.1:1883';
  if (transport === 'mqtt' && !/^(mqtts?|tcp|ssl|tls):\/\/[^/]+\/?$/.test(mqttUrl))
    throw new ConfigError(
      `${mqttSource?.label ?? '--mqtt-url'} must look like mqtt://host:1883 (got "${mqttUrl}")`,
    );
  const config: SimulatorConfig = {
    url,
    transport,
    ...(transport === 'mqtt' ? { mqttUrl } : {}),
    machines,
    heartbeatMs: number('heartbeatMs', 10_000, 100, 3_600_000, true),
    dispenseDelayMs: number('dispenseDelayMs', 500, 0, 3_600_000, true),
    failureRate: number('failureRate', 0, 0, 1, false),
    disconnectRate: number('disconnectRate', 0, 0, 1, false),
  };
  return config;
}
