// Issue 12, credentials and sessions (items 11, 12, 18): the data folder is the owner's only,
// staff tokens expire and are revoked by logout, disable, role change and delete (with the
// user's /live sockets), and a user email taken in another tenant is not revealed.
import { statSync } from 'node:fs';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  connected,
  engines,
  eventually,
  liveSocket,
  startServer,
  tempDir,
  type TestServer,
} from '../harness.js';

const JWT_SECRET = 'security-test-jwt-secret-0123456789abcdef';

describe('security: data folder permissions (item 11)', () => {
  it('item 11: DATA_DIR is created 0700 and the database files 0600', async () => {
    const dir = tempDir();
    const dataDir = `${dir.path}/data`;
    const server = await startServer({ dataDir });
    try {
      expect(
        (await server.request('POST', '/v1/tenants', { body: { id: 'perm-check', name: 'x' } })).status,
      ).toBe(201);
      expect(statSync(dataDir).mode & 0o777).toBe(0o700);
      expect(statSync(`${dataDir}/kioskhub.db`).mode & 0o777).toBe(0o600);
      expect(statSync(`${dataDir}/kioskhub.db-wal`).mode & 0o777).toBe(0o600);
    } finally {
      await server.close();
      dir.remove();
    }
  });
});

describe.each(engines())('security: staff sessions (%s)', (engine) => {
  let server: TestServer;
  let tenant: string;
  beforeAll(async () => {
    server = await startServer({ engine, env: { JWT_SECRET } });
    tenant = `sess-${engine}`;
    expect(
      (await server.request('POST', '/v1/tenants', { body: { id: tenant, name: 'Sessions' } })).status,
    ).toBe(201);
  });
  afterAll(async () => {
    await server?.close();
  });

  let seq = 0;
  async function staffUser(role = 'technician') {
    const email = `u${seq++}-${engine}@sessions.example`;
    const created = await server.request('POST', '/v1/users', {
      body: { email, password: 'correct-horse', role, tenantId: tenant },
    });
    expect(created.status).toBe(201);
    const login = await server.request('POST', '/v1/auth/login', {
      token: null,
      body: { email, password: 'correct-horse' },
    });
    expect(login.status).toBe(200);
    return { id: created.body.id as string, email, token: login.body.token as string };
  }
  const me = (token: string) => server.request('GET', '/v1/auth/me', { token });
  const audit = async (action: string, userId: string) =>
    server.kioskhub.db
      .selectFrom('audit_log')
      .select('actor')
      .where('action', '=', action)
      .where('subject_id', '=', userId)
      .execute();

  it('item 12: tokens without exp are refused; logout, disable, role change and delete revoke at once (audited)', async () => {
    // A token signed with the real secret but without an expiry.
    const forever = await new SignJWT({ tenantId: tenant, role: 'admin', email: 'x@y.z' })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject((await staffUser('admin')).id)
      .sign(new TextEncoder().encode(JWT_SECRET));
    expect((await me(forever)).status).toBe(401);

    const loggingOut = await staffUser();
    expect((await me(loggingOut.token)).status).toBe(200);
    expect((await server.request('POST', '/v1/auth/logout', { token: loggingOut.token })).status).toBe(204);
    expect((await me(loggingOut.token)).status).toBe(401);
    expect(await audit('user.logout', loggingOut.id)).toHaveLength(1);

    const disabled = await staffUser();
    const live = liveSocket(server.url, { token: disabled.token });
    await connected(live);
    const dropped = new Promise<void>((resolve) => live.once('disconnect', () => resolve()));
    expect(
      (await server.request('PATCH', `/v1/users/${disabled.id}`, { body: { disabled: true } })).body.disabled,
    ).toBe(true);
    expect((await me(disabled.token)).status).toBe(401);
    await dropped;
    const refusedLogin = await server.request('POST', '/v1/auth/login', {
      token: null,
      body: { email: disabled.email, password: 'correct-horse' },
    });
    expect(refusedLogin.status).toBe(401);

    const demoted = await staffUser('admin');
    expect(
      (await server.request('PATCH', `/v1/users/${demoted.id}`, { body: { role: 'staff' } })).body.role,
    ).toBe('staff');
    expect((await me(demoted.token)).status).toBe(401);

    const deleted = await staffUser();
    expect((await server.request('DELETE', `/v1/users/${deleted.id}`)).status).toBe(204);
    expect((await me(deleted.token)).status).toBe(401);

    expect(await audit('user.update', disabled.id)).toHaveLength(1);
    expect(await audit('user.update', demoted.id)).toHaveLength(1);
    expect(await audit('user.delete', deleted.id)).toHaveLength(1);
    await eventually(() => !live.connected, 2_000, 'live socket dropped');
    live.disconnect();
  });

  it('item 18: an email taken in another tenant answers the same generic conflict as one taken here', async () => {
    const other = `other-${engine}`;
    expect((await server.request('POST', '/v1/tenants', { body: { id: other, name: 'Other' } })).status).toBe(
      201,
    );
    const email = `taken-${engine}@conflict.example`;
    expect(
      (
        await server.request('POST', '/v1/users', {
          body: { email, password: 'correct-horse', role: 'staff', tenantId: other },
        })
      ).status,
    ).toBe(201);
    const admin = await staffUser('admin');
    const elsewhere = await server.request('POST', '/v1/users', {
      token: admin.token,
      body: { email, password: 'correct-horse', role: 'staff' },
    });
    expect(elsewhere.status).toBe(409);
    expect(elsewhere.body.error.code).toBe('CONFLICT');
    expect(elsewhere.body.error.message).not.toContain(email);
    expect(elsewhere.body.error.message).not.toMatch(/exist|tenant|already/i);
    const here = await server.request('POST', '/v1/users', {
      token: admin.token,
      body: { email: admin.email, password: 'correct-horse', role: 'staff' },
    });
    expect(here.body).toEqual(elsewhere.body);
  });
});
