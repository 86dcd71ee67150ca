// Mosquitto for the `mqtt` scenario. Kioskhub's external-broker mode (MQTT_URL) manages one
// client and role per machine through Mosquitto's dynamic-security plugin, so the bench first
// looks at the machine's own Mosquitto (127.0.0.1:1883) and, when that one has no dynamic
// security it may use, starts a private Mosquitto 2.x on a free port. That broker's clients are
// written into its dynamic-security file before it starts (the same PBKDF2-SHA512 records
// `mosquitto_ctrl` writes): Mosquitto 2.0 rewrites the whole file after every control message, so
// provisioning 10,000 machines through the control topic takes hours (bench/README.md).
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { pbkdf2Sync, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { MQTT_TOPIC_ROOT } from '@kioskhub/protocol';
import { connectAsync } from 'mqtt';
import { onCleanup } from './cleanup.js';
import { raiseNoFile } from './limits.js';
import { freePort } from './ports.js';
import { tempDir } from './temp.js';

const MOSQUITTO = '/usr/sbin/mosquitto';
const CTRL = '/usr/bin/mosquitto_ctrl';
const ADMIN = 'kioskhub-bench';
const ADMIN_PASSWORD = `bench-${randomBytes(12).toString('hex')}`;
const CONTROL = '$CONTROL/dynamic-security/v1';

const sleep = (msDelay: number) => new Promise((r) => setTimeout(r, msDelay));

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.setTimeout(1_000, () => (s.destroy(), resolve(false)));
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });
}

/**
 * What the machine's Mosquitto on 127.0.0.1:1883 offers: undefined when Kioskhub could use it
 * (it answers dynamic-security commands for an anonymous client), otherwise why not.
 */
export async function machineMosquittoUnusable(): Promise<string | undefined> {
  if (!(await portOpen(1883))) return 'nothing listens on 127.0.0.1:1883';
  const client = await connectAsync('mqtt://127.0.0.1:1883', {
    reconnectPeriod: 0,
    connectTimeout: 3_000,
  }).catch((err: Error) => err);
  if (client instanceof Error)
    return `127.0.0.1:1883 refuses an anonymous login (${client.message}); Kioskhub would need its dynamic-security admin`;
  try {
    let answered = false;
    client.on('message', () => (answered = true));
    await client.subscribeAsync(`${CONTROL}/response`, { qos: 1 }).catch(() => undefined);
    await client
      .publishAsync(CONTROL, JSON.stringify({ commands: [{ command: 'listClients' }] }), { qos: 1 })
      .catch(() => undefined);
    await sleep(1_500);
    // Even when it answers, the bench does not write 10,000 clients into a broker it does not own.
    return answered
      ? '127.0.0.1:1883 lets an anonymous client administer dynamic security; the bench does not write 10,000 clients into a broker it does not own'
      : '127.0.0.1:1883 answers but has no dynamic-security plugin (Kioskhub’s MQTT_URL mode manages per-machine clients through it)';
  } finally {
    await client.endAsync(true).catch(() => undefined);
  }
}

function dynsecPlugin(): string | undefined {
  try {
    const files = execFileSync('dpkg', ['-L', 'mosquitto'], { encoding: 'utf8' }).split('\n');
    const found = files.find((f) => f.endsWith('mosquitto_dynamic_security.so'));
    if (found) return found;
  } catch {
    /* not Debian: look in the usual places */
  }
  return ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib']
    .map((dir) => `${dir}/mosquitto_dynamic_security.so`)
    .find((p) => existsSync(p));
}

/** Why no private Mosquitto can be started here, or undefined. */
export function privateMosquittoMissing(): string | undefined {
  if (!existsSync(MOSQUITTO))
    return `${MOSQUITTO} not installed (apt-get install mosquitto mosquitto-clients)`;
  if (!existsSync(CTRL)) return `${CTRL} not installed (apt-get install mosquitto-clients)`;
  if (!dynsecPlugin()) return 'the Mosquitto dynamic-security plugin was not found';
  return undefined;
}

