// Property-based test of the dispatch state machine (CONTRACTS.md §5, ARCHITECTURE.md
// invariant 2) against the real app: fast-check generates what a machine and the world do —
// connect, disconnect, heartbeats, payments, acks (accept / decline / none), results, repeated
// results, a server restart — and a model machine on a raw socket.io-client socket (v2 or v1)
// records every dispense it actually performs. Properties:
// - no order is dispensed twice (v2: the machine's de-dup never sees one order under two
//   commands, and the server never sends a command whose result it has acknowledged; v1: never
//   two machine:dispense for one order, since a v1 machine cannot de-duplicate);
// - at most one command is in flight: a new command never arrives while the machine is still
//   executing another one;
// - afterwards, a machine that connects and behaves brings every paid order to COMPLETED, FAILED
//   (where the machine reported FAILED) or, v1 only, NEEDS_REVIEW (a dispense that never arrived).
// The same properties hold over MQTT (CONTRACTS §14, embedded broker; dispatch-mqtt-model.ts),
// where a declined command is `rejected` (order FAILED), and where, in addition, an order leaves
// PAID only after the machine reported `received` for it: the broker's PUBACK is not delivery.
// fast-check prints the seed and the shrunk action list when a property fails.
import fc from 'fast-check';
import { io, type Socket } from 'socket.io-client';
import { afterAll, describe, expect, it } from 'vitest';
import { MqttModelMachine } from './dispatch-mqtt-model.js';
import {
  dropSchema,
  engines,
  newSchemaName,
  qrCredited,
  startServer,
  tempDir,
  type Engine,
  type TestServer,
} from './harness.js';

type Protocol = 'v1' | 'v2' | 'mqtt';
type Result = 'SUCCESS' | 'FAILED';
type Action =
  | { t: 'connect' }
  | { t: 'disconnect' }
  | { t: 'heartbeat'; status: 'IDLE' | 'BUSY' }
  | { t: 'pay' }
  | { t: 'ack'; how: 'accept' | 'decline' | 'none' }
  | { t: 'done'; result: Result }
  | { t: 'repeatDone' }
  | { t: 'crash' }
  | { t: 'wait' }
  /** A whole sale in one step: pay, take the dispense (v2: accept it), report a result. */
  | { t: 'sale'; result: Result };

const ACK_TIMEOUT_MS = 150;
const RESULT_TIMEOUT_MS = 700;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
async function until(check: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check() && Date.now() < deadline) await sleep(10);
}

const actionArb: fc.Arbitrary<Action> = fc.oneof(
  { weight: 4, arbitrary: fc.constant<Action>({ t: 'connect' }) },
  { weight: 2, arbitrary: fc.constant<Action>({ t: 'disconnect' }) },
  {
    weight: 2,
    arbitrary: fc
      .constantFrom<'IDLE' | 'BUSY'>('IDLE', 'BUSY')
      .map((status): Action => ({ t: 'heartbeat', status })),
  },
  { weight: 4, arbitrary: fc.constant<Action>({ t: 'pay' }) },
  {
    weight: 4,
    arbitrary: fc
      .constantFrom<'accept' | 'decline' | 'none'>('accept', 'accept', 'decline', 'none')
      .map((how): Action => ({ t: 'ack', how })),
  },
  {
    weight: 3,
    arbitrary: fc
      .constantFrom<Result>('SUCCESS', 'SUCCESS', 'FAILED')
      .map((result): Action => ({ t: 'done', result })),
  },
  { weight: 1, arbitrary: fc.constant<Action>({ t: 'repeatDone' }) },
  { weight: 1, arbitrary: fc.constant<Action>({ t: 'crash' }) },
  { weight: 1, arbitrary: fc.constant<Action>({ t: 'wait' }) },
  {
    weight: 2,
    arbitrary: fc.constantFrom<Result>('SUCCESS', 'FAILED').map((result): Action => ({ t: 'sale', result })),
  },
);

interface Delivery {
  commandId: string;
  orderId: string;
  ack: (answer: unknown) => void;
}

/**
 * A machine driven action by action. It behaves as firmware must where the contract says so
 * (v2: de-duplicate by commandId, answer a repeat of a finished command with its result, send
 * unacknowledged results again after a reconnect) and as the actions say everywhere else.
 */
