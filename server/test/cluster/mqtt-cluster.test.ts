// Two Kioskhub processes on one PostgreSQL, one Redis and one Mosquitto (MQTT_URL, dynamic
// security, a shared subscription): an MQTT device's session is held by one process, and work
// started through the other reaches it. A firmware campaign started there completes (the device
// is SUCCEEDED only after its reboot); a payment made there is dispensed once. Mosquitto is
// started by the test (it needs the dynamic-security plugin); without it, or without PostgreSQL
// and Redis, the file is skipped with a notice.
import { randomBytes } from 'node:crypto';
import { MqttSimulatedMachine } from '@kioskhub/machine-simulator';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HW, SIGNING_KEYS, signedImage, upload } from '../firmware-fixtures.js';
import { tempDir } from '../harness.js';
import { mosquittoMissing, startMosquitto, type MosquittoProcess } from '../mosquitto-process.js';
import {
  ADMIN_TOKEN,
  START_TIMEOUT_MS,
  createVendingMachine,
  eventually,
  http,
  metric,
  orderStatus,
  postWebhook,
  qrCredited,
  sharedServices,
  startCluster,
  type Cluster,
} from './helpers.js';

const services = sharedServices('the MQTT cluster tests (server/test/cluster/mqtt-cluster.test.ts)');
const missing = mosquittoMissing();
if (missing) console.warn(`NOTICE: the MQTT cluster tests are SKIPPED: ${missing}.`);
const suffix = randomBytes(3).toString('hex');

describe.skipIf(!services || missing !== undefined)('two processes on one Mosquitto', () => {
  let mosquitto: MosquittoProcess | undefined;
  let cluster: Cluster | undefined;
  const firmwareDir = tempDir('kioskhub-fw-cluster-');
  const sims: MqttSimulatedMachine[] = [];

  beforeAll(async () => {
    mosquitto = await startMosquitto();
    cluster = await startCluster({
      nodes: 2,
      databaseUrl: services!.databaseUrl,
      redisUrl: services!.redisUrl,
      env: {
        MQTT_URL: mosquitto.adminUrl,
        FIRMWARE_SIGNING_KEYS: SIGNING_KEYS,
        // One folder for both: the image is uploaded to one process, downloaded from either.
        FIRMWARE_DIR: firmwareDir.path,
        FIRMWARE_TICK_MS: '200',
        DISPATCH_ACK_TIMEOUT_MS: '2000',
      },
    });
  }, 3 * START_TIMEOUT_MS);

  afterAll(async () => {
    for (const s of sims) s.stop();
    await cluster?.stop();
    await mosquitto?.stop();
    firmwareDir.remove();
  }, 60_000);

  /** A device on Mosquitto; resolves with the index of the process holding its session. */
  async function connect(m: { id: string; key: string }, ota: boolean): Promise<MqttSimulatedMachine> {
    const c = cluster!;
    const sim = new MqttSimulatedMachine({
      mqttUrl: mosquitto!.url,
      machineId: m.id,
      key: m.key,
      firmware: '1.0.0',
      heartbeatMs: 1_000,
      dispenseDelayMs: 200,
      ...(ota ? { ota: { url: c.url(0), hw: HW, trustedKeys: SIGNING_KEYS, rebootMs: 5 } } : {}),
    });
    sims.push(sim);
    await sim.start();
    return sim;
  }

  /** The process whose presence holds `machineId` (each device here is alone on its process). */
  async function holder(before: number[]): Promise<number> {
    const c = cluster!;
    const found = await eventually(
      async () => {
        const now = await Promise.all(
          [0, 1].map(async (i) => (await metric(c.url(i), 'kioskhub_machines_online')) ?? 0),
        );
        const i = now.findIndex((n, j) => n === before[j]! + 1);
        return i >= 0 && now[1 - i] === before[1 - i] ? { i } : undefined;
      },
      20_000,
      'one process to hold the device',
    );
    return found.i;
  }
  const online = async () =>
    Promise.all([0, 1].map(async (i) => (await metric(cluster!.url(i), 'kioskhub_machines_online')) ?? 0));

  it(
    'a firmware campaign started on the process that does not hold the device reaches it and completes',
    { timeout: 120_000 },
    async () => {
      const c = cluster!;
      const id = `MQCF${suffix}`;
      const created = await http(c.url(0), 'POST', '/v1/machines', { body: { id, kind: 'kiosk' } });
      expect(created.status, JSON.stringify(created.body)).toBe(201);
      const before = await online();
      const sim = await connect({ id, key: created.body.key as string }, true);
      const other = 1 - (await holder(before));

      const uploaded = await upload(
        { url: c.url(other) },
        signedImage('2.0.0', { size: 20_000 }),
        ADMIN_TOKEN,
      );
      expect(uploaded.status, JSON.stringify(uploaded.body)).toBe(201);
      const artifactId = uploaded.body.id as string;
      const res = await http(c.url(other), 'POST', '/v1/firmware/campaigns', {
        body: {
          artifactId,
          target: { machineIds: [id], hwModel: HW },
          waves: [{ percent: 100, soakMinutes: 0, approval: 'auto' }],
          maxConcurrent: 10,
          failureThresholdPercent: 100,
          minFinishedForThreshold: 100,
        },
      });
      expect(res.status, JSON.stringify(res.body)).toBe(201);
      const campaignId = res.body.id as string;
      expect((await http(c.url(other), 'POST', `/v1/firmware/campaigns/${campaignId}/start`)).status).toBe(
        200,
      );

      const done = await eventually(
        async () => {
          const got = await http(c.url(other), 'GET', `/v1/firmware/campaigns/${campaignId}`);
          return got.body?.status === 'COMPLETED' ? got.body : undefined;
        },
        60_000,
        'the campaign to complete',
      );
      expect(done.counts).toEqual({ SUCCEEDED: 1 });
      expect(done.devices[0]).toMatchObject({ machineId: id, state: 'SUCCEEDED', currentVersion: '2.0.0' });
      expect(sim.firmware).toBe('2.0.0');
      expect(sim.otaCommands.length).toBeGreaterThanOrEqual(1);
      expect(new Set(sim.otaCommands.map((cmd) => cmd.commandId)).size).toBe(1);
      // The birth after the reboot, on whichever process took it, named the new version.
      await eventually(
        async () => (await http(c.url(0), 'GET', `/v1/machines/${id}`)).body.firmware === '2.0.0',
        // Presence writes machine state in batches; a loaded box (CI) needed more than 20 s once.
        60_000,
        'the machine to show firmware 2.0.0',
      );
      sim.stop();
    },
  );

  it(
    'a payment on the process that does not hold the device is dispensed over MQTT once',
    { timeout: 120_000 },
    async () => {
      const c = cluster!;
      const m = await createVendingMachine(c.url(0), `MQCP${suffix}`);
      const before = await online();
      const sim = await connect(m, false);
      const other = 1 - (await holder(before));

      const paid = await postWebhook(c.url(other), qrCredited(m.qrCodeId, 2000));
      expect(paid.status, JSON.stringify(paid.body)).toBe(200);
      const orderId = paid.body.orderId as string;
      await eventually(
        async () => (await orderStatus(c.url(other), orderId)) === 'COMPLETED',
        30_000,
        'the order to complete',
      );
      expect(sim.dispensed.map((d) => d.orderId)).toEqual([orderId]);
      sim.stop();
    },
  );
});
