// The MQTT device transport's domain side, whichever broker carries it: sessions become
// presence connections with an MqttLink, device reports feed the same dispatch engine and
// commands service as Socket.IO (CONTRACTS §14). Brokers (embedded, Mosquitto) only call this.
import {
  DEVICE_COMMAND_PREFIX,
  mqttTopics,
  type MqttCommand,
  type MqttCommandReport,
  type MqttDeviceEvent,
  type MqttOtaAnswer,
  type MqttTelemetry,
} from '@kioskhub/protocol';
import type { Logger } from 'pino';
import { newId } from '../../platform/db/database.js';
import type { CommandsService } from '../commands/commands.service.js';
import type { Dispatcher } from '../gateway/dispatcher.js';
import type { MachineConnection, Presence } from '../gateway/presence.js';
import { createMqttLink, type MqttLink, type MqttPublisher } from './mqtt-link.js';
import { parseUpMessage } from './mqtt.messages.js';

export interface MqttMachine {
  id: string;
  tenant_id: string;
  site_id: string;
  kind: string;
  /** 1 while some process holds a connection of the machine. */
  socket_connected?: number;
}

/**
 * External broker: a session is the machine's boot. The device's bootId is only new per machine,
 * so another machine may use the same one.
 */
export const bootSessionId = (machineId: string, bootId: string): string => `${machineId}:${bootId}`;

/** How long "another process holds this machine" is trusted before the row is read again. */
const HELD_ELSEWHERE_MS = 5_000;
/** The session id prefix of a machine taken on from a message other than its birth (boot unknown). */
const ADOPTED = 'adopted-';

export interface MqttGatewayDeps {
  nodeId: string;
  presence: Presence;
  dispatcher: Pick<Dispatcher, 'kick' | 'kickAnywhere' | 'resend'>;
  commands: Pick<CommandsService, 'inFlight' | 'markAccepted' | 'recordResult'>;
  findMachine(machineId: string): Promise<MqttMachine | undefined>;
  publisher: MqttPublisher;
  logger: Logger;
  /** Another process may hold the machine: tell every process to drop its session (clustered only). */
  evictElsewhere(machineId: string, connectionId: string): void;
  /** A last will landed on this process for a machine held elsewhere (clustered only). */
  willElsewhere(machineId: string, bootId: string | undefined): void;
}

/** A session held here: a machine connection on an MQTT link. */
type MqttConnection = MachineConnection & {
  link: MqttLink;
  /** Started before the device's birth (embedded broker) and the birth has not come yet. */
  birthPending: boolean;
  /** The connection itself is the session (embedded broker): its birth is this connection's. */
  connectionIsSession: boolean;
};

/** Who a session belongs to, for hooks. */
export type MqttSessionMachine = Pick<MachineConnection, 'machineId' | 'tenantId' | 'siteId' | 'kind'>;

/** Hooks for other modules (OTA: §15 status reports; device events; water kiosk heartbeats). */
export interface MqttHooks {
  /** An `up/ota` firmware status report, as published (validated by the OTA module). */
  onOta?(machineId: string, payload: Record<string, unknown>): void | Promise<void>;
  /** A report on a device command (`up/cmd/dev-…`, such as ota.install): outside the order queue. */
  onDeviceCommandReport?(
    machineId: string,
    commandId: string,
    report: MqttCommandReport,
  ): void | Promise<void>;
  /** A device event (`up/evt`); acknowledged to the device once this settles without throwing. */
  onEvent?(machineId: string, event: MqttDeviceEvent): void | Promise<void>;
  /** A birth message: the device is connected and subscribed (OTA offers a waiting deployment). */
  onBirth?(machineId: string, birth: { firmware?: string; hw?: string }): void | Promise<void>;
  /**
   * The same birth, told at once as it arrives, before the session is registered: what the device
   * says of itself is known before anything can be offered to it (a release at that moment).
   */
  onBirthSeen?(machineId: string, birth: { firmware?: string; hw?: string }): void;
  /** Telemetry (`up/tel`) of a machine held here, beyond its `status` (water kiosk heartbeats). */
  onTelemetry?(machine: MqttSessionMachine, telemetry: MqttTelemetry): void | Promise<void>;
}

