// Found by following README.md, docs/mqtt.md and docs/firmware.md as an operator (the MQTT and
// firmware-campaign walkthrough of 2026-12-05), and fixed: what the docs say, on both engines.
import { mqttTopics, type MqttCommand, type MqttOtaAnswer } from '@kioskhub/protocol';
import { connectAsync, type MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { engines, eventually, startServer, tempDir, type TestServer } from './harness.js';
import { act, campaign, HW, newCampaign, SIGNING_KEYS, signedImage, uploadOk } from './firmware-fixtures.js';

let seq = 0;

describe.each(engines())('MQTT and firmware walkthrough defects (%s)', (engine) => {
  let server: TestServer;
  const dir = tempDir('kioskhub-walk-mqtt-');
  const clients: MqttClient[] = [];
  const brokerUrl = () => `mqtt://127.0.0.1:${server.kioskhub.mqtt!.port()}`;

  beforeAll(async () => {
    server = await startServer({
      engine,
      env: {
        MQTT_PORT: '0',
        FIRMWARE_SIGNING_KEYS: SIGNING_KEYS,
        FIRMWARE_DIR: dir.path,
        FIRMWARE_TICK_MS: '40',
      },
    });
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.endAsync(true)));
  });
  afterAll(async () => {
    await server?.close();
    dir.remove();
  });

  /** A device as docs/mqtt.md describes it: client id = username = machine id, birth after subscribing. */
  async function device(m: { id: string; key: string }, firmware: string) {
    const bootId = `boot-${Math.random().toString(36).slice(2, 10)}`;
    const c = await connectAsync(brokerUrl(), {
      clientId: m.id,
      username: m.id,
      password: m.key,
      clean: true,
      reconnectPeriod: 0,
      will: {
        topic: mqttTopics.status(m.id),
        payload: Buffer.from(JSON.stringify({ online: false, bootId })),
        qos: 1,
        retain: true,
      },
    });
    clients.push(c);
    const got = { commands: [] as MqttCommand[], answers: [] as MqttOtaAnswer[] };
    c.on('message', (topic, payload) => {
      const body = JSON.parse(payload.toString('utf8'));
      if (topic === mqttTopics.otaAnswer(m.id)) got.answers.push(body);
      else if (topic.startsWith(`${mqttTopics.downPrefix(m.id)}cmd/`)) got.commands.push(body);
    });
    await c.subscribeAsync(`${mqttTopics.downPrefix(m.id)}#`, { qos: 1 });
    await c.publishAsync(
      mqttTopics.status(m.id),
      JSON.stringify({ online: true, firmware, bootId, hw: HW }),
      {
        qos: 1,
        retain: true,
      },
    );
    const report = async (body: Record<string, unknown>) => {
      const before = got.answers.length;
      await c.publishAsync(mqttTopics.ota(m.id), JSON.stringify(body), { qos: 1 });
      return eventually(() => got.answers[before], 5_000, `answer to ${JSON.stringify(body)}`);
    };
    return { c, got, report };
  }

  it('docs/mqtt.md "The reboot": SUCCEEDED counts only after a birth that names the new firmware', async () => {
    // docs/mqtt.md, Firmware updates over MQTT, step 6: "After REBOOTING the device restarts into the
    // new image, connects again, and its birth names the new firmware; then it reports SUCCEEDED
    // with confirmed: true. Only that counts as updated." (firmware.md: "Reboot means: a new MQTT
    // connection whose birth names the new firmware, then SUCCEEDED.")
    const artifactId = await uploadOk(server, signedImage('2.0.0', { size: 3_000 }));
    const m = await server.createMachine(`WTMREBOOT${++seq}`, { kind: 'kiosk' });
    const first = await device(m, '1.0.0');
    await eventually(
      async () => (await server.request('GET', `/v1/machines/${m.id}`)).body.socketConnected === true,
      5_000,
      'online',
    );
    const id = (await newCampaign(server, artifactId, [m.id])).id as string;
    expect((await act(server, id, 'start')).status).toBe(200);
    const cmd = await eventually(() => first.got.commands[0], 10_000, 'ota.install');
    const deploymentId = (cmd.ota as { deploymentId: string }).deploymentId;
    await first.c.publishAsync(
      mqttTopics.commandReport(m.id, cmd.commandId),
      JSON.stringify({ phase: 'received' }),
      {
        qos: 1,
      },
    );
    let s = 0;
    for (const state of ['DOWNLOADING', 'DOWNLOADED', 'VERIFIED', 'INSTALLING', 'REBOOTING'])
      expect(await first.report({ deploymentId, seq: ++s, state, currentVersion: '1.0.0' })).toMatchObject({
        ok: true,
        state,
      });
    // The device restarts, but the bootloader came back on the old image: its birth says 1.0.0.
    await first.c.endAsync(true);
    const again = await device(m, '1.0.0');
    await eventually(
      async () => (await server.request('GET', `/v1/machines/${m.id}`)).body.socketConnected === true,
      5_000,
      'online again',
    );
    expect((await server.request('GET', `/v1/machines/${m.id}`)).body.firmware).toBe('1.0.0');
    // A firmware bug still claims success: no birth has named 2.0.0, so it must not count.
    const answer = await again.report({
      deploymentId,
      seq: ++s,
      state: 'SUCCEEDED',
      currentVersion: '2.0.0',
      confirmed: true,
    });
    const c = await campaign(server, id);
    expect({ ok: answer.ok, state: c.devices[0].state }).toEqual({ ok: false, state: 'REBOOTING' });
  });

  it('api.md §1: firmware lists page with limit and cursor (limit=1 gives one item and a nextCursor)', async () => {
    const artifactIds = [
      await uploadOk(server, signedImage('5.0.0', { size: 1_000 })),
      await uploadOk(server, signedImage('5.0.1', { size: 1_000 })),
    ];
    const m = await server.createMachine(`WTMLIST${++seq}`, { kind: 'kiosk' });
    await newCampaign(server, artifactIds[0]!, [m.id]);
    await newCampaign(server, artifactIds[1]!, [m.id]);
    for (const path of ['/v1/firmware/campaigns', '/v1/firmware']) {
      const page = await server.request('GET', `${path}?limit=1`);
      expect({ path, status: page.status, items: page.body.items?.length }).toEqual({
        path,
        status: 200,
        items: 1,
      });
      expect(page.body.nextCursor, path).toEqual(expect.any(String));
      // The next page follows on, newest first, without repeating the first.
      const next = await server.request('GET', `${path}?limit=1&cursor=${page.body.nextCursor}`);
      expect(next.status, path).toBe(200);
      expect(next.body.items, path).toHaveLength(1);
      expect(next.body.items[0].id < page.body.items[0].id, path).toBe(true);
      // A cursor that is not a nextCursor of this list is 400, never a first page.
      expect((await server.request('GET', `${path}?cursor=garbage`)).status, path).toBe(400);
      // "limit is 1–200": anything else is 400 VALIDATION_FAILED, never a page.
      expect((await server.request('GET', `${path}?limit=0`)).status, path).toBe(400);
    }
  });

  it('api.md §2: the shape is checked first (400 without a credential), a well-formed request without one is 401; nothing changes', async () => {
    const before = (await server.request('GET', '/v1/firmware/campaigns?limit=200')).body.items.length;
    const bad = await server.request('POST', '/v1/firmware/campaigns', { body: {}, token: null });
    expect({ status: bad.status, code: bad.body.error?.code }).toEqual({
      status: 400,
      code: 'VALIDATION_FAILED',
    });
    const artifactId = await uploadOk(server, signedImage('5.1.0', { size: 1_000 }));
    const m = await server.createMachine(`WTMAUTH${++seq}`, { kind: 'kiosk' });
    const body = {
      artifactId,
      target: { machineIds: [m.id], hwModel: HW },
      waves: [{ percent: 100, soakMinutes: 0, approval: 'auto' }],
      maxConcurrent: 100,
      failureThresholdPercent: 100,
      minFinishedForThreshold: 1000,
    };
    const anonymous = await server.request('POST', '/v1/firmware/campaigns', { body, token: null });
    expect({ status: anonymous.status, code: anonymous.body.error?.code }).toEqual({
      status: 401,
      code: 'UNAUTHORIZED',
    });
    expect((await server.request('GET', '/v1/firmware/campaigns?limit=200')).body.items).toHaveLength(before);
  });

  it('api.md §2: an action outside the list names the allowed ones', async () => {
    const artifactId = await uploadOk(server, signedImage('6.0.0', { size: 1_000 }));
    const m = await server.createMachine(`WTMACT${++seq}`, { kind: 'kiosk' });
    const id = (await newCampaign(server, artifactId, [m.id])).id as string;
    const res = await act(server, id, 'explode');
    expect(res.status).toBe(400);
    expect(res.body.error.message).toMatch(/retry-failed/);
  });
});
