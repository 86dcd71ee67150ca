// The agent's process as an operator runs it: without settings it says which file and which
// variables it looked for; a second reader on the same queue folder says so without a stack trace.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const children: ChildProcess[] = [];
const dir = mkdtempSync(join(tmpdir(), 'kioskhub-cash-main-'));

function reader(env: Record<string, string>, args: string[] = []) {
  const clean = Object.fromEntries(
    Object.entries(process.env).filter(
      ([k]) => !/^(KIOSKHUB_URL|DEVICE_KEY|KIOSK_ID|SERIAL_PORT|QUEUE_DIR|LOG_LEVEL)$/.test(k),
    ),
  );
  const child = spawn(`${ROOT}node_modules/.bin/tsx`, ['devices/cash-reader/src/main.ts', ...args], {
    cwd: ROOT,
    env: { ...clean, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d));
  child.stderr.on('data', (d: Buffer) => (err += d));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return { child, stdout: () => out, stderr: () => err, exited };
}

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

describe('kioskhub-cash-reader process', { timeout: 60_000 }, () => {
  it('without settings: names the file it read, that it is missing, and the required variables', async () => {
    const run = reader({}, ['--config', join(dir, 'absent.env')]);
    expect(await run.exited).toBe(78);
    expect(run.stderr()).toContain(`config file ${join(dir, 'absent.env')} does not exist`);

    const bare = reader({ KIOSKHUB_URL: 'http://127.0.0.1:9' });
    expect(await bare.exited).toBe(78);
    expect(bare.stderr()).toContain('config: DEVICE_KEY is required (see --help)');
    expect(bare.stderr()).toContain(
      'settings are read from /etc/kioskhub/cash-reader.env (no such file) and the environment; ' +
        'required: KIOSKHUB_URL, DEVICE_KEY, KIOSK_ID; --config FILE reads another file',
    );
  });

  it('a second reader on the same queue folder is refused with one clear line, no stack trace', async () => {
    const env = {
      KIOSKHUB_URL: 'http://127.0.0.1:9',
      DEVICE_KEY: 'mk_test',
      KIOSK_ID: 'KIOSK1',
      SERIAL_PORT: join(dir, 'no-such-tty'),
      QUEUE_DIR: join(dir, 'queue'),
    };
    const first = reader(env);
    const deadline = Date.now() + 45_000;
    while (!first.stdout().includes('cash reader started') && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 100));
    expect(first.stdout()).toContain('cash reader started');
    const second = reader(env);
    expect(await second.exited).toBe(1);
    expect(second.stderr().trim()).toMatch(
      new RegExp(
        `^queue directory ${join(dir, 'queue')} is in use by process \\d+: another cash reader runs on it`,
      ),
    );
    expect(second.stderr()).not.toMatch(/\n\s+at /);
    first.child.kill('SIGTERM');
    expect(await first.exited).toBe(0);
  });
});
