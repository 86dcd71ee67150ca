// Review of machine presence and the dashboard's periodic sweeps (gateway/presence.ts,
// dashboard/sweeper.ts, platform/scheduler.ts): each test shows a defect found on review.
import type { DispenseCommand } from '@kioskhub/protocol';
import type { Logger } from 'pino';
import pg from 'pg';
import type { Socket } from 'socket.io-client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createMachinesRepo, type MachinesRepo } from '../src/modules/machines/machines.repo.js';
import { createPresence } from '../src/modules/gateway/presence.js';
import {
  connected,
  dropSchema,
  engines,
  eventually,
  machineSocket,
  newSchemaName,
  qrCredited,
  startServer,
  tempDir,
  type Engine,
  type TestServer,
} from './harness.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe.each(engines())('presence review 5 (%s)', (engine: Engine) => {
  let server: TestServer;
  let seq = 0;
  const uid = (prefix: string) => `${prefix}${engine === 'postgres' ? 'P' : 'S'}${++seq}`;
  const sockets: Socket[] = [];

  beforeAll(async () => {
    // A short heartbeat timeout: a machine still shown online after it is "for ever".
    server = await startServer({ engine, env: { MACHINE_HEARTBEAT_TIMEOUT_MS: '1500' } });
  });
  afterEach(() => {
    for (const s of sockets.splice(0)) s.disconnect();
  });
  afterAll(async () => {
    await server?.close();
  });

  const machine = async (id: string) => (await server.request('GET', `/v1/machines/${id}`)).body;

  // Found by the CI run after the fix above: with the status write made conditional on the
  // connection, a new firmware version reported by a connection that no longer holds the row
  // (another process took the machine on first, its registration landing last) was lost with
  // it, and a firmware campaign waited for a version the machine already ran. The firmware is
  // the machine's whichever connection reports it; only the status is the connection's.
  it("a connection that no longer holds the row still records the machine's new firmware", async () => {
    const id = uid('PRF');
    await server.createMachine(id);
    const { db } = server.kioskhub;
    await db
      .updateTable('machines')
      .set({ connection_id: 'holder:1', status: 'IDLE' })
      .where('id', '=', id)
      .execute();
    const repo = createMachinesRepo(db, engine === 'postgres' ? 'postgres' : 'sqlite');
    const at = new Date().toISOString();
    await repo.updateForConnection(
      id,
      'older:1',
      { status: 'BUSY', last_seen_at: at, updated_at: at },
      'fw-2.0.0',
    );
    expect(await machine(id)).toMatchObject({ firmware: 'fw-2.0.0', status: 'IDLE' });
    await repo.updateForConnection(id, 'holder:1', { status: 'BUSY', last_seen_at: at, updated_at: at });
    expect(await machine(id)).toMatchObject({ firmware: 'fw-2.0.0', status: 'BUSY' });
  });

  /**
   * Makes recording the machine's result wait (as it does under load) until `release()`. On
   * PostgreSQL: a row lock on the command from another connection. On SQLite (one connection that
   * every query queues for, in order): a transaction holding that connection.
   */
  async function holdCommand(commandId: string): Promise<{ release(): Promise<void> }> {
    if (engine !== 'postgres') {
      let release!: () => void;
      const held = new Promise<void>((resolve) => (release = resolve));
      let started!: () => void;
      const holding = new Promise<void>((resolve) => (started = resolve));
      const tx = server.kioskhub.db.transaction().execute(async () => {
        started();
        await held;
      });
      await holding;
      return {
        async release() {
          release();
          await tx;
        },
      };
    }
    const client = new pg.Client({ connectionString: process.env['TEST_DATABASE_URL'] });
    await client.connect();
    const schema = (
      await server.kioskhub.db
        .selectNoFrom((eb) => eb.fn<string>('current_schema', []).as('s'))
        .executeTakeFirstOrThrow()
    ).s;
    await client.query('begin');
    await client.query(`select id from ${schema}.commands where id = $1 for update`, [commandId]);
    return {
      async release() {
        await client.query('commit');
        await client.end();
      },
    };
  }

  // docs/api.md §5: "A machine connected over Socket.IO is online while its heartbeats arrive
  // … Either is `OFFLINE` after `MACHINE_HEARTBEAT_TIMEOUT_MS` (30 s) of silence."
  // A machine that reports its result and goes away at once (powered off after the vend) is left
  // IDLE with socketConnected false for ever: recordResult (machine-gateway.ts:177) calls
  // presence.setIdle after the result's transaction, and setIdle → record → writeStatus
  // (presence.ts:190, `repo.update(machineId, {status})`, unconditional) writes IDLE over the
  // OFFLINE the disconnect wrote meanwhile (presence.ts:254). Nothing ever sets it OFFLINE
  // again (it is in no process's `local`, and not an HTTP device), so the fleet shows it online,
  // the charts count it, and no MACHINE_OFFLINE alert is ever raised.
  // Fix: make a status write conditional on the connection still being the row's
  // (`where connection_id = conn.connectionId`), and/or skip record() for a connection that is no
  // longer `local.get(machineId)`.
  it('a machine that reports its result and disconnects right away ends OFFLINE, not IDLE for ever', async () => {
    const m = await server.createVendingMachine(uid('PRV5A'), 2000);
    const received: DispenseCommand[] = [];
    const socket = machineSocket(server.url, m.id, m.key);
    sockets.push(socket);
    socket.on('machine:dispense', (cmd: DispenseCommand, ack: (a: unknown) => void) => {
      received.push(cmd);
      ack({ accepted: true });
    });
    await connected(socket);
    expect(await socket.timeout(5_000).emitWithAck('machine:heartbeat', { status: 'IDLE' })).toMatchObject({
      ok: true,
    });
    const paid = await server.postWebhook(qrCredited(m.qrCodeId, 2000));
    expect(paid.status).toBe(200);
    const cmd = await eventually(() => received[0], 5_000, 'dispense');
    await eventually(
      async () => (await server.request('GET', `/v1/orders/${cmd.orderId}`)).body.status === 'DISPATCHED',
      5_000,
      'order DISPATCHED',
    );
    // Vending: the machine says BUSY.
    expect(await socket.timeout(5_000).emitWithAck('machine:heartbeat', { status: 'BUSY' })).toMatchObject({
      ok: true,
    });
    expect((await machine(m.id)).status).toBe('BUSY');

    const lock = await holdCommand(cmd.commandId);
    // Done, and switched off at once.
    socket.emit('machine:done', { commandId: cmd.commandId, orderId: cmd.orderId, status: 'SUCCESS' });
    await sleep(100); // the result waits for the held command
    socket.disconnect();
    if (engine === 'postgres')
      await eventually(async () => (await machine(m.id)).status === 'OFFLINE', 5_000, 'OFFLINE written');
    else await sleep(200); // the disconnect's OFFLINE queued behind the result
    await lock.release();

    await eventually(
      async () => (await server.request('GET', `/v1/orders/${cmd.orderId}`)).body.status === 'COMPLETED',
      5_000,
      'order COMPLETED',
    );
    await sleep(2_500); // well past MACHINE_HEARTBEAT_TIMEOUT_MS: nothing corrects it
    const after = await machine(m.id);
    expect({ status: after.status, socketConnected: after.socketConnected }).toEqual({
      status: 'OFFLINE',
      socketConnected: false,
    });
  });
});

