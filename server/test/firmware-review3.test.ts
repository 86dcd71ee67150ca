// Review tests of firmware campaigns against the real server, on both engines.
// 1. Several campaigns waiting for one machine: once it is free, the OLDEST waiting campaign
//    (by creation) takes it, whichever campaign ticks first.
// 2. A deployment waiting for another campaign's deployment says which (`waitingFor`).
// 3. A device timed out, accepted as failed by a resume past the failure threshold, that then
//    reports SUCCEEDED late is no longer an accepted failure: newer failures count in full.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { engines, eventually, startServer, tempDir, type TestServer } from './harness.js';
import { SIGNING_KEYS, campaign, campaignHelpers as helpers } from './firmware-fixtures.js';

/** Versions rise from test to test, so no image is uploaded twice on one server. */
let minor = 0;
const version = () => `40.${++minor}.0`;

type Machine = { id: string; key: string };

describe.each(engines())('firmware review 3, machine turns (%s)', (engine) => {
  let server: TestServer;
  const dir = tempDir('kioskhub-fwr3-');
  beforeAll(async () => {
    // Ticks only when an action starts a chain (start, resume): which campaign ticks first after
    // the machine is freed is the test's choice.
    server = await startServer({
      engine,
      env: { FIRMWARE_SIGNING_KEYS: SIGNING_KEYS, FIRMWARE_DIR: dir.path, FIRMWARE_TICK_MS: '600000' },
    });
  });
  afterAll(async () => {
    await server?.close();
    dir.remove();
  });
  const h = helpers(() => server);

  it('three campaigns wait for one machine: the oldest waiting campaign takes it, even when a younger one ticks first', async () => {
    const m = await h.machine('TURN');
    const va = version();
    const a = await h.create(va, [m.id]);
    const b = await h.create(version(), [m.id]);
    const c = await h.create(version(), [m.id]);
    await h.run(a, 'start');
    const da = await h.waitState(a, m.id, 'NOTIFIED');
    await h.run(b, 'start');
    await h.run(c, 'start');
    const db = await h.deployment(b, m.id);
    // Both waiting, and say for what.
    await eventually(async () => {
      const [xb, xc] = [await h.deployment(b, m.id), await h.deployment(c, m.id)];
      return xb.waitingFor && xc.waitingFor ? true : undefined;
    });
    expect(await h.deployment(b, m.id)).toMatchObject({
      state: 'PENDING',
      waitingFor: { campaignId: a, deploymentId: da.deploymentId },
    });
    expect(await h.deployment(c, m.id)).toMatchObject({
      state: 'PENDING',
      waitingFor: { campaignId: a, deploymentId: da.deploymentId },
    });
    expect((await h.deployment(a, m.id)).waitingFor).toBeNull();

    // a ends; the youngest campaign, c, ticks first (a pause and resume start its chain).
    const s = await h.toRebooting(m, da.deploymentId);
    await h.reportOk(m, da.deploymentId, { seq: s, state: 'SUCCEEDED', currentVersion: va, confirmed: true });
    await h.run(c, 'pause');
    await h.run(c, 'resume');
    // c's tick has run (its resume chain) and left the machine to b, the older one.
    await new Promise((r) => setTimeout(r, 500));
    expect(await h.deployment(c, m.id)).toMatchObject({
      state: 'PENDING',
      waitingFor: { campaignId: b, deploymentId: db.deploymentId },
    });
    expect(await h.deployment(b, m.id)).toMatchObject({ state: 'PENDING', waitingFor: null });
    // b's next tick takes it.
    await h.run(b, 'pause');
    await h.run(b, 'resume');
    await h.waitState(b, m.id, 'NOTIFIED');
    expect((await h.deployment(c, m.id)).waitingFor).toEqual({
      campaignId: b,
      deploymentId: db.deploymentId,
    });
  });

  it('an older campaign that is paused does not hold a younger one back', async () => {
    const m = await h.machine('TURN');
    const vh = version();
    const holder = await h.create(vh, [m.id]);
    const paused = await h.create(version(), [m.id]);
    const young = await h.create(version(), [m.id]);
    await h.run(holder, 'start');
    const dh = await h.waitState(holder, m.id, 'NOTIFIED');
    await h.run(paused, 'start');
    await h.run(paused, 'pause');
    await h.run(young, 'start');
    const s = await h.toRebooting(m, dh.deploymentId);
    await h.reportOk(m, dh.deploymentId, { seq: s, state: 'SUCCEEDED', currentVersion: vh, confirmed: true });
    await h.run(young, 'pause');
    await h.run(young, 'resume');
    const dy = await h.waitState(young, m.id, 'NOTIFIED');
    expect(dy.waitingFor).toBeNull();
    expect(await h.deployment(paused, m.id)).toMatchObject({
      state: 'PENDING',
      waitingFor: { campaignId: young, deploymentId: dy.deploymentId },
    });
  });
});

