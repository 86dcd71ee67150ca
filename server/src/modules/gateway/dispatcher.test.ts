// An IDLE heartbeat trusts an earlier "no work" for DISPATCH_IDLE_RECHECK_MS; every other
// kick (payment, remote notice, result, connect) asks the database again.
import type { Logger } from 'pino';
import type { Socket } from 'socket.io';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { CommandsService } from '../commands/commands.service.js';
import { createDispatcher, type KickReason } from './dispatcher.js';
import { socketLink } from './machine-link.js';
import type { MachineConnection, Presence } from './presence.js';

function setup(idleRecheckMs: number, notices = { arrive: true }) {
  const claims: string[] = [];
  // What the next checks answer: nothing at all, or a claim lost to another process.
  const answer: { empty: boolean; gate?: Promise<void>; workLeft?: boolean } = { empty: true };
  const sweeps: string[][] = [];
  const commands = {
    claimNext: async (machineId: string) => {
      claims.push(machineId);
      await answer.gate;
      return answer.empty ? ({ kind: 'none', empty: true } as const) : ({ kind: 'none' } as const);
    },
    inFlight: async () => undefined,
    // What the sweep's query finds: the machines asked about, when a lost notice left work behind.
    machinesWithWork: async (ids: readonly string[]) => {
      sweeps.push([...ids]);
      return answer.workLeft ? [...ids] : [];
    },
  } as unknown as CommandsService;
  const conn: MachineConnection = {
    machineId: 'M01',
    tenantId: 't',
    siteId: 's',
    kind: 'vending',
    connectionId: 'n:1',
    protocol: 'v2',
    link: socketLink({} as Socket),
    status: 'IDLE',
    lastSeen: 0,
    sentCommands: new Set(),
  };
  const presence = {
    local: (id: string) => (id === 'M01' ? conn : undefined),
    connections: () => [conn].values(),
  } as unknown as Presence;
  const dispatcher = createDispatcher({
    commands,
    presence,
    logger: { error: () => undefined, warn: () => undefined } as unknown as Logger,
    ackTimeoutMs: 1_000,
    resultTimeoutMs: 10_000,
    idleRecheckMs,
    sweepMs: 0,
    noticesArrive: () => notices.arrive,
    notifyOthers: () => undefined,
    observeDispatchLatency: () => undefined,
  });
  const kick = async (reason: KickReason) => {
    dispatcher.kick('M01', reason);
    await vi.advanceTimersByTimeAsync(0);
  };
  return { dispatcher, kick, claims, conn, answer, sweeps };
}