// docs/api.md §13: "Every authenticated request counts as a sign of life: the machine is `IDLE`
// … after `MACHINE_HEARTBEAT_TIMEOUT_MS` without a request it is `OFFLINE`."
// Only the process that heard an HTTP device remembers it (presence.ts:96 `httpSeen`, in
// memory), and only that process's sweep ever writes it OFFLINE (presence.ts:137). A process that
// stops (a deploy, a restart, SIGTERM) forgets its devices without writing them OFFLINE
// (presence.ts:362 `stop` only flushes), and the restarted process (or the other processes of a
// cluster) never heard of them: a kiosk, cash unit or printer that fell silent around a restart is
// IDLE for ever, counted online on the charts, and never gets a MACHINE_OFFLINE alert. (On SQLite
// the start-up reset, app.ts:1015 `resetConnections`, only touches socket rows.)
// Fix: sweep silent HTTP devices from the database, not from memory: every process (or the
// dashboard sweep) marks OFFLINE the rows with `socket_connected = 0 and status <> 'OFFLINE' and
// last_seen_at < now - MACHINE_HEARTBEAT_TIMEOUT_MS` (the query offlineSilentHttp already runs,
// without the `id in (…)` of this process's memory).
describe.each(engines())('presence review 5, HTTP devices across a restart (%s)', (engine: Engine) => {
  it('a kiosk that falls silent while the server restarts is OFFLINE after the heartbeat timeout', async () => {
    const env = { MACHINE_HEARTBEAT_TIMEOUT_MS: '500' };
    const dir = tempDir('kioskhub-prv5-');
    const schema = newSchemaName();
    const storage = engine === 'postgres' ? { engine, schema, env } : { engine, dataDir: dir.path, env };
    let server: TestServer | undefined = await startServer(storage);
    try {
      const site = `prv5${engine === 'postgres' ? 'p' : 's'}`;
      expect((await server.request('POST', '/v1/sites', { body: { id: site, name: site } })).status).toBe(
        201,
      );
      const kiosk = await server.createMachine(`PRV5K${engine === 'postgres' ? 'P' : 'S'}`, {
        kind: 'kiosk',
        siteId: site,
      });
      const poll = await server.request('GET', `/v1/products?siteId=${site}`, {
        token: null,
        headers: { 'x-api-key': kiosk.key },
      });
      expect(poll.status).toBe(200);
      const s1 = server;
      await eventually(
        async () => (await s1.request('GET', `/v1/machines/${kiosk.id}`)).body.status === 'IDLE',
        5_000,
        'kiosk online',
      );
      // A restart; the kiosk never calls again.
      await server.close();
      server = await startServer(storage);
      // Silent past the timeout plus one last-seen batch (2 s) that the database's times may lag.
      const s2 = server;
      await eventually(
        async () => (await s2.request('GET', `/v1/machines/${kiosk.id}`)).body.status === 'OFFLINE',
        6_000,
        'the kiosk OFFLINE',
      );
      const row = (await server.request('GET', `/v1/machines/${kiosk.id}`)).body;
      expect({ status: row.status, socketConnected: row.socketConnected }).toEqual({
        status: 'OFFLINE',
        socketConnected: false,
      });
    } finally {
      await server?.close();
      if (engine === 'postgres') await dropSchema(schema);
      dir.remove();
    }
  });
});

