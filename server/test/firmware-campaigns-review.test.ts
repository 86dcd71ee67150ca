// Review tests of firmware campaigns against the real server, on both engines.
// 1. Two campaigns on one machine: the device is offered one deployment at a time. The later
//    campaign's deployment waits (PENDING: not sent, no maxConcurrent slot, no timeout) until the
//    earlier one on that machine has ended, then it is offered: pushed over Socket.IO or MQTT,
//    or by `next`.
// 2. A report arriving after its deployment TIMED_OUT continues from the state the deployment was
//    in when it timed out: states still only move forward and SUCCEEDED still needs REBOOTING
//    first. Such a revival is audited, and a machine that moved on to another deployment meanwhile
//    still holds one at a time.
import { mqttTopics, type MqttCommand } from '@kioskhub/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  connected,
  dropSchema,
  engines,
  eventually,
  machineSocket,
  newSchemaName,
  startServer,
  tempDir,
  type TestServer,
} from './harness.js';
import { HW, SIGNING_KEYS, act, campaign, newCampaign, signedImage, uploadOk } from './firmware-fixtures.js';
import { MqttDevice } from './mqtt-fixtures.js';

let seq = 0;
const uid = (prefix: string) => `${prefix}${++seq}${Math.random().toString(36).slice(2, 6)}`;
const key = (k: string) => ({ token: null, headers: { 'x-api-key': k } }) as const;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Versions rise from test to test, so no image is uploaded twice on one server. */
let minor = 0;
const version = () => `20.${++minor}.0`;

type Machine = { id: string; key: string };

