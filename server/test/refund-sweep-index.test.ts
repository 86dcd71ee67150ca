// The hourly sweep for PENDING provider refunds with no status checks (refund-polls.ts) reads the
// refunds a page at a time. It used to walk every refund ever made; migration 0039 gives it a
// partial index of the PENDING ones only, and this checks that each engine's planner reads the
// sweep's own query through it.
import { CompiledQuery, PostgresAdapter, sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pendingProviderRefunds } from '../src/modules/payments/refund-polls.js';
import { engines, startServer, type TestServer } from './harness.js';

for (const engine of engines()) {
  describe(`the refund sweep's page query (${engine})`, () => {
    let server: TestServer;
    beforeAll(async () => {
      server = await startServer({ engine });
    });
    afterAll(async () => {
      await server?.close();
    });

    it('is read through refunds_pending_idx', async () => {
      const db = server.kioskhub.db;
      const page = pendingProviderRefunds(db, ['razorpay', 'stripe'], '', 200).compile();
      const plan = await db.transaction().execute(async (tx) => {
        const postgres = tx.getExecutor().adapter instanceof PostgresAdapter;
        // A new database holds a handful of rows, where a scan is cheapest: the question is
        // whether the planner can use the index, so scans are priced out (this transaction only).
        if (postgres) await sql`set local enable_seqscan = off`.execute(tx);
        const explain = CompiledQuery.raw(`${postgres ? 'explain' : 'explain query plan'} ${page.sql}`, [
          ...page.parameters,
        ]);
        const rows = (await tx.executeQuery(explain)).rows as Record<string, unknown>[];
        return rows.map((r) => String(r['QUERY PLAN'] ?? r['detail'])).join('\n');
      });
      expect(plan).toMatch(/refunds_pending_idx/);
    });
  });
}
