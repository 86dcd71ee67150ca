// Transport only: handshake auth, the connection registry and event parsing for both
// machine protocols (v2 on /machines, the seed-compatible v1 on /). Domain work is done by
// presence, the dispatcher and the commands service.
import { randomUUID } from 'node:crypto';
import { MACHINES_NAMESPACE, V1_EVENTS, V2_EVENTS } from '@kioskhub/protocol';
import { Type } from '@sinclair/typebox';
import type { Logger } from 'pino';
import type { Server, Socket } from 'socket.io';
import { constantTimeEqual, sha256 } from '../../platform/http/auth.js';
import { throttledWarning } from '../../platform/http/throttled-warning.js';
import {
  ackOf,
  answerUnknownEvents,
  socketError,
  socketValidator,
} from '../../platform/socket-validation.js';
import type { CommandsService } from '../commands/commands.service.js';
import type { MachinesService } from '../machines/machines.service.js';
import type { Dispatcher } from './dispatcher.js';
import { limitSocketEvents } from './event-limit.js';
import { closeForReconnect, socketLink } from './machine-link.js';
import { CredentialReplaced, type MachineConnection, type Presence, type Protocol } from './presence.js';

const Id = Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9_-]+$' });
const Status = Type.Union([Type.Literal('IDLE'), Type.Literal('BUSY'), Type.Literal('ERROR')]);
const Result = Type.Union([Type.Literal('SUCCESS'), Type.Literal('FAILED')]);
const parseHeartbeatV2 = socketValidator(
  Type.Object(
    {
      status: Status,
      firmware: Type.Optional(Type.String({ maxLength: 64 })),
      metrics: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
    },
    { additionalProperties: false },
  ),
);
const parseDoneV2 = socketValidator(
  Type.Object(
    {
      commandId: Type.String({ minLength: 1, maxLength: 64 }),
      orderId: Type.String({ minLength: 1, maxLength: 64 }),
      status: Result,
      failureCode: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
      details: Type.Optional(Type.Unknown()),
    },
    { additionalProperties: false },
  ),
);
const parseConnectV1 = socketValidator(
  Type.Object({ machineId: Id, token: Type.String({ minLength: 1, maxLength: 512 }) }),
);
const parseDoneV1 = socketValidator(
  Type.Object({ orderId: Type.String({ minLength: 1, maxLength: 64 }), result: Result }),
);

type MachineRef = { id: string; tenant_id: string; site_id: string; kind: string; key_hash: string };

/**
 * How long a v1 machine:done that came before machine:connect waits for one. socket.io-client
 * keeps what a machine emitted while its link was down and sends it on the next connection
 * *before* its own `connect` handler runs, so the earlier firmware (machine:connect on every
 * `connect`) reports a dispense it finished offline as machine:done, then machine:connect.
 */
const EARLY_RESULT_WAIT_MS = 1_000;

export interface MachineGatewayDeps {
  io: Server;
  nodeId: string;
  machines: MachinesService;
  commands: CommandsService;
  presence: Presence;
  dispatcher: Dispatcher;
  logger: Logger;
  /** A v1 socket that has not sent a valid machine:connect this long after connecting is dropped. */
  authTimeoutMs: number;
  /** Events a machine socket may send per second (bursts of twice that; more wait, then are refused). */
  eventsPerSecond: number;
  onMachineConnected(machineId: string, connectionId: string): void;
  /** A printer connected on /machines may have receipts waiting. */
  onPrinterConnected?(tenantId: string, siteId: string): void;
}

