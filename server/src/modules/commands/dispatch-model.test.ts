// The dispatch and payment pipeline, model-level (pure: no sockets, no database): 10,000 generated
// histories of payments (duplicates, wrong amounts), machines connecting, dropping, heartbeating
// BUSY or IDLE (with status writes that may not reach the machine's row, which the payment reads),
// messages lost with a dropped connection, acks timing out, results repeated, commands expiring
// and refunds of any size, run through the real pure rules the services and the dispatcher use
// (command-rules, order-rules, payment-rules), with a machine that de-duplicates by commandId as
// CONTRACTS §5 asks. After every step the contract's rules must hold (a machine whose last report
// was BUSY, on this connection or an earlier one, gets no command it has not seen); after the
// network settles, every paid order must be dispensed exactly once or be in review.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canTransition, sourcesOf } from '../orders/order-rules.js';
import {
  applyArrival,
  canMovePayment,
  decideRefund,
  paymentSourcesOf,
  type PaymentStatus,
} from '../payments/payment-rules.js';
import type { OrderStatus } from '@kioskhub/protocol';
import {
  ackEffect,
  claimDecision,
  commandSourcesOf,
  isInFlight,
  resendOnAckTimeout,
  resultEffect,
  sendDecision,
  type CommandStatus,
} from './command-rules.js';

// The contract's command life, written out independently of the implementation.
const EXPECTED_MOVES: Record<CommandStatus, CommandStatus[]> = {
  QUEUED: ['SENT', 'NEEDS_REVIEW', 'DONE'],
  SENT: ['ACCEPTED', 'QUEUED', 'DONE', 'NEEDS_REVIEW'],
  ACCEPTED: ['DONE', 'NEEDS_REVIEW'],
  NEEDS_REVIEW: ['DONE'],
  DONE: [],
};
/** Sent and not yet answered with a result (CONTRACTS §5: at most one per machine). */
const EXPECTED_IN_FLIGHT: CommandStatus[] = ['SENT', 'ACCEPTED'];
const PRICE = 2000;

type Event =
  | { t: 'pay'; m: number; pid: number; exact: boolean }
  | {
      t:
        | 'connect'
        | 'disconnect'
        | 'heartbeat'
        | 'toMachine'
        | 'toServer'
        | 'finish'
        | 'ackTimeout'
        | 'expire';
      m: number;
      ok?: boolean;
    }
  | { t: 'refund'; pid: number; amount: number };

const M = 2;
const machineArb = fc.integer({ min: 0, max: M - 1 });
const eventArb: fc.Arbitrary<Event> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({
      t: fc.constant('pay' as const),
      m: machineArb,
      pid: fc.integer({ min: 0, max: 9 }),
      exact: fc.integer({ min: 0, max: 9 }).map((n) => n > 0),
    }),
  },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('connect' as const), m: machineArb }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('disconnect' as const), m: machineArb }) },
  // ok false: the status reached the process holding the machine but not the machine's row.
  {
    weight: 2,
    arbitrary: fc.record({ t: fc.constant('heartbeat' as const), m: machineArb, ok: fc.boolean() }),
  },
  { weight: 4, arbitrary: fc.record({ t: fc.constant('toMachine' as const), m: machineArb }) },
  { weight: 4, arbitrary: fc.record({ t: fc.constant('toServer' as const), m: machineArb }) },
  { weight: 3, arbitrary: fc.record({ t: fc.constant('finish' as const), m: machineArb, ok: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('ackTimeout' as const), m: machineArb }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('expire' as const), m: machineArb }) },
  {
    weight: 1,
    arbitrary: fc.record({
      t: fc.constant('refund' as const),
      pid: fc.integer({ min: 0, max: 9 }),
      amount: fc.integer({ min: -1, max: PRICE + 1 }),
    }),
  },
);

interface Command {
  id: string;
  machine: number;
  orderId: string;
  status: CommandStatus;
  seq: number;
  /** Sends so far, on any connection (0: claimed with its payment and not sent yet). */
  attempts: number;
  /** The row's `sent_at` is set: claimed for sending, and not declined back into the queue since. */
  sent: boolean;
}
interface Payment {
  status: PaymentStatus;
  received: number;
  refunded: number;
  orderId: string;
}
interface Order {
  status: OrderStatus;
  machine: number;
}
type Down = { commandId: string; orderId: string; token: number };
type Up =
  | { kind: 'ack'; commandId: string; token: number; ack: unknown }
  | { kind: 'done'; commandId: string; orderId: string; status: 'SUCCESS' | 'FAILED' };
