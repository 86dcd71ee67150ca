// A paid order's dispatch kick is a job that names its machine's tenant, so a kick that fails for
// good raises its JOB_FAILED alert for that tenant's staff, not only for the operator (`*`).
// Today's kick handler does not throw (it only wakes the dispatcher); the test makes it throw, as a
// future handler could, and checks where the alert lands.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { engines, eventually, qrCredited, startServer, type TestServer } from './harness.js';
import { twoTenantAdmins } from './fixtures/staff.js';

type AlertItem = { id: string; tenantId: string; kind: string; subjectId: string; message: string };

describe.each(engines())('dispatch kick jobs name their tenant (%s)', (engine) => {
  let server: TestServer;
  let other = '';
  let defaultAdmin = '';
  let otherAdmin = '';
  beforeAll(async () => {
    server = await startServer({ engine, env: { JOB_RETRY_BASE_MS: '10' } });
    ({ other, defaultAdmin, otherAdmin } = await twoTenantAdmins(server, 'dj_'));
  });
  afterAll(async () => {
    await server?.close();
  });

  it("a paid order's kick carries the machine's tenant, and its failure is that tenant's alert", async () => {
    const outbox = server.kioskhub.services.outbox;
    const machine = await server.createVendingMachine(`DJ-${engine}`, 2000, other);
    // Hold the jobs, so the kick the payment writes can be read before it runs.
    await outbox.stop();
    const paid = await server.postWebhook(qrCredited(machine.qrCodeId, 2000));
    expect(paid.status, JSON.stringify(paid.body)).toBe(200);
    const job = await server.kioskhub.db
      .selectFrom('outbox')
      .select(['id', 'payload'])
      .where('topic', '=', 'dispatch')
      .where('payload', 'like', `%${machine.id}%`)
      .executeTakeFirstOrThrow();
    expect(JSON.parse(job.payload)).toMatchObject({ tenantId: other, machineId: machine.id });

    outbox.start({
      dispatch: () => {
        throw new Error('dispatcher unavailable');
      },
    });
    const alert = await eventually(
      async () => {
        outbox.flushSoon();
        const items = (await server.request('GET', '/v1/alerts?limit=200')).body.items as AlertItem[];
        return items.find((a) => a.kind === 'JOB_FAILED' && a.subjectId === String(job.id));
      },
      30_000,
      'the JOB_FAILED alert of the dispatch kick',
    );
    expect(alert.tenantId).toBe(other);
    expect(alert.message).toContain('dispatch');
    const seen = async (token: string) =>
      ((await server.request('GET', '/v1/alerts?limit=200', { token })).body.items as AlertItem[]).map(
        (a) => a.id,
      );
    expect(await seen(otherAdmin)).toContain(alert.id);
    expect(await seen(defaultAdmin)).not.toContain(alert.id);
  });
});