export function installMachineGateway(deps: MachineGatewayDeps): void {
  const { presence, dispatcher, logger } = deps;
  // A machine with a wrong key retries for ever: log it, without the key, at most once a minute.
  const warnRefused = throttledWarning(
    logger,
    'machine connection refused: unknown machine id or wrong key ' +
      '(check the key in the machine’s configuration; POST /v1/machines/:id/rotate-key makes a new one)',
  );
  // A result for a command the machine was not sent changes nothing; a machine repeating one must
  // show in the log without flooding it.
  const warnResultRefused = throttledWarning(
    logger,
    'machine result refused: the command was not sent to this machine (another machine’s, unknown, ' +
      'or still queued, cancelled or expired before it went out); nothing was changed',
  );
  const refusedBy = (socket: Socket, machineId: unknown, protocol: Protocol) =>
    warnRefused({
      machineId: typeof machineId === 'string' ? machineId.slice(0, 100) : null,
      protocol,
      ip: socket.handshake.address,
    });

  async function authenticate(machineId: string, key: string) {
    const row = await deps.machines.findRow(machineId);
    return row && constantTimeEqual(row.key_hash, sha256(key)) ? row : undefined;
  }

  /** The key a socket was let in with is still the machine's (no rotation since it was checked). */
  async function keyStillCurrent(row: MachineRef): Promise<boolean> {
    const current = await deps.machines.findRow(row.id);
    return current !== undefined && constantTimeEqual(current.key_hash, row.key_hash);
  }

  async function connect(
    socket: Socket,
    row: MachineRef,
    protocol: Exclude<Protocol, 'mqtt'>,
  ): Promise<MachineConnection> {
    const conn: MachineConnection = {
      machineId: row.id,
      tenantId: row.tenant_id,
      siteId: row.site_id,
      kind: row.kind,
      connectionId: `${deps.nodeId}:${socket.id}`,
      protocol,
      link: socketLink(socket),
      socket,
      status: 'UNKNOWN',
      lastSeen: Date.now(),
      sentCommands: new Set(),
    };
    socket.on('disconnect', () => {
      presence
        .unregister(conn)
        .catch((err: unknown) =>
          logger.warn({ err, machineId: conn.machineId }, 'could not record disconnect'),
        );
    });
    // Closed before the listener was in place (while its key was being checked): its disconnect
    // event has come and gone. Registered, it would stay so for ever, a dead socket that every
    // command for the machine goes into; it is left out, and the machine's record untouched.
    if (!socket.connected) return conn;
    await presence.register(conn, () => keyStillCurrent(row));
    deps.onMachineConnected(conn.machineId, conn.connectionId);
    if (conn.kind === 'printer' && protocol === 'v2') deps.onPrinterConnected?.(conn.tenantId, conn.siteId);
    logger.info({ machineId: conn.machineId, protocol }, 'machine connected');
    dispatcher.kick(conn.machineId, 'connect');
    return conn;
  }

  async function recordResult(
    conn: MachineConnection,
    ref: { commandId: string; orderId?: string } | { orderId: string },
    result: 'SUCCESS' | 'FAILED',
    failureCode?: string,
  ) {
    const reports = conn.statusReports;
    const recorded = await deps.commands.recordResult(conn.machineId, ref, result, failureCode);
    if (recorded.outcome === 'unknown' || recorded.outcome === 'not-sent')
      warnResultRefused({
        machineId: conn.machineId,
        protocol: conn.protocol,
        orderId: ref.orderId ?? recorded.command?.order_id ?? null,
        commandId: 'commandId' in ref ? ref.commandId : (recorded.command?.id ?? null),
        reason: recorded.outcome,
        commandStatus: recorded.command?.status ?? null,
        result,
      });
    // A repeat of a result already recorded changes nothing (not even the machine's status:
    // a machine that said BUSY since then stays BUSY).
    if (recorded.outcome === 'recorded') {
      if (recorded.command) conn.sentCommands.delete(recorded.command.id);
      // A heartbeat that came while the result was being recorded (a machine may say BUSY right
      // after its result) is newer than the result: the machine's own word stands.
      if (conn.statusReports === reports) await presence.setIdle(conn);
      // The dispatcher sends nothing new unless the machine's latest word is IDLE.
      dispatcher.kick(conn.machineId, 'result');
    }
    return recorded.outcome;
  }

  // ---- v2 ------------------------------------------------------------------------------
  const v2 = deps.io.of(MACHINES_NAMESPACE);
  v2.use((socket, next) => {
    const auth = socket.handshake.auth as { machineId?: unknown; key?: unknown };
    if (typeof auth.machineId !== 'string' || typeof auth.key !== 'string') {
      refusedBy(socket, auth.machineId, 'v2');
      return next(new Error('unauthorized'));
    }
    authenticate(auth.machineId, auth.key)
      .then((row) => {
        if (!row) {
          refusedBy(socket, auth.machineId, 'v2');
          return next(new Error('unauthorized'));
        }
        socket.data.machine = {
          id: row.id,
          tenant_id: row.tenant_id,
          site_id: row.site_id,
          kind: row.kind,
          key_hash: row.key_hash,
        } satisfies MachineRef;
        next();
      })
      .catch(() => next(new Error('unavailable')));
  });
  v2.on('connection', (socket) => {
    limitSocketEvents(socket, deps.eventsPerSecond);
    answerUnknownEvents(socket, [V2_EVENTS.heartbeat, V2_EVENTS.done]);
    const pending = connect(socket, socket.data.machine as MachineRef, 'v2');
    pending.catch((err: unknown) => {
      if (err instanceof CredentialReplaced) {
        logger.info({ machineId: err.machineId }, err.message);
        socket.disconnect(true);
      } else {
        // A passing storage error: the machine connects again and is registered then.
        logger.error({ err }, 'could not register machine');
        closeForReconnect(socket);
      }
    });
    socket.on(V2_EVENTS.heartbeat, async (...args: unknown[]) => {
      const ack = ackOf(args);
      const parsed = parseHeartbeatV2(args[0]);
      if (!parsed.ok) return ack(socketError('VALIDATION_FAILED', parsed.message));
      try {
        const conn = await pending;
        await presence.heartbeat(conn, parsed.value.status, parsed.value.firmware);
        if (parsed.value.status === 'IDLE') dispatcher.kick(conn.machineId, 'heartbeat');
        ack({ ok: true, serverTime: new Date().toISOString() });
      } catch (err) {
        logger.error({ err }, 'heartbeat failed');
        ack(socketError('INTERNAL', 'heartbeat could not be recorded'));
      }
    });
    socket.on(V2_EVENTS.done, async (...args: unknown[]) => {
      const ack = ackOf(args);
      const parsed = parseDoneV2(args[0]);
      if (!parsed.ok) return ack(socketError('VALIDATION_FAILED', parsed.message));
      try {
        const conn = await pending;
        const { commandId, orderId, status, failureCode } = parsed.value;
        const outcome = await recordResult(conn, { commandId, orderId }, status, failureCode);
        if (outcome === 'unknown')
          return ack(
            socketError(
              'NOT_FOUND',
              `command ${commandId} for order ${orderId} is not a command of this machine`,
            ),
          );
        if (outcome === 'not-sent')
          return ack(
            socketError(
              'NOT_FOUND',
              `command ${commandId} for order ${orderId} was not sent to this machine`,
            ),
          );
        ack({ ok: true, ...(outcome === 'repeat' ? { duplicate: true } : {}), orderId });
      } catch (err) {
        logger.error({ err }, 'machine:done failed');
        // Not recorded (storage away): the command goes out again at the machine's next IDLE
        // heartbeat and the machine answers with its result again, even if it does not resend.
        pending.then(
          (c) => c.sentCommands.delete(parsed.value.commandId),
          () => undefined,
        );
        ack(socketError('INTERNAL', 'result could not be recorded; send it again'));
      }
    });
  });

  // ---- v1 (seed-compatible) --------------------------------------------------------------
  deps.io.of('/').on('connection', (socket) => {
    answerUnknownEvents(socket, [V1_EVENTS.connect, V1_EVENTS.heartbeat, V1_EVENTS.done]);
    let conn: Promise<MachineConnection> | undefined;
    // The first machine:connect's outcome on this socket: its machine, or undefined (refused, failed, gone).
    let registering = false;
    let settleRegistration: (registered: MachineConnection | undefined) => void = () => undefined;
    const registration = new Promise<MachineConnection | undefined>((resolve) => {
      settleRegistration = resolve;
    });
    limitSocketEvents(socket, deps.eventsPerSecond);
    // Nothing is known about a socket until machine:connect: it may not sit here unauthenticated.
    // Closed at the transport: a machine whose machine:connect met a passing error (answered
    // `INTERNAL`, which the earlier firmware only logs) connects again and sends it once more.
    const authTimer = setTimeout(() => {
      if (!conn) closeForReconnect(socket);
    }, deps.authTimeoutMs);
    authTimer.unref();
    socket.on('disconnect', () => {
      clearTimeout(authTimer);
      settleRegistration(undefined);
    });
    socket.emit(V1_EVENTS.welcome, { ts: Date.now(), socketId: socket.id });
    const notRegistered = () => socketError('MACHINE_NOT_REGISTERED', 'send machine:connect first');
    /**
     * The machine of this socket for a result: registered already, or registering within
     * EARLY_RESULT_WAIT_MS (a result flushed ahead of machine:connect on a new connection).
     */
    async function registeredForResult(): Promise<MachineConnection | undefined> {
      if (conn) return conn;
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<'late'>((resolve) => {
        timer = setTimeout(() => resolve('late'), EARLY_RESULT_WAIT_MS);
      });
      const first = await Promise.race([registration, late]);
      clearTimeout(timer);
      if (first !== 'late') return first;
      // A machine:connect still being checked is waited for; none at all is not coming.
      return registering ? registration : undefined;
    }

    socket.on(V1_EVENTS.connect, async (...args: unknown[]) => {
      const ack = ackOf(args);
      const parsed = parseConnectV1(args[0]);
      const refuse = (message: string) => {
        ack(socketError('UNAUTHORIZED_MACHINE', message));
        socket.disconnect(true);
      };
      if (!parsed.ok) {
        settleRegistration(undefined);
        return refuse(parsed.message);
      }
      registering = true;
      try {
        const row = await authenticate(parsed.value.machineId, parsed.value.token);
        // Closed while its key was being checked: there is nothing to register, and its
        // disconnect event has already fired.
        if (!socket.connected) return;
        if (!row) {
          refusedBy(socket, parsed.value.machineId, 'v1');
          settleRegistration(undefined);
          return refuse('unknown machine or wrong token');
        }
        if (conn) return ack({ ok: true, machineId: row.id });
        conn = connect(socket, row, 'v1');
        const registered = await conn;
        settleRegistration(registered);
        ack({ ok: true, machineId: row.id });
        socket.emit(V1_EVENTS.authenticated, { ok: true, machineId: row.id, ts: Date.now() });
      } catch (err) {
        settleRegistration(undefined);
        if (err instanceof CredentialReplaced) {
          logger.info({ machineId: err.machineId }, err.message);
          return refuse('the machine key was replaced');
        }
        logger.error({ err }, 'v1 connect failed');
        // Nothing is registered: the machine:connect the answer asks for registers it for real
        // (a kept failed attempt would answer it ok and leave every later event failing).
        conn = undefined;
        registering = false;
        ack(socketError('INTERNAL', 'try again'));
      }
    });
    socket.on(V1_EVENTS.heartbeat, async (...args: unknown[]) => {
      const ack = ackOf(args);
      if (!conn) return ack(notRegistered());
      try {
        const c = await conn;
        await presence.heartbeat(c, 'IDLE');
        dispatcher.kick(c.machineId, 'heartbeat');
        ack({ ok: true, ts: Date.now() });
      } catch (err) {
        logger.error({ err }, 'v1 heartbeat failed');
        ack(socketError('INTERNAL', 'heartbeat could not be recorded'));
      }
    });
    socket.on(V1_EVENTS.done, async (...args: unknown[]) => {
      const ack = ackOf(args);
      const parsed = parseDoneV1(args[0]);
      if (!conn && !registering && !parsed.ok) return ack(notRegistered());
      let c: MachineConnection | undefined;
      try {
        c = await registeredForResult();
      } catch (err) {
        logger.error({ err }, 'v1 machine:done failed');
        return ack(socketError('INTERNAL', 'result could not be recorded; send it again'));
      }
      if (!c) return ack(notRegistered());
      if (!parsed.ok) return ack(socketError('INVALID_REQUEST', parsed.message));
      try {
        const outcome = await recordResult(
          c,
          { orderId: parsed.value.orderId },
          parsed.value.result,
          parsed.value.result === 'FAILED' ? 'DISPENSE_FAILED' : undefined,
        );
        // Another machine's order, an unknown one, or one of its own not sent to it (yet).
        if (outcome === 'unknown' || outcome === 'not-sent')
          return ack(
            socketError('ORDER_NOT_FOUND', `order ${parsed.value.orderId} was not sent to this machine`),
          );
        ack({ ok: true, orderId: parsed.value.orderId });
      } catch (err) {
        logger.error({ err }, 'v1 machine:done failed');
        ack(socketError('INTERNAL', 'result could not be recorded; send it again'));
      }
    });
  });
}

export const newNodeId = (): string => randomUUID().slice(0, 8);