interface Conn {
  status: 'UNKNOWN' | 'IDLE' | 'BUSY';
  /** The machine's last report, on an earlier connection, was BUSY (presence's `earlierReport`). */
  earlierBusy: boolean;
  sent: Set<string>;
  lastSend?: { token: number; commandId: string; acked: boolean };
}
interface Machine {
  finished: Map<string, { orderId: string; status: 'SUCCESS' | 'FAILED'; acked: boolean }>;
  current?: Down;
  dispensed: string[];
}

/** The pipeline built from the real rules, with an in-memory store standing in for the tables. */
function pipeline() {
  const commands = new Map<string, Command>();
  const orders = new Map<string, Order>();
  const inbox = new Map<number, string>(); // provider payment id → payment (= order) id
  const payments = new Map<string, Payment>();
  const conns: (Conn | undefined)[] = Array.from({ length: M }, () => undefined);
  /** The machine's row as the payment reads it: its status writes can lag or fail. */
  const rows: ('IDLE' | 'BUSY' | 'OFFLINE')[] = Array.from({ length: M }, () => 'OFFLINE');
  /** What each machine last reported, on whatever connection (the process remembers it). */
  const lastReports: ('IDLE' | 'BUSY' | undefined)[] = Array.from({ length: M }, () => undefined);
  const down: Down[][] = Array.from({ length: M }, () => []);
  const up: Up[][] = Array.from({ length: M }, () => []);
  const machines: Machine[] = Array.from({ length: M }, () => ({ finished: new Map(), dispensed: [] }));
  const violations: string[] = [];
  const commandMoves: [CommandStatus, CommandStatus][] = [];
  const commandIdsSeen = new Map<string, string>(); // order → the commandId every dispense of it carried
  let seq = 0;
  let token = 0;

  const moveCommand = (c: Command, to: CommandStatus): boolean => {
    if (!commandSourcesOf(to).includes(c.status)) return false; // the conditional update
    commandMoves.push([c.status, to]);
    c.status = to;
    if (to === 'SENT') c.sent = true;
    if (to === 'QUEUED') c.sent = false;
    return true;
  };
  const moveOrder = (id: string, to: OrderStatus): boolean => {
    const o = orders.get(id)!;
    if (!sourcesOf(to).includes(o.status)) return false;
    if (!canTransition(o.status, to)) violations.push(`order ${o.status} → ${to}`);
    o.status = to;
    return true;
  };
  const movePayment = (p: Payment, to: PaymentStatus): boolean => {
    if (!paymentSourcesOf(to).includes(p.status)) return false;
    if (!canMovePayment(p.status, to)) violations.push(`payment ${p.status} → ${to}`);
    p.status = to;
    return true;
  };
  const ofMachine = (m: number) => [...commands.values()].filter((c) => c.machine === m);
  const inFlight = (m: number) => ofMachine(m).find((c) => isInFlight(c.status));
  /** The claim's first read: in flight first, then the oldest queued. */
  const head = (m: number) =>
    inFlight(m) ??
    ofMachine(m)
      .filter((c) => c.status === 'QUEUED')
      .sort((a, b) => a.seq - b.seq)[0];

  function send(m: number, c: Command) {
    const conn = conns[m]!;
    if (lastReports[m] === 'BUSY' && c.attempts === 0)
      violations.push(`machine ${m} said BUSY and was sent ${c.id}, a command it had not seen`);
    c.attempts++;
    conn.sent.add(c.id);
    conn.lastSend = { token: ++token, commandId: c.id, acked: false };
    down[m]!.push({ commandId: c.id, orderId: c.orderId, token });
    const seen = commandIdsSeen.get(c.orderId);
    if (seen !== undefined && seen !== c.id)
      violations.push(`order ${c.orderId} sent as ${seen} and ${c.id}`);
    commandIdsSeen.set(c.orderId, c.id);
  }

  /** The dispatcher's pump for one machine. */
  function kick(m: number) {
    const conn = conns[m];
    if (!conn) return;
    const ready = conn.status === 'IDLE' || (conn.status === 'UNKNOWN' && !conn.earlierBusy);
    let claim: { kind: 'new' | 'in-flight'; c: Command } | undefined;
    if (ready) {
      const h = head(m);
      const decision = claimDecision(h);
      if (decision === 'in-flight') claim = { kind: 'in-flight', c: h! };
      else if (decision === 'claim' && moveCommand(h!, 'SENT')) claim = { kind: 'new', c: h! };
    } else {
      const f = inFlight(m);
      if (f) claim = { kind: 'in-flight', c: f };
    }
    if (!claim) return;
    const d = sendDecision({
      claim: claim.kind,
      commandProtocol: 'v2',
      connectionProtocol: 'v2',
      sentOnThisConnection: conn.sent.has(claim.c.id),
      expired: false,
      ready,
      attempts: claim.c.attempts,
    });
    if (d === 'send') send(m, claim.c);
  }

  function expire(c: Command) {
    if (!moveCommand(c, 'NEEDS_REVIEW')) return;
    moveOrder(c.orderId, 'NEEDS_REVIEW');
    conns[c.machine]?.sent.delete(c.id);
    kick(c.machine);
  }

  function serverReceives(m: number, msg: Up) {
    if (msg.kind === 'ack') {
      const conn = conns[m];
      if (conn?.lastSend?.token === msg.token) conn.lastSend.acked = true;
      const c = commands.get(msg.commandId)!;
      const effect = ackEffect(msg.ack);
      if (effect.kind === 'accepted') {
        if (moveCommand(c, 'ACCEPTED')) moveOrder(c.orderId, 'DISPATCHED');
      } else if (moveCommand(c, 'QUEUED')) conn?.sent.delete(c.id);
      return;
    }
    const c = commands.get(msg.commandId);
    const mine = c && c.machine === m && c.orderId === msg.orderId ? c : undefined;
    const fin = machines[m]!.finished.get(msg.commandId);
    if (fin) fin.acked = true; // any answer means the server has it
    if (!mine) return;
    const effect = resultEffect(mine);
    if (effect.kind === 'repeat' || effect.kind === 'not-sent') return;
    if (!moveCommand(mine, 'DONE')) return;
    if (effect.impliesAccepted) moveOrder(mine.orderId, 'DISPATCHED');
    moveOrder(mine.orderId, msg.status === 'SUCCESS' ? 'COMPLETED' : 'FAILED');
    kick(m);
  }

  /** The firmware: de-duplicates by commandId, one dispense at a time (machine-simulator's rules). */
  function machineReceives(m: number, msg: Down) {
    const mc = machines[m]!;
    const ack = (a: unknown) =>
      up[m]!.push({ kind: 'ack', commandId: msg.commandId, token: msg.token, ack: a });
    const fin = mc.finished.get(msg.commandId);
    if (fin) {
      ack({ accepted: true });
      up[m]!.push({ kind: 'done', commandId: msg.commandId, orderId: fin.orderId, status: fin.status });
    } else if (mc.current?.commandId === msg.commandId) ack({ accepted: true });
    else if (mc.current) ack({ accepted: false, reason: 'BUSY' });
    else {
      mc.current = msg;
      mc.dispensed.push(msg.orderId);
      ack({ accepted: true });
    }
  }

  function apply(e: Event) {
    switch (e.t) {
      case 'pay': {
        if (inbox.has(e.pid)) return; // the inbox key: a duplicate delivery has no effect
        const id = `o${e.pid}`;
        inbox.set(e.pid, id);
        const p: Payment = { status: 'PENDING', received: 0, refunded: 0, orderId: id };
        payments.set(id, p);
        const out = applyArrival('exact', PRICE, 0, e.exact ? PRICE : PRICE - 1);
        p.received = out.receivedMinor;
        orders.set(id, { status: 'PAID', machine: e.m });
        if (out.kind !== 'settle') {
          movePayment(p, 'FAILED');
          orders.get(id)!.status = 'FAILED'; // AMOUNT_MISMATCH: never dispensed, recorded for refund
          return;
        }
        movePayment(p, 'SUCCEEDED');
        // Claimed with its payment when the machine's row says connected and IDLE and it has
        // nothing else (the row, not what the machine last reported to its process).
        const claimNow = rows[e.m] === 'IDLE' && !head(e.m);
        const c: Command = {
          id: `c${e.pid}`,
          machine: e.m,
          orderId: id,
          status: 'QUEUED',
          seq: ++seq,
          attempts: 0,
          sent: false,
        };
        commands.set(c.id, c);
        if (claimNow) moveCommand(c, 'SENT');
        kick(e.m);
        return;
      }
      case 'connect': {
        if (conns[e.m]) return;
        conns[e.m] = { status: 'UNKNOWN', earlierBusy: lastReports[e.m] === 'BUSY', sent: new Set() };
        rows[e.m] = 'IDLE';
        for (const [commandId, f] of machines[e.m]!.finished)
          if (!f.acked) up[e.m]!.push({ kind: 'done', commandId, orderId: f.orderId, status: f.status });
        kick(e.m);
        return;
      }
      case 'disconnect':
        conns[e.m] = undefined;
        rows[e.m] = 'OFFLINE';
        down[e.m] = [];
        up[e.m] = [];
        return;
      case 'heartbeat': {
        const conn = conns[e.m];
        if (!conn) return;
        conn.status = machines[e.m]!.current ? 'BUSY' : 'IDLE';
        lastReports[e.m] = conn.status;
        if (e.ok !== false) rows[e.m] = conn.status;
        kick(e.m);
        return;
      }
      case 'toMachine': {
        const msg = down[e.m]!.shift();
        if (msg) machineReceives(e.m, msg);
        return;
      }
      case 'toServer': {
        const msg = up[e.m]!.shift();
        if (msg) serverReceives(e.m, msg);
        return;
      }
      case 'finish': {
        const mc = machines[e.m]!;
        const cur = mc.current;
        if (!cur) return;
        mc.current = undefined;
        const status = e.ok ? 'SUCCESS' : 'FAILED';
        mc.finished.set(cur.commandId, { orderId: cur.orderId, status, acked: false });
        if (conns[e.m])
          up[e.m]!.push({ kind: 'done', commandId: cur.commandId, orderId: cur.orderId, status });
        return;
      }
      case 'ackTimeout': {
        const conn = conns[e.m];
        const last = conn?.lastSend;
        if (!conn || !last || last.acked) return;
        const current = inFlight(e.m);
        if (
          resendOnAckTimeout({
            current,
            commandId: last.commandId,
            stillThisConnection: true,
            newestSend: true,
          })
        )
          send(e.m, current!);
        return;
      }
      case 'expire': {
        const c = head(e.m);
        if (c) expire(c);
        return;
      }
      case 'refund': {
        const id = inbox.get(e.pid);
        const p = id ? payments.get(id) : undefined;
        if (!p || !['FAILED', 'REFUNDED', 'NEEDS_REVIEW'].includes(orders.get(p.orderId)!.status)) return;
        const d = decideRefund(
          { status: p.status, amountMinor: PRICE, receivedMinor: p.received, refundedMinor: p.refunded },
          e.amount,
        );
        if (!d.ok) return;
        if (d.status !== p.status && !movePayment(p, d.status)) return;
        p.refunded = d.refundedMinor;
        if (p.refunded === p.received) moveOrder(p.orderId, 'REFUNDED');
        return;
      }
    }
  }

  /** What must hold after every step. */
  function check() {
    for (let m = 0; m < M; m++) {
      const flying = ofMachine(m).filter((c) => EXPECTED_IN_FLIGHT.includes(c.status));
      if (flying.length > 1) violations.push(`machine ${m}: ${flying.length} commands in flight`);
      const d = machines[m]!.dispensed;
      if (new Set(d).size !== d.length) violations.push(`machine ${m} dispensed an order twice`);
    }
    for (const [from, to] of commandMoves)
      if (!EXPECTED_MOVES[from].includes(to)) violations.push(`command ${from} → ${to}`);
    for (const p of payments.values()) {
      if (p.refunded > p.received || p.refunded < 0)
        violations.push(`refunded ${p.refunded} of ${p.received}`);
      const paid = p.status !== 'PENDING' && p.status !== 'FAILED' && p.status !== 'EXPIRED';
      if (paid && p.received !== PRICE) violations.push(`paid ${p.received} for ${PRICE}`);
    }
    for (let m = 0; m < M; m++)
      for (const orderId of machines[m]!.dispensed) {
        const p = payments.get(orderId);
        if (!p || p.status === 'FAILED' || p.status === 'PENDING')
          violations.push(`dispensed unpaid ${orderId}`);
      }
  }

  /** The network heals: every machine connects and every message and timeout runs its course. */
  function settle() {
    for (let round = 0; round < 200; round++) {
      let moved = false;
      for (let m = 0; m < M; m++) {
        if (!conns[m]) {
          apply({ t: 'connect', m });
          moved = true;
        }
        while (down[m]!.length || up[m]!.length) {
          apply({ t: 'toMachine', m });
          apply({ t: 'toServer', m });
          moved = true;
        }
        if (machines[m]!.current) {
          apply({ t: 'finish', m, ok: true });
          moved = true;
        }
        const before = down[m]!.length;
        apply({ t: 'heartbeat', m });
        apply({ t: 'ackTimeout', m });
        if (down[m]!.length !== before) moved = true;
      }
      check();
      if (!moved) return;
    }
    violations.push('the network never settled');
  }

  return { apply, check, settle, commands, orders, payments, machines, violations };
}