describe('dispatcher: idle heartbeats', () => {
  afterEach(() => vi.useRealTimers());

  it('asks the database once per re-check interval for a machine with nothing to do', async () => {
    vi.useFakeTimers();
    const { kick, claims } = setup(60_000);
    await kick('connect');
    for (let i = 0; i < 5; i++) await kick('heartbeat');
    expect(claims).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(60_000);
    await kick('heartbeat');
    expect(claims).toHaveLength(2);
  });

  it.each(['paid', 'remote', 'result', 'declined', 'connect'] as const)(
    'checks again after a %s kick, and the heartbeat after it trusts that check',
    async (reason) => {
      vi.useFakeTimers();
      const { kick, claims } = setup(60_000);
      await kick('heartbeat');
      await kick(reason);
      await kick('heartbeat');
      expect(claims).toHaveLength(2);
    },
  );

  it('forgets every "no work" after Redis was away', async () => {
    vi.useFakeTimers();
    const { dispatcher, kick, claims } = setup(60_000);
    await kick('heartbeat');
    dispatcher.forgetIdleChecks();
    await kick('heartbeat');
    expect(claims).toHaveLength(2);
  });

  it('checks on every heartbeat while notices from other processes cannot arrive (Redis away)', async () => {
    vi.useFakeTimers();
    const notices = { arrive: false };
    const { kick, claims } = setup(60_000, notices);
    for (let i = 0; i < 3; i++) await kick('heartbeat');
    expect(claims).toHaveLength(3);
    notices.arrive = true;
    await kick('heartbeat');
    expect(claims).toHaveLength(3);
  });

  it('never trusts a check of a BUSY machine (it looked only at the command in flight)', async () => {
    vi.useFakeTimers();
    const { kick, claims, conn } = setup(60_000);
    conn.status = 'BUSY';
    await kick('paid');
    conn.status = 'IDLE';
    await kick('heartbeat');
    expect(claims).toHaveLength(1);
  });

  it('with DISPATCH_IDLE_RECHECK_MS=0 checks on every heartbeat', async () => {
    vi.useFakeTimers();
    const { kick, claims } = setup(0);
    for (let i = 0; i < 3; i++) await kick('heartbeat');
    expect(claims).toHaveLength(3);
  });

  it('a command started right after its payment is not kicked again by its outbox row; other rows still kick', async () => {
    vi.useFakeTimers();
    const { dispatcher, claims } = setup(60_000);
    dispatcher.commandQueued('M01', 'C1');
    await vi.advanceTimersByTimeAsync(0);
    dispatcher.fromOutbox('M01', 'C1');
    await vi.advanceTimersByTimeAsync(0);
    expect(claims).toHaveLength(1);
    dispatcher.fromOutbox('M01', 'C2');
    dispatcher.fromOutbox('M01');
    await vi.advanceTimersByTimeAsync(0);
    expect(claims).toHaveLength(3);
  });

  it('a claim lost to another process is not "no work": the next heartbeat checks again', async () => {
    vi.useFakeTimers();
    const { kick, claims, answer } = setup(60_000);
    answer.empty = false;
    await kick('heartbeat');
    await kick('heartbeat');
    expect(claims).toHaveLength(2);
  });

  it('a check still running when Redis comes back proves nothing', async () => {
    vi.useFakeTimers();
    const { dispatcher, kick, claims, answer } = setup(60_000);
    let release!: () => void;
    answer.gate = new Promise<void>((r) => (release = r));
    dispatcher.kick('M01', 'heartbeat');
    await vi.advanceTimersByTimeAsync(0);
    dispatcher.forgetIdleChecks();
    release();
    await vi.advanceTimersByTimeAsync(0);
    answer.gate = undefined;
    await kick('heartbeat');
    expect(claims).toHaveLength(2);
  });
});

describe('dispatcher: the sweep for lost notices', () => {
  afterEach(() => vi.useRealTimers());

  it('asks only about machines believed to have nothing to do', async () => {
    vi.useFakeTimers();
    const { dispatcher, kick, sweeps } = setup(60_000);
    expect(await dispatcher.sweep()).toBe(0);
    expect(sweeps).toEqual([]); // never checked yet: its next heartbeat asks anyway
    await kick('heartbeat');
    expect(await dispatcher.sweep()).toBe(0);
    expect(sweeps).toEqual([['M01']]);
  });

  it('dispatches work left behind by a lost notice, though the re-check interval has not passed', async () => {
    vi.useFakeTimers();
    const { dispatcher, kick, claims, conn, answer } = setup(60_000);
    await kick('heartbeat');
    await kick('heartbeat');
    expect(claims).toHaveLength(1);
    answer.workLeft = true;
    expect(await dispatcher.sweep()).toBe(1);
    await vi.advanceTimersByTimeAsync(0);
    expect(claims).toHaveLength(2);
    // The check found nothing this time (the stub), so the mark is back: one sweep, one check.
    expect(conn.noWorkSince).toBeDefined();
  });

  it('leaves a machine alone when a kick and its check renewed the mark while the sweep was asking', async () => {
    vi.useFakeTimers();
    const { dispatcher, kick, claims, conn, answer } = setup(60_000);
    await kick('heartbeat');
    answer.workLeft = true;
    const swept = dispatcher.sweep();
    conn.noWorkSince = conn.noWorkSince! + 1; // a kick cleared it, its check found nothing again
    expect(await swept).toBe(0);
    expect(claims).toHaveLength(1);
  });

  it('asks nothing once stopped', async () => {
    vi.useFakeTimers();
    const { dispatcher, kick, sweeps, answer } = setup(60_000);
    await kick('heartbeat');
    answer.workLeft = true;
    await dispatcher.stop();
    expect(await dispatcher.sweep()).toBe(0);
    expect(sweeps).toEqual([]);
  });

  it('leaves a machine alone when a kick cleared its mark while the sweep was asking', async () => {
    vi.useFakeTimers();
    const { dispatcher, kick, claims, conn, answer } = setup(60_000);
    await kick('heartbeat');
    answer.workLeft = true;
    const swept = dispatcher.sweep();
    conn.noWorkSince = undefined; // what a payment's kick does
    expect(await swept).toBe(0);
    expect(claims).toHaveLength(1);
  });
});
