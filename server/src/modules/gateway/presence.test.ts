// Heartbeats are cheap: only a status change or a new firmware value is written at once;
// everything else is a last-seen time flushed in batches.
import type { Logger } from 'pino';
import type { Socket } from 'socket.io';
import { describe, expect, it } from 'vitest';
import type { MachinesRepo } from '../machines/machines.repo.js';
import { socketLink } from './machine-link.js';
import { createPresence, type MachineConnection } from './presence.js';

function setup() {
  const updates: Record<string, unknown>[] = [];
  const repo = {
    update: async (_id: string, changes: Record<string, unknown>) => void updates.push(changes),
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
    link: socketLink({} as Socket),
    status: 'UNKNOWN',
    lastSeen: 0,
    sentCommands: new Set(),
  };
  return { presence, conn, updates };
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
