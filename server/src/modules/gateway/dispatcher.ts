// Drives each locally connected machine's command queue: sends the in-flight command again
// on a new connection or after an ack timeout (v2, MQTT), or claims the oldest queued command.
// It speaks to machines only through their MachineLink, whatever the transport.
// Work for one machine is serialized; machines on other processes are only notified.
import { V1_EVENTS, type DispenseCommand, type V1DispensePayload } from '@kioskhub/protocol';
import type { Logger } from 'pino';
import type { CommandRow } from '../../platform/db/schema.js';
import {
  ackEffect,
  resendOnAckTimeout,
  sendDecision,
  type CommandStatus,
  type Protocol,
} from '../commands/command-rules.js';
import type { Claim, CommandsService } from '../commands/commands.service.js';
import type { MachineConnection, Presence } from './presence.js';

export interface DispatcherDeps {
  commands: CommandsService;
  presence: Presence;
  logger: Logger;
  ackTimeoutMs: number;
  resultTimeoutMs: number;
  /**
   * How long an IDLE heartbeat trusts an earlier "no work" answer for its machine. Work is
   * announced by kicks (after the payment's commit, across processes through Redis); this
   * re-check only covers a notice lost while Redis was away. 0 checks on every heartbeat.
   */
  idleRecheckMs: number;
  /**
   * How often the machines believed to have nothing to do are checked for work all at once (one
   * query per 1,000 machines). It bounds the delay of a notice lost in a way no reconnect shows:
   * the paying process lost Redis and died before Redis came back. 0 turns it off.
   */
  sweepMs: number;
  /** False while notices from other processes cannot arrive (Redis away): then every IDLE heartbeat checks. */
  noticesArrive(): boolean;
  /** Tell the other processes that a machine may have work (no-op when running alone). */
  notifyOthers(machineId: string): void;
  observeDispatchLatency(seconds: number): void;
  /**
   * A paid order's command not executed this long after its payment expires (`expiresAt`): on a
   * link that honours expiry it is never sent again and the order goes to review.
   */
  commandExpiryMs?: number;
}

// 'remote': another process said this machine may have work; never passed on again (a
// re-broadcast from every process not holding the machine loops forever between processes).
export type KickReason = 'connect' | 'heartbeat' | 'result' | 'paid' | 'declined' | 'remote' | 'sweep';

/** Work younger than this is still on its way through the normal kick; the sweep leaves it alone. */
const SWEEP_GRACE_MS = 5_000;
/** Machines per sweep query (one parameter each). */
const SWEEP_CHUNK = 1_000;

const DEFAULT_EXPIRY_MS = 600_000;

