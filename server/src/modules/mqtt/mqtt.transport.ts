// Starts the configured MQTT broker side (embedded aedes on MQTT_PORT, or an external Mosquitto
// on MQTT_URL) around one MqttGateway, and keeps broker credentials in step with machine keys.
import type { Logger } from 'pino';
import type { MqttConfig } from '../../platform/config.js';
import { startEmbeddedBroker, type EmbeddedBroker } from './embedded-broker.js';
import type { MqttPublisher } from './mqtt-link.js';
import {
  createMqttGateway,
  type MqttGateway,
  type MqttGatewayDeps,
  type MqttMachine,
} from './mqtt.gateway.js';
import { connectMosquitto, type Mosquitto } from './mosquitto.js';

export interface MqttTransportDeps extends Omit<MqttGatewayDeps, 'publisher'> {
  config: MqttConfig;
  host: string;
  logger: Logger;
  authenticate(machineId: string, key: string): Promise<MqttMachine | undefined>;
  /** Several processes share the broker (Redis): retained births are not read at start. */
  clustered: boolean;
}

export function createMqttTransport(deps: MqttTransportDeps) {
  const { config, logger } = deps;
  let embedded: EmbeddedBroker | undefined;
  let mosquitto: Mosquitto | undefined;
  // Commands published before the broker side is up have nowhere to go: no device is connected then.
  const publisher: MqttPublisher = {
    publish: (topic, body, options) => {
      const target = embedded?.publisher ?? mosquitto?.publisher;
      if (!target) return Promise.reject(new Error('MQTT broker not started'));
      return target.publish(topic, body, options);
    },
  };
  const gateway: MqttGateway = createMqttGateway({ ...deps, publisher });

  function report(what: string, machineId: string) {
    return (err: unknown) =>
      logger.error(
        { err, machineId },
        `mqtt: could not ${what} on the broker; the machine cannot use MQTT until its key is rotated again`,
      );
  }

  let starting: Promise<void> | undefined;
  /**
   * The external broker for a credentials change: waits for a start in progress. Without a
   * connection the change cannot be made, and that is an error, never a silent success.
   */
  async function external(): Promise<Mosquitto | undefined> {
    if (config.url === undefined) return undefined;
    await starting?.catch(() => undefined);
    if (!mosquitto) throw new Error('not connected to the MQTT broker (MQTT_URL)');
    return mosquitto;
  }

  async function startBroker(): Promise<void> {
    if (config.port !== undefined) {
      embedded = await startEmbeddedBroker({
        host: deps.host,
        port: config.port,
        ...(config.tlsCert && config.tlsKey
          ? { tls: { certFile: config.tlsCert, keyFile: config.tlsKey } }
          : {}),
        logger,
        authenticate: deps.authenticate,
      });
      embedded.attach(gateway);
    } else if (config.url !== undefined) {
      mosquitto = await connectMosquitto({
        url: config.url,
        nodeId: deps.nodeId,
        logger,
        ...(config.username !== undefined ? { username: config.username } : {}),
        ...(config.password !== undefined ? { password: config.password } : {}),
      });
      await mosquitto.attach(gateway, { readRetained: !deps.clustered });
      logger.info('connected to the MQTT broker (dynamic security, shared subscription)');
    }
  }

  return {
    gateway,
    /** The embedded broker's port once started (tests use port 0). */
    port: (): number | undefined => embedded?.port,
    start(): Promise<void> {
      starting ??= startBroker();
      return starting;
    },
    /** A machine was created with this key: an external broker gets its client and role. */
    machineCreated(machineId: string, key: string): Promise<void> {
      return external()
        .then((broker) => broker?.machineCreated(machineId, key))
        .catch(report('create the client', machineId));
    },
    /** The key changed: the old one stops working and its session is dropped. */
    keyRotated(machineId: string, key: string): Promise<void> {
      embedded?.disconnectMachine(machineId);
      return external()
        .then((broker) => broker?.keyRotated(machineId, key))
        .catch(report('change the password', machineId));
    },
    machineDeleted(machineId: string): Promise<void> {
      embedded?.disconnectMachine(machineId);
      return external()
        .then((broker) => broker?.machineDeleted(machineId))
        .catch(report('delete the client', machineId));
    },
    /** The external broker's dynamic-security API (tests, operations). */
    dynsec: () => mosquitto?.dynsec,
    async close(): Promise<void> {
      await embedded?.close();
      await mosquitto?.close();
      await gateway.endAllSessions();
      embedded = undefined;
      mosquitto = undefined;
      starting = undefined;
    },
  };
}

export type MqttTransport = ReturnType<typeof createMqttTransport>;
