// Review 4 of firmware campaigns against the real server, on both engines.
// 1. retry-failed while the last wave soaks: the devices put back to PENDING are released again;
//    the campaign does not complete with them still PENDING (never offered again).
// 2. The same cause: a timed-out device that comes back while the last wave soaks is in progress
//    again; the wave must not complete (and the campaign end) while it is.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { engines, eventually, startServer, tempDir, type TestServer } from './harness.js';
import {
  SIGNING_KEYS,
  campaign,
  campaignHelpers,
  newCampaign,
  signedImage,
  uploadOk,
} from './firmware-fixtures.js';

const key = (k: string) => ({ token: null, headers: { 'x-api-key': k } }) as const;
let minor = 0;
const version = () => `50.${++minor}.0`;

type Machine = { id: string; key: string };

describe.each(engines())('firmware review 4 (%s)', (engine) => {
  let server: TestServer;
  const dir = tempDir('kioskhub-fwr4-');
  beforeAll(async () => {
    server = await startServer({
      engine,
      env: { FIRMWARE_SIGNING_KEYS: SIGNING_KEYS, FIRMWARE_DIR: dir.path, FIRMWARE_TICK_MS: '100' },
    });
  });
  afterAll(async () => {
    await server?.close();
    dir.remove();
  });

  const { machine: newMachine, run, waitState, reportOk, toRebooting } = campaignHelpers(() => server);
  const machine = () => newMachine('FW4');

  /**
   * One wave at 100 % with a 1.2-second soak over machines a and b, started; both NOTIFIED, a
   * updated (SUCCEEDED). Answers the machines, the campaign and b's deployment.
   */
  async function oneWaveWithASucceeded() {
    const [a, b] = [await machine(), await machine()];
    const target = version();
    const artifactId = await uploadOk(server, signedImage(target, { size: 2_000 }));
    const c = (
      await newCampaign(server, artifactId, [a.id, b.id], {
        waves: [{ percent: 100, soakMinutes: 0.02, approval: 'auto' }],
      })
    ).id as string;
    await run(c, 'start');
    const da = await waitState(c, a.id, 'NOTIFIED');
    const dbb = await waitState(c, b.id, 'NOTIFIED');
    const s = await toRebooting(a, da.deploymentId);
    await reportOk(a, da.deploymentId, {
      seq: s,
      state: 'SUCCEEDED',
      currentVersion: target,
      confirmed: true,
    });
    return { a, b, c, dbb };
  }
  const waveSoaks = (c: string) =>
    eventually(
      async () => ((await campaign(server, c)).waves[0].status === 'SOAKING' ? true : undefined),
      5_000,
      'the wave soaks',
    );

  // docs/firmware.md: "A wave runs (releases its devices …), then soaks for soakMinutes once all
  // its devices have finished, then completes"; "retry-failed (failed and timed-out devices go
  // back to PENDING; a COMPLETED campaign runs again)".
  it('retry-failed while the last wave soaks: the failed device is released again, the campaign does not complete without it', async () => {
    const { b, c, dbb } = await oneWaveWithASucceeded();
    await reportOk(b, dbb.deploymentId, {
      seq: 1,
      state: 'FAILED',
      code: 'INSTALL_FAILED',
      currentVersion: '1.0.0',
    });
    await waveSoaks(c);
    const retried = await run(c, 'retry-failed');
    expect(retried.status).toBe('RUNNING');
    expect(retried.devices.find((d: any) => d.machineId === b.id).state).toBe('PENDING');
    // Past the soak, with ticks every 100 ms: the device put back must have been offered again.
    await new Promise((r) => setTimeout(r, 2_500));
    const after = await campaign(server, c);
    const stateOf = (m: Machine) => after.devices.find((d: any) => d.machineId === m.id).state;
    expect({ campaign: after.status, b: stateOf(b) }).toEqual({ campaign: 'RUNNING', b: 'NOTIFIED' });
    const next = await server.request('GET', '/api/device/v1/ota/next?current=1.0.0&hw=esp32-s3', key(b.key));
    expect(next.status).toBe(200);
  });

  // docs/firmware.md: "then soaks for soakMinutes once all its devices have finished, then
  // completes"; a TIMED_OUT device "If it reports again later it continues from that state …
  // as long as the campaign is RUNNING or PAUSED".
  it('a timed-out device that comes back while the last wave soaks keeps the campaign running until it finishes', async () => {
    const { b, c, dbb } = await oneWaveWithASucceeded();
    // b goes silent: timed out, the wave soaks.
    await server.kioskhub.db
      .updateTable('firmware_deployments')
      .set({ active_at: '2000-01-01T00:00:00.000Z' })
      .where('id', '=', dbb.deploymentId)
      .execute();
    await waitState(c, b.id, 'TIMED_OUT');
    await waveSoaks(c);
    // b was only slow: it comes back (accepted, the campaign is RUNNING) and is downloading.
    const back = await reportOk(b, dbb.deploymentId, {
      seq: 1,
      state: 'DOWNLOADING',
      currentVersion: '1.0.0',
    });
    expect(back.state).toBe('DOWNLOADING');
    await new Promise((r) => setTimeout(r, 2_500));
    const after = await campaign(server, c);
    const stateOf = (m: Machine) => after.devices.find((d: any) => d.machineId === m.id).state;
    expect({ campaign: after.status, b: stateOf(b) }).toEqual({ campaign: 'RUNNING', b: 'DOWNLOADING' });
  });
});
