// An external Mosquitto 2.x with dynamic security (MQTT_URL, CONTRACTS §14): Kioskhub manages a
// client and role per machine and takes device messages through a shared subscription. The
// test starts its own Mosquitto on an ephemeral port and skips, visibly, when none is installed.
import { expect, it } from 'vitest';
import { MqttSimulatedMachine } from '../../machine-simulator/src/index.js';
import { act, campaign, HW, SIGNING_KEYS, signedImage, uploadOk } from './firmware-fixtures.js';
import { eventually, qrCredited, tempDir } from './harness.js';
import { startMosquitto, mosquittoMissing } from './mosquitto-process.js';
import {
  describeMqtt,
  EXPIRY_ENV,
  expiryScenario,
  MqttDevice,
  mqttScenarios,
  type SuiteBroker,
} from './mqtt-fixtures.js';

const missing = mosquittoMissing();
if (missing) console.warn(`NOTICE: Mosquitto tests are SKIPPED: ${missing}.`);

/** A private Mosquitto, and firmware storage for the OTA test. */
async function mosquitto(): Promise<SuiteBroker> {
  const broker = await startMosquitto();
  const firmwareDir = tempDir('kioskhub-fw-mosq-');
  return {
    env: {
      MQTT_URL: broker.adminUrl,
      FIRMWARE_SIGNING_KEYS: SIGNING_KEYS,
      FIRMWARE_DIR: firmwareDir.path,
      FIRMWARE_TICK_MS: '40',
    },
    deviceUrl: () => broker.url,
    async stop() {
      await broker.stop();
      firmwareDir.remove();
    },
  };
}