describe.each(engines())('firmware campaigns review (%s)', (engine) => {
  let server: TestServer;
  const dir = tempDir('kioskhub-fwc-');
  const devices: MqttDevice[] = [];

  beforeAll(async () => {
    server = await startServer({
      engine,
      env: {
        MQTT_PORT: '0',
        FIRMWARE_SIGNING_KEYS: SIGNING_KEYS,
        FIRMWARE_DIR: dir.path,
        FIRMWARE_TICK_MS: '40',
        DISPATCH_ACK_TIMEOUT_MS: '300',
      },
    });
  });
  afterAll(async () => {
    await Promise.all(devices.splice(0).map((d) => d.client.endAsync(true)));
    await server?.close();
    dir.remove();
  });

  const machine = (prefix: string) => server.createMachine(uid(prefix), { kind: 'kiosk' });
  async function create(version: string, machineIds: string[], over: Record<string, unknown> = {}) {
    const artifactId = await uploadOk(server, signedImage(version, { size: 4_000 }));
    return (await newCampaign(server, artifactId, machineIds, over)).id as string;
  }
  async function start(campaignId: string) {
    const res = await act(server, campaignId, 'start');
    expect(res.status, JSON.stringify(res.body)).toBe(200);
  }
  /** The one deployment of `machineId` in the campaign. */
  async function deployment(campaignId: string, machineId: string) {
    const c = await campaign(server, campaignId);
    return c.devices.find((d: any) => d.machineId === machineId) as {
      deploymentId: string;
      state: string;
      code: string | null;
      message: string | null;
    };
  }
  const stateOf = async (campaignId: string, machineId: string) =>
    (await deployment(campaignId, machineId)).state;
  const waitState = (campaignId: string, machineId: string, state: string, ms = 10_000) =>
    eventually(
      async () => ((await stateOf(campaignId, machineId)) === state ? true : undefined),
      ms,
      `${machineId} ${state} in ${campaignId}`,
    );
  const report = (m: Machine, deploymentId: string, body: Record<string, unknown>) =>
    server.request('POST', `/api/device/v1/ota/${deploymentId}/status`, { ...key(m.key), body });
  async function reportOk(m: Machine, deploymentId: string, body: Record<string, unknown>) {
    const res = await report(m, deploymentId, body);
    expect(res.status, `${String(body['state'])}: ${JSON.stringify(res.body)}`).toBe(200);
    return res.body;
  }
  /** Reports every step up to SUCCEEDED, from `seq` on. */
  async function finish(m: Machine, deploymentId: string, target: string, from = 1) {
    let s = from;
    for (const state of ['DOWNLOADING', 'DOWNLOADED', 'VERIFIED', 'INSTALLING', 'REBOOTING'])
      await reportOk(m, deploymentId, { seq: s++, state, currentVersion: '1.0.0' });
    await reportOk(m, deploymentId, {
      seq: s++,
      state: 'SUCCEEDED',
      currentVersion: target,
      confirmed: true,
    });
  }
  const next = (m: Machine, current: string) =>
    server.request('GET', `/api/device/v1/ota/next?current=${current}&hw=${HW}`, key(m.key));
  /** Makes a deployment look silent since long ago; its campaign's next tick times it out. */
  const silence = (deploymentId: string) =>
    server.kioskhub.db
      .updateTable('firmware_deployments')
      .set({ active_at: '2000-01-01T00:00:00.000Z' })
      .where('id', '=', deploymentId)
      .execute();

  describe('two campaigns on one machine', () => {
    it('Socket.IO: one ota.install at a time; the later waits PENDING (never sent, never timed out) and is pushed once the earlier SUCCEEDED', async () => {
      const m = await machine('TCIO');
      const socket = machineSocket(server.url, m.id, m.key);
      const offers: string[] = [];
      socket.on('ota.install', (next: { deploymentId: string }) => offers.push(next.deploymentId));
      await connected(socket);
      try {
        const va = version();
        const vb = version();
        const a = await create(va, [m.id]);
        // The later campaign's own timeout is short: waiting must not count against it.
        const b = await create(vb, [m.id], { deviceTimeoutMinutes: 0.02 });
        await start(a);
        const da = await deployment(a, m.id);
        await eventually(() => offers.includes(da.deploymentId), 10_000, 'the first ota.install');
        await start(b);
        const db = await deployment(b, m.id);
        // Many ticks of b, and more than its deviceTimeoutMinutes (1.2 s).
        await sleep(1_500);
        expect(offers).toEqual([da.deploymentId]);
        expect(await deployment(b, m.id)).toMatchObject({ state: 'PENDING', code: null });
        expect((await campaign(server, b)).status).toBe('RUNNING');
        expect((await next(m, '1.0.0')).body.deploymentId).toBe(da.deploymentId);

        await finish(m, da.deploymentId, va);
        await eventually(() => offers.includes(db.deploymentId), 10_000, 'the second ota.install');
        expect(offers).toEqual([da.deploymentId, db.deploymentId]);
        expect(await stateOf(b, m.id)).toBe('NOTIFIED');
        expect((await next(m, va)).body.deploymentId).toBe(db.deploymentId);
        await finish(m, db.deploymentId, vb);
        await waitState(b, m.id, 'SUCCEEDED');
        expect((await campaign(server, a)).counts).toEqual({ SUCCEEDED: 1 });
      } finally {
        socket.close();
      }
    });

    it('MQTT: no ota.install of the later campaign while the earlier is in progress; it follows once the earlier FAILED', async () => {
      const m = await machine('TCMQ');
      const commands: MqttCommand[] = [];
      const dev = await MqttDevice.connect(`mqtt://127.0.0.1:${server.kioskhub.mqtt!.port()}`, m.id, m.key, {
        firmware: '1.0.0',
        onCommand: (c) => commands.push(c),
      });
      devices.push(dev);
      const offered = () =>
        commands.filter((c) => c.kind === 'ota.install').map((c) => String(c.ota?.['deploymentId']));
      await eventually(
        async () => (await server.request('GET', `/v1/machines/${m.id}`)).body.socketConnected === true,
        5_000,
        'online',
      );
      const a = await create(version(), [m.id]);
      const b = await create(version(), [m.id], { deviceTimeoutMinutes: 0.01 });
      await start(a);
      await start(b);
      const da = await deployment(a, m.id);
      const db = await deployment(b, m.id);
      await eventually(() => offered().includes(da.deploymentId), 10_000, 'the first ota.install');
      // The device takes it (a report on up/ota), then works on it for a while.
      await dev.publish(mqttTopics.ota(m.id), {
        deploymentId: da.deploymentId,
        seq: 1,
        state: 'DOWNLOADING',
        currentVersion: '1.0.0',
      });
      await waitState(a, m.id, 'DOWNLOADING');
      await sleep(1_200);
      expect(new Set(offered())).toEqual(new Set([da.deploymentId]));
      expect(await stateOf(b, m.id)).toBe('PENDING');

      await reportOk(m, da.deploymentId, {
        seq: 2,
        state: 'FAILED',
        code: 'INSTALL_FAILED',
        currentVersion: '1.0.0',
      });
      await eventually(() => offered().includes(db.deploymentId), 10_000, 'the second ota.install');
      expect(await stateOf(b, m.id)).toBe('NOTIFIED');
    });

    it('`next` alone: the later is offered after the earlier was SKIPPED; a held machine takes no slot of its campaign', async () => {
      const busy = await machine('TCNX');
      const free = await machine('TCNX');
      const va = version();
      const a = await create(va, [busy.id]);
      await start(a);
      await waitState(a, busy.id, 'NOTIFIED');
      // maxConcurrent 1: the machine held back must not keep the free one waiting.
      const b = await create(version(), [busy.id, free.id], { maxConcurrent: 1, deviceTimeoutMinutes: 0.01 });
      await start(b);
      await waitState(b, free.id, 'NOTIFIED');
      await sleep(800);
      expect(await stateOf(b, busy.id)).toBe('PENDING');
      const da = await deployment(a, busy.id);
      expect((await next(busy, '1.0.0')).body.deploymentId).toBe(da.deploymentId);

      // The free machine's deployment times out (its device is silent): the slot frees, and
      // the busy machine is still held.
      await waitState(b, free.id, 'TIMED_OUT');
      await sleep(300);
      expect(await stateOf(b, busy.id)).toBe('PENDING');

      // The device already runs a's version (updated by hand): `next` skips a; b comes next.
      const skipped = await next(busy, va);
      expect(skipped.status).toBe(204);
      expect(await deployment(a, busy.id)).toMatchObject({ state: 'SKIPPED', code: 'ALREADY_CURRENT' });
      const db = await deployment(b, busy.id);
      const offered = await eventually(
        async () => {
          const res = await next(busy, va);
          return res.status === 200 ? res.body : undefined;
        },
        10_000,
        'b offered by next',
      );
      expect(offered.deploymentId).toBe(db.deploymentId);
    });
  });

  describe('a report after TIMED_OUT', () => {
    /** A one-machine campaign whose deployment reached `states` in order, then timed out. */
    async function timedOutAfter(states: string[]) {
      const m = await machine('LATE');
      const target = version();
      // A second machine keeps the campaign RUNNING (maxConcurrent 1: it waits its turn).
      const other = await machine('LATE');
      const c = await create(target, [m.id, other.id], { maxConcurrent: 1 });
      await start(c);
      const first = await eventually(async () => {
        const x = await campaign(server, c);
        return x.devices.find((d: any) => d.state === 'NOTIFIED');
      });
      const dev = first.machineId === m.id ? m : other;
      let s = 1;
      for (const state of states)
        await reportOk(dev, first.deploymentId, { seq: s++, state, currentVersion: '1.0.0' });
      await silence(first.deploymentId);
      await waitState(c, dev.id, 'TIMED_OUT');
      return { campaignId: c, m: dev, deploymentId: first.deploymentId as string, target, seq: s };
    }

    it('a late SUCCEEDED of a deployment that timed out before REBOOTING is 409 and changes nothing; REBOOTING first, then SUCCEEDED', async () => {
      const t = await timedOutAfter(['DOWNLOADING', 'DOWNLOADED']);
      const before = await deployment(t.campaignId, t.m.id);
      expect(before).toMatchObject({ state: 'TIMED_OUT', code: 'NO_PROGRESS' });

      const early = await report(t.m, t.deploymentId, {
        seq: t.seq,
        state: 'SUCCEEDED',
        currentVersion: t.target,
        confirmed: true,
      });
      expect(early.status, JSON.stringify(early.body)).toBe(409);
      expect(early.body.error.code).toBe('INVALID_STATE');
      expect(await deployment(t.campaignId, t.m.id)).toMatchObject({
        state: 'TIMED_OUT',
        code: 'NO_PROGRESS',
      });

      // Behind where it was when it timed out: still only forward.
      const behind = await report(t.m, t.deploymentId, {
        seq: t.seq + 1,
        state: 'DOWNLOADING',
        currentVersion: '1.0.0',
      });
      expect(behind.status, JSON.stringify(behind.body)).toBe(409);
      expect(behind.body.error.code).toBe('INVALID_STATE');
      expect(await stateOf(t.campaignId, t.m.id)).toBe('TIMED_OUT');

      expect(
        await reportOk(t.m, t.deploymentId, { seq: t.seq + 2, state: 'REBOOTING', currentVersion: '1.0.0' }),
      ).toMatchObject({ ok: true, state: 'REBOOTING' });
      expect(await deployment(t.campaignId, t.m.id)).toMatchObject({ state: 'REBOOTING', code: null });
      await reportOk(t.m, t.deploymentId, {
        seq: t.seq + 3,
        state: 'SUCCEEDED',
        currentVersion: t.target,
        confirmed: true,
      });
      expect(await stateOf(t.campaignId, t.m.id)).toBe('SUCCEEDED');

      const audit = await server.request(
        'GET',
        `/v1/audit?action=firmware.deployment.late_report&subjectId=${t.deploymentId}`,
      );
      expect(audit.status).toBe(200);
      expect(audit.body.items).toHaveLength(1);
      expect(audit.body.items[0]).toMatchObject({
        actor: `machine:${t.m.id}`,
        subjectType: 'firmware_deployment',
        before: { state: 'TIMED_OUT', timedOutIn: 'DOWNLOADED' },
        after: { state: 'REBOOTING' },
      });
    });

    it('a late SUCCEEDED of a deployment that timed out while REBOOTING is accepted (and audited)', async () => {
      const t = await timedOutAfter(['DOWNLOADING', 'INSTALLING', 'REBOOTING']);
      const res = await reportOk(t.m, t.deploymentId, {
        seq: t.seq,
        state: 'SUCCEEDED',
        currentVersion: t.target,
        confirmed: true,
      });
      expect(res).toMatchObject({ ok: true, state: 'SUCCEEDED' });
      const audit = await server.request('GET', `/v1/audit?subjectId=${t.deploymentId}`);
      expect(audit.body.items.map((i: any) => [i.action, i.before?.timedOutIn, i.after?.state])).toEqual([
        ['firmware.deployment.late_report', 'REBOOTING', 'SUCCEEDED'],
      ]);
    });

    it('a late report of a deployment that timed out before it started (NOTIFIED) cannot claim SUCCEEDED', async () => {
      const t = await timedOutAfter([]);
      const res = await report(t.m, t.deploymentId, {
        seq: t.seq,
        state: 'SUCCEEDED',
        currentVersion: t.target,
        confirmed: true,
      });
      expect(res.status, JSON.stringify(res.body)).toBe(409);
      expect(await stateOf(t.campaignId, t.m.id)).toBe('TIMED_OUT');
      // A late failure ends it as FAILED, as it would have before the timeout.
      await reportOk(t.m, t.deploymentId, {
        seq: t.seq + 1,
        state: 'FAILED',
        code: 'INSTALL_FAILED',
        currentVersion: '1.0.0',
      });
      expect(await deployment(t.campaignId, t.m.id)).toMatchObject({
        state: 'FAILED',
        code: 'INSTALL_FAILED',
      });
    });

    it('one deployment at a time across a revival: a later one not started waits again; one started refuses the late report', async () => {
      const m = await machine('LATE2');
      const va = version();
      const vb = version();
      // A soak keeps each RUNNING once its one device has finished (a COMPLETED campaign's
      // late reports are refused).
      const soak = { waves: [{ percent: 100, soakMinutes: 60, approval: 'auto' }] };
      const a = await create(va, [m.id], soak);
      const b = await create(vb, [m.id], soak);
      await start(a);
      await start(b);
      const da = (await eventually(async () => {
        for (const c of [a, b]) {
          const d = await deployment(c, m.id);
          if (d.state === 'NOTIFIED') return { campaignId: c, ...d };
        }
        return undefined;
      }))!;
      const [first, firstVersion, second, secondVersion] =
        da.campaignId === a ? [a, va, b, vb] : [b, vb, a, va];
      await reportOk(m, da.deploymentId, { seq: 1, state: 'DOWNLOADING', currentVersion: '1.0.0' });
      await silence(da.deploymentId);
      await waitState(first, m.id, 'TIMED_OUT');
      // The machine is free: the second campaign's deployment is released.
      await waitState(second, m.id, 'NOTIFIED');
      const db = await deployment(second, m.id);

      // The first device was only slow: its report revives it and the second waits again.
      await reportOk(m, da.deploymentId, { seq: 2, state: 'INSTALLING', currentVersion: '1.0.0' });
      expect(await stateOf(first, m.id)).toBe('INSTALLING');
      expect(await stateOf(second, m.id)).toBe('PENDING');
      await sleep(300);
      expect(await stateOf(second, m.id)).toBe('PENDING');
      expect((await next(m, '1.0.0')).body.deploymentId).toBe(da.deploymentId);
      const notStarted = await report(m, db.deploymentId, {
        seq: 1,
        state: 'DOWNLOADING',
        currentVersion: '1.0.0',
      });
      expect(notStarted.status).toBe(409);

      await reportOk(m, da.deploymentId, { seq: 3, state: 'REBOOTING', currentVersion: '1.0.0' });
      await reportOk(m, da.deploymentId, {
        seq: 4,
        state: 'SUCCEEDED',
        currentVersion: firstVersion,
        confirmed: true,
      });
      await waitState(second, m.id, 'NOTIFIED');

      // Now the second has started; the first is put through a timeout again by hand and
      // reports late: it may not take the machine back.
      await reportOk(m, db.deploymentId, { seq: 1, state: 'DOWNLOADING', currentVersion: firstVersion });
      await server.kioskhub.db
        .updateTable('firmware_deployments')
        .set({ state: 'TIMED_OUT', code: 'NO_PROGRESS', message: null })
        .where('id', '=', da.deploymentId)
        .execute();
      const refused = await report(m, da.deploymentId, {
        seq: 5,
        state: 'REBOOTING',
        currentVersion: '1.0.0',
      });
      expect(refused.status, JSON.stringify(refused.body)).toBe(409);
      expect(refused.body.error.code).toBe('INVALID_STATE');
      expect(await stateOf(first, m.id)).toBe('TIMED_OUT');
      expect(await stateOf(second, m.id)).toBe('DOWNLOADING');
      await finish(m, db.deploymentId, secondVersion, 2);
      expect(await stateOf(second, m.id)).toBe('SUCCEEDED');
    });
  });
});

