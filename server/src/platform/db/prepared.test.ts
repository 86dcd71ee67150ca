// Named prepared statements on a real PostgreSQL: a parametrised statement sent again is parsed
// once per connection and answers the same; statements without parameters and statements sent
// before enable() stay unnamed; a failing statement leaves the name usable.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPreparedStatements, type PreparedStatements } from './prepared.js';

const url = process.env['TEST_DATABASE_URL'];
if (!url)
  console.warn(
    'NOTICE: TEST_DATABASE_URL is not set; the prepared-statement tests (PostgreSQL) are SKIPPED.',
  );

describe.skipIf(!url)('prepared statements (PostgreSQL)', () => {
  const schema = `ps_${randomBytes(6).toString('hex')}`;
  let pool: pg.Pool;
  let prepared: PreparedStatements;

  beforeAll(async () => {
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    await admin.query(`create schema ${schema}`);
    await admin.query(`create table ${schema}.items (id text primary key, n integer not null)`);
    await admin.end();
    // One connection, so what one query prepared the next one sees.
    pool = new pg.Pool({ connectionString: url, max: 1, options: `-c search_path=${schema}` });
    prepared = createPreparedStatements();
    pool.on('connect', (client) => prepared.attach(client));
  });
  afterAll(async () => {
    await pool?.end();
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    await client.query(`drop schema if exists ${schema} cascade`);
    await client.end();
  });

  const preparedHere = async (): Promise<string[]> =>
    (await pool.query<{ name: string }>('select name from pg_prepared_statements order by name')).rows.map(
      (r) => r.name,
    );

  it('names a parametrised statement the second time it is sent, once enabled', async () => {
    const insert = 'insert into items (id, n) values ($1, $2)';
    await pool.query(insert, ['a', 1]);
    await pool.query(insert, ['b', 2]);
    expect(await preparedHere()).toEqual([]); // not enabled yet (the migrations run first)

    prepared.enable();
    await pool.query(insert, ['c', 3]); // seen once since enable: unnamed
    expect(await preparedHere()).toEqual([]);
    await pool.query(insert, ['d', 4]);
    await pool.query(insert, ['e', 5]);
    const names = await preparedHere();
    expect(names).toHaveLength(1);
    expect(names[0]).toMatch(/^k[0-9a-f]{20}$/);
    expect(prepared.named()).toBe(1);

    const select = 'select id, n from items where n >= $1 order by id';
    const answers = [];
    for (let i = 0; i < 4; i++) answers.push((await pool.query(select, [3])).rows);
    expect(answers).toEqual(
      Array(4).fill([
        { id: 'c', n: 3 },
        { id: 'd', n: 4 },
        { id: 'e', n: 5 },
      ]),
    );
    expect(await preparedHere()).toHaveLength(2);
  });

  it('never names a statement without parameters', async () => {
    for (let i = 0; i < 3; i++) await pool.query('select count(*)::int as c from items');
    expect(await preparedHere()).toHaveLength(2);
  });

  it('a named statement that fails leaves the name usable and the transaction rolled back', async () => {
    const insert = 'insert into items (id, n) values ($1, $2)';
    const client = await pool.connect();
    try {
      await client.query('begin');
      await expect(client.query(insert, ['a', 9])).rejects.toMatchObject({ code: '23505' });
      await client.query('rollback');
    } finally {
      client.release();
    }
    await pool.query(insert, ['f', 6]);
    expect((await pool.query('select count(*)::int as c from items')).rows[0]).toEqual({ c: 6 });
  });
});
