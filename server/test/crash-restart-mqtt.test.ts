// A hard kill (SIGKILL) of the real server process while an MQTT machine is in the middle of a
// dispense, with the embedded broker and with an external Mosquitto: the order is dispensed once.
import { MqttSimulatedMachine } from '@kioskhub/machine-simulator';
import { describe, expect, it } from 'vitest';
import { engines, eventually, qrCredited, type Engine } from './harness.js';
import { mosquittoMissing, startMosquitto, type MosquittoProcess } from './mosquitto-process.js';
import {
  freePort,
  http,
  startServerProcess,
  storageFor,
  createVendingMachine,
  postWebhook,
  orderStatus,
  type ServerProcess,
} from './crash-kit.js';

// Two brokers. The embedded one lives in the server process: the kill takes it down too, and the
// machine reconnects to the restarted one. An external Mosquitto (dynamic security, MQTT_URL)
// outlives the kill: the machine stays connected to it, a result it publishes while no server
// listens is lost, and the restarted server (alone: it reads the retained births) holds the
// machine again and re-sends the command. Mosquitto is started by the test (mosquitto-process.ts).
const mosquittoAbsent = mosquittoMissing();
if (mosquittoAbsent) console.warn(`NOTICE: hard kill over Mosquitto is SKIPPED: ${mosquittoAbsent}.`);

type KillBroker = 'embedded broker' | 'Mosquitto';
/** When the machine finishes the dispense: after the restart, or while no server runs. */
type Finish = 'after the restart' | 'while the server is down';
const mqttKillCases: [KillBroker, Finish, Engine][] = engines().flatMap((engine) => [
  ['embedded broker', 'after the restart', engine] as [KillBroker, Finish, Engine],
  ['Mosquitto', 'after the restart', engine] as [KillBroker, Finish, Engine],
  ['Mosquitto', 'while the server is down', engine] as [KillBroker, Finish, Engine],
]);

describe.each(mqttKillCases)(
  'hard kill while an MQTT machine is mid-dispense (%s, finishing %s, %s)',
  (broker, finish, engine) => {
    it.skipIf(broker === 'Mosquitto' && mosquittoAbsent !== undefined)(
      'after the restart the command is re-sent over MQTT with the same commandId and dispensed once',
      { timeout: 180_000 },
      async () => {
        const storage = await storageFor(engine);
        let mosquitto: MosquittoProcess | undefined;
        let server: ServerProcess | undefined;
        let machine: MqttSimulatedMachine | undefined;
        try {
          let env: Record<string, string>;
          let deviceUrl: string;
          if (broker === 'Mosquitto') {
            mosquitto = await startMosquitto();
            env = { ...storage.env, MQTT_URL: mosquitto.adminUrl, DISPATCH_ACK_TIMEOUT_MS: '2000' };
            deviceUrl = mosquitto.url;
          } else {
            const mqttPort = await freePort();
            env = { ...storage.env, MQTT_PORT: String(mqttPort), DISPATCH_ACK_TIMEOUT_MS: '2000' };
            deviceUrl = `mqtt://127.0.0.1:${mqttPort}`;
          }
          const startedAt = Date.now();
          server = await startServerProcess(env);
          const startupMs = Date.now() - startedAt;
          const m = await createVendingMachine(server.url, 'CRASHMQ');
          const dispenseDelayMs =
            finish === 'after the restart' ? Math.max(8_000, 2 * startupMs + 6_000) : 3_000;
          // The broker side is up before the server answers HTTP, and a machine created through it
          // has its broker login at once: no retry.
          machine = new MqttSimulatedMachine({
            mqttUrl: deviceUrl,
            machineId: m.id,
            key: m.key,
            dispenseDelayMs,
            heartbeatMs: 500,
          });
          await machine.start();
          const paid = await postWebhook(server.url, qrCredited(m.qrCodeId, 2000));
          expect(paid.status).toBe(200);
          const orderId = paid.body.orderId as string;
          // DISPATCHED: the machine said `received` and is now dispensing (for dispenseDelayMs).
          await eventually(
            async () => (await orderStatus(server!.url, orderId)) === 'DISPATCHED',
            20_000,
            'the order to be DISPATCHED over MQTT',
          );
          expect(machine.dispensed).toEqual([]);

          await server.hardKill();
          if (finish === 'while the server is down') {
            // Its `done` goes to the broker with no server to take it.
            await eventually(() => machine!.dispensed.length === 1, 20_000, 'the dispense to end');
          }
          server = await startServerProcess(env);

          await eventually(
            async () => (await orderStatus(server!.url, orderId)) === 'COMPLETED',
            dispenseDelayMs + 30_000,
            'the order to complete after the restart',
          );
          // One dispense, of that order's one command: whatever the restarted server re-sent was
          // answered as a repeat, never run again.
          expect(machine.dispensed).toHaveLength(1);
          expect(machine.dispensed[0]).toMatchObject({ orderId, status: 'SUCCESS' });
          const timeline = await http(server.url, 'GET', `/v1/orders/${orderId}/timeline`);
          const items = timeline.body.items as { type: string; detail?: { commandId?: string } }[];
          expect(items.filter((e) => e.type === 'dispensed')).toHaveLength(1);
          // Every send of this order, before and after the kill, carried the one commandId.
          const sent = new Set(items.map((e) => e.detail?.commandId).filter((c) => c !== undefined));
          expect([...sent]).toEqual([machine.dispensed[0]!.commandId]);
        } finally {
          machine?.stop();
          await server?.hardKill();
          await mosquitto?.stop();
          await storage.cleanup();
        }
      },
    );
  },
);