// Two processes on one PostgreSQL run the ticks of different campaigns at the same moment; the
// release lock keeps them from both giving a machine a deployment.
describe.runIf(engines().includes('postgres'))('firmware campaigns review, two processes (postgres)', () => {
  const IN_PROGRESS = ['NOTIFIED', 'DOWNLOADING', 'DOWNLOADED', 'VERIFIED', 'INSTALLING', 'REBOOTING'];

  it('campaigns started at once on the same machines never have two deployments of one machine in progress', async () => {
    const schema = newSchemaName();
    const dir = tempDir('kioskhub-fwc2-');
    const env = { FIRMWARE_SIGNING_KEYS: SIGNING_KEYS, FIRMWARE_DIR: dir.path, FIRMWARE_TICK_MS: '20' };
    const one = await startServer({ engine: 'postgres', schema, env });
    const two = await startServer({ engine: 'postgres', schema, env });
    try {
      const fleet: Machine[] = [];
      for (let i = 0; i < 3; i++) fleet.push(await one.createMachine(uid('PAR'), { kind: 'kiosk' }));
      const ids: string[] = [];
      for (let i = 0; i < 6; i++) {
        const artifactId = await uploadOk(one, signedImage(`30.${i}.0`, { size: 2_000 }));
        ids.push(
          (
            await newCampaign(
              one,
              artifactId,
              fleet.map((m) => m.id),
            )
          ).id as string,
        );
      }
      const db = one.kioskhub.db;
      const rows = () =>
        db
          .selectFrom('firmware_deployments')
          .select(['id', 'machine_id', 'state'])
          .where('campaign_id', 'in', ids)
          .execute();
      const doubles: string[] = [];
      const check = async () => {
        const inProgress = (await rows()).filter((r) => IN_PROGRESS.includes(r.state));
        const perMachine = new Map<string, number>();
        for (const r of inProgress) perMachine.set(r.machine_id, (perMachine.get(r.machine_id) ?? 0) + 1);
        for (const [machineId, n] of perMachine) if (n > 1) doubles.push(`${machineId}: ${n}`);
        return inProgress;
      };
      // Started from both processes at once: their ticks run side by side.
      await Promise.all(ids.map((id, i) => act(i % 2 ? two : one, id, 'start')));
      // Each round: every machine gets one deployment; the device fails it; the next follows.
      for (let round = 0; round < ids.length; round++) {
        const inProgress = await eventually(
          async () => {
            const now = await check();
            return now.length === fleet.length || doubles.length > 0 ? now : undefined;
          },
          15_000,
          `round ${round}: one deployment per machine`,
        );
        await sleep(100);
        await check();
        expect(doubles, `round ${round}`).toEqual([]);
        for (const d of inProgress) {
          const m = fleet.find((x) => x.id === d.machine_id)!;
          const res = await (round % 2 ? two : one).request('POST', `/api/device/v1/ota/${d.id}/status`, {
            ...key(m.key),
            body: { seq: 1, state: 'FAILED', code: 'INSTALL_FAILED', currentVersion: '1.0.0' },
          });
          expect(res.status, JSON.stringify(res.body)).toBe(200);
        }
      }
      expect(doubles).toEqual([]);
      const final = await rows();
      expect(final.map((r) => r.state)).toEqual(final.map(() => 'FAILED'));
      for (const id of ids)
        await eventually(async () => ((await campaign(one, id)).status === 'COMPLETED' ? true : undefined));
    } finally {
      await two.close();
      await one.close();
      await dropSchema(schema);
      dir.remove();
    }
  }, 90_000);
});