// docs/api.md §13: "after `MACHINE_HEARTBEAT_TIMEOUT_MS` without a request it is `OFFLINE`";
// (the platform's own rule for periodic work, scheduler.ts:3: "a task that throws is logged and
// runs again at its next period").
// presence.ts:141-143 deletes the silent devices from `httpSeen` BEFORE the write that marks them
// OFFLINE (presence.ts:146); when that write fails (a database blip, a lock timeout) the catch
// (presence.ts:148) only logs, and the device is in no list any more: no later sweep retries it,
// and it stays IDLE for ever. (flush() and flushHttp() put their batch back on failure; this
// sweep does not.)
// Fix: delete the ids from httpSeen/httpChecked only after the write succeeded (or put them back
// in the catch, unless the device was heard again meanwhile).
describe('presence review 5, silent HTTP devices after a failed sweep', () => {
  it('a device whose OFFLINE write failed once is written OFFLINE by a later sweep', async () => {
    const attempts: string[][] = [];
    let failures = 1;
    const repo = {
      seenOverHttp: async (seen: ReadonlyMap<string, string>) =>
        [...seen].map(([id, at]) => ({ id, tenant_id: 'default', at })),
      touchMany: async () => undefined,
      offlineAllSilentHttp: async () => [],
      offlineAllSilentSockets: async () => [],
      offlineSilentHttp: async (ids: string[]) => {
        attempts.push([...ids]);
        if (failures-- > 0) throw new Error('database unavailable for a moment');
        return ids.map((id) => ({ id, tenant_id: 'default', last_seen_at: null }));
      },
    } as unknown as MachinesRepo;
    const offline: string[] = [];
    const presence = createPresence({
      repo,
      logger: { warn: () => undefined } as unknown as Logger,
      publish: (_tenant, _rooms, _event, data) => {
        if (data['status'] === 'OFFLINE') offline.push(data['machineId'] as string);
      },
      heartbeatTimeoutMs: 100,
      flushIntervalMs: 20,
    });
    presence.start();
    try {
      presence.seenOverHttp('KIOSK1');
      await sleep(1_000); // about 20 sweeps
      expect(attempts.length, 'sweeps that tried to write KIOSK1 OFFLINE').toBeGreaterThanOrEqual(2);
      expect(offline).toEqual(['KIOSK1']);
    } finally {
      await presence.stop();
    }
  });
});
