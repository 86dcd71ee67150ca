// Opening a PostgreSQL database while other schemas on the same server are created and dropped
// (other tenants' databases, other test files). Kysely's own introspector, which its migrator uses
// to find its tables, lists every schema's tables and fails with "schema … does not exist" (3F000)
// when one is dropped meanwhile: measured by hand, one listing in three under this churn, and this
// test failed 3 runs of 3 that way. Kioskhub's dialect lists the search path's schemas only.
import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { openDatabase } from './database.js';

const url = process.env['TEST_DATABASE_URL'];
if (!url)
  console.warn('NOTICE: TEST_DATABASE_URL is not set; the database-opening tests (PostgreSQL) are SKIPPED.');

describe.skipIf(!url)('opening a PostgreSQL database (PostgreSQL)', () => {
  it('migrates while other schemas are dropped around it', { timeout: 120_000 }, async () => {
    const tag = randomBytes(4).toString('hex');
    const churner = new pg.Client({ connectionString: url });
    await churner.connect();
    let stop = false;
    let dropped = 0;
    const churn = (async () => {
      for (let i = 0; !stop; i++) {
        const s = `churn_${tag}_${i}`;
        await churner.query(
          `create schema ${s}; create table ${s}.a (id serial primary key); create table ${s}.b (id serial primary key)`,
        );
        await churner.query(`drop schema ${s} cascade`);
        dropped += 1;
      }
    })();
    const schemas = Array.from({ length: 4 }, (_, i) => `open_${tag}_${i}`);
    try {
      for (const schema of schemas) {
        const opened = await openDatabase({ kind: 'postgres', url: url! }, { schema, poolSize: 2 });
        try {
          const migrated = await sql<{ n: number }>`select count(*)::int as n from kysely_migration`.execute(
            opened.db,
          );
          expect(migrated.rows[0]!.n).toBeGreaterThan(10);
        } finally {
          await opened.close();
        }
      }
      expect(dropped).toBeGreaterThan(0); // the churn really ran alongside
    } finally {
      stop = true;
      await churn;
      for (const schema of schemas) await churner.query(`drop schema if exists ${schema} cascade`);
      await churner.end();
    }
  });
});
