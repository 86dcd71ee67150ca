// The fleet read model only combines what the machines, commands and printing services answer:
// narrow Pick<…> dependencies, so plain objects stand in for them without casts.
import type { PrintSummaryView } from '@kioskhub/protocol';
import { describe, expect, it } from 'vitest';
import { notFound } from '../../platform/errors.js';
import type { Machine } from '../machines/machines.service.js';
import { createFleetService } from './fleet.service.js';

const machine = (id: string): Machine => ({
  id,
  tenantId: 't1',
  siteId: 'default',
  name: id,
  kind: 'vending',
  status: 'IDLE',
  socketConnected: true,
  lastSeenAt: null,
  firmware: null,
  protocol: 'v2',
  currency: 'INR',
  createdAt: '2026-01-01T00:00:00.000Z',
  updatedAt: '2026-01-01T00:00:00.000Z',
});

function setup() {
  const asked: { list?: unknown; counts?: readonly string[] } = {};
  const summary: PrintSummaryView[] = [
    { tenantId: 't1', siteId: 'default', pending: 1, leased: 0, printed: 2, failed: 0 },
  ];
  const fleet = createFleetService({
    machines: {
      get: async (id, tenantId) => {
        if (tenantId !== 't1') throw notFound('machine', id);
        return machine(id);
      },
      list: async (filter) => {
        asked.list = filter;
        return { items: [machine('M01'), machine('M02')], nextCursor: 'M02' };
      },
      statuses: async () => [
        { id: 'M01', status: 'OFFLINE' },
        { id: 'M02', status: 'IDLE' },
        { id: 'M03', status: 'BUSY' },
      ],
    },
    commands: {
      pendingCountsByMachine: async (ids) => {
        asked.counts = ids;
        return new Map([['M02', 3]]);
      },
      recentForMachine: async () => [],
    },
    printing: { summaryBySite: async () => summary },
  });
  return { fleet, asked, summary };
}

describe('fleet read model', () => {
  it('lists machines from the machines service, queued orders from the commands service', async () => {
    const { fleet, asked } = setup();
    const page = await fleet.list({ tenantId: 't1', q: 'm0', limit: 2 });
    expect(asked.list).toEqual({ tenantId: 't1', q: 'm0', limit: 2 });
    expect(asked.counts).toEqual(['M01', 'M02']);
    expect(page.items.map((m) => [m.id, m.queuedOrders])).toEqual([
      ['M01', 0],
      ['M02', 3],
    ]);
    expect(page.nextCursor).toBe('M02');
  });

  it('counts every machine the filter matches for the summary, not one page', async () => {
    const { fleet, asked } = setup();
    await expect(fleet.summary({ tenantId: 't1' })).resolves.toEqual({
      machines: 3,
      online: 2,
      queuedOrders: 3,
    });
    expect(asked.counts).toEqual(['M01', 'M02', 'M03']);
  });

  it("answers 404 for another tenant's machine before reading its commands", async () => {
    const { fleet } = setup();
    await expect(fleet.recentCommands('M01', 't2', 10)).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await expect(fleet.recentCommands('M01', 't1', 10)).resolves.toEqual([]);
  });

  it('passes the print summary of the printing service through', async () => {
    const { fleet, summary } = setup();
    await expect(fleet.printSummary('t1')).resolves.toBe(summary);
  });
});