export function createMqttGateway(deps: MqttGatewayDeps) {
  const { presence, dispatcher, logger } = deps;
  const hooks: MqttHooks = {};
  const sessions = new Map<string, MqttConnection>();

  const local = (machineId: string): MqttConnection | undefined => {
    const conn = presence.local(machineId);
    return conn?.link.transport === 'mqtt' ? (conn as MqttConnection) : undefined;
  };

  /**
   * A device's session began (embedded: CONNECT accepted; external broker: its birth message).
   * `birthPending`: the session starts before the device's birth (embedded), so what the device
   * says of itself in this connection is not known yet.
   */
  async function sessionStarted(
    machine: MqttMachine,
    sessionId: string,
    disconnect: () => void,
    options: { birthPending?: boolean } = {},
  ): Promise<void> {
    const link = createMqttLink({
      machineId: machine.id,
      sessionId,
      publisher: deps.publisher,
      disconnect,
      onPublishError: (err, commandId) =>
        logger.warn({ err, machineId: machine.id, commandId }, 'mqtt: could not publish a command'),
    });
    const conn: MqttConnection = {
      machineId: machine.id,
      tenantId: machine.tenant_id,
      siteId: machine.site_id,
      kind: machine.kind,
      connectionId: `${deps.nodeId}:mqtt:${sessionId}`,
      protocol: 'mqtt',
      link,
      status: 'UNKNOWN',
      lastSeen: Date.now(),
      sentCommands: new Set(),
      birthPending: options.birthPending ?? false,
      connectionIsSession: options.birthPending ?? false,
    };
    sessions.get(sessionId)?.link.closed();
    sessions.set(sessionId, conn);
    await presence.register(conn);
    deps.evictElsewhere(machine.id, conn.connectionId);
    logger.info({ machineId: machine.id, protocol: 'mqtt' }, 'machine connected');
    dispatcher.kick(machine.id, 'connect');
  }

  /** The session ended (embedded: the client disconnected; external: the last will). */
  async function sessionEnded(machineId: string, sessionId: string): Promise<void> {
    const conn = sessions.get(sessionId);
    if (!conn || conn.machineId !== machineId) return;
    sessions.delete(sessionId);
    conn.link.closed();
    // Safe for a session already replaced: presence only marks OFFLINE the connection it names.
    await presence.unregister(conn);
  }

  /**
   * A last will: the session it names (any, without a bootId) is over; a will from an older boot
   * changes nothing. A session taken on from a message other than a birth (its boot unknown) ends
   * on any will of its machine: were the will an older boot's, the device's next message takes the
   * machine on again.
   */
  async function willArrived(machineId: string, bootId: string | undefined): Promise<void> {
    const conn = local(machineId);
    if (
      conn &&
      (bootId === undefined ||
        conn.link.id.startsWith(ADOPTED) ||
        bootSessionId(machineId, bootId) === conn.link.id)
    )
      await sessionEnded(machineId, conn.link.id);
  }

  const heldElsewhere = new Map<string, number>();
  /**
   * External broker: a machine that speaks while no process holds it (its holder stopped, or it
   * was online before this process started) is taken on here, so its commands flow again.
   */
  async function adopt(machineId: string): Promise<void> {
    const until = heldElsewhere.get(machineId);
    if (until !== undefined && until > Date.now()) return;
    heldElsewhere.delete(machineId);
    const row = await deps.findMachine(machineId);
    if (!row) return;
    if (row.socket_connected === 1) {
      heldElsewhere.set(machineId, Date.now() + HELD_ELSEWHERE_MS);
      return;
    }
    const sessionId = `${ADOPTED}${newId()}`;
    logger.info({ machineId }, 'mqtt: machine speaking while held by no process: taken on here');
    await sessionStarted(row, sessionId, () => void sessionEnded(machineId, sessionId));
  }

  function bad(machineId: string, topic: string, reason: string): void {
    logger.warn({ machineId, topic, reason }, 'mqtt: bad message from a device ignored');
  }

  /** Hooks run after the transport's own work; a failing one is logged, never fatal. */
  async function runHook(what: string, machineId: string, run: () => unknown): Promise<void> {
    try {
      await run();
    } catch (err) {
      logger.warn({ err, machineId }, `mqtt: ${what} hook failed`);
    }
  }

  /**
   * A message a device published under kh/v1/<id>/up/ (the broker has checked it is that
   * machine's). `external`: the broker is Mosquitto, where birth and will are the session.
   */
  async function deviceMessage(
    machineId: string,
    topic: string,
    payload: Buffer,
    session: { sessionId?: string; external: boolean },
  ): Promise<void> {
    const prefix = mqttTopics.upPrefix(machineId);
    if (!topic.startsWith(prefix)) return bad(machineId, topic, 'not under this machine’s up/ topics');
    const parsed = parseUpMessage(topic.slice(prefix.length), payload);
    if (!parsed.ok) return bad(machineId, topic, parsed.reason);
    const message = parsed.message;
    if (session.external && message.kind !== 'status' && !local(machineId)) await adopt(machineId);
    const conn = local(machineId);
    if (conn) conn.lastSeen = Date.now();
    switch (message.kind) {
      case 'status': {
        const status = message.status;
        if (status.online) hooks.onBirthSeen?.(machineId, { firmware: status.firmware, hw: status.hw });
        if (session.external) {
          if (status.online) {
            const machine = await deps.findMachine(machineId);
            if (!machine) return bad(machineId, topic, 'unknown machine');
            const sessionId = bootSessionId(machineId, status.bootId ?? newId());
            await sessionStarted(machine, sessionId, () => void sessionEnded(machineId, sessionId));
            if (status.firmware !== undefined) {
              const c = local(machineId);
              if (c) {
                await presence.heartbeat(c, 'IDLE', status.firmware);
                // The birth counts as IDLE: a new command held back at the connection by the
                // machine's earlier BUSY or ERROR goes out now.
                if (c.earlierReport !== undefined) dispatcher.kick(machineId, 'heartbeat');
              }
              // Taken on by another process already (its report after the reboot got there
              // first): the new version still belongs on the machine's record.
              else await presence.firmwareSeen(machineId, status.firmware);
            }
            await runHook('birth', machineId, () =>
              hooks.onBirth?.(machineId, { firmware: status.firmware, hw: status.hw }),
            );
          } else {
            if (conn) await willArrived(machineId, status.bootId);
            else deps.willElsewhere(machineId, status.bootId);
          }
          return;
        }
        // Embedded broker: the connection itself is the session; a will is published after it ended.
        if (!status.online || !conn) return;
        conn.birthPending = false;
        if (status.firmware !== undefined)
          await presence.heartbeat(conn, conn.status === 'UNKNOWN' ? 'IDLE' : conn.status, status.firmware);
        // The device subscribes before its birth: what was published at CONNECT may have found no
        // subscription yet, so the command in flight goes out again now.
        dispatcher.resend(machineId);
        await runHook('birth', machineId, () =>
          hooks.onBirth?.(machineId, { firmware: status.firmware, hw: status.hw }),
        );
        return;
      }
      case 'report':
        return report(machineId, message.commandId, message.report, conn);
      case 'event': {
        try {
          await hooks.onEvent?.(machineId, message.event);
          if (!hooks.onEvent) logger.info({ machineId, event: message.event }, 'mqtt: device event');
        } catch (err) {
          logger.warn({ err, machineId, eventId: message.event.eventId }, 'mqtt: device event not recorded');
          return; // not acknowledged: the device sends it again
        }
        await deps.publisher.publish(
          mqttTopics.eventAck(machineId),
          { eventIds: [message.event.eventId] },
          { qos: 1 },
        );
        return;
      }
      case 'telemetry': {
        if (!conn) return;
        const status = message.telemetry.status;
        if (status) {
          await presence.heartbeat(conn, status);
          if (status === 'IDLE') dispatcher.kick(machineId, 'heartbeat');
        }
        await runHook('telemetry', machineId, () => hooks.onTelemetry?.(conn, message.telemetry));
        return;
      }
      case 'ota':
        if (hooks.onOta) await hooks.onOta(machineId, message.payload);
        else logger.info({ machineId, ota: message.payload }, 'mqtt: OTA report (no OTA module)');
        return;
    }
  }

  async function report(
    machineId: string,
    commandId: string,
    r: MqttCommandReport,
    conn: (MachineConnection & { link: MqttLink }) | undefined,
  ): Promise<void> {
    // Device commands never enter the order queue: whichever process hears the report passes it on.
    if (commandId.startsWith(DEVICE_COMMAND_PREFIX)) {
      await hooks.onDeviceCommandReport?.(machineId, commandId, r);
      return;
    }
    if (r.phase === 'received') {
      const current = await deps.commands.inFlight(machineId);
      if (current?.id !== commandId) {
        logger.info({ machineId, commandId }, 'mqtt: received report for a command not in flight ignored');
        return;
      }
      conn?.link.accepted(commandId);
      // Whichever process got the report records it (shared subscriptions spread reports).
      await deps.commands.markAccepted(commandId);
      return;
    }
    const result = r.phase === 'done' ? r.status : 'FAILED';
    const failureCode = r.phase === 'done' ? r.failureCode : (r.reason ?? 'REJECTED');
    const reports = conn?.statusReports;
    const recorded = await deps.commands.recordResult(machineId, { commandId }, result, failureCode);
    if (recorded.outcome === 'unknown' || recorded.outcome === 'not-sent') {
      // Another machine's, unknown, or its own not sent to it (yet): nothing changes.
      logger.warn(
        { machineId, commandId, reason: recorded.outcome, commandStatus: recorded.command?.status ?? null },
        'mqtt: result for a command not sent to this machine ignored',
      );
      return;
    }
    conn?.link.accepted(commandId);
    if (recorded.outcome === 'recorded') {
      if (conn) {
        conn.sentCommands.delete(commandId);
        // Telemetry that came while the result was being recorded is newer: the machine's word stands.
        if (conn.statusReports === reports) await presence.setIdle(conn);
      }
      dispatcher.kickAnywhere(machineId);
    }
  }

  return {
    hooks,
    /** Shutting down: every session held here ends (the machines are OFFLINE until taken on again). */
    async endAllSessions(): Promise<void> {
      await Promise.allSettled([...sessions.values()].map((c) => sessionEnded(c.machineId, c.link.id)));
    },
    sessionStarted,
    sessionEnded,
    willArrived,
    deviceMessage,
    /**
     * Publishes a device command outside the order queue (OTA: `ota.install` with the §15 `next`
     * answer); `commandId` starts with `dev-`. The caller re-sends it (same id, `attempt` + 1)
     * until the device reports on up/cmd/<commandId>: the broker's PUBACK is not delivery.
     */
    async sendDeviceCommand(
      machineId: string,
      command: { commandId: string; kind: 'ota.install'; attempt: number; ota: Record<string, unknown> },
    ): Promise<void> {
      const message: MqttCommand = command;
      await deps.publisher.publish(mqttTopics.command(machineId, command.commandId), message, { qos: 1 });
    },
    /** The answer to an `up/ota` report, on `kh/v1/<id>/down/ota`. */
    answerOta(machineId: string, answer: MqttOtaAnswer): Promise<void> {
      return deps.publisher.publish(mqttTopics.otaAnswer(machineId), answer, { qos: 1 });
    },
    /** The command in flight of a machine held here goes out again (same commandId). */
    resendInFlight(machineId: string): void {
      if (local(machineId)) dispatcher.resend(machineId);
    },
    /**
     * Whether this process holds a session of the machine whose birth it has seen: the device is
     * subscribed, and its firmware and hw in this connection are known (embedded: a session starts
     * at CONNECT, before the birth).
     */
    heardBirth(machineId: string): boolean {
      const conn = local(machineId);
      return conn !== undefined && !conn.birthPending;
    },
    /**
     * Whether the birth this process heard is surely the device's connection now: an embedded
     * session whose birth came. On an external broker a reconnect's birth may be taken on by
     * another process before this one learns that the session it holds has ended.
     */
    knowsCurrentBirth(machineId: string): boolean {
      const conn = local(machineId);
      return conn !== undefined && conn.connectionIsSession && !conn.birthPending;
    },
  };
}

export type MqttGateway = ReturnType<typeof createMqttGateway>;
