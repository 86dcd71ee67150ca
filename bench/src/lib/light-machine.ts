// One light simulated machine for the client workers (machine-worker.ts): a v2 Socket.IO socket
// or an MQTT.js client (CONTRACTS §14: login as the machine, subscribe to down/#, retained birth).
// With `respond`, it behaves as firmware must: records when each command arrives (wall clock, so
// the bench process can compare with its send time), accepts it (`{accepted: true}` / `received`),
// reports SUCCESS after a delay, and answers a repeat by commandId without dispensing again.
import { mqttTopics, type MqttCommand } from '@kioskhub/protocol';
import { connect as mqttConnect, type MqttClient } from 'mqtt';
import { io, type Socket } from 'socket.io-client';

export type LightTransport = 'socketio' | 'mqtt';

export interface LightClient {
  /** Server URL (Socket.IO) or broker URL (MQTT). */
  url: string;
  machineId: string;
  key: string;
}

/** What a worker's machines saw of one order: first arrival, deliveries, dispenses performed. */
export interface Arrival {
  orderId: string;
  commandId: string;
  /** performance.timeOrigin + performance.now() at the first delivery (ms since the epoch). */
  firstAt: number;
  deliveries: number;
  dispensed: number;
}

export interface LightMachineHooks {
  transport: LightTransport;
  respond?: { dispenseDelayMs: number };
  arrivals: Map<string, Arrival>;
  /** Called when an established connection goes away. */
  onDisconnect(): void;
}

export interface LightMachine {
  /** Socket.IO: one heartbeat; MQTT: a QoS 0 telemetry message. Resolves when acknowledged (Socket.IO) or written. */
  heartbeat(): Promise<void>;
  readonly connected: boolean;
  close(): void;
}

const wallClock = () => performance.timeOrigin + performance.now();

/** Counts a delivery of a command; the first one sets its arrival time. */
function record(hooks: LightMachineHooks, orderId: string, commandId: string): void {
  const seen = hooks.arrivals.get(commandId);
  if (seen) seen.deliveries += 1;
  else
    hooks.arrivals.set(commandId, { orderId, commandId, firstAt: wallClock(), deliveries: 1, dispensed: 0 });
}

interface Reports {
  /** The command is taken (MQTT: `received`; Socket.IO acks every delivery itself). */
  accepted(commandId: string, orderId: string): void;
  done(commandId: string, orderId: string): void;
}

/**
 * Firmware behaviour both transports share: every delivery is recorded, a command is dispensed
 * once (de-duplicated by commandId) and reported done after the delay, a repeat of a finished one
 * is answered with its result again.
 */
function commandHandler(hooks: LightMachineHooks, delayMs: number, reports: Reports) {
  const finished = new Set<string>();
  const running = new Set<string>();
  return (orderId: string, commandId: string): void => {
    record(hooks, orderId, commandId);
    if (finished.has(commandId)) return reports.done(commandId, orderId);
    reports.accepted(commandId, orderId);
    if (running.has(commandId)) return;
    running.add(commandId);
    hooks.arrivals.get(commandId)!.dispensed += 1;
    setTimeout(() => {
      running.delete(commandId);
      finished.add(commandId);
      reports.done(commandId, orderId);
    }, delayMs);
  };
}

function connectSocketIo(client: LightClient, hooks: LightMachineHooks): Promise<LightMachine> {
  const socket: Socket = io(`${client.url}/machines`, {
    transports: ['websocket'],
    auth: { machineId: client.machineId, key: client.key },
    forceNew: true,
    reconnection: false,
    timeout: 60_000,
  });
  if (hooks.respond) {
    const onCommand = commandHandler(hooks, hooks.respond.dispenseDelayMs, {
      accepted: () => undefined,
      done: (commandId, orderId) =>
        socket
          .timeout(60_000)
          .emit('machine:done', { commandId, orderId, status: 'SUCCESS' }, () => undefined),
    });
    socket.on('machine:dispense', (command: { commandId: string; orderId: string }, ack?: unknown) => {
      if (typeof ack === 'function') (ack as (a: unknown) => void)({ accepted: true });
      onCommand(command.orderId, command.commandId);
    });
  }
  const heartbeat = () =>
    new Promise<void>((resolve, reject) => {
      socket
        .timeout(60_000)
        .emit('machine:heartbeat', { status: 'IDLE' }, (err: Error | null, ack?: { ok?: boolean }) => {
          if (err) reject(err);
          else if (ack?.ok !== true) reject(new Error(`heartbeat refused: ${JSON.stringify(ack)}`));
          else resolve();
        });
    });
  const machine: LightMachine = {
    heartbeat,
    get connected() {
      return socket.connected;
    },
    close: () => void socket.disconnect(),
  };
  return new Promise((resolve, reject) => {
    socket.once('connect_error', (err) => reject(err));
    socket.once('connect', () => {
      socket.on('disconnect', () => hooks.onDisconnect());
      heartbeat().then(() => resolve(machine), reject);
    });
  });
}

function connectMqtt(client: LightClient, hooks: LightMachineHooks): Promise<LightMachine> {
  const id = client.machineId;
  const bootId = `b${Math.random().toString(36).slice(2, 10)}`;
  const mqtt: MqttClient = mqttConnect(client.url, {
    clientId: id,
    username: id,
    password: client.key,
    clean: true,
    keepalive: 60,
    reconnectPeriod: 0,
    connectTimeout: 60_000,
    will: {
      topic: mqttTopics.status(id),
      payload: Buffer.from(JSON.stringify({ online: false, bootId })),
      qos: 1,
      retain: true,
    },
  });
  const report = (commandId: string, body: unknown) =>
    mqtt.publish(mqttTopics.commandReport(id, commandId), JSON.stringify(body), { qos: 1 }, () => undefined);
  if (hooks.respond) {
    const onCommand = commandHandler(hooks, hooks.respond.dispenseDelayMs, {
      accepted: (commandId) => void report(commandId, { phase: 'received' }),
      done: (commandId) => void report(commandId, { phase: 'done', status: 'SUCCESS' }),
    });
    const prefix = `${mqttTopics.downPrefix(id)}cmd/`;
    mqtt.on('message', (topic, payload) => {
      if (!topic.startsWith(prefix)) return;
      const command = JSON.parse(payload.toString('utf8')) as MqttCommand;
      onCommand(command.orderId ?? '', command.commandId);
    });
  }
  const machine: LightMachine = {
    heartbeat: () =>
      mqtt
        .publishAsync(mqttTopics.telemetry(id), JSON.stringify({ status: 'IDLE' }), { qos: 0 })
        .then(() => undefined),
    get connected() {
      return mqtt.connected;
    },
    close: () => void mqtt.end(true),
  };
  return new Promise((resolve, reject) => {
    mqtt.once('error', (err) => {
      mqtt.end(true);
      reject(err);
    });
    mqtt.once('connect', () => {
      mqtt.on('close', () => hooks.onDisconnect());
      void (async () => {
        await mqtt.subscribeAsync(`${mqttTopics.downPrefix(id)}#`, { qos: 1 });
        await mqtt.publishAsync(
          mqttTopics.status(id),
          JSON.stringify({ online: true, firmware: 'bench-1.0', bootId }),
          { qos: 1, retain: true },
        );
      })().then(() => resolve(machine), reject);
    });
  });
}

export function connectLightMachine(client: LightClient, hooks: LightMachineHooks): Promise<LightMachine> {
  return hooks.transport === 'mqtt' ? connectMqtt(client, hooks) : connectSocketIo(client, hooks);
}
