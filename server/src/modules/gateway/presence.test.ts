// Heartbeats are cheap: only a status change or a new firmware value is written at once;
// everything else is a last-seen time flushed in batches. A silent connection is dropped.
import type { Logger } from 'pino';
import type { Socket } from 'socket.io';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { MachinesRepo } from '../machines/machines.repo.js';
import { socketLink } from './machine-link.js';
import { createPresence, type MachineConnection } from './presence.js';

function setup(socket = {} as Socket) {
  const updates: Record<string, unknown>[] = [];
  /** Connection ids written offline. */
  const offline: string[] = [];
  const repo = {
    updateForConnection: async (
      _id: string,
      _connectionId: string,
      changes: Record<string, unknown>,
      firmware?: string,
    ) => void updates.push({ ...changes, ...(firmware !== undefined ? { firmware } : {}) }),
    connectMany: async () => undefined,
    offlineMany: async (closed: ReadonlyMap<string, unknown>) => {
      offline.push(...closed.keys());
      return new Map();
    },
    touchMany: async () => undefined,
    offlineAllSilentHttp: async () => [],
    offlineAllSilentSockets: async () => [],
  } as unknown as MachinesRepo;
  const presence = createPresence({
    repo,
    logger: {} as Logger,
    publish: () => undefined,
    heartbeatTimeoutMs: 30_000,
  });
  const conn: MachineConnection = {
    machineId: 'M01',
    tenantId: 'default',
    siteId: 'default',
    kind: 'vending',
    connectionId: 'n:1',
    protocol: 'v2',
    link: socketLink(socket),
    status: 'UNKNOWN',
    lastSeen: 0,
    sentCommands: new Set(),
  };
  return { presence, conn, updates, offline };
}

describe('presence heartbeats', () => {
  it('writes the firmware once per connection, not on every heartbeat that repeats it', async () => {
    const { presence, conn, updates } = setup();
    await presence.heartbeat(conn, 'IDLE', 'fw-1');
    await presence.heartbeat(conn, 'IDLE', 'fw-1');
    await presence.heartbeat(conn, 'IDLE', 'fw-1');
    expect(updates).toHaveLength(1);
    expect(updates[0]).toMatchObject({ firmware: 'fw-1' });
    expect(presence.pendingLastSeen('M01')).toEqual(expect.any(String));

    await presence.heartbeat(conn, 'IDLE', 'fw-2');
    expect(updates).toHaveLength(2);
    expect(updates[1]).toMatchObject({ firmware: 'fw-2' });
  });

  it('still writes a status change at once, without rewriting an unchanged firmware', async () => {
    const { presence, conn, updates } = setup();
    await presence.heartbeat(conn, 'IDLE', 'fw-1');
    await presence.heartbeat(conn, 'BUSY', 'fw-1');
    expect(updates).toHaveLength(2);
    expect(updates[1]).toMatchObject({ status: 'BUSY' });
    expect(updates[1]).not.toHaveProperty('firmware');
  });
});

describe('presence: what the machine said', () => {
  it('counts the machine’s status reports, not the IDLE a result implies', async () => {
    const { presence, conn } = setup();
    await presence.heartbeat(conn, 'BUSY');
    await presence.heartbeat(conn, 'BUSY');
    expect(conn.statusReports).toBe(2);
    await presence.setIdle(conn);
    expect(conn.status).toBe('IDLE');
    expect(conn.statusReports).toBe(2);
  });
});

describe('presence: silent connections', () => {
  afterEach(() => vi.useRealTimers());

  it('lets go of a silent connection whose socket has already closed (no disconnect event will come)', async () => {
    vi.useFakeTimers();
    let drops = 0;
    const closed = { connected: false, disconnect: () => void drops++ } as unknown as Socket;
    const { presence, conn, offline } = setup(closed);
    await presence.register(conn);
    presence.start();
    conn.lastSeen = Date.now();
    await vi.advanceTimersByTimeAsync(40_000); // past the heartbeat timeout (30 s) and a sweep
    expect(presence.local('M01')).toBeUndefined();
    expect(offline).toEqual(['n:1']);
    expect(drops).toBe(0);
    await presence.stop();
  });
});
