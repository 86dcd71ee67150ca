// CLI: `npm run simulator:ota -- --machine M01 --key <key> --version 1.0.0 --hw esp32 --keys <id:spki>`
// runs one simulated device that installs firmware (docs/firmware.md): over HTTP it polls `next`;
// with `--transport mqtt` it connects to the broker and installs what `ota.install` offers.
import { parseArgs } from 'node:util';
import { MqttSimulatedMachine } from './mqtt-machine.js';
import { createOtaDevice, OTA_FAULTS, type OtaFault } from './ota-device.js';

const USAGE = `Usage: npm run simulator:ota -- --machine <id> --key <key> --version <v> --hw <model> [options]

  --url <url>        server (default http://127.0.0.1:8080); images are always downloaded from it
  --transport <t>    http (poll next, report over HTTP) or mqtt (ota.install, reports on up/ota)
  --mqtt-url <url>   broker for --transport mqtt (default MQTT_URL, else mqtt://127.0.0.1:1883)
  --keys <list>      trusted signing keys, as FIRMWARE_SIGNING_KEYS (default: that variable)
  --cut <bytes>      cut the first download after this many bytes, then resume with Range
  --chunk <bytes>    download in pieces of this size
  --fault <what>     ${OTA_FAULTS.join(' | ')}: make that step fail
  --poll <seconds>   how often to ask for firmware over HTTP (default 10)
  --once             one round, then exit (mqtt: after the first deployment ends)`;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      url: { type: 'string' },
      transport: { type: 'string' },
      'mqtt-url': { type: 'string' },
      machine: { type: 'string' },
      key: { type: 'string' },
      version: { type: 'string' },
      hw: { type: 'string' },
      keys: { type: 'string' },
      cut: { type: 'string' },
      chunk: { type: 'string' },
      fault: { type: 'string' },
      poll: { type: 'string' },
      once: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const trustedKeys = values.keys ?? process.env['FIRMWARE_SIGNING_KEYS'];
  const transport = values.transport ?? 'http';
  const fault = values.fault as OtaFault | undefined;
  const bad =
    (fault !== undefined && !OTA_FAULTS.includes(fault)) || (transport !== 'http' && transport !== 'mqtt');
  if (values.help || bad || !values.machine || !values.key || !values.version || !values.hw || !trustedKeys) {
    console.log(USAGE);
    process.exitCode = values.help ? 0 : 2;
    return;
  }
  const url = (values.url ?? 'http://127.0.0.1:8080').replace(/\/+$/, '');
  const faults = {
    ...(values.cut ? { cutAfterBytes: Number(values.cut) } : {}),
    ...(values.chunk ? { chunkBytes: Number(values.chunk) } : {}),
    ...(fault ? { fault } : {}),
  };
  if (transport === 'mqtt') {
    const machine = new MqttSimulatedMachine({
      mqttUrl: values['mqtt-url'] ?? process.env['MQTT_URL'] ?? 'mqtt://127.0.0.1:1883',
      machineId: values.machine,
      key: values.key,
      firmware: values.version,
      ota: { url, hw: values.hw, trustedKeys, ...faults },
      logger: (line) => console.log(line),
    });
    machine.on('ota', (o) => {
      console.log(`${values.machine}: ${o.outcome}; running ${o.version}`);
      if (values.once) {
        machine.stop();
        process.exit(0);
      }
    });
    await machine.start();
    console.log(
      `${values.machine}: on MQTT, running ${values.version}; waiting for ota.install (Ctrl-C stops)`,
    );
    process.on('SIGINT', () => (machine.stop(), process.exit(0)));
    return;
  }
  const device = createOtaDevice({
    url,
    machineId: values.machine,
    key: values.key,
    version: values.version,
    hw: values.hw,
    trustedKeys,
    ...faults,
    log: (line) => console.log(line),
  });
  const pollMs = Number(values.poll ?? 10) * 1000;
  for (;;) {
    const outcome = await device.runOnce().catch((err: unknown) => {
      console.error(`simulator:ota: ${(err as Error).message}`);
      return 'none' as const;
    });
    if (outcome !== 'none') console.log(`${values.machine}: ${outcome}; running ${device.version}`);
    if (values.once) return;
    await new Promise((r) => setTimeout(r, pollMs));
  }
}

void main();