class ModelMachine {
  socket: Socket | undefined;
  url: string;
  /** Every machine:dispense received (v2), counting repeats. */
  deliveries = 0;
  readonly violations: string[] = [];
  /** v2: dispense events waiting for the machine's ack decision. */
  pending: Delivery[] = [];
  /** v2: the command being executed (accepted, no result yet). */
  current: { commandId: string; orderId: string } | undefined;
  /** Every dispense actually performed, in order (v2: first sight of a commandId; v1: every one). */
  readonly performed: { commandId?: string; orderId: string }[] = [];
  /** The result the machine decided per order (first decision; repeats re-send it). */
  readonly decided = new Map<string, Result>();
  /** v2: results per command, and whether the server acknowledged them. */
  readonly finished = new Map<string, { orderId: string; result: Result; acked: boolean }>();
  lastFinished: string | undefined;
  /** v2: commands whose result the server acknowledged with ok. */
  readonly ackedDone = new Set<string>();
  /** v1: orders received and not yet reported. */
  unreported: string[] = [];
  /** v1: every machine:dispense received. */
  readonly v1Received: string[] = [];
  private generation = 0;

  constructor(
    readonly protocol: 'v1' | 'v2',
    url: string,
    readonly machineId: string,
    readonly key: string,
  ) {
    this.url = url;
  }

  get connected(): boolean {
    return this.socket?.connected ?? false;
  }

  async connect(): Promise<void> {
    if (this.socket?.connected) return;
    this.socket?.disconnect();
    this.pending = [];
    const generation = ++this.generation;
    const socket =
      this.protocol === 'v2'
        ? io(`${this.url}/machines`, {
            auth: { machineId: this.machineId, key: this.key },
            transports: ['websocket'],
            reconnection: false,
            forceNew: true,
          })
        : io(this.url, { transports: ['websocket'], reconnection: false, forceNew: true });
    this.socket = socket;
    socket.on('disconnect', () => {
      if (generation === this.generation) this.pending = [];
    });
    if (this.protocol === 'v2')
      socket.on('machine:dispense', (command: any, ack: unknown) => this.onV2Dispense(command, ack));
    else socket.on('machine:dispense', (payload: any) => this.onV1Dispense(payload));
    const ok = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 5_000);
      socket.once('connect', () => {
        clearTimeout(timer);
        resolve(true);
      });
      socket.once('connect_error', () => {
        clearTimeout(timer);
        resolve(false);
      });
    });
    if (!ok) {
      socket.disconnect();
      return;
    }
    if (this.protocol === 'v1') {
      const ack = await socket
        .timeout(5_000)
        .emitWithAck('machine:connect', { machineId: this.machineId, token: this.key })
        .catch(() => undefined);
      if (!(ack as { ok?: boolean } | undefined)?.ok)
        this.violations.push(`v1 machine:connect refused: ${JSON.stringify(ack)}`);
    } else {
      // Results the server never acknowledged go again on every new connection.
      this.resendUnacked();
    }
  }

  /** v2: results the server has not acknowledged yet go again. */
  resendUnacked(): void {
    if (this.protocol === 'v2')
      for (const [commandId, f] of this.finished) if (!f.acked) this.sendDone(commandId);
  }

  disconnect(): void {
    this.socket?.disconnect();
    this.pending = [];
  }

  private onV2Dispense(command: any, ack: unknown): void {
    const commandId = String(command?.commandId);
    const orderId = String(command?.orderId);
    this.deliveries += 1;
    if (this.ackedDone.has(commandId))
      this.violations.push(
        `command ${commandId} (order ${orderId}) sent again after the server acknowledged its result`,
      );
    if (this.current && this.current.commandId !== commandId) {
      this.violations.push(
        `command ${commandId} (order ${orderId}) arrived while ${this.current.commandId} (order ${this.current.orderId}) was still being executed`,
      );
    }
    this.pending.push({
      commandId,
      orderId,
      ack: typeof ack === 'function' ? (ack as (a: unknown) => void) : () => undefined,
    });
  }

  private onV1Dispense(payload: any): void {
    const orderId = String(payload?.orderId);
    if (this.v1Received.includes(orderId))
      this.violations.push(`v1 machine:dispense for order ${orderId} arrived twice`);
    this.v1Received.push(orderId);
    // A v1 machine cannot de-duplicate: every dispense it receives, it performs.
    this.performed.push({ orderId });
    this.unreported.push(orderId);
  }

  /** v2: answer the oldest dispense event. */
  answer(how: 'accept' | 'decline' | 'none'): void {
    const d = this.pending.shift();
    if (!d) return;
    if (how === 'none') return;
    const known = this.finished.has(d.commandId) || this.current?.commandId === d.commandId;
    if (how === 'decline' && !known && !this.current) {
      d.ack({ accepted: false, reason: 'OUT_OF_STOCK' });
      return;
    }
    if (how === 'decline' && !known) {
      d.ack({ accepted: false, reason: 'BUSY' });
      return;
    }
    // De-duplication by commandId, as the contract requires of v2 firmware.
    d.ack({ accepted: true });
    if (this.finished.has(d.commandId)) {
      this.sendDone(d.commandId); // a repeat of a finished command: report it again
      return;
    }
    if (this.current?.commandId === d.commandId) return; // already executing
    if (this.current) return; // (already flagged as a violation on arrival)
    if (this.performed.some((p) => p.orderId === d.orderId))
      this.violations.push(`order ${d.orderId} dispensed a second time (command ${d.commandId})`);
    this.performed.push({ commandId: d.commandId, orderId: d.orderId });
    this.current = { commandId: d.commandId, orderId: d.orderId };
  }

  /** Finishes the command being executed (v2) or the oldest unreported order (v1). */
  finish(result: Result): void {
    if (this.protocol === 'v2') {
      if (!this.current) return;
      const { commandId, orderId } = this.current;
      this.current = undefined;
      this.decided.set(orderId, result);
      this.finished.set(commandId, { orderId, result, acked: false });
      this.lastFinished = commandId;
      this.sendDone(commandId);
      return;
    }
    const orderId = this.unreported.shift();
    if (!orderId) return;
    if (!this.decided.has(orderId)) this.decided.set(orderId, result);
    this.lastFinished = orderId;
    this.sendV1Done(orderId);
  }

  repeatDone(): void {
    if (!this.lastFinished) return;
    if (this.protocol === 'v2') this.sendDone(this.lastFinished);
    else this.sendV1Done(this.lastFinished);
  }

  private sendDone(commandId: string): void {
    const f = this.finished.get(commandId);
    const socket = this.socket;
    if (!f || !socket?.connected) return;
    socket.timeout(5_000).emit(
      'machine:done',
      {
        commandId,
        orderId: f.orderId,
        status: f.result,
        ...(f.result === 'FAILED' ? { failureCode: 'MOTOR_JAM' } : {}),
      },
      (err: unknown, ack: any) => {
        if (err) return;
        if (ack?.ok === true) {
          f.acked = true;
          this.ackedDone.add(commandId);
        } else {
          this.violations.push(`machine:done ${commandId} refused: ${JSON.stringify(ack)}`);
        }
      },
    );
  }

  private sendV1Done(orderId: string): void {
    const socket = this.socket;
    const result = this.decided.get(orderId)!;
    if (!socket?.connected) {
      if (!this.unreported.includes(orderId)) this.unreported.push(orderId); // report it when back
      return;
    }
    socket.timeout(5_000).emit('machine:done', { orderId, result }, (err: unknown, ack: any) => {
      if (err) {
        if (!this.unreported.includes(orderId)) this.unreported.push(orderId);
        return;
      }
      if (ack?.ok !== true)
        this.violations.push(`v1 machine:done ${orderId} refused: ${JSON.stringify(ack)}`);
    });
  }

  heartbeat(status: 'IDLE' | 'BUSY'): void {
    const socket = this.socket;
    if (!socket?.connected) return;
    if (this.protocol === 'v2') socket.timeout(5_000).emit('machine:heartbeat', { status }, () => undefined);
    else socket.emit('machine:heartbeat', { machineId: this.machineId, ts: Date.now() });
  }

  close(): void {
    this.generation++;
    this.socket?.removeAllListeners();
    this.socket?.disconnect();
  }
}