describe('dispatch and payment pipeline (model, 10,000 generated histories)', () => {
  it('one command in flight, the same commandId re-sent, dispensed at most once, money within what was paid', () => {
    let settledRuns = 0;
    fc.assert(
      fc.property(fc.array(eventArb, { maxLength: 60 }), (events) => {
        const p = pipeline();
        for (const e of events) {
          p.apply(e);
          p.check();
        }
        expect(p.violations).toEqual([]);
        p.settle();
        expect(p.violations).toEqual([]);
        // Every paid order: dispensed exactly once, or in review; never forgotten, never twice.
        const dispensed = p.machines.flatMap((m) => m.dispensed);
        for (const c of p.commands.values()) {
          expect(['DONE', 'NEEDS_REVIEW']).toContain(c.status);
          const times = dispensed.filter((o) => o === c.orderId).length;
          if (c.status === 'DONE') expect(times).toBe(1);
          else expect(times).toBe(0);
          const order = p.orders.get(c.orderId)!.status;
          expect(
            c.status === 'DONE' ? ['COMPLETED', 'FAILED', 'REFUNDED'] : ['NEEDS_REVIEW', 'REFUNDED'],
          ).toContain(order);
        }
        for (const [id, pay] of p.payments) if (pay.status === 'FAILED') expect(dispensed).not.toContain(id);
        settledRuns++;
      }),
      { numRuns: 10_000 },
    );
    expect(settledRuns).toBe(10_000);
  });

  it('a command claimed with its payment on a row that still says IDLE waits while the machine says BUSY', () => {
    const p = pipeline();
    const history: Event[] = [
      { t: 'connect', m: 0 },
      { t: 'pay', m: 0, pid: 1, exact: true },
      { t: 'toMachine', m: 0 }, // the machine starts dispensing o1
      { t: 'expire', m: 0 }, // o1's command goes to review while the machine is still at it
      { t: 'heartbeat', m: 0, ok: false }, // BUSY, not written to the row
      { t: 'pay', m: 0, pid: 2, exact: true }, // claimed with the payment: the row says IDLE
    ];
    for (const e of history) {
      p.apply(e);
      p.check();
    }
    expect(p.violations).toEqual([]);
    expect(p.commands.get('c2')).toMatchObject({ status: 'SENT', attempts: 0 });
    p.settle();
    expect(p.violations).toEqual([]);
    expect(p.commands.get('c2')!.status).toBe('DONE');
    expect(p.machines[0]!.dispensed).toEqual(['o1', 'o2']);
  });

  it('a machine whose last report was BUSY gets no new command at its next connection until it says IDLE', () => {
    const p = pipeline();
    const history: Event[] = [
      { t: 'connect', m: 0 },
      { t: 'pay', m: 0, pid: 1, exact: true },
      { t: 'toMachine', m: 0 }, // the machine starts dispensing o1
      { t: 'heartbeat', m: 0 }, // BUSY
      { t: 'finish', m: 0, ok: true },
      { t: 'toServer', m: 0 }, // its ack
      { t: 'toServer', m: 0 }, // its result: o1 done
      { t: 'disconnect', m: 0 },
      { t: 'pay', m: 0, pid: 2, exact: true }, // queued while it is away
      { t: 'connect', m: 0 }, // back: its last report said BUSY
    ];
    for (const e of history) {
      p.apply(e);
      p.check();
    }
    expect(p.violations).toEqual([]);
    expect(p.commands.get('c1')!.status).toBe('DONE');
    expect(p.commands.get('c2')).toMatchObject({ status: 'QUEUED', attempts: 0 });
    p.settle(); // its heartbeat says IDLE: o2 goes out
    expect(p.violations).toEqual([]);
    expect(p.commands.get('c2')!.status).toBe('DONE');
    expect(p.machines[0]!.dispensed).toEqual(['o1', 'o2']);
  });
});
