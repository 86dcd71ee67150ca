// Which machines are connected to this process, what they last reported, and when they
// were last heard from. Status changes are written at once; last-seen times in batches;
// connections and disconnections in groups (a reconnect storm is a few writes, not one each).
// Devices that poll over HTTP with their key (kiosks, cash units, printers) are present by
// their requests: an in-memory mark per request, written with the last-seen batch.
import { LIVE_EVENTS, type MachineStatus, type ReportedMachineStatus } from '@kioskhub/protocol';
import type { Logger } from 'pino';
import type { Socket } from 'socket.io';
import { nowIso } from '../../platform/db/database.js';
import { createGroupWriter } from '../../platform/group-writer.js';
import type { ConnectionWrite, MachinesRepo, OfflineWrite } from '../machines/machines.repo.js';
import type { MachineLink } from './machine-link.js';

export type Protocol = 'v1' | 'v2' | 'mqtt';

export interface MachineConnection {
  machineId: string;
  tenantId: string;
  siteId: string;
  kind: string;
  connectionId: string;
  protocol: Protocol;
  /** How commands reach the machine and how it is dropped (Socket.IO or MQTT). */
  link: MachineLink;
  /** The Socket.IO socket, for Socket.IO connections (v1 sends, print pushes). */
  socket?: Socket;
  /** Last status the machine reported; UNKNOWN until its first heartbeat. */
  status: ReportedMachineStatus | 'UNKNOWN';
  /**
   * The machine's last report before this connection, when it was BUSY or ERROR (as heard by
   * this process): until this connection reports, the machine is not ready for a command it has
   * never seen (its command in flight still goes out again).
   */
  earlierReport?: 'BUSY' | 'ERROR';
  /**
   * Status reports (heartbeats) received on this connection: a result counts the machine IDLE only
   * if no report came while it was being recorded, for a later report is the machine's own word.
   */
  statusReports?: number;
  lastSeen: number;
  /** Commands already sent on this connection (v2 re-sends on every new connection). */
  sentCommands: Set<string>;
  /** The latest send's token: an ack wait from an older send of the same command stops re-sending. */
  lastSend?: object;
  /** Firmware last written for this connection, so a heartbeat repeating it is not a write. */
  firmware?: string;
  /**
   * When a dispatch check last found nothing at all for this machine (no command queued or in
   * flight). New work always arrives with a kick, so until the re-check interval passes an
   * IDLE heartbeat need not ask the database again. Cleared by every kick that is not a heartbeat.
   */
  noWorkSince?: number;
  /** Settles when this connection's registration has been written (or has failed). */
  registered?: Promise<unknown>;
  /**
   * Settles true once the credential the connection was let in with was found still current after
   * it was registered: nothing is sent to it before (a key rotated meanwhile missed it).
   */
  credentialCurrent?: Promise<boolean>;
  /** Status writes this connection may still make at once (refilled over time), and a held-back write. */
  statusWrites?: { tokens: number; at: number };
  statusTimer?: NodeJS.Timeout;
}

export interface PresenceDeps {
  repo: MachinesRepo;
  logger: Logger;
  publish(tenantId: string, rooms: string[], event: string, data: Record<string, unknown>): void;
  heartbeatTimeoutMs: number;
  /** This process's id, the prefix of its connection ids (its own rows are never swept as dead). */
  nodeId?: string;
  flushIntervalMs?: number;
  /**
   * Beyond a burst of a few, a connection's status is written at most once per this interval;
   * the latest one wins.
   */
  statusWriteIntervalMs?: number;
  /** A heartbeat named a firmware version new for this connection (firmware campaigns follow it). */
  firmwareReported?(machineId: string, firmware: string): void;
}

/** The machine's key was replaced while this connection was being let in: it was dropped. */
export class CredentialReplaced extends Error {
  constructor(readonly machineId: string) {
    super(`the key of machine ${machineId} was replaced while it was connecting: disconnected`);
  }
}

