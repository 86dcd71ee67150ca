// Starts a private Mosquitto 2.x with the dynamic-security plugin on an ephemeral port for the
// MQTT tests (the machine's system Mosquitto has no dynsec), and stops it afterwards.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { tempDir } from './harness.js';
import { freePort } from './ports.js';

const MOSQUITTO = '/usr/sbin/mosquitto';
const CTRL = '/usr/bin/mosquitto_ctrl';
export const DYNSEC_ADMIN = 'kioskhub-admin';
export const DYNSEC_PASSWORD = 'dynsec-admin-password-0123456789';

function dynsecPlugin(): string | undefined {
  try {
    const files = execFileSync('dpkg', ['-L', 'mosquitto'], { encoding: 'utf8' }).split('\n');
    const found = files.find((f) => /dynamic_security\.so$/.test(f));
    if (found) return found;
  } catch {
    /* not a Debian system: try the usual places */
  }
  return [
    '/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so',
    '/usr/lib/aarch64-linux-gnu/mosquitto_dynamic_security.so',
    '/usr/lib/mosquitto_dynamic_security.so',
  ].find((p) => existsSync(p));
}

/** Why the Mosquitto tests cannot run here, or undefined when they can. */
export function mosquittoMissing(): string | undefined {
  if (!existsSync(MOSQUITTO))
    return `${MOSQUITTO} is not installed (apt-get install mosquitto mosquitto-clients)`;
  if (!existsSync(CTRL)) return `${CTRL} is not installed (apt-get install mosquitto-clients)`;
  if (!dynsecPlugin()) return 'the Mosquitto dynamic-security plugin was not found';
  return undefined;
}

export interface MosquittoProcess {
  url: string;
  /** The URL Kioskhub connects with (the dynsec admin's credentials inside). */
  adminUrl: string;
  stop(): Promise<void>;
}

export async function startMosquitto(): Promise<MosquittoProcess> {
  const dir = tempDir('kioskhub-mosquitto-');
  const dynsec = join(dir.path, 'dynsec.json');
  execFileSync(CTRL, ['dynsec', 'init', dynsec, DYNSEC_ADMIN, DYNSEC_PASSWORD], { stdio: 'ignore' });
  const port = await freePort();
  const conf = join(dir.path, 'mosquitto.conf');
  writeFileSync(
    conf,
    [
      `listener ${port} 127.0.0.1`,
      'allow_anonymous false',
      `plugin ${dynsecPlugin()!}`,
      `plugin_opt_config_file ${dynsec}`,
      'persistence false',
      `user ${userInfo().username}`,
      'log_dest stderr',
      'log_type error',
      'log_type warning',
      '',
    ].join('\n'),
  );
  const child: ChildProcess = spawn(MOSQUITTO, ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  // Ready when the port answers.
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`mosquitto exited: ${stderr}`);
    const up = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => (s.destroy(), resolve(true)));
      s.once('error', () => resolve(false));
    });
    if (up) break;
    if (Date.now() > deadline) throw new Error(`mosquitto did not start: ${stderr}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url: `mqtt://127.0.0.1:${port}`,
    adminUrl: `mqtt://${DYNSEC_ADMIN}:${DYNSEC_PASSWORD}@127.0.0.1:${port}`,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      dir.remove();
    },
  };
}
