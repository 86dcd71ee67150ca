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
// The restarted server finds the dispatched command in its database: the embedded-broker case runs
// on each engine. What Mosquitto adds (the machine stays connected, retained births, a result
// published to nobody) does not depend on the engine: those cases run on SQLite, each one process
// start-up pair fewer.
const mqttKillCases: [KillBroker, Finish, Engine][] = [
  ...engines().map(
    (engine) => ['embedded broker', 'after the restart', engine] as [KillBroker, Finish, Engine],
  ),
  ['Mosquitto', 'after the restart', 'sqlite'],
  ['Mosquitto', 'while the server is down', 'sqlite'],
];

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
          server = await startServerProcess(env);
          const m = await createVendingMachine(server.url, 'CRASHMQ');
          // The broker side is up before the server answers HTTP, and a machine created through it
          // has its broker login at once: no retry. The dispense runs until the test ends it: after
          // the restarted server has sent the command again, or while no server runs.
          machine = new MqttSimulatedMachine({
            mqttUrl: deviceUrl,
            machineId: m.id,
            key: m.key,
            holdDispense: true,
            heartbeatMs: 500,
          });
          await machine.start();
          const paid = await postWebhook(server.url, qrCredited(m.qrCodeId, 2000));
          expect(paid.status).toBe(200);
          const orderId = paid.body.orderId as string;
          // DISPATCHED: the machine said `received` and is now dispensing (until released).
          await eventually(
            async () => (await orderStatus(server!.url, orderId)) === 'DISPATCHED',
            20_000,
            'the order to be DISPATCHED over MQTT',
          );
          expect(machine.dispensed).toEqual([]);

          const sentBeforeKill = machine.commands.length;
          await server.hardKill();
          if (finish === 'while the server is down') {
            // Its `done` goes to the broker with no server to take it.
            expect(machine.releaseDispense()).toBe(1);
            expect(machine.dispensed).toHaveLength(1);
          }
          server = await startServerProcess(env);
          if (finish === 'after the restart') {
            // The restarted server holds the machine again and sends the command once more; the
            // machine, still dispensing, answers `received`, and only then finishes.
            await eventually(
              () => machine!.commands.length > sentBeforeKill,
              30_000,
              'the command to be sent again after the restart',
            );
            expect(machine.dispensed).toEqual([]);
            expect(machine.releaseDispense()).toBe(1);
          }

          await eventually(
            async () => (await orderStatus(server!.url, orderId)) === 'COMPLETED',
            30_000,
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
