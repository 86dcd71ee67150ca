// Reporting review, second pass: defects an operator would hit in exports, review decisions and
// alerts, each shown against the real server and database on both engines.
import { SimulatedMachine } from '@kioskhub/machine-simulator';
import type { Socket } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  dropSchema,
  engines,
  eventually,
  newSchemaName,
  qrCredited,
  startServer,
  tempDir,
  type TestServer,
} from './harness.js';
import { orderStatus, silentV1Machine, staffToken } from './dashboard-fixtures.js';

interface AlertItem {
  id: string;
  kind: string;
  subjectId: string;
  resolvedAt: string | null;
  acknowledgedAt: string | null;
}

describe.each(engines())('reporting review 2 (%s)', (engine) => {
  let server: TestServer;
  let staff = '';
  let cs = '';
  let tech = '';
  const get = (path: string, token = staff) => server.request('GET', path, { token });

  beforeAll(async () => {
    server = await startServer({
      engine,
      env: {
        DISPATCH_RESULT_TIMEOUT_MS: '300',
        DASHBOARD_SWEEP_MS: '150',
        MACHINE_OFFLINE_ALERT_MS: '600000',
        WATER_ALERT_SWEEP_MS: '150',
      },
    });
    staff = await staffToken(server, 'staff@default.test', 'staff');
    cs = await staffToken(server, 'cs@default.test', 'customer_service');
    tech = await staffToken(server, 'tech@default.test', 'technician');
  });
  afterAll(async () => {
    await server?.close();
  });

  const alertsOf = async (subjectId: string, query = '') =>
    ((await get(`/v1/alerts?limit=200${query}`)).body.items as AlertItem[]).filter(
      (a) => a.subjectId === subjectId,
    );

  it('answers 400, never 500, to a well-formed time no date can hold (a leap second)', async () => {
    for (const path of [
      '/v1/orders/export.csv?from=2026-12-31T23:59:60Z',
      '/v1/orders/export.csv?to=2026-12-31T23:59:60Z',
      '/v1/stats?from=2026-12-31T23:59:60Z',
      '/v1/stats/water?to=2026-12-31T23:59:60Z',
      '/v1/orders?from=2026-12-31T23:59:60Z',
      '/v1/audit?to=2026-12-31T23:59:60Z',
    ]) {
      const res = await get(path);
      expect({ path, status: res.status }).toEqual({ path, status: 400 });
      expect(res.body.error.code).toBe('VALIDATION_FAILED');
    }
  });

  it('resolves an order’s dispense alert when the operator decides its review', async () => {
    const m = await server.createVendingMachine('RF1', 2000);
    const machine = new SimulatedMachine({
      url: server.url,
      machineId: 'RF1',
      key: m.key,
      heartbeatMs: 100,
      dispenseDelayMs: 10,
      failureRate: 1,
      autoReconnect: false,
    });
    await machine.start();
    try {
      const failed = (await server.postWebhook(qrCredited(m.qrCodeId, 2000))).body.orderId as string;
      await orderStatus(server, failed, 'FAILED');
      await eventually(
        async () => (await alertsOf(failed)).some((a) => a.kind === 'DISPENSE_FAILED'),
        5_000,
        'failed-dispense alert',
      );
      expect((await server.request('POST', `/v1/orders/${failed}/refund-due`, { token: cs })).status).toBe(
        200,
      );
      const [alert] = await alertsOf(failed);
      expect(alert?.resolvedAt).not.toBeNull();
      expect(await alertsOf(failed, '&open=true')).toEqual([]);
    } finally {
      machine.stop();
    }

    const v1 = await server.createVendingMachine('RV1', 2000);
    const socket: Socket = await silentV1Machine(server.url, v1.id, v1.key);
    try {
      const silent = (await server.postWebhook(qrCredited(v1.qrCodeId, 2000))).body.orderId as string;
      await orderStatus(server, silent, 'NEEDS_REVIEW');
      await eventually(
        async () => (await alertsOf(silent)).some((a) => a.kind === 'DISPENSE_NO_RESULT'),
        5_000,
        'no-result alert',
      );
      const res = await server.request('POST', `/v1/orders/${silent}/mark-dispensed`, { token: tech });
      expect(res.status).toBe(200);
      const [alert] = await alertsOf(silent);
      expect(alert?.resolvedAt).not.toBeNull();
      expect(await alertsOf(silent, '&open=true')).toEqual([]);
    } finally {
      socket.close();
    }
  });

  it('watches every water kiosk of a fleet of more than 500, not only the first 500 by id', async () => {
    const { key } = await server.createMachine('WZ', { kind: 'water' });
    const beat = await server.request('POST', '/v1/water/heartbeat', {
      token: null,
      headers: { 'x-api-key': key },
      body: { firmware: '1.0.0', taps: [{ tap: 1, status: 'LEAK' }] },
    });
    expect(beat.status).toBe(200);
    // 500 healthy kiosks whose ids sort before WZ (rows written directly: 500 sign-ups are slow).
    const db = server.kioskhub.db;
    const machine = await db
      .selectFrom('machines')
      .selectAll()
      .where('id', '=', 'WZ')
      .executeTakeFirstOrThrow();
    const kiosk = await db
      .selectFrom('water_kiosks')
      .selectAll()
      .where('machine_id', '=', 'WZ')
      .executeTakeFirstOrThrow();
    const ids = Array.from({ length: 500 }, (_, i) => `WA${String(i).padStart(3, '0')}`);
    const now = new Date().toISOString();
    await db
      .insertInto('machines')
      .values(ids.map((id) => ({ ...machine, id, name: id, key_hash: `${machine.key_hash}-${id}` })))
      .execute();
    await db
      .insertInto('water_kiosks')
      .values(
        ids.map((id) => ({
          ...kiosk,
          machine_id: id,
          taps: JSON.stringify([{ tap: 1, status: 'OK' }]),
          last_heartbeat_at: now,
        })),
      )
      .execute();
    // WZ falls silent too.
    await db
      .updateTable('water_kiosks')
      .set({ last_heartbeat_at: new Date(Date.now() - 10 * 60_000).toISOString() })
      .where('machine_id', '=', 'WZ')
      .execute();
    const kinds = async () =>
      ((await get('/v1/alerts?limit=200')).body.items as AlertItem[])
        .filter((a) => a.subjectId === 'WZ' || a.subjectId === 'WZ/1')
        .map((a) => a.kind)
        .sort();
    await eventually(async () => (await kinds()).length === 2, 10_000, 'alerts for the 501st kiosk').catch(
      () => undefined,
    );
    expect(await kinds()).toEqual(['WATER_KIOSK_SILENT', 'WATER_TAP_FAULT']);
  });
});

