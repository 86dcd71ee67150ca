// `npm run demo` as a user runs it: a child process on a free port that stops by itself
// (DEMO_DURATION_MS); checked through its own API while it runs and by its final summary.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { eventually } from './harness.js';
import { freePort } from './ports.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

describe('npm run demo', () => {
  it('serves, vends and de-duplicates, then stops by itself with a summary', async () => {
    const port = await freePort();
    const env = Object.fromEntries(
      Object.entries(process.env).filter(
        ([k]) => !/^(RAZORPAY_|DATABASE_URL$|DATA_DIR$|ADMIN_TOKEN$|LOG_LEVEL$|HOST$)/.test(k),
      ),
    );
    const child = spawn(process.execPath, ['--import', 'tsx', 'server/src/cli/demo.ts'], {
      cwd: ROOT,
      env: { ...env, PORT: String(port), DEMO_DURATION_MS: '8000' },
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d));
    child.stderr.on('data', (d: Buffer) => (output += d));
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    try {
      const banner = await eventually(
        () => /server {4}(http:\/\/\S+)[\s\S]*ADMIN_TOKEN=(\S+)/.exec(output),
        30_000,
        `the demo banner; output so far:\n${output}`,
      );
      const [, url, token] = banner;
      expect(url).toBe(`http://127.0.0.1:${port}`);

      // While it runs, its API shows demo orders reaching COMPLETED.
      const completed = await eventually(
        async () => {
          const res = await fetch(`${url}/v1/orders?status=COMPLETED`, {
            headers: { authorization: `Bearer ${token}` },
          });
          const body = (await res.json()) as { items: { machineId: string }[] };
          return body.items.find((o) => /^DEMO0[1-5]$/.test(o.machineId));
        },
        15_000,
        'a COMPLETED demo order',
      );
      expect(completed.machineId).toMatch(/^DEMO0[1-5]$/);

      // The demo water kiosks heartbeat through the firmware API.
      const kiosks = await eventually(
        async () => {
          const res = await fetch(`${url}/v1/water/kiosks`, {
            headers: { authorization: `Bearer ${token}` },
          });
          const body = (await res.json()) as {
            items: { machineId: string; status: string; firmware: string }[];
          };
          const ours = body.items.filter((k) => /^WDEMO[12]$/.test(k.machineId) && k.status === 'ONLINE');
          return ours.length === 2 ? ours : undefined;
        },
        15_000,
        'both demo water kiosks ONLINE',
      );
      expect(kiosks.map((k) => k.firmware)).toEqual(['kioskhub-water-sim/1.0.0', 'kioskhub-water-sim/1.0.0']);

      const code = await exited;
      expect(code, output).toBe(0);
      const summary =
        /demo: (\d+) orders paid, (\d+) completed, (\d+) failed, (\d+) pending; (\d+) duplicate deliver(?:y|ies) de-duplicated/.exec(
          output,
        );
      expect(summary, output).not.toBeNull();
      const [paid, done, failed, pending, duplicates] = summary!.slice(1).map(Number) as [
        number,
        number,
        number,
        number,
        number,
      ];
      expect(paid).toBeGreaterThanOrEqual(2);
      expect(done).toBeGreaterThanOrEqual(1);
      expect(done + failed + pending).toBe(paid);
      expect(pending).toBe(0);
      expect(duplicates).toBeGreaterThanOrEqual(1);
      // The live feed printed each order's way through.
      expect(output).toMatch(/DEMO0\d {2}order \w+ {2}paid ₹20\.00/);
      expect(output).toMatch(/DEMO0\d {2}order \w+ {2}dispatched/);
      expect(output).toMatch(/DEMO0\d {2}order \w+ {2}completed/);
      expect(output).toMatch(/delivered again \(same event id\): de-duplicated, still order \w+/);

      // Water: customers verified by the server, poured and settled; WDEMO1's outage is served
      // from its credential cache and its SD card uploaded, every line applied, nothing left.
      expect(output).toMatch(/WDEMO[12] {2}credential cache version \d+: 4 customers/);
      expect(output).toMatch(/WDEMO[12] {2}tap \d {2}…\d{4} approved by server/);
      expect(output).toMatch(/WDEMO[12] {2}tap \d {2}settled \d+\.\d L as WDEMO[12]-\S+; credit/);
      expect(output).toMatch(/WDEMO1 {2}✗ modem down: serving from the credential cache \(4 customers\)/);
      const water =
        /demo: water: (\d+) customers? served \((\d+) offline\), (\d+) refused, [\d.]+ L; SD-card uploads (\d+) applied, (\d+) duplicate, (\d+) rejected; (\d+) left on the cards/.exec(
          output,
        );
      expect(water, output).not.toBeNull();
      const [served, offline, , applied, dup, rejected, left] = water!.slice(1).map(Number);
      expect(served).toBeGreaterThanOrEqual(1);
      // Every offline pour was applied, plus any pour the modem dropped in the middle of.
      expect(applied).toBeGreaterThanOrEqual(offline!);
      expect([dup, rejected, left]).toEqual([0, 0, 0]);
    } finally {
      if (child.exitCode === null) child.kill('SIGINT');
    }
  }, 60_000);
});