const TERMINAL = new Set(['COMPLETED', 'FAILED', 'NEEDS_REVIEW']);

/** What the generated scenarios covered, summed over all runs (printed at the end). */
const coverage: Record<string, number> = {};
const count = (key: string, n = 1) => (coverage[key] = (coverage[key] ?? 0) + n);

/**
 * One server on one database for all runs (each run has a machine of its own); a `crash`
 * restarts it on the same SQLite file or PostgreSQL schema.
 */
interface World {
  engine: Engine;
  dir: { path: string; remove(): void };
  schema: string;
  env: Record<string, string>;
  server: TestServer | undefined;
}
const ENV = {
  DISPATCH_ACK_TIMEOUT_MS: String(ACK_TIMEOUT_MS),
  DISPATCH_RESULT_TIMEOUT_MS: String(RESULT_TIMEOUT_MS),
};

function newWorld(engine: Engine, env: Record<string, string>): World {
  return { engine, dir: tempDir('kioskhub-prop-'), schema: newSchemaName(), env, server: undefined };
}
const startWorld = (world: World) =>
  startServer({
    engine: world.engine,
    ...(world.engine === 'sqlite' ? { dataDir: world.dir.path } : { schema: world.schema }),
    env: world.env,
  });
async function endWorld(world: World): Promise<void> {
  await world.server?.close();
  world.dir.remove();
  if (world.engine === 'postgres') await dropSchema(world.schema);
}
const brokerUrl = (server: TestServer) => `mqtt://127.0.0.1:${server.kioskhub.mqtt!.port()}`;