describe.each(engines())('reporting review 2, a decision before the sweep saw the failure (%s)', (engine) => {
  it('raises no dispense alert for an order already decided when the sweep first sees it', async () => {
    const dir = tempDir('kioskhub-rr2-');
    const schema = engine === 'postgres' ? newSchemaName() : undefined;
    const options = { engine, dataDir: dir.path, ...(schema ? { schema } : {}) };
    try {
      // A sweep only at start, then not for an hour: the failure happens after it.
      const first = await startServer({ ...options, env: { DASHBOARD_SWEEP_MS: '3600000' } });
      let orderId = '';
      try {
        const m = await first.createVendingMachine('RS1', 2000);
        const machine = new SimulatedMachine({
          url: first.url,
          machineId: 'RS1',
          key: m.key,
          heartbeatMs: 100,
          dispenseDelayMs: 10,
          failureRate: 1,
          autoReconnect: false,
        });
        await machine.start();
        try {
          orderId = (await first.postWebhook(qrCredited(m.qrCodeId, 2000))).body.orderId as string;
          await orderStatus(first, orderId, 'FAILED');
        } finally {
          machine.stop();
        }
        const cs = await staffToken(first, 'cs@default.test', 'customer_service');
        expect((await first.request('POST', `/v1/orders/${orderId}/refund-due`, { token: cs })).status).toBe(
          200,
        );
      } finally {
        await first.close();
      }
      const second = await startServer({ ...options, env: { DASHBOARD_SWEEP_MS: '100' } });
      try {
        await new Promise((r) => setTimeout(r, 600)); // several sweeps
        const alerts = (await second.request('GET', '/v1/alerts?limit=200')).body.items as AlertItem[];
        expect(alerts.filter((a) => a.subjectId === orderId)).toEqual([]);
      } finally {
        await second.close();
      }
    } finally {
      if (schema) await dropSchema(schema);
      dir.remove();
    }
  });
});
