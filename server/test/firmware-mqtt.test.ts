// Firmware over the air to MQTT devices (CONTRACTS §14, §15) on the embedded broker, both
// engines: a campaign reaches simulated MQTT devices through `ota.install`, their up/ota reports
// drive it (answered on down/ota) and only a confirmed reboot counts; a tampered image, an
// untrusted signature and a failed install are counted failed. Reports follow the HTTP rules.
import { mqttTopics, type MqttCommand, type MqttOtaAnswer } from '@kioskhub/protocol';
import { connectAsync, type MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { MqttSimulatedMachine, type MqttOtaOptions } from '../../machine-simulator/src/index.js';
import { engines, eventually, startServer, tempDir, type TestServer } from './harness.js';
import {
  act,
  campaign,
  HW,
  newCampaign,
  OTHER_KEY,
  SIGNING_KEYS,
  signedImage,
  uploadOk,
} from './firmware-fixtures.js';
import { MqttDevice } from './mqtt-fixtures.js';

let seq = 0;

describe.each(engines())('firmware over MQTT, embedded broker (%s)', (engine) => {
  let server: TestServer;
  const dir = tempDir('kioskhub-fw-mqtt-');
  const logs: string[] = [];
  const sims: MqttSimulatedMachine[] = [];
  const clients: MqttClient[] = [];
  const brokerUrl = () => `mqtt://127.0.0.1:${server.kioskhub.mqtt!.port()}`;

  beforeAll(async () => {
    server = await startServer({
      engine,
      logStream: { write: (line: string) => void logs.push(line) },
      env: {
        MQTT_PORT: '0',
        FIRMWARE_SIGNING_KEYS: SIGNING_KEYS,
        FIRMWARE_DIR: dir.path,
        FIRMWARE_TICK_MS: '40',
        // An ota.install without a report is published again after this.
        DISPATCH_ACK_TIMEOUT_MS: '1000',
      },
    });
  });
  afterEach(async () => {
    sims.splice(0).forEach((s) => s.stop());
    await Promise.all(clients.splice(0).map((c) => c.endAsync(true)));
  });
  afterAll(async () => {
    await server?.close();
    dir.remove();
  });

  async function machine(prefix: string) {
    return server.createMachine(`${prefix}${++seq}`, { kind: 'kiosk' });
  }
  function sim(m: { id: string; key: string }, ota: Partial<MqttOtaOptions> = {}) {
    const s = new MqttSimulatedMachine({
      mqttUrl: brokerUrl(),
      machineId: m.id,
      key: m.key,
      firmware: '1.0.0',
      heartbeatMs: 60_000,
      ota: { url: server.url, hw: HW, trustedKeys: SIGNING_KEYS, rebootMs: 5, ...ota },
    });
    sims.push(s);
    return s;
  }
  const online = (id: string) =>
    eventually(
      async () => (await server.request('GET', `/v1/machines/${id}`)).body.socketConnected === true,
      5_000,
      `${id} online`,
    );
  async function startCampaign(artifactId: string, machineIds: string[]) {
    const id = (await newCampaign(server, artifactId, machineIds)).id as string;
    expect((await act(server, id, 'start')).status).toBe(200);
    return id;
  }

  it('a campaign reaches MQTT devices: SUCCEEDED after a confirmed reboot; tampered, untrusted and failed installs count as failed', async () => {
    const artifactId = await uploadOk(server, signedImage('2.0.0', { size: 30_000 }));
    const [good1, good2, late, tampered, untrusted, broken] = await Promise.all(
      ['GOOD', 'GOOD', 'LATE', 'TAMP', 'UNTR', 'INST'].map((p) => machine(`MQO${p}`)),
    );
    const devices = {
      good1: sim(good1!),
      good2: sim(good2!, { cutAfterBytes: 12_000 }),
      late: sim(late!),
      tampered: sim(tampered!, { fault: 'tamper' }),
      untrusted: sim(untrusted!, { trustedKeys: OTHER_KEY.entry }),
      broken: sim(broken!, { fault: 'install' }),
    };
    const { late: lateSim, ...early } = devices;
    await Promise.all(Object.values(early).map((s) => s.start()));
    await Promise.all([good1, good2, tampered, untrusted, broken].map((m) => online(m!.id)));

    const id = await startCampaign(
      artifactId,
      [good1, good2, late, tampered, untrusted, broken].map((m) => m!.id),
    );
    // The late device was away when its deployment was released: its birth brings the offer.
    await eventually(
      async () =>
        (await campaign(server, id)).devices.find((d: any) => d.machineId === late!.id)?.state === 'NOTIFIED',
      10_000,
      'late device released',
    );
    await new Promise((r) => setTimeout(r, 200)); // its notify job has run and found nobody
    expect(lateSim.otaCommands).toHaveLength(0);
    await lateSim.start();
    const done = await eventually(
      async () => {
        const c = await campaign(server, id);
        return c.status === 'COMPLETED' ? c : undefined;
      },
      20_000,
      'campaign completed',
    );
    expect(done.counts).toEqual({ SUCCEEDED: 3, FAILED: 3 });
    const byId = Object.fromEntries(done.devices.map((d: any) => [d.machineId, d]));
    for (const m of [good1, good2, late]) {
      expect(byId[m!.id]).toMatchObject({ state: 'SUCCEEDED', currentVersion: '2.0.0' });
      // Rebooted into it: the birth of its new connection named the version.
      const row = (await server.request('GET', `/v1/machines/${m!.id}`)).body;
      expect(row.firmware).toBe('2.0.0');
    }
    expect(byId[tampered!.id]).toMatchObject({ state: 'FAILED', code: 'VERIFY_FAILED' });
    expect(byId[untrusted!.id]).toMatchObject({ state: 'FAILED', code: 'SIGNATURE_INVALID' });
    expect(byId[broken!.id]).toMatchObject({ state: 'FAILED', code: 'INSTALL_FAILED' });
    expect(devices.good1.firmware).toBe('2.0.0');
    for (const s of [devices.tampered, devices.untrusted, devices.broken]) expect(s.firmware).toBe('1.0.0');
    for (const s of Object.values(devices)) {
      expect(s.otaCommands.length).toBeGreaterThanOrEqual(1);
      expect(s.otaCommands[0]).toMatchObject({
        kind: 'ota.install',
        ota: { deploymentId: byId[s.machineId].deploymentId },
      });
    }
  });

  it('an ota.install the device drops is sent again with the same commandId until it reports; the PUBACK alone changes nothing', async () => {
    const artifactId = await uploadOk(server, signedImage('4.0.0', { size: 8_000 }));
    const m = await machine('MQOLOST');
    // Its MQTT client acknowledges every ota.install to the broker; the first two go no further.
    const device = sim(m, { dropOffers: 2 });
    await device.start();
    await online(m.id);
    const id = await startCampaign(artifactId, [m.id]);
    await eventually(() => device.otaCommands.length >= 1, 10_000, 'the first ota.install');
    const state = (await campaign(server, id)).devices[0].state;
    // Nothing happened for the dropped offer (unless the third send already came meanwhile).
    if (device.otaCommands.length < 3) expect(state).toBe('NOTIFIED');

    const done = await eventually(
      async () => {
        const c = await campaign(server, id);
        return c.status === 'COMPLETED' ? c : undefined;
      },
      20_000,
      'campaign completed',
    );
    expect(done.counts).toEqual({ SUCCEEDED: 1 });
    expect(done.devices[0]).toMatchObject({ state: 'SUCCEEDED', currentVersion: '4.0.0' });
    expect(device.firmware).toBe('4.0.0');
    const offers = device.otaCommands;
    expect(offers.length).toBeGreaterThanOrEqual(3);
    // One command, sent again and again: same commandId, attempt counting up, same offer.
    expect(new Set(offers.map((c) => c.commandId)).size).toBe(1);
    expect(offers[0]!.commandId).toMatch(/^dev-/);
    expect(offers.map((c) => c.attempt)).toEqual(offers.map((_, i) => i + 1));
    for (const c of offers)
      expect(c).toMatchObject({ kind: 'ota.install', ota: { deploymentId: done.devices[0].deploymentId } });
  });

  it('a deployment released again by retry-failed is a new ota.install, so a device that de-duplicates commands installs again', async () => {
    const artifactId = await uploadOk(server, signedImage('5.0.0', { size: 6_000 }));
    const m = await machine('MQOAGAIN');
    const device = sim(m, { fault: 'install' });
    const installs: string[] = [];
    device.on('ota', ({ outcome }) => installs.push(outcome));
    await device.start();
    await online(m.id);
    const id = await startCampaign(artifactId, [m.id]);
    const completed = (c: any) => (c.status === 'COMPLETED' ? c : undefined);
    // The device tells the server before its own 'ota' event: wait for both.
    const first = await eventually(
      async () => (installs.length === 1 ? completed(await campaign(server, id)) : undefined),
      20_000,
      'first release',
    );
    expect(first.counts).toEqual({ FAILED: 1 });
    expect(installs).toHaveLength(1);

    expect((await act(server, id, 'retry-failed')).status).toBe(200);
    const second = await eventually(
      async () => (installs.length === 2 ? completed(await campaign(server, id)) : undefined),
      20_000,
      'second release',
    );
    expect(second.devices[0]).toMatchObject({ state: 'FAILED', code: 'INSTALL_FAILED' });
    // One command per release: the device, which answers a command it has finished with its old
    // result, took the second one as new.
    const ids = [...new Set(device.otaCommands.map((c) => c.commandId))];
    expect(ids).toHaveLength(2);
    expect(device.otaCommands.filter((c) => c.commandId === ids[1])[0]).toMatchObject({ attempt: 1 });
  });

  it('answers up/ota reports on down/ota with the HTTP rules, and changes nothing for bad ones', async () => {
    const artifactId = await uploadOk(server, signedImage('3.0.0', { size: 5_000 }));
    const [a, b] = await Promise.all([machine('MQOA'), machine('MQOB')]);
    const raw = async (m: { id: string; key: string }) => {
      const c = await connectAsync(brokerUrl(), {
        clientId: m.id,
        username: m.id,
        password: m.key,
        reconnectPeriod: 0,
      });
      clients.push(c);
      const got = { commands: [] as MqttCommand[], answers: [] as MqttOtaAnswer[] };
      c.on('message', (topic, payload) => {
        const body = JSON.parse(payload.toString('utf8'));
        if (topic === mqttTopics.otaAnswer(m.id)) got.answers.push(body);
        else if (topic.startsWith(`${mqttTopics.downPrefix(m.id)}cmd/`)) got.commands.push(body);
      });
      await c.subscribeAsync(`${mqttTopics.downPrefix(m.id)}#`, { qos: 1 });
      await c.publishAsync(mqttTopics.status(m.id), JSON.stringify({ online: true, firmware: '1.0.0' }), {
        qos: 1,
        retain: true,
      });
      return { c, got };
    };
    const devA = await raw(a!);
    const devB = await raw(b!);
    await online(a!.id);
    const id = await startCampaign(artifactId, [a!.id]);
    const cmd = await eventually(() => devA.got.commands[0], 10_000, 'ota.install');
    expect(cmd).toMatchObject({ kind: 'ota.install', attempt: 1 });
    expect(cmd.commandId.startsWith('dev-')).toBe(true);
    const deploymentId = (cmd.ota as { deploymentId: string }).deploymentId;
    // The device has the command: a report on it changes nothing in the order queue.
    await devA.c.publishAsync(
      mqttTopics.commandReport(a!.id, cmd.commandId),
      JSON.stringify({ phase: 'received' }),
      {
        qos: 1,
      },
    );

    const send = async (dev: typeof devA, machineId: string, body: Record<string, unknown>) => {
      const before = dev.got.answers.length;
      await dev.c.publishAsync(mqttTopics.ota(machineId), JSON.stringify(body), { qos: 1 });
      return eventually(() => dev.got.answers[before], 5_000, `answer to ${JSON.stringify(body)}`);
    };
    const report = {
      deploymentId,
      seq: 10,
      state: 'DOWNLOADING',
      bytes: 0,
      total: 5_000,
      currentVersion: '1.0.0',
    };
    expect(await send(devA, a!.id, report)).toEqual({
      deploymentId,
      seq: 10,
      ok: true,
      state: 'DOWNLOADING',
    });
    expect(await send(devA, a!.id, report)).toMatchObject({ seq: 10, ok: true, duplicate: true });
    expect(
      await send(devA, a!.id, {
        ...report,
        seq: 11,
        state: 'SUCCEEDED',
        currentVersion: '3.0.0',
        confirmed: true,
      }),
    ).toMatchObject({ seq: 11, ok: false, error: { code: 'INVALID_STATE' } });
    expect(await send(devA, a!.id, { ...report, seq: 12, state: 'EXPLODED' })).toMatchObject({
      seq: 12,
      ok: false,
      error: { code: 'VALIDATION_FAILED' },
    });
    expect(await send(devA, a!.id, { ...report, seq: 13, extra: 1 })).toMatchObject({
      ok: false,
      error: { code: 'VALIDATION_FAILED' },
    });
    // The topic says what it is: a `commandId` field does not make an up/ota report a command report.
    expect(await send(devA, a!.id, { ...report, seq: 15, commandId: cmd.commandId })).toMatchObject({
      deploymentId,
      seq: 15,
      ok: false,
      error: { code: 'VALIDATION_FAILED' },
    });
    // Another machine cannot report on this deployment.
    expect(await send(devB, b!.id, { ...report, seq: 14, state: 'DOWNLOADED' })).toMatchObject({
      ok: false,
      error: { code: 'NOT_FOUND' },
    });
    await devA.c.publishAsync(mqttTopics.ota(a!.id), 'not json', { qos: 1 });
    await new Promise((r) => setTimeout(r, 200));
    const c = await campaign(server, id);
    expect(c.devices[0]).toMatchObject({ machineId: a!.id, state: 'DOWNLOADING', currentVersion: '1.0.0' });
    expect(
      logs.filter((l) => l.includes('bad message from a device ignored') && l.includes(a!.id)).length,
    ).toBe(4);
    expect(devB.got.commands).toHaveLength(0);
    await act(server, id, 'abort');
  });
  it('nothing is offered before the connection’s birth: the skip rules are judged by what the device says in it', async () => {
    const artifactId = await uploadOk(server, signedImage('2.0.0', { size: 4_000 }));
    const m = (await machine('MQBIRTH'))!;
    // Connected and subscribed (the embedded broker's session starts at CONNECT), no birth yet.
    const d = await MqttDevice.connect(brokerUrl(), m.id, m.key, { birth: false });
    clients.push(d.client);
    await online(m.id);
    const id = await startCampaign(artifactId, [m.id]);
    const state = async () => (await campaign(server, id)).devices[0] as { state: string; code?: string };
    await eventually(async () => (await state()).state === 'NOTIFIED', 10_000, 'device released');
    // The release's notify job has run: it found the session, but no birth in it.
    await eventually(
      async () =>
        (
          await server.kioskhub.db
            .selectFrom('outbox')
            .select('id')
            .where('topic', '=', 'firmware_notify')
            .execute()
        ).length === 0,
      10_000,
      'notify job done',
    );
    expect(d.commands).toHaveLength(0);
    // The birth names another hardware model: SKIPPED, and never offered.
    await d.publish(mqttTopics.status(m.id), {
      online: true,
      bootId: d.bootId,
      firmware: '1.0.0',
      hw: 'other-board',
    });
    await eventually(async () => (await state()).state === 'SKIPPED', 10_000, 'device skipped');
    expect(await state()).toMatchObject({ state: 'SKIPPED', code: 'HW_MISMATCH' });
    expect(d.commands).toHaveLength(0);
  });
  it('ota.install follows the skip rules of `next`: a device on the target, newer, below minFromVersion or of another hw is SKIPPED with the same code and offered nothing', async () => {
    const artifactId = await uploadOk(server, signedImage('2.0.0', { size: 4_000, minFromVersion: '1.5.0' }));
    const [same, newer, old, otherHw, fits, late] = await Promise.all(
      ['SAME', 'NEWER', 'OLD', 'HW', 'FITS', 'LATE'].map((p) => machine(`MQSK${p}`)),
    );
    // A device's birth names its firmware and (optionally) its hardware model.
    const connect = async (m: { id: string; key: string }, birth: Record<string, unknown>) => {
      const d = await MqttDevice.connect(brokerUrl(), m.id, m.key, { birth: false });
      clients.push(d.client);
      await d.publish(mqttTopics.status(m.id), { online: true, bootId: d.bootId, ...birth });
      await online(m.id);
      // The embedded broker's session starts at CONNECT: wait until the birth itself was handled.
      await eventually(
        async () => (await server.request('GET', `/v1/machines/${m.id}`)).body.firmware === birth['firmware'],
        10_000,
        `${m.id}'s birth handled`,
      );
      return d;
    };
    const devices = {
      same: await connect(same!, { firmware: '2.0.0', hw: HW }),
      newer: await connect(newer!, { firmware: '3.0.0' }),
      old: await connect(old!, { firmware: '1.0.0', hw: HW }),
      otherHw: await connect(otherHw!, { firmware: '1.6.0', hw: 'other-board' }),
      fits: await connect(fits!, { firmware: '1.6.0', hw: HW }),
    };
    const id = await startCampaign(
      artifactId,
      [same, newer, old, otherHw, fits, late].map((m) => m!.id),
    );
    // The late device was away at the release: its birth is where the rules are applied.
    await eventually(
      async () =>
        (await campaign(server, id)).devices.find((d: any) => d.machineId === late!.id)?.state === 'NOTIFIED',
      10_000,
      'late device released',
    );
    const lateDevice = await connect(late!, { firmware: '3.0.0', hw: HW });
    const offer = await devices.fits.nth(0);
    expect(offer).toMatchObject({ kind: 'ota.install' });
    const byId = await eventually(
      async () => {
        const c = await campaign(server, id);
        const skipped = c.devices.filter((d: any) => d.state === 'SKIPPED');
        return skipped.length === 5
          ? Object.fromEntries(c.devices.map((d: any) => [d.machineId, d]))
          : undefined;
      },
      10_000,
      'five devices skipped',
    );
    expect(byId[same!.id]).toMatchObject({
      state: 'SKIPPED',
      code: 'ALREADY_CURRENT',
      currentVersion: '2.0.0',
    });
    expect(byId[newer!.id]).toMatchObject({
      state: 'SKIPPED',
      code: 'DOWNGRADE_NOT_ALLOWED',
      currentVersion: '3.0.0',
    });
    expect(byId[old!.id]).toMatchObject({
      state: 'SKIPPED',
      code: 'VERSION_TOO_OLD',
      currentVersion: '1.0.0',
    });
    expect(byId[otherHw!.id]).toMatchObject({ state: 'SKIPPED', code: 'HW_MISMATCH' });
    expect(byId[late!.id]).toMatchObject({ state: 'SKIPPED', code: 'DOWNGRADE_NOT_ALLOWED' });
    expect(byId[fits!.id]).toMatchObject({ state: 'NOTIFIED' });
    expect((offer.ota as { deploymentId: string }).deploymentId).toBe(byId[fits!.id].deploymentId);
    // Past a re-send interval: still nothing for the skipped ones.
    await new Promise((r) => setTimeout(r, 1_200));
    for (const d of [devices.same, devices.newer, devices.old, devices.otherHw, lateDevice])
      expect(d.commands).toHaveLength(0);
    await act(server, id, 'abort');
  });
});