/** MQTT: an order may leave PAID only once the machine reported `received` (or a result) for it. */
function checkPubackIsNotDelivery(machine: MqttModelMachine, rows: { id: string; status: string }[]): void {
  for (const r of rows)
    if (r.status !== 'PAID' && !machine.acknowledged.has(r.id))
      machine.violations.push(`order ${r.id} became ${r.status} without a received report from the machine`);
}

async function runScenario(protocol: Protocol, actions: Action[], world: World): Promise<void> {
  world.server ??= await startWorld(world);
  let server: TestServer = world.server;
  const id = `P${protocol}${Math.random().toString(36).slice(2, 10)}`;
  const m = await server.createVendingMachine(id, 2000);
  const machine =
    protocol === 'mqtt'
      ? new MqttModelMachine(brokerUrl(server), m.id, m.key)
      : new ModelMachine(protocol, server.url, m.id, m.key);
  const ordersOfMachine = () =>
    server.kioskhub.db.selectFrom('orders').select(['id', 'status']).where('machine_id', '=', m.id).execute();
  const paid: string[] = [];
  const pay = async (): Promise<string> => {
    const res = await server.postWebhook(qrCredited(m.qrCodeId, 2000));
    if (res.status !== 200 || typeof res.body?.orderId !== 'string')
      throw new Error(`webhook: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body.orderId as string;
  };
  try {
    // Every scenario starts with the machine online; the actions take it from there.
    await machine.connect();
    for (const action of actions) {
      count(
        action.t === 'ack'
          ? `ack:${action.how}`
          : action.t === 'done' || action.t === 'sale'
            ? `${action.t}:${action.result}`
            : action.t,
      );
      switch (action.t) {
        case 'connect':
          await machine.connect();
          break;
        case 'disconnect':
          machine.disconnect();
          break;
        case 'heartbeat':
          machine.heartbeat(action.status);
          break;
        case 'pay':
          paid.push(await pay());
          break;
        case 'sale':
          paid.push(await pay());
          if (protocol !== 'v1') {
            await until(() => machine.pending.length > 0 || !machine.connected, 300);
            machine.answer('accept');
          } else {
            await until(() => machine.unreported.length > 0 || !machine.connected, 300);
          }
          machine.finish(action.result);
          break;
        case 'ack':
          if (protocol !== 'v1') {
            // Answer the next dispense event, waiting briefly for one if none is there yet.
            await until(() => machine.pending.length > 0 || !machine.connected, 250);
            machine.answer(action.how);
          }
          break;
        case 'done':
          if (protocol === 'v1') await until(() => machine.unreported.length > 0 || !machine.connected, 250);
          machine.finish(action.result);
          break;
        case 'repeatDone':
          machine.repeatDone();
          break;
        case 'crash':
          // A restart on the same SQLite file; the machine's socket is dropped with the server.
          world.server = undefined;
          await server.close();
          server = world.server = await startWorld(world);
          machine.url = protocol === 'mqtt' ? brokerUrl(server) : server.url;
          break;
        case 'wait':
          await sleep(ACK_TIMEOUT_MS + 50);
          break;
      }
      await sleep(15);
      if (machine instanceof MqttModelMachine) checkPubackIsNotDelivery(machine, await ordersOfMachine());
    }

    // Settle: the machine connects and behaves (accepts, reports SUCCESS, heartbeats IDLE).
    const statuses = new Map<string, string>();
    const deadline = Date.now() + 20_000;
    for (let tick = 0; ; tick++) {
      if (!machine.connected) await machine.connect();
      if (protocol !== 'v1') {
        while (machine.pending.length > 0) machine.answer('accept');
        if (machine.current) machine.finish('SUCCESS');
      } else {
        while (machine.unreported.length > 0) machine.finish('SUCCESS');
      }
      if (tick % 4 === 0) {
        machine.heartbeat('IDLE');
        machine.resendUnacked();
      }
      await sleep(50);
      const rows = await ordersOfMachine();
      if (machine instanceof MqttModelMachine) checkPubackIsNotDelivery(machine, rows);
      statuses.clear();
      for (const r of rows) statuses.set(r.id, r.status);
      const unfinishedV2 =
        machine instanceof ModelMachine &&
        protocol === 'v2' &&
        [...machine.finished.values()].some((f) => !f.acked);
      if (
        paid.every((o) => TERMINAL.has(statuses.get(o) ?? '')) &&
        !unfinishedV2 &&
        machine.unreported.length === 0
      )
        break;
      if (Date.now() > deadline) break;
    }
    // A quiet moment, connected: nothing may be sent again once everything is settled.
    const deliveries = machine.deliveries;
    await sleep(2 * ACK_TIMEOUT_MS + 50);
    if (protocol !== 'v1')
      expect(machine.deliveries, 'commands sent after everything settled').toBe(deliveries);

    count('orders paid', paid.length);
    count('dispenses performed', machine.performed.length);
    for (const o of paid) count(`final ${statuses.get(o) ?? 'missing'}`);
    expect(machine.violations).toEqual([]);
    // Exactly-once: no order performed twice; every paid order performed at most once.
    const performedOrders = machine.performed.map((p) => p.orderId);
    expect(new Set(performedOrders).size).toBe(performedOrders.length);
    for (const o of performedOrders) expect(paid).toContain(o);

    const expected = new Map<string, string>();
    for (const o of paid) {
      const decided = machine.decided.get(o);
      if (decided) expected.set(o, decided === 'SUCCESS' ? 'COMPLETED' : 'FAILED');
      else expected.set(o, protocol === 'v1' ? 'NEEDS_REVIEW' : 'COMPLETED');
    }
    expect(Object.fromEntries(paid.map((o) => [o, statuses.get(o)]))).toEqual(Object.fromEntries(expected));
    if (protocol === 'v2') {
      // Every order reached the machine, once.
      expect(performedOrders.slice().sort()).toEqual(paid.slice().sort());
    } else if (protocol === 'mqtt') {
      // Every order reached the machine, once: performed, or rejected (order FAILED with the reason).
      const rejected = paid.filter((o) => machine.decided.get(o) === 'REJECTED');
      expect([...performedOrders, ...rejected].sort()).toEqual(paid.slice().sort());
    } else {
      // NEEDS_REVIEW only for a dispense the machine never received.
      for (const o of paid)
        if (statuses.get(o) === 'NEEDS_REVIEW') expect(machine.v1Received).not.toContain(o);
    }
  } finally {
    machine.close();
  }
}

/**
 * Runs first, before the generated ones, so a run with few cases still covers silence (a re-send
 * after the ack timeout), a restart, a repeated result and a declined command.
 */
const MQTT_EXAMPLE: Action[] = [
  { t: 'pay' },
  { t: 'ack', how: 'none' },
  { t: 'wait' },
  { t: 'ack', how: 'accept' },
  { t: 'crash' },
  { t: 'connect' },
  { t: 'ack', how: 'accept' },
  { t: 'done', result: 'SUCCESS' },
  { t: 'repeatDone' },
  { t: 'pay' },
  { t: 'ack', how: 'decline' },
  { t: 'sale', result: 'FAILED' },
];

function property(
  protocol: Protocol,
  world: () => World,
  numRuns: number,
  options: { maxLength?: number; examples?: Action[][] } = {},
): void {
  it(
    `${protocol}: never dispensed twice, one command in flight, and every paid order settles`,
    { timeout: 120_000 },
    async () => {
      const startedAt = Date.now();
      let runs = 0;
      await fc.assert(
        fc.asyncProperty(
          fc.array(actionArb, { minLength: 3, maxLength: options.maxLength ?? 14 }),
          async (actions) => {
            runs++;
            await runScenario(protocol, actions, world());
          },
        ),
        {
          numRuns,
          endOnFailure: false,
          verbose: 1,
          ...(options.examples ? { examples: options.examples.map((e): [Action[]] => [e]) } : {}),
        },
      );
      console.log(
        `[property] ${protocol} (${world().engine}): ${runs} runs in ${Date.now() - startedAt} ms; covered ${JSON.stringify(coverage)}`,
      );
      for (const k of Object.keys(coverage)) delete coverage[k];
    },
  );
}

describe('dispatch state machine (property-based, real app on SQLite)', () => {
  const world = newWorld('sqlite', ENV);
  afterAll(() => endWorld(world));
  property('v2', () => world, 15);
  property('v1', () => world, 10);
});

// Few runs per engine: this adds seconds, not minutes, to the suite.
describe.each(engines())(
  'dispatch state machine over MQTT, embedded broker (property-based, %s)',
  (engine) => {
    const world = newWorld(engine, { ...ENV, MQTT_PORT: '0' });
    afterAll(() => endWorld(world));
    property('mqtt', () => world, engine === 'sqlite' ? 4 : 2, { maxLength: 10, examples: [MQTT_EXAMPLE] });
  },
);
