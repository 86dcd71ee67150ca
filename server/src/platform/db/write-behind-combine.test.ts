// The combined statement of held writes (pure: no database): renumbered placeholders, parameters in
// order, row-count checks, and one text per shape, built once and found again.
import { CompiledQuery } from 'kysely';
import { describe, expect, it } from 'vitest';
import { combine, deferred } from './write-behind.js';

const INSERT = 'insert into "parents" ("id", "n") values ($1, $2)';
const UPDATE = 'update "parents" set "n" = "n" + $1 where "id" = $2';
const insert = (id: string, n: number) => deferred(CompiledQuery.raw(INSERT, [id, n]));
const update = (id: string, by: number, expectRows = 1) =>
  deferred(CompiledQuery.raw(UPDATE, [by, id]), { expectRows });

describe('combine', () => {
  it('renumbers each write after the ones before it and keeps every parameter in order', () => {
    const { query, checks } = combine([insert('a', 1), update('b', 5)]);
    expect(query.sql).toBe(
      'with w0 as (insert into "parents" ("id", "n") values ($1, $2)), ' +
        'w1 as (update "parents" set "n" = "n" + $3 where "id" = $4 returning 1) ' +
        'select (select count(*) from w1)::int as c1',
    );
    expect(query.parameters).toEqual(['a', 1, 5, 'b']);
    expect(checks).toEqual([null, 'c1']);
  });

  it('builds one text per shape: the next event with other values gets the same text and its own values', () => {
    const first = combine([insert('a', 1), update('b', 5)]);
    const second = combine([insert('x', 9), update('y', -3)]);
    expect(second.query.sql).toBe(first.query.sql);
    expect(second.query.parameters).toEqual(['x', 9, -3, 'y']);
    // Another order of the same writes is another statement.
    const swapped = combine([update('y', -3), insert('x', 9)]);
    expect(swapped.query.sql).not.toBe(first.query.sql);
    expect(swapped.query.sql).toContain(
      'w0 as (update "parents" set "n" = "n" + $1 where "id" = $2 returning 1)',
    );
    expect(swapped.query.parameters).toEqual([-3, 'y', 'x', 9]);
  });

  it('enforces the row counts each write was marked with, per shape', () => {
    const one = combine([insert('a', 1), update('b', 5, 1)], { enforce: true });
    const two = combine([insert('a', 1), update('b', 5, 2)], { enforce: true });
    expect(one.query.sql).toContain('1 / (case when (select count(*) from w1) = 1 then 1 else 0 end) as ok');
    expect(two.query.sql).toContain('1 / (case when (select count(*) from w1) = 2 then 1 else 0 end) as ok');
    // The same writes without enforcement: counted, never divided.
    expect(combine([insert('a', 1), update('b', 5, 1)]).query.sql).not.toContain('1 / (case');
  });
});