export interface BenchMosquitto {
  pid: number;
  version: string;
  /** Devices connect here. */
  url: string;
  /** Kioskhub's MQTT_URL (the dynamic-security admin). */
  adminUrl: string;
  /** Seconds spent writing the dynamic-security file. */
  seedSeconds: number;
  stop(): Promise<void>;
}

/** The records `createRole` / `createClient` would leave in the dynamic-security file. */
function machineRecords(machineId: string, key: string) {
  const salt = randomBytes(12);
  const rolename = `kh-machine-${machineId}`;
  return {
    role: {
      rolename,
      acls: [
        { acltype: 'publishClientSend', topic: `${MQTT_TOPIC_ROOT}/${machineId}/up/#`, allow: true },
        { acltype: 'subscribePattern', topic: `${MQTT_TOPIC_ROOT}/${machineId}/down/#`, allow: true },
        { acltype: 'publishClientReceive', topic: `${MQTT_TOPIC_ROOT}/${machineId}/down/#`, allow: true },
      ],
    },
    client: {
      username: machineId,
      clientid: machineId,
      password: pbkdf2Sync(key, salt, 101, 64, 'sha512').toString('base64'),
      salt: salt.toString('base64'),
      iterations: 101,
      roles: [{ rolename }],
    },
  };
}

export async function startBenchMosquitto(
  machines: { machineId: string; key: string }[],
  openFiles: number,
): Promise<BenchMosquitto> {
  const plugin = dynsecPlugin()!;
  const dir = tempDir('mosquitto');
  const dynsecFile = join(dir.path, 'dynsec.json');
  const seedStarted = Date.now();
  execFileSync(CTRL, ['dynsec', 'init', dynsecFile, ADMIN, ADMIN_PASSWORD], { stdio: 'ignore' });
  const dynsec = JSON.parse(readFileSync(dynsecFile, 'utf8')) as { clients: unknown[]; roles: unknown[] };
  for (const m of machines) {
    const { role, client } = machineRecords(m.machineId, m.key);
    dynsec.roles.push(role);
    dynsec.clients.push(client);
  }
  writeFileSync(dynsecFile, JSON.stringify(dynsec));
  const seedSeconds = (Date.now() - seedStarted) / 1000;
  const port = await freePort();
  const conf = join(dir.path, 'mosquitto.conf');
  writeFileSync(
    conf,
    [
      `listener ${port} 127.0.0.1`,
      'allow_anonymous false',
      `plugin ${plugin}`,
      `plugin_opt_config_file ${dynsecFile}`,
      'persistence false',
      'max_connections -1',
      `user ${process.env['USER'] ?? 'root'}`,
      'log_dest stderr',
      'log_type error',
      'log_type warning',
      '',
    ].join('\n'),
  );
  // `mosquitto -h` prints its version first and exits 3.
  const version =
    spawnSync(MOSQUITTO, ['-h'], { encoding: 'utf8' }).stdout.split('\n')[0]?.trim() || 'mosquitto';
  const child = spawn(MOSQUITTO, ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4_000)));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    }
  };
  const unregister = onCleanup('private mosquitto', stop, () => void child.kill('SIGKILL'));
  if (child.pid === undefined) throw new Error('mosquitto did not start');
  raiseNoFile(child.pid, openFiles);
  const deadline = Date.now() + 30_000;
  while (!(await portOpen(port))) {
    if (child.exitCode !== null) throw new Error(`mosquitto exited: ${stderr}`);
    if (Date.now() > deadline) throw new Error(`mosquitto did not listen within 30 s: ${stderr}`);
    await sleep(100);
  }
  return {
    pid: child.pid,
    version,
    url: `mqtt://127.0.0.1:${port}`,
    adminUrl: `mqtt://${ADMIN}:${ADMIN_PASSWORD}@127.0.0.1:${port}`,
    seedSeconds,
    async stop() {
      await unregister();
      await dir.remove();
    },
  };
}