describe.each(engines())('firmware review 3, late successes after a threshold resume (%s)', (engine) => {
  let server: TestServer;
  const dir = tempDir('kioskhub-fwr3t-');
  beforeAll(async () => {
    server = await startServer({
      engine,
      env: { FIRMWARE_SIGNING_KEYS: SIGNING_KEYS, FIRMWARE_DIR: dir.path, FIRMWARE_TICK_MS: '40' },
    });
  });
  afterAll(async () => {
    await server?.close();
    dir.remove();
  });
  const h = helpers(() => server);
  const status = async (id: string) => {
    const c = await campaign(server, id);
    return { status: c.status as string, pauseReason: c.pauseReason as string | null, counts: c.counts };
  };

  it('timeouts pause at the threshold; resume; the timed-out devices succeed late; newer failures then count in full', async () => {
    const fleet: Machine[] = [];
    for (let i = 0; i < 5; i++) fleet.push(await h.machine('THR'));
    const target = version();
    // 50 % once 2 have finished; a soak keeps the campaign RUNNING once every device has ended.
    const c = await h.create(
      target,
      fleet.map((m) => m.id),
      {
        failureThresholdPercent: 50,
        minFinishedForThreshold: 2,
        waves: [{ percent: 100, soakMinutes: 60, approval: 'auto' }],
      },
    );
    await h.run(c, 'start');
    const ds = [];
    for (const m of fleet) ds.push(await h.waitState(c, m.id, 'NOTIFIED'));
    const [s1, s2] = [
      await h.toRebooting(fleet[0]!, ds[0].deploymentId),
      await h.toRebooting(fleet[1]!, ds[1].deploymentId),
    ];
    // Two devices go silent while rebooting: both time out, 2 of 2 finished failed → paused.
    await server.kioskhub.db
      .updateTable('firmware_deployments')
      .set({ active_at: '2000-01-01T00:00:00.000Z' })
      .where('id', 'in', [ds[0].deploymentId, ds[1].deploymentId])
      .execute();
    await eventually(
      async () => ((await status(c)).pauseReason === 'FAILURE_THRESHOLD' ? true : undefined),
      10_000,
      'threshold pause',
    );
    expect(await status(c)).toMatchObject({ status: 'PAUSED', counts: { TIMED_OUT: 2, NOTIFIED: 3 } });

    await h.run(c, 'resume');
    // Both were only slow: they come back and succeed.
    for (const [i, s] of [s1, s2].entries())
      await h.reportOk(fleet[i]!, ds[i].deploymentId, {
        seq: s,
        state: 'SUCCEEDED',
        currentVersion: target,
        confirmed: true,
      });
    expect((await status(c)).counts).toEqual({ SUCCEEDED: 2, NOTIFIED: 3 });

    // One new failure: 1 of 3 finished (33 %) is under 50 %: no pause.
    await h.reportOk(fleet[2]!, ds[2].deploymentId, {
      seq: 1,
      state: 'FAILED',
      code: 'INSTALL_FAILED',
      currentVersion: '1.0.0',
    });
    await new Promise((r) => setTimeout(r, 400));
    expect(await status(c)).toMatchObject({ status: 'RUNNING', pauseReason: null });

    // A second: 2 of 4 finished failed (50 %): the threshold is reached, counted correctly.
    await h.reportOk(fleet[3]!, ds[3].deploymentId, {
      seq: 1,
      state: 'FAILED',
      code: 'INSTALL_FAILED',
      currentVersion: '1.0.0',
    });
    const paused = await eventually(
      async () => {
        const x = await status(c);
        return x.status === 'PAUSED' ? x : undefined;
      },
      3_000,
      'the second threshold pause',
    );
    expect(paused).toMatchObject({
      pauseReason: 'FAILURE_THRESHOLD',
      counts: { SUCCEEDED: 2, FAILED: 2, NOTIFIED: 1 },
    });
    const audit = await server.request(
      'GET',
      `/v1/audit?action=firmware.campaign.threshold_pause&subjectId=${c}`,
    );
    expect(audit.body.items[0].after).toMatchObject({ failed: 2, succeeded: 2, acknowledgedFailures: 0 });

    // Resumed again (2 accepted). A device that times out only after that and comes back was
    // never accepted: the accepted count stays.
    await h.run(c, 'resume');
    await server.kioskhub.db
      .updateTable('firmware_deployments')
      .set({ active_at: '2000-01-01T00:00:00.000Z' })
      .where('id', '=', ds[4].deploymentId)
      .execute();
    await h.waitState(c, fleet[4]!.id, 'TIMED_OUT');
    await h.reportOk(fleet[4]!, ds[4].deploymentId, {
      seq: 1,
      state: 'DOWNLOADING',
      currentVersion: '1.0.0',
    });
    const acknowledged = async () =>
      Number(
        (
          await server.kioskhub.db
            .selectFrom('firmware_campaigns')
            .select('acknowledged_failures')
            .where('id', '=', c)
            .executeTakeFirstOrThrow()
        ).acknowledged_failures,
      );
    expect(await acknowledged()).toBe(2);
    expect(await status(c)).toMatchObject({
      status: 'RUNNING',
      counts: { SUCCEEDED: 2, FAILED: 2, DOWNLOADING: 1 },
    });
  });
});