export function createDispatcher(deps: DispatcherDeps) {
  const { commands, presence, logger } = deps;
  const chains = new Map<string, Promise<void>>();
  /** Bumped when notices may have been lost: a check that began before it proves nothing. */
  let idleEpoch = 0;
  let timer: NodeJS.Timeout | undefined;
  let sweepTimer: NodeJS.Timeout | undefined;
  let sweeping: Promise<void> | undefined;
  let stopped = false;

  function kick(machineId: string, reason: KickReason): void {
    const conn = presence.local(machineId);
    if (!conn) {
      if (reason === 'paid') deps.notifyOthers(machineId);
      return;
    }
    // Anything but a heartbeat may mean new work: forget the last "nothing to do".
    if (reason !== 'heartbeat') conn.noWorkSince = undefined;
    const previous = chains.get(machineId) ?? Promise.resolve();
    const next = previous
      .then(() => pump(machineId, reason))
      .catch((err: unknown) => logger.error({ err, machineId }, 'dispatch failed'))
      .finally(() => {
        if (chains.get(machineId) === next) chains.delete(machineId);
      });
    chains.set(machineId, next);
  }

  async function pump(machineId: string, reason: KickReason): Promise<void> {
    const conn = presence.local(machineId);
    if (!conn || stopped) return;
    // A connection whose key is still being confirmed gets nothing yet (it may be a rotated key's).
    if (conn.credentialCurrent !== undefined && !(await conn.credentialCurrent)) return;
    const checkedAt = Date.now();
    const epoch = idleEpoch;
    if (
      reason === 'heartbeat' &&
      conn.noWorkSince !== undefined &&
      checkedAt - conn.noWorkSince < deps.idleRecheckMs &&
      deps.noticesArrive()
    )
      return;
    // A machine that said BUSY or ERROR gets no new command until it reports IDLE, also on a new
    // connection: until this one reports, its last report on an earlier one stands.
    const ready = conn.status === 'IDLE' || (conn.status === 'UNKNOWN' && conn.earlierReport === undefined);
    const claim: Claim = ready
      ? await commands.claimNext(machineId, conn.protocol)
      : await commands
          .inFlight(machineId)
          .then((c) => (c ? ({ kind: 'in-flight', command: c } as const) : ({ kind: 'none' } as const)));
    // Only a full check (queued and in flight) of a ready machine that found nothing at all proves
    // there is nothing to do (a claim lost to another process is not that), and only if no
    // Redis outage was noticed meanwhile.
    conn.noWorkSince =
      ready && claim.kind === 'none' && claim.empty === true && epoch === idleEpoch ? checkedAt : undefined;
    if (claim.kind === 'none') return;
    const decision = sendDecision({
      claim: claim.kind,
      commandProtocol: claim.command.protocol as Protocol | null,
      connectionProtocol: conn.protocol,
      sentOnThisConnection: conn.sentCommands.has(claim.command.id),
      expired: conn.link.honoursExpiry && Date.now() >= expiryOf(claim.command),
      // A command claimed with its payment (on the machine's row, which can lag behind its last
      // report) and never sent is new to the machine: it waits for the machine's next IDLE.
      ready,
      attempts: Number(claim.command.attempts),
    });
    if (decision === 'expire') {
      await expireCommand(conn, claim.command);
      return;
    }
    // v1 machines cannot de-duplicate: a v1 command is never sent twice. Nor does a machine
    // that said BUSY or ERROR get a command it has never seen.
    if (decision === 'skip') return;
    if (claim.kind === 'in-flight') {
      // Send first: the machine de-duplicates by commandId, and the count of sends is only a record.
      sendV2(conn, claim.command, claim.command.attempts + 1);
      await commands
        .markResent(claim.command.id)
        .catch((err: unknown) => logger.warn({ err, commandId: claim.command.id }, 'could not count a send'));
      return;
    }
    if (conn.protocol === 'v1') sendV1(conn, claim.command);
    else sendV2(conn, claim.command, Math.max(1, claim.command.attempts));
  }

  const expiryOf = (command: CommandRow): number =>
    Date.parse(command.queued_at) + (deps.commandExpiryMs ?? DEFAULT_EXPIRY_MS);

  /** Past its expiry: never sent again; the order goes to review and the next command may go. */
  async function expireCommand(conn: MachineConnection, command: CommandRow): Promise<void> {
    conn.sentCommands.delete(command.id);
    const expiresAt = new Date(expiryOf(command)).toISOString();
    if (await commands.expire(command.id, expiresAt)) {
      logger.warn(
        { machineId: conn.machineId, commandId: command.id, orderId: command.order_id, expiresAt },
        'command expired before the machine ran it: order needs review',
      );
      kick(conn.machineId, 'result');
    }
  }

  /** Machines believed to have nothing to do that do have work: a notice was lost. Kick them. */
  async function sweep(): Promise<number> {
    // The mark each machine had when asked about: a kick that came meanwhile changes it (clears
    // it, and its check may set a new one), and then nothing was lost.
    const marks = new Map<string, number>();
    for (const conn of presence.connections())
      if (conn.noWorkSince !== undefined) marks.set(conn.machineId, conn.noWorkSince);
    const ids = [...marks.keys()];
    let kicked = 0;
    for (let i = 0; i < ids.length && !stopped; i += SWEEP_CHUNK) {
      const withWork = await commands.machinesWithWork(
        ids.slice(i, i + SWEEP_CHUNK),
        new Date(Date.now() - SWEEP_GRACE_MS).toISOString(),
      );
      for (const machineId of withWork) {
        if (stopped || presence.local(machineId)?.noWorkSince !== marks.get(machineId)) continue;
        logger.warn(
          { machineId },
          'work found for a machine believed idle (a notice was lost): dispatching it',
        );
        kick(machineId, 'sweep');
        kicked++;
      }
    }
    return kicked;
  }

  function observe(command: CommandRow): void {
    deps.observeDispatchLatency(Math.max(0, Date.now() - Date.parse(command.queued_at)) / 1000);
  }

  function sendV1(conn: MachineConnection, command: CommandRow): void {
    const payload: V1DispensePayload = { type: 'DISPENSE', orderId: command.order_id };
    conn.socket?.emit(V1_EVENTS.dispense, payload);
    observe(command);
  }

  function sendV2(conn: MachineConnection, command: CommandRow, attempt: number): void {
    conn.sentCommands.add(command.id);
    const payload = JSON.parse(command.payload) as DispenseCommand;
    // attempts is 0 for a command claimed with its payment and not sent yet, 1 after a claim here.
    if (command.attempts <= 1) observe(command);
    const token = {};
    conn.lastSend = token;
    void awaitAck(conn, command, payload, attempt, token);
  }

  async function awaitAck(
    conn: MachineConnection,
    command: CommandRow,
    payload: DispenseCommand,
    attempt: number,
    token: object,
  ): Promise<void> {
    let ack: unknown;
    try {
      const expiresAt = new Date(expiryOf(command)).toISOString();
      ack = await conn.link.sendCommand(payload, { attempt, expiresAt, timeoutMs: deps.ackTimeoutMs });
    } catch {
      // No ack in time. If this connection is still the machine's, send the same command again
      // (unless a newer send of it, after a reconnect or a birth message, has taken over).
      if (stopped || presence.local(conn.machineId) !== conn || !conn.link.connected) return;
      if (conn.lastSend !== token) return;
      const current = await commands.inFlight(conn.machineId).catch(() => {
        conn.sentCommands.delete(command.id); // storage away: the next kick sends it again
        return undefined;
      });
      if (
        current &&
        resendOnAckTimeout({
          current: { id: current.id, status: current.status as CommandStatus },
          commandId: command.id,
          stillThisConnection: presence.local(conn.machineId) === conn && conn.link.connected,
          newestSend: conn.lastSend === token,
        })
      ) {
        if (conn.link.honoursExpiry && Date.now() >= expiryOf(current)) {
          await expireCommand(conn, current).catch((err: unknown) =>
            logger.warn({ err, commandId: command.id }, 'could not expire a command'),
          );
          return;
        }
        // Not awaited by anyone: a failure here must not become an unhandled rejection.
        await commands.markResent(command.id).catch(() => undefined);
        logger.info({ machineId: conn.machineId, commandId: command.id }, 'no ack: re-sending command');
        void awaitAck(conn, command, payload, attempt + 1, token);
      }
      return;
    }
    try {
      const effect = ackEffect(ack);
      if (effect.kind === 'accepted') {
        await commands.markAccepted(command.id);
      } else {
        const reason = effect.reason;
        await commands.markDeclined(command.id, reason);
        conn.sentCommands.delete(command.id);
        logger.info(
          { machineId: conn.machineId, commandId: command.id, reason },
          'machine declined the command',
        );
      }
    } catch (err) {
      logger.error({ err, commandId: command.id }, 'could not record the ack');
      // The next kick (an IDLE heartbeat, a result) sends it again; the machine de-duplicates.
      conn.sentCommands.delete(command.id);
    }
  }

  // Commands whose dispatch was started right after their payment's commit: the outbox row
  // written for them (the fallback for a crash in between) needs no second kick or notice.
  const startedEarly = new Map<string, number>();
  const EARLY_MEMORY_MS = 60_000;

  return {
    kick,
    /**
     * A result or notice arrived on a process that may not hold the machine (MQTT shared
     * subscriptions): dispatch here if it is local, else tell the process that holds it.
     */
    kickAnywhere(machineId: string): void {
      if (presence.local(machineId)) kick(machineId, 'result');
      else deps.notifyOthers(machineId);
    },
    /** The machine (re)announced itself (MQTT birth): its in-flight command goes out again. */
    resend(machineId: string): void {
      const conn = presence.local(machineId);
      if (!conn) return;
      conn.sentCommands.clear();
      kick(machineId, 'connect');
    },
    /** A payment just committed a command for this machine. */
    commandQueued(machineId: string, commandId: string): void {
      const now = Date.now();
      for (const [id, at] of startedEarly) {
        if (now - at < EARLY_MEMORY_MS) break;
        startedEarly.delete(id);
      }
      startedEarly.set(commandId, now);
      kick(machineId, 'paid');
    },
    /** The outbox relay's dispatch row: a kick unless this process already started that command. */
    fromOutbox(machineId: string, commandId?: string): void {
      if (commandId !== undefined && startedEarly.delete(commandId)) return;
      kick(machineId, 'paid');
    },
    /** Notices may have been lost (Redis was away): every machine's next heartbeat checks again. */
    forgetIdleChecks(): void {
      idleEpoch++;
      for (const conn of presence.connections()) conn.noWorkSince = undefined;
    },
    start(): void {
      const every = Math.max(50, Math.min(5_000, Math.floor(deps.resultTimeoutMs / 4)));
      timer = setInterval(() => {
        commands
          .escalateSilentV1(deps.resultTimeoutMs)
          .then((n) => {
            if (n > 0)
              logger.warn(
                { count: n },
                'v1 dispenses (or v2 ones of machines now on v1) without a result moved to NEEDS_REVIEW',
              );
          })
          .catch((err: unknown) => logger.warn({ err }, 'v1 escalation sweep failed'));
        // MQTT commands of machines that stay away expire all the same (links honouring expiry),
        // those in flight and those still queued.
        const expiryMs = deps.commandExpiryMs ?? DEFAULT_EXPIRY_MS;
        commands
          .expireOverdue('mqtt', new Date(Date.now() - expiryMs).toISOString(), (row) =>
            new Date(expiryOf(row)).toISOString(),
          )
          .then((n) => {
            if (n > 0) logger.warn({ count: n }, 'expired MQTT commands: orders moved to NEEDS_REVIEW');
          })
          .catch((err: unknown) => logger.warn({ err }, 'command expiry sweep failed'));
      }, every);
      timer.unref();
      if (deps.sweepMs > 0) {
        sweepTimer = setInterval(() => {
          if (sweeping || stopped) return;
          sweeping = sweep()
            .then(() => undefined)
            .catch((err: unknown) => logger.warn({ err }, 'dispatch sweep failed'))
            .finally(() => (sweeping = undefined));
        }, deps.sweepMs);
        sweepTimer.unref();
      }
    },
    sweep,
    async stop(): Promise<void> {
      stopped = true;
      if (timer) clearInterval(timer);
      if (sweepTimer) clearInterval(sweepTimer);
      await sweeping;
      await Promise.allSettled([...chains.values()]);
    },
  };
}

export type Dispatcher = ReturnType<typeof createDispatcher>;
