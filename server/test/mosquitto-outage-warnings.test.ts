// Mosquitto going away under a running server (MQTT_URL set): Kioskhub's broker client retries
// every second, each attempt an error and a trip offline. The log gets one warning of each kind a
// minute (the next one saying how many were held back), not a line per attempt.
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { connectMosquitto, type Mosquitto } from '../src/modules/mqtt/mosquitto.js';
import { sleep } from './cluster/helpers.js';
import { mosquittoMissing, startMosquitto, type MosquittoProcess } from './mosquitto-process.js';

const missing = mosquittoMissing();
if (missing) console.warn(`NOTICE: the Mosquitto outage warning test is SKIPPED: ${missing}.`);

let broker: MosquittoProcess | undefined;
let gateway: Mosquitto | undefined;
afterEach(async () => {
  await gateway?.close().catch(() => undefined);
  await broker?.stop().catch(() => undefined);
  gateway = undefined;
  broker = undefined;
});

describe.skipIf(missing !== undefined)(
  'Mosquitto going away while the server runs',
  { timeout: 60_000 },
  () => {
    it('logs the broker connection problems at most once a minute each, not once per retry', async () => {
      broker = await startMosquitto();
      const lines: { level: number; msg: string }[] = [];
      const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
      gateway = await connectMosquitto({ url: broker.adminUrl, nodeId: 'outage', logger });
      await broker.stop();
      broker = undefined;
      // The client retries every second: six seconds are five or more failed attempts.
      await sleep(6_000);
      const warned = (msg: string) => lines.filter((l) => l.level === 40 && l.msg === msg).length;
      expect(warned('mqtt: broker unreachable; reconnecting')).toBe(1);
      expect(warned('mqtt: broker connection error')).toBeLessThanOrEqual(1);
    });
  },
);
