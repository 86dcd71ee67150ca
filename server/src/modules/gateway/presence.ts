// Which machines are connected to this process, what they last reported, and when they
// were last heard from. Status changes are written at once; last-seen times in batches.
import { LIVE_EVENTS, type MachineStatus, type ReportedMachineStatus } from '@kioskhub/protocol';
import type { Logger } from 'pino';
import type { Socket } from 'socket.io';
import { nowIso } from '../../platform/db/database.js';
import type { MachinesRepo } from '../machines/machines.repo.js';

export type Protocol = 'v1' | 'v2';

export interface MachineConnection {
  machineId: string;
  tenantId: string;
  siteId: string;
  kind: string;
  connectionId: string;
  protocol: Protocol;
  socket: Socket;
  /** Last status the machine reported; UNKNOWN until its first heartbeat. */
  status: ReportedMachineStatus | 'UNKNOWN';
  lastSeen: number;
  /** Commands already sent on this connection (v2 re-sends on every new connection). */
  sentCommands: Set<string>;
  /** Firmware last written for this connection, so a heartbeat repeating it is not a write. */
  firmware?: string;
}

export interface PresenceDeps {
  repo: MachinesRepo;
  logger: Logger;
  publish(tenantId: string, rooms: string[], event: string, data: Record<string, unknown>): void;
  heartbeatTimeoutMs: number;
  flushIntervalMs?: number;
}

export function createPresence(deps: PresenceDeps) {
  const local = new Map<string, MachineConnection>();
  const pendingLastSeen = new Map<string, string>();
  let timers: NodeJS.Timeout[] = [];

  function announce(tenantId: string, machineId: string, status: MachineStatus, connected: boolean, lastSeenAt: string | null) {
    deps.publish(tenantId, [`tenant:${tenantId}`, `machine:${machineId}`], LIVE_EVENTS.machineStatus, {
      tenantId,
      machineId,
      status,
      socketConnected: connected,
      lastSeenAt,
    });
  }

  async function flush(): Promise<void> {
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

  return {
    local: (machineId: string): MachineConnection | undefined => local.get(machineId),
    connections: (): IterableIterator<MachineConnection> => local.values(),
    count: (): number => local.size,
    pendingLastSeen: (machineId: string): string | undefined => pendingLastSeen.get(machineId),

    /** A machine authenticated on this process; a previous local socket of it is dropped. */
    async register(conn: MachineConnection): Promise<void> {
      const previous = local.get(conn.machineId);
      local.set(conn.machineId, conn);
      if (previous && previous.socket.id !== conn.socket.id) previous.socket.disconnect(true);
      const at = nowIso();
      const status = 'IDLE';
      await deps.repo.update(conn.machineId, {
        status,
        socket_connected: 1,
        connection_id: conn.connectionId,
        protocol: conn.protocol,
        last_seen_at: at,
        updated_at: at,
      });
      pendingLastSeen.delete(conn.machineId);
      announce(conn.tenantId, conn.machineId, status, true, at);
    },

    /** The socket closed; the machine is OFFLINE unless it has already reconnected elsewhere. */
    async unregister(conn: MachineConnection): Promise<void> {
      if (local.get(conn.machineId) === conn) local.delete(conn.machineId);
      const row = await deps.repo.markOffline(conn.machineId, conn.connectionId, nowIso());
      if (row) announce(row.tenant_id, row.id, 'OFFLINE', false, pendingLastSeen.get(row.id) ?? row.last_seen_at);
    },

    /** Records a heartbeat; returns true when the reported status changed. */
    async heartbeat(conn: MachineConnection, status: ReportedMachineStatus, firmware?: string): Promise<boolean> {
      conn.lastSeen = Date.now();
      const at = new Date(conn.lastSeen).toISOString();
      const changed = conn.status !== status && !(conn.status === 'UNKNOWN' && status === 'IDLE');
      conn.status = status;
      // Machines repeat their firmware in every heartbeat; only a new value is worth a write.
      const newFirmware = firmware !== undefined && firmware !== conn.firmware;
      if (changed || newFirmware) {
        await deps.repo.update(conn.machineId, { status, last_seen_at: at, updated_at: at, ...(newFirmware ? { firmware } : {}) });
        if (newFirmware) conn.firmware = firmware;
        pendingLastSeen.delete(conn.machineId);
        if (changed) announce(conn.tenantId, conn.machineId, status, true, at);
      } else {
        pendingLastSeen.set(conn.machineId, at);
      }
      return changed;
    },

    /** After a result the machine counts as IDLE until it says otherwise. */
    async setIdle(conn: MachineConnection): Promise<void> {
      if (conn.status === 'IDLE') return;
      await this.heartbeat(conn, 'IDLE');
    },

    start(): void {
      const sweepEvery = Math.max(50, Math.min(5_000, Math.floor(deps.heartbeatTimeoutMs / 4)));
      timers = [
        setInterval(() => {
          const cutoff = Date.now() - deps.heartbeatTimeoutMs;
          for (const conn of local.values()) {
            // Silent too long: drop it so a half-open socket never blocks the next connection.
            if (conn.lastSeen < cutoff) conn.socket.disconnect(true);
          }
        }, sweepEvery),
        setInterval(() => void flush(), deps.flushIntervalMs ?? 2_000),
      ];
      for (const t of timers) t.unref();
    },

    async stop(): Promise<void> {
      for (const t of timers) clearInterval(t);
      await flush();
    },
  };
}

export type Presence = ReturnType<typeof createPresence>;
