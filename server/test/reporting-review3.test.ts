// Reporting review, third pass: acknowledging an alert twice, two processes sweeping water
// alerts at once, and the stuck-payment alert's amount, each shown against the real server and
// database on both engines.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newId } from '../src/platform/db/database.js';
import { dropSchema, engines, newSchemaName, startServer, type TestServer } from './harness.js';
import { staffToken } from './dashboard-fixtures.js';

interface AlertItem {
  id: string;
  kind: string;
  subjectId: string;
  message: string;
  acknowledgedAt: string | null;
  acknowledgedBy: string | null;
  resolvedAt: string | null;
}

describe.each(engines())('reporting review 3 (%s)', (engine) => {
  let server: TestServer;
  /** A second app on the same PostgreSQL schema (a second process of one deployment). */
  let second: TestServer | undefined;
  const schema = engine === 'postgres' ? newSchemaName() : undefined;
  let staff = '';
  let otherStaff = '';

  beforeAll(async () => {
    const env = { WATER_ALERT_SWEEP_MS: '3600000', DASHBOARD_SWEEP_MS: '3600000' };
    server = await startServer({ engine, env, ...(schema ? { schema } : {}) });
    if (schema) second = await startServer({ engine, env, schema });
    staff = await staffToken(server, 'staff3@default.test', 'staff');
    otherStaff = await staffToken(server, 'staff3b@default.test', 'staff');
  }, 120_000);
  afterAll(async () => {
    await second?.close();
    await server?.close();
    if (schema) await dropSchema(schema);
  });

  const alertsOf = async (subjectIds: readonly string[]) =>
    ((await server.request('GET', '/v1/alerts?limit=200')).body.items as AlertItem[]).filter((a) =>
      subjectIds.includes(a.subjectId),
    );

  const insertStuckPayment = (amountMinor: number, currency: string) => {
    const id = newId();
    const long = new Date(Date.now() - 2 * 3_600_000).toISOString();
    return server.kioskhub.db
      .insertInto('payments')
      .values({
        id,
        tenant_id: 'default',
        site_id: null,
        purpose: 'plan',
        order_id: null,
        customer_id: null,
        plan_id: null,
        machine_id: null,
        method: 'momo',
        provider: null,
        provider_payment_id: null,
        reference: null,
        amount_minor: amountMinor,
        received_minor: 0,
        currency,
        status: 'PENDING',
        failure_code: null,
        refunded_minor: 0,
        created_at: long,
        completed_at: null,
        updated_at: long,
        expires_at: null,
      })
      .execute()
      .then(() => id);
  };
  const endPayments = (ids: readonly string[]) =>
    server.kioskhub.db.updateTable('payments').set({ status: 'EXPIRED' }).where('id', 'in', ids).execute();

  // The CSV export's row cap (EXPORT_MAX_ROWS) is shown in orders-export-stream.test.ts, with a
  // small cap instead of 50,000 rows written here.

  it('keeps the first acknowledgement of an alert: a second one changes nothing', async () => {
    const subjectId = `ack-${newId()}`;
    await server.kioskhub.services.alerts.raise(server.kioskhub.db, {
      tenantId: 'default',
      kind: 'PRINT_JOB_FAILED',
      subjectType: 'print_job',
      subjectId,
      message: 'test alert acknowledged twice',
    });
    const [raised] = await alertsOf([subjectId]);
    expect(raised).toBeDefined();
    const ack = (token: string) => server.request('POST', `/v1/alerts/${raised!.id}/ack`, { token });
    const auditRows = async () =>
      (
        await server.kioskhub.db
          .selectFrom('audit_log')
          .select('id')
          .where('subject_id', '=', raised!.id)
          .execute()
      ).length;

    expect((await ack(staff)).body).toEqual({ ok: true });
    const [first] = await alertsOf([subjectId]);
    expect(first!.acknowledgedBy).toEqual(expect.any(String));
    expect(first!.acknowledgedAt).toEqual(expect.any(String));
    const auditAfterFirst = await auditRows();

    await new Promise((r) => setTimeout(r, 20)); // a later clock for the second one
    const again = await ack(otherStaff);
    expect({ status: again.status, body: again.body }).toEqual({ status: 200, body: { ok: true } });
    const [after] = await alertsOf([subjectId]);
    expect(after).toEqual(first);
    expect(await auditRows()).toBe(auditAfterFirst);

    // An unknown alert is still 404.
    expect((await server.request('POST', `/v1/alerts/${newId()}/ack`, { token: staff })).status).toBe(404);
  });

  it('raises one alert per condition when two sweeps run at the same moment', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) ids.push(await insertStuckPayment(5_000, 'INR'));
    try {
      // PostgreSQL: two app instances (two processes of one deployment) on one database;
      // SQLite (one process per data directory): two sweeps in the one process.
      const other = second ?? server;
      for (let round = 0; round < 3; round++) {
        const results = await Promise.all([
          server.kioskhub.services.waterOps.alerts.sweepOnce(),
          other.kioskhub.services.waterOps.alerts.sweepOnce(),
        ]);
        if (round === 0) expect(results[0].raised + results[1].raised).toBe(ids.length);
        else expect(results.map((r) => r.raised)).toEqual([0, 0]);
      }
      const alerts = (await alertsOf(ids)).filter((a) => a.kind === 'PAYMENT_STUCK');
      expect(alerts.map((a) => a.subjectId).sort()).toEqual([...ids].sort());
    } finally {
      await endPayments(ids);
      await server.kioskhub.services.waterOps.alerts.sweepOnce();
    }
  });

  it('shows a stuck payment’s amount with its currency’s ISO 4217 decimals', async () => {
    const inr = await insertStuckPayment(5_000, 'INR');
    const ugx = await insertStuckPayment(5_000, 'UGX');
    const kwd = await insertStuckPayment(1_250, 'KWD');
    try {
      await server.kioskhub.services.waterOps.alerts.sweepOnce();
      const messages = new Map(
        (await alertsOf([inr, ugx, kwd]))
          .filter((a) => a.kind === 'PAYMENT_STUCK')
          .map((a) => [a.subjectId, a.message]),
      );
      expect(messages.get(inr)).toContain('50.00 INR');
      expect(messages.get(ugx)).toContain('5000 UGX');
      expect(messages.get(kwd)).toContain('1.250 KWD');
      for (const m of messages.values()) expect(m).not.toContain('minor units');
    } finally {
      await endPayments([inr, ugx, kwd]);
      await server.kioskhub.services.waterOps.alerts.sweepOnce();
    }
  });
});