describeMqtt(
  'MQTT, external Mosquitto',
  { broker: mosquitto, skip: missing !== undefined },
  (ctx, devices) => {
    mqttScenarios(ctx, 'MQ', devices);

    it('keeps one dynamic-security client and role per machine', async () => {
      const server = ctx.server();
      const m = await server.createMachine('MQDYN');
      const dynsec = server.kioskhub.mqtt!.dynsec()!;
      const [client] = await dynsec([{ command: 'getClient', username: m.id }]);
      expect(client?.error).toBeUndefined();
      const data = client?.data as {
        client: { username: string; clientid?: string; roles: { rolename: string }[] };
      };
      expect(data.client.username).toBe(m.id);
      expect(data.client.clientid).toBe(m.id);
      expect(data.client.roles.map((r) => r.rolename)).toEqual(['kh-machine-MQDYN']);
      await server.kioskhub.mqtt!.machineDeleted(m.id);
      const [gone] = await dynsec([{ command: 'getClient', username: m.id }]);
      expect(gone?.error).toMatch(/not found/i);
      await expect(MqttDevice.connect(ctx.brokerUrl(), m.id, m.key)).rejects.toThrow();
    });

    it('a device that reconnects after the will is online again with its birth', async () => {
      const server = ctx.server();
      const m = await server.createMachine('MQWILL');
      const machine = async () => (await server.request('GET', `/v1/machines/${m.id}`)).body;
      const d = await MqttDevice.connect(ctx.brokerUrl(), m.id, m.key);
      await eventually(async () => (await machine()).socketConnected === true, 5_000, 'online');
      d.drop();
      await eventually(async () => (await machine()).status === 'OFFLINE', 10_000, 'offline');
      devices.push(await MqttDevice.connect(ctx.brokerUrl(), m.id, m.key));
      await eventually(async () => (await machine()).socketConnected === true, 5_000, 'online again');
    });

    it('two machines whose devices use the same bootId keep their own sessions: commands reach each, a will ends only its own', async () => {
      const server = ctx.server();
      const [a, b] = await Promise.all(['MQBOOTA', 'MQBOOTB'].map((id) => server.createVendingMachine(id)));
      const machine = async (id: string) => (await server.request('GET', `/v1/machines/${id}`)).body;
      // A bootId is only new per machine: "b1-c1" (boot 1, connection 1) is a fine choice for both.
      const da = await MqttDevice.connect(ctx.brokerUrl(), a!.id, a!.key, { bootId: 'b1-c1' });
      devices.push(da);
      await eventually(async () => (await machine(a!.id)).socketConnected === true, 5_000, 'A online');
      const db = await MqttDevice.connect(ctx.brokerUrl(), b!.id, b!.key, { bootId: 'b1-c1' });
      devices.push(db);
      await eventually(async () => (await machine(b!.id)).socketConnected === true, 5_000, 'B online');

      const paid = await server.postWebhook(qrCredited(a!.qrCodeId, 2000));
      expect(paid.status).toBe(200);
      expect(await da.nth(0)).toMatchObject({ kind: 'dispense', orderId: paid.body.orderId });
      expect(db.commands).toHaveLength(0);

      da.drop();
      await eventually(
        async () => (await machine(a!.id)).status === 'OFFLINE',
        10_000,
        'A offline after its will',
      );
      expect((await machine(b!.id)).socketConnected).toBe(true);
    });

    it('firmware reaches devices through Mosquitto: ota.install, up/ota answered on down/ota, a reboot as a new session', async () => {
      const server = ctx.server();
      const artifactId = await uploadOk(server, signedImage('2.0.0', { size: 20_000 }));
      const [good, tampered] = await Promise.all(['MQFWOK', 'MQFWBAD'].map((id) => server.createMachine(id)));
      const sims = [good!, tampered!].map(
        (m, i) =>
          new MqttSimulatedMachine({
            mqttUrl: ctx.brokerUrl(),
            machineId: m.id,
            key: m.key,
            firmware: '1.0.0',
            heartbeatMs: 60_000,
            ota: {
              url: server.url,
              hw: HW,
              trustedKeys: SIGNING_KEYS,
              rebootMs: 5,
              ...(i === 1 ? { fault: 'tamper' as const } : {}),
            },
          }),
      );
      try {
        await Promise.all(sims.map((s) => s.start()));
        for (const m of [good!, tampered!])
          await eventually(
            async () => (await server.request('GET', `/v1/machines/${m.id}`)).body.socketConnected === true,
            5_000,
            `${m.id} online`,
          );
        const created = await server.request('POST', '/v1/firmware/campaigns', {
          body: {
            artifactId,
            target: { machineIds: [good!.id, tampered!.id], hwModel: HW },
            waves: [{ percent: 100, soakMinutes: 0, approval: 'auto' }],
            maxConcurrent: 10,
            failureThresholdPercent: 100,
            minFinishedForThreshold: 100,
          },
        });
        expect(created.status).toBe(201);
        await act(server, created.body.id as string, 'start');
        const done = await eventually(
          async () => {
            const c = await campaign(server, created.body.id as string);
            return c.status === 'COMPLETED' ? c : undefined;
          },
          15_000,
          'campaign completed',
        );
        expect(done.counts).toEqual({ SUCCEEDED: 1, FAILED: 1 });
        const byId = Object.fromEntries(done.devices.map((d: any) => [d.machineId, d]));
        expect(byId[good!.id]).toMatchObject({ state: 'SUCCEEDED', currentVersion: '2.0.0' });
        expect(byId[tampered!.id]).toMatchObject({ state: 'FAILED', code: 'VERIFY_FAILED' });
        await eventually(
          async () => (await server.request('GET', `/v1/machines/${good!.id}`)).body.firmware === '2.0.0',
          5_000,
          'new firmware from the birth after the reboot',
        );
      } finally {
        sims.forEach((s) => s.stop());
      }
    });
  },
);

describeMqtt(
  'MQTT, external Mosquitto, command expiry',
  { broker: mosquitto, env: EXPIRY_ENV, skip: missing !== undefined },
  (ctx, devices) => expiryScenario(ctx, 'MQX', devices),
);
