// The embedded MQTT broker (aedes, MQTT 3.1.1) for a single site, started when MQTT_PORT is set:
// devices log in as their machine (username = client id = machine id, password = its key) and
// may publish only under kh/v1/<id>/up/ and subscribe only under kh/v1/<id>/down/.
import { readFileSync } from 'node:fs';
import { createServer as createTcpServer, type Server as NetServer } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { mqttTopics } from '@kioskhub/protocol';
import { Aedes, type AuthenticateError, type Client } from 'aedes';
import type { Logger } from 'pino';
import { throttledWarning } from '../../platform/http/throttled-warning.js';
import type { MqttPublisher } from './mqtt-link.js';
import type { MqttGateway, MqttMachine } from './mqtt.gateway.js';

export interface EmbeddedBrokerOptions {
  host: string;
  port: number;
  tls?: { certFile: string; keyFile: string };
  logger: Logger;
  /** The machine whose id and key these are, or undefined. */
  authenticate(machineId: string, key: string): Promise<MqttMachine | undefined>;
}

const BAD_CREDENTIALS = 4; // CONNACK "bad user name or password"
const NOT_AUTHORIZED = 5;

function authError(message: string, code: number): AuthenticateError {
  return Object.assign(new Error(message), { returnCode: code }) as AuthenticateError;
}

export async function startEmbeddedBroker(options: EmbeddedBrokerOptions) {
  const { logger } = options;
  const machines = new Map<string, MqttMachine>(); // client id → its machine, once authenticated
  // Bumped by each disconnectMachine (a key rotated, a machine disabled): a login whose key was
  // checked before it answers is refused, as the old key would be now.
  const cutOff = new Map<string, number>();
  let gateway: MqttGateway | undefined;
  const warnRefused = throttledWarning(
    logger,
    'mqtt connection refused: unknown machine id or wrong key, or client id not the machine id',
  );
  const broker = await Aedes.createBroker({
    authenticate(client, username, password, done) {
      const key = password?.toString('utf8');
      if (!username || !key || client.id !== username) {
        warnRefused({ machineId: username?.slice(0, 100) ?? null, protocol: 'mqtt' });
        return done(
          authError('client id, username and password must name the machine', BAD_CREDENTIALS),
          false,
        );
      }
      const generation = cutOff.get(username) ?? 0;
      options.authenticate(username, key).then(
        (machine) => {
          if (machine && (cutOff.get(username) ?? 0) !== generation) {
            logger.info(
              { machineId: username },
              'mqtt: a login checked against a key replaced meanwhile: refused',
            );
            return done(authError('the machine key was replaced', BAD_CREDENTIALS), false);
          }
          if (!machine) {
            warnRefused({ machineId: username.slice(0, 100), protocol: 'mqtt' });
            return done(authError('unknown machine or wrong key', BAD_CREDENTIALS), false);
          }
          machines.set(client.id, machine);
          done(null, true);
        },
        (err: unknown) => {
          logger.error({ err }, 'mqtt: could not check a device login');
          done(authError('unavailable', NOT_AUTHORIZED), false);
        },
      );
    },
    authorizePublish(client, packet, done) {
      if (!client) return done(null); // the broker's own messages
      if (!packet.topic.startsWith(mqttTopics.upPrefix(client.id))) {
        logger.warn(
          { machineId: client.id, topic: packet.topic },
          'mqtt: publish outside the machine’s up/ topics: disconnected',
        );
        return done(new Error('not allowed'));
      }
      // Only the birth/will is kept by the broker.
      if (packet.topic !== mqttTopics.status(client.id)) packet.retain = false;
      done(null);
    },
    authorizeSubscribe(client, sub, done) {
      if (!sub.topic.startsWith(mqttTopics.downPrefix(client.id))) {
        logger.warn(
          { machineId: client.id, topic: sub.topic },
          'mqtt: subscription outside the machine’s down/ topics refused',
        );
        return done(null, null);
      }
      done(null, sub);
    },
  });

  broker.on('client', (client: Client) => {
    const machine = machines.get(client.id);
    if (!machine || !gateway) return client.close();
    const session = `${client.id}:${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;
    (client as Client & { khSession?: string }).khSession = session;
    gateway
      .sessionStarted(machine, session, () => client.close(), { birthPending: true })
      .catch((err: unknown) => {
        logger.error({ err, machineId: client.id }, 'mqtt: could not register machine');
        client.close();
      });
  });
  broker.on('clientDisconnect', (client: Client) => {
    const session = (client as Client & { khSession?: string }).khSession;
    if (!session || !gateway) return;
    gateway
      .sessionEnded(client.id, session)
      .catch((err: unknown) =>
        logger.warn({ err, machineId: client.id }, 'mqtt: could not record disconnect'),
      );
  });
  broker.on('publish', (packet, client) => {
    if (!client || !gateway) return;
    const payload = Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload);
    gateway
      .deviceMessage(client.id, packet.topic, payload, { external: false })
      .catch((err: unknown) =>
        logger.error({ err, machineId: client.id, topic: packet.topic }, 'mqtt: message failed'),
      );
  });

  const server: NetServer = options.tls
    ? createTlsServer(
        { cert: readFileSync(options.tls.certFile), key: readFileSync(options.tls.keyFile) },
        broker.handle,
      )
    : createTcpServer(broker.handle);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  logger.info({ host: options.host, port, tls: Boolean(options.tls) }, 'embedded MQTT broker listening');

  const publisher: MqttPublisher = {
    publish: (topic, body, opts) =>
      new Promise((resolve, reject) => {
        broker.publish(
          {
            cmd: 'publish',
            topic,
            payload: Buffer.from(JSON.stringify(body)),
            qos: opts.qos,
            retain: opts.retain ?? false,
            dup: false,
          },
          (err) => (err ? reject(err) : resolve()),
        );
      }),
  };

  return {
    port,
    publisher,
    attach(g: MqttGateway): void {
      gateway = g;
    },
    /** Drops the device's session (key rotated or machine deleted). */
    disconnectMachine(machineId: string): void {
      cutOff.set(machineId, (cutOff.get(machineId) ?? 0) + 1);
      machines.delete(machineId);
      const clients = (broker as unknown as { clients: Record<string, Client | undefined> }).clients;
      clients[machineId]?.close();
    },
    async close(): Promise<void> {
      const clients = (broker as unknown as { clients: Record<string, Client | undefined> }).clients;
      for (const c of Object.values(clients)) c?.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await new Promise<void>((resolve) => broker.close(() => resolve()));
    },
  };
}

export type EmbeddedBroker = Awaited<ReturnType<typeof startEmbeddedBroker>>;
