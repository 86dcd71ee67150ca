// GET /v1/users pages like every other list: `limit` (1–200, default 50) and `cursor`, answering
// `{items, nextCursor}` in a stable order (by id). A walk sees each user of the caller's scope
// exactly once; a cursor that is not one of this list's rows for this caller is a 400 naming
// `cursor`, never a page. A user deleted while a walk is on does not break the walk.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { engines, startServer, type TestServer } from './harness.js';
import { signInAs, STAFF_PASSWORD } from './fixtures/staff.js';

interface UserView {
  id: string;
  email: string;
  role: string;
  tenantId: string;
  createdAt: string;
  disabled: boolean;
}

describe.each(engines())('GET /v1/users paging (%s)', (engine) => {
  let server: TestServer;
  let other: string;
  let defaultAdmin: string;
  let otherAdmin: string;

  const addUser = async (tenantId: string, role = 'staff'): Promise<UserView> => {
    const email = `${role}-${randomBytes(4).toString('hex')}@${tenantId.replaceAll('_', '-')}.example`;
    const res = await server.request('POST', '/v1/users', {
      body: { email, password: STAFF_PASSWORD, role, tenantId },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    return res.body as UserView;
  };

  /** The users as stored, by id: what a walk must see (tenantId: one tenant's only). */
  const stored = async (tenantId?: string): Promise<string[]> => {
    let q = server.kioskhub.db.selectFrom('users').select('id').orderBy('id');
    if (tenantId !== undefined) q = q.where('tenant_id', '=', tenantId);
    return (await q.execute()).map((r) => r.id);
  };

  /** Follows nextCursor from the first page to the last; every page at most `limit` users. */
  const walk = async (
    limit: number,
    token?: string,
    tenantId?: string,
  ): Promise<{ ids: string[]; pages: number }> => {
    const ids: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const path: string =
        `/v1/users?limit=${limit}` +
        (tenantId === undefined ? '' : `&tenantId=${tenantId}`) +
        (cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`);
      const res = await server.request('GET', path, token === undefined ? {} : { token });
      expect(res.status, `${path}: ${JSON.stringify(res.body)}`).toBe(200);
      expect(Object.keys(res.body as object).sort()).toEqual(['items', 'nextCursor']);
      const items = res.body.items as UserView[];
      expect(items.length).toBeLessThanOrEqual(limit);
      ids.push(...items.map((u) => u.id));
      cursor = res.body.nextCursor as string | null;
      pages++;
      expect(pages, 'the walk ends').toBeLessThan(50);
    } while (cursor !== null);
    return { ids, pages };
  };

  beforeAll(async () => {
    server = await startServer({ engine });
    other = `up_${randomBytes(4).toString('hex')}`;
    const created = await server.request('POST', '/v1/tenants', { body: { id: other, name: other } });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    // Five users across two tenants, created interleaved: three of `default`, two of the other.
    defaultAdmin = await signInAs(server, 'default');
    otherAdmin = await signInAs(server, other);
    await addUser('default');
    await addUser(other, 'technician');
    await addUser('default', 'customer_service');
  });
  afterAll(async () => {
    await server?.close();
  });

  it('ADMIN_TOKEN walks every tenant two at a time: each user once, by id, nextCursor null at the end', async () => {
    const all = await stored();
    expect(all).toHaveLength(5);
    const { ids, pages } = await walk(2);
    expect(ids).toEqual(all);
    expect(pages).toBe(3);
    // A page of exactly the rest: the last page still says there is no next one.
    const whole = await server.request('GET', '/v1/users?limit=5');
    expect(whole.body.items).toHaveLength(5);
    expect(whole.body.nextCursor).toBeNull();
  });

  it('a tenant admin walks its own tenant only, in the same order', async () => {
    const mine = await stored(other);
    expect(mine).toHaveLength(2);
    expect((await walk(1, otherAdmin)).ids).toEqual(mine);
    expect((await walk(2, defaultAdmin)).ids).toEqual(await stored('default'));
  });

  it('tenantId= narrows ADMIN_TOKEN to that tenant; a tenant admin may name only its own (403)', async () => {
    expect((await walk(1, undefined, other)).ids).toEqual(await stored(other));
    expect((await walk(2, undefined, 'default')).ids).toEqual(await stored('default'));
    expect((await walk(1, otherAdmin, other)).ids).toEqual(await stored(other));
    // A tenant with no users yet is an empty page, not an error.
    expect((await server.request('GET', '/v1/users?tenantId=nobody_here')).body).toEqual({
      items: [],
      nextCursor: null,
    });
    const foreign = await server.request('GET', `/v1/users?tenantId=${other}`, { token: defaultAdmin });
    expect(foreign.status).toBe(403);
    expect(foreign.body.error.code).toBe('FORBIDDEN');
    expect(foreign.body.error.message).toBe(
      'that tenant is not yours: leave tenantId out to act in your own',
    );
    expect(foreign.body.items).toBeUndefined();
    // The cursor is checked against the narrowed scope: a default user's id is foreign to `other`.
    const defaultUser = (await stored('default'))[0]!;
    const crossed = await server.request('GET', `/v1/users?tenantId=${other}&cursor=${defaultUser}`);
    expect(crossed.status).toBe(400);
    expect(crossed.body.error.details).toEqual({ cursor: defaultUser });
    const bad = await server.request('GET', '/v1/users?tenantId=');
    expect(bad.status).toBe(400);
    expect(bad.body.error.message).toContain('tenantId');
  });

  it('without limit: the first 50 by id, the same fields as before', async () => {
    const res = await server.request('GET', '/v1/users', { token: defaultAdmin });
    expect(res.status).toBe(200);
    expect(res.body.nextCursor).toBeNull();
    const items = res.body.items as UserView[];
    expect(items.map((u) => u.id)).toEqual(await stored('default'));
    expect(Object.keys(items[0]!).sort()).toEqual([
      'createdAt',
      'disabled',
      'email',
      'id',
      'role',
      'tenantId',
    ]);
  });

  it('bad limits and cursors are 400 naming the field, and change nothing', async () => {
    const before = JSON.stringify(
      await server.kioskhub.db.selectFrom('users').selectAll().orderBy('id').execute(),
    );
    const audit = (await server.kioskhub.db.selectFrom('audit_log').select('id').execute()).length;
    const defaultUser = (await stored('default'))[0]!;
    const auditId = (await server.request('GET', '/v1/audit?limit=1')).body.items[0].id as string;
    const cases: [string, string | undefined, string][] = [
      ['limit=0', undefined, 'limit'],
      ['limit=201', undefined, 'limit'],
      ['limit=abc', undefined, 'limit'],
      ['cursor=', undefined, 'cursor'],
      ['cursor=not-a-cursor', undefined, 'cursor'],
      ['cursor=not-a-cursor', defaultAdmin, 'cursor'],
      // Another list's id (an audit row's).
      [`cursor=${auditId}`, undefined, 'cursor'],
      // Another tenant's user, as a tenant admin's cursor.
      [`limit=1&cursor=${defaultUser}`, otherAdmin, 'cursor'],
      ['extra=1', undefined, 'extra'],
    ];
    for (const [query, token, field] of cases) {
      const res = await server.request('GET', `/v1/users?${query}`, token === undefined ? {} : { token });
      expect(res.status, `${query}: ${JSON.stringify(res.body)}`).toBe(400);
      expect(res.body.error.code, query).toBe('VALIDATION_FAILED');
      expect(res.body.error.message, query).toContain(field);
      expect(res.body.items, query).toBeUndefined();
    }
    // A made-up cursor names itself in details.
    const made = await server.request('GET', '/v1/users?cursor=not-a-cursor');
    expect(made.body.error.details).toEqual({ cursor: 'not-a-cursor' });
    const foreign = await server.request('GET', `/v1/users?cursor=${defaultUser}`, { token: otherAdmin });
    expect(foreign.body.error.details).toEqual({ cursor: defaultUser });
    // The same id is a good cursor for the tenant it belongs to.
    expect(
      (await server.request('GET', `/v1/users?cursor=${defaultUser}`, { token: defaultAdmin })).status,
    ).toBe(200);
    expect(
      JSON.stringify(await server.kioskhub.db.selectFrom('users').selectAll().orderBy('id').execute()),
    ).toBe(before);
    expect((await server.kioskhub.db.selectFrom('audit_log').select('id').execute()).length).toBe(audit);
  });

  it('a walk goes on past a user deleted meanwhile; that id stays foreign to other tenants', async () => {
    const extra = [await addUser(other), await addUser(other), await addUser(other)];
    const mine = await stored(other);
    const first = await server.request('GET', '/v1/users?limit=2', { token: otherAdmin });
    expect(first.status).toBe(200);
    const cursor = first.body.nextCursor as string;
    expect(cursor).toBe(mine[1]);
    // The user the cursor names is deleted before the next page is asked for.
    const gone = extra.find((u) => u.id === cursor) ?? { id: cursor };
    expect((await server.request('DELETE', `/v1/users/${gone.id}`)).status).toBe(204);
    const rest: string[] = [];
    let next: string | null = cursor;
    while (next !== null) {
      const res = await server.request('GET', `/v1/users?limit=2&cursor=${next}`, { token: otherAdmin });
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      rest.push(...(res.body.items as UserView[]).map((u) => u.id));
      next = res.body.nextCursor as string | null;
    }
    // The first page showed the deleted user while it was there; the rest follow it, each once.
    expect((first.body.items as UserView[]).map((u) => u.id)).toEqual(mine.slice(0, 2));
    expect(rest).toEqual(mine.slice(2));
    // ADMIN_TOKEN may page from it too; another tenant's admin may not.
    expect((await server.request('GET', `/v1/users?cursor=${gone.id}`)).status).toBe(200);
    const foreign = await server.request('GET', `/v1/users?cursor=${gone.id}`, { token: defaultAdmin });
    expect(foreign.status).toBe(400);
    expect(foreign.body.error.details).toEqual({ cursor: gone.id });
  });
});