export function createPresence(deps: PresenceDeps) {
  const local = new Map<string, MachineConnection>();
  /**
   * Machines whose last report heard here was BUSY or ERROR: it outlives the connection, so a
   * machine that reconnects gets no new command before it says IDLE. One entry per such machine.
   */
  const lastReports = new Map<string, 'BUSY' | 'ERROR'>();
  const pendingLastSeen = new Map<string, string>();
  /** HTTP devices heard from by this process: machine id → when (ms); and those not yet written. */
  const httpSeen = new Map<string, number>();
  const pendingHttp = new Map<string, string>();
  const httpChecked = new Map<string, number>();
  let timers: NodeJS.Timeout[] = [];
  // Keyed by machine id: a newer connection of the same machine replaces an unwritten one.
  const connections = createGroupWriter<ConnectionWrite, void>((batch) => deps.repo.connectMany(batch));
  // Keyed by connection id: every closed connection is checked against the row.
  const closing = new Set<Promise<void>>();
  let stopping = false;
  const disconnections = createGroupWriter((batch: ReadonlyMap<string, OfflineWrite>) =>
    deps.repo.offlineMany(batch),
  );

  function announce(
    tenantId: string,
    machineId: string,
    status: MachineStatus,
    connected: boolean,
    lastSeenAt: string | null,
  ) {
    deps.publish(tenantId, [`tenant:${tenantId}`, `machine:${machineId}`], LIVE_EVENTS.machineStatus, {
      tenantId,
      machineId,
      status,
      socketConnected: connected,
      lastSeenAt,
    });
  }

  async function flushHttp(): Promise<void> {
    if (pendingHttp.size === 0) return;
    const batch = new Map(pendingHttp);
    pendingHttp.clear();
    try {
      for (const w of await deps.repo.seenOverHttp(batch)) announce(w.tenant_id, w.id, 'IDLE', false, w.at);
    } catch (err) {
      deps.logger.warn({ err }, 'could not record HTTP devices as online; will retry');
      for (const [id, at] of batch) if (!pendingHttp.has(id)) pendingHttp.set(id, at);
    }
  }

  async function offlineSilentHttp(): Promise<void> {
    const cutoff = Date.now() - deps.heartbeatTimeoutMs;
    const silent = [...httpSeen].filter(([, at]) => at < cutoff);
    if (silent.length === 0) return;
    for (const [id] of silent) {
      httpSeen.delete(id);
      httpChecked.delete(id);
    }
    try {
      const rows = await deps.repo.offlineSilentHttp(
        silent.map(([id]) => id),
        new Date(cutoff).toISOString(),
        nowIso(),
      );
      for (const r of rows) announce(r.tenant_id, r.id, 'OFFLINE', false, r.last_seen_at);
    } catch (err) {
      deps.logger.warn({ err }, 'could not record silent HTTP devices as offline; will retry');
      // Still silent (not heard again meanwhile): the next sweep tries them again.
      for (const [id, at] of silent) if (!httpSeen.has(id)) httpSeen.set(id, at);
    }
  }

  /**
   * Devices online over HTTP that no process remembers (heard before a restart, or by a process
   * that has gone), and socket connections of a process that died without writing their end:
   * found in the database, now and then, and written OFFLINE once silent.
   */
  let forgottenSweptAt = 0;
  async function offlineForgotten(): Promise<void> {
    const now = Date.now();
    if (now - forgottenSweptAt < deps.heartbeatTimeoutMs) return;
    forgottenSweptAt = now;
    // The database's last-seen times lag by up to one batch: this process's are written first,
    // and another process's batch is allowed for, so a device still calling is never caught.
    const batchMs = deps.flushIntervalMs ?? 2_000;
    const cutoff = new Date(now - deps.heartbeatTimeoutMs - batchMs).toISOString();
    try {
      await flush();
      for (const r of await deps.repo.offlineAllSilentHttp(cutoff, nowIso())) {
        httpSeen.delete(r.id);
        httpChecked.delete(r.id);
        announce(r.tenant_id, r.id, 'OFFLINE', false, r.last_seen_at);
      }
      // Not this process's own connections: the local sweep judges those by what it has heard.
      for (const r of await deps.repo.offlineAllSilentSockets(cutoff, nowIso(), deps.nodeId)) {
        announce(r.tenant_id, r.id, 'OFFLINE', false, r.last_seen_at);
      }
    } catch (err) {
      deps.logger.warn({ err }, 'could not record silent HTTP devices as offline; will retry');
    }
  }

  async function flush(): Promise<void> {
    await flushHttp();
    if (pendingLastSeen.size === 0) return;
    const batch = new Map(pendingLastSeen);
    pendingLastSeen.clear();
    try {
      await deps.repo.touchMany(batch);
    } catch (err) {
      deps.logger.warn({ err }, 'could not write last-seen times; will retry');
      for (const [id, at] of batch) if (!pendingLastSeen.has(id)) pendingLastSeen.set(id, at);
    }
  }

  const statusInterval = deps.statusWriteIntervalMs ?? 0;
  const STATUS_BURST = 5;

  /** 0 when a status write may go now (and takes it), else how long until one may. */
  function statusWriteWait(conn: MachineConnection): number {
    if (statusInterval === 0) return 0;
    const now = Date.now();
    const bucket = (conn.statusWrites ??= { tokens: STATUS_BURST, at: now });
    bucket.tokens = Math.min(STATUS_BURST, bucket.tokens + (now - bucket.at) / statusInterval);
    bucket.at = now;
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return 0;
    }
    return Math.ceil((1 - bucket.tokens) * statusInterval);
  }

  async function writeStatus(
    conn: MachineConnection,
    status: ReportedMachineStatus,
    at: string,
    fw?: string,
  ): Promise<void> {
    // The status only while the row is still this connection's: a status recorded as the socket
    // closes (a result's IDLE) must not undo the OFFLINE its disconnect wrote meanwhile. A new
    // firmware version is the machine's all the same.
    await conn.registered;
    await deps.repo.updateForConnection(
      conn.machineId,
      conn.connectionId,
      { status, last_seen_at: at, updated_at: at },
      fw,
    );
    pendingLastSeen.delete(conn.machineId);
  }

  // A machine flipping its status faster than the interval: its latest status is written once
  // the interval has passed (a flood of flips is a few writes, not one each).
  function writeLater(conn: MachineConnection, waitMs: number, written: MachineConnection['status']): void {
    if (conn.statusTimer) return;
    conn.statusTimer = setTimeout(() => {
      conn.statusTimer = undefined;
      statusWriteWait(conn);
      if (local.get(conn.machineId) !== conn || conn.status === 'UNKNOWN' || conn.status === written) return;
      const status = conn.status;
      const at = new Date(conn.lastSeen).toISOString();
      writeStatus(conn, status, at).then(
        () => announce(conn.tenantId, conn.machineId, status, true, at),
        (err: unknown) =>
          deps.logger.warn({ err, machineId: conn.machineId }, 'could not write machine status'),
      );
    }, waitMs);
    conn.statusTimer.unref();
  }

  /** Records the machine's status as it stands now; returns true when it changed. */
  async function record(
    conn: MachineConnection,
    status: ReportedMachineStatus,
    firmware?: string,
  ): Promise<boolean> {
    conn.lastSeen = Date.now();
    const at = new Date(conn.lastSeen).toISOString();
    const changed = conn.status !== status && !(conn.status === 'UNKNOWN' && status === 'IDLE');
    const before = conn.status;
    conn.status = status;
    if (status === 'IDLE') lastReports.delete(conn.machineId);
    else lastReports.set(conn.machineId, status);
    // Machines repeat their firmware in every heartbeat; only a new value is worth a write.
    const newFirmware = firmware !== undefined && firmware !== conn.firmware;
    const waitMs = changed && !newFirmware && !conn.statusTimer ? statusWriteWait(conn) : 0;
    if (changed && !newFirmware && (waitMs > 0 || conn.statusTimer)) {
      writeLater(conn, waitMs, before);
      pendingLastSeen.set(conn.machineId, at);
    } else if (changed || newFirmware) {
      await writeStatus(conn, status, at, newFirmware ? firmware : undefined);
      if (newFirmware) {
        conn.firmware = firmware;
        deps.firmwareReported?.(conn.machineId, firmware!);
      }
      if (changed) announce(conn.tenantId, conn.machineId, status, true, at);
    } else {
      pendingLastSeen.set(conn.machineId, at);
    }
    return changed;
  }

  /** The socket closed; the machine is OFFLINE unless it has already reconnected elsewhere. */
  function unregister(conn: MachineConnection): Promise<void> {
    if (local.get(conn.machineId) === conn) local.delete(conn.machineId);
    clearTimeout(conn.statusTimer);
    if (!conn.registered) return Promise.resolve();
    const at = nowIso();
    const done = (async () => {
      // Its registration must land first, or the offline mark would find nothing to change.
      await conn.registered;
      const row = await disconnections.submit(conn.connectionId, { machineId: conn.machineId, at });
      if (row)
        announce(row.tenant_id, row.id, 'OFFLINE', false, pendingLastSeen.get(row.id) ?? row.last_seen_at);
    })();
    closing.add(done);
    return done.finally(() => closing.delete(done));
  }

  return {
    local: (machineId: string): MachineConnection | undefined => local.get(machineId),
    connections: (): IterableIterator<MachineConnection> => local.values(),
    count: (): number => local.size,
    pendingLastSeen: (machineId: string): string | undefined => pendingLastSeen.get(machineId),

    /** A device's key authenticated an HTTP request: it is online, last seen now (no write here). */
    seenOverHttp(machineId: string): void {
      if (stopping || local.has(machineId)) return;
      const now = Date.now();
      const at = new Date(now).toISOString();
      // Checked again now and then: a socket of the same machine closing elsewhere may have
      // written it OFFLINE meanwhile.
      const checked = httpChecked.get(machineId);
      if (checked === undefined || now - checked > deps.heartbeatTimeoutMs / 2) {
        pendingHttp.set(machineId, at);
        httpChecked.set(machineId, now);
      }
      httpSeen.set(machineId, now);
      pendingLastSeen.set(machineId, at);
    },

    /**
     * A machine authenticated on this process; a previous local socket of it is dropped.
     * `stillCurrent` asks again whether the credential it was let in with is still the machine's:
     * when not, it is dropped and this throws CredentialReplaced.
     */
    async register(conn: MachineConnection, stillCurrent?: () => Promise<boolean>): Promise<void> {
      // Shutting down: a socket that got in after the others were dropped is not written.
      if (stopping) throw new Error('shutting down');
      if (conn.status === 'UNKNOWN') conn.earlierReport = lastReports.get(conn.machineId);
      const previous = local.get(conn.machineId);
      local.set(conn.machineId, conn);
      if (previous && previous.link.id !== conn.link.id) previous.link.disconnect(false);
      // Asked only once listed: a rotation committed after this read finds the connection and drops it.
      if (stillCurrent) conn.credentialCurrent = stillCurrent().catch(() => false);
      const at = nowIso();
      const written = connections.submit(conn.machineId, {
        connectionId: conn.connectionId,
        protocol: conn.protocol,
        at,
      });
      conn.registered = written.catch(() => undefined);
      const [, current] = await Promise.all([written, conn.credentialCurrent ?? true]);
      if (!current) {
        conn.link.disconnect(false);
        throw new CredentialReplaced(conn.machineId);
      }
      pendingLastSeen.delete(conn.machineId);
      announce(conn.tenantId, conn.machineId, 'IDLE', true, at);
    },

    /** The socket closed; the machine is OFFLINE unless it has already reconnected elsewhere. */
    unregister,

    /** Records a heartbeat (a status report); returns true when the reported status changed. */
    heartbeat(conn: MachineConnection, status: ReportedMachineStatus, firmware?: string): Promise<boolean> {
      conn.statusReports = (conn.statusReports ?? 0) + 1;
      return record(conn, status, firmware);
    },

    /**
     * A birth named the firmware of a machine that another process took on meanwhile (its next
     * message was handled there first): the version is recorded all the same.
     */
    async firmwareSeen(machineId: string, firmware: string): Promise<void> {
      await deps.repo.update(machineId, { firmware, updated_at: nowIso() });
      deps.firmwareReported?.(machineId, firmware);
    },

    /** After a result the machine counts as IDLE until it says otherwise (not a report of its own). */
    async setIdle(conn: MachineConnection): Promise<void> {
      if (conn.status === 'IDLE') return;
      await record(conn, 'IDLE');
    },

    start(): void {
      const sweepEvery = Math.max(50, Math.min(5_000, Math.floor(deps.heartbeatTimeoutMs / 4)));
      timers = [
        setInterval(() => {
          const cutoff = Date.now() - deps.heartbeatTimeoutMs;
          for (const conn of local.values()) {
            // Silent too long: drop it so a half-open socket never blocks the next connection.
            if (conn.lastSeen < cutoff && !conn.link.livenessByBroker) {
              // Already closed (its close went unheard): dropping it again does nothing, and no
              // disconnect event will come to let it go.
              if (conn.link.connected) conn.link.disconnect(true);
              else
                void unregister(conn).catch((err: unknown) =>
                  deps.logger.warn({ err, machineId: conn.machineId }, 'could not record disconnect'),
                );
            }
          }
          void offlineSilentHttp().then(offlineForgotten);
        }, sweepEvery),
        setInterval(() => void flush(), deps.flushIntervalMs ?? 2_000),
      ];
      for (const t of timers) t.unref();
    },

    async stop(): Promise<void> {
      stopping = true;
      for (const t of timers) clearInterval(t);
      await Promise.allSettled([...closing]);
      await Promise.all([connections.drain(), disconnections.drain()]);
      await flush();
    },
  };
}

export type Presence = ReturnType<typeof createPresence>;
