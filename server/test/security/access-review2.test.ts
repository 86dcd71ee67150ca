// Access review 2: staff password resets, and the last admin of a tenant, against the real
// server on every storage engine.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { engines, startServer, type TestServer } from '../harness.js';

describe.each(engines())('access review 2 (%s)', (engine) => {
  let server: TestServer;
  let tenant: string;
  beforeAll(async () => {
    server = await startServer({ engine });
    tenant = `ar2-${engine}`;
    expect(
      (await server.request('POST', '/v1/tenants', { body: { id: tenant, name: 'Access review' } })).status,
    ).toBe(201);
  });
  afterAll(async () => {
    await server?.close();
  });

  let seq = 0;
  async function staffUser(role = 'technician', password = 'correct-horse') {
    const email = `u${seq++}-${engine}@ar2.example`;
    const created = await server.request('POST', '/v1/users', {
      body: { email, password, role, tenantId: tenant },
    });
    expect(created.status).toBe(201);
    return { id: created.body.id as string, email, token: await login(email, password) };
  }
  async function login(email: string, password: string): Promise<string> {
    const res = await server.request('POST', '/v1/auth/login', { token: null, body: { email, password } });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    return res.body.token as string;
  }
  const loginStatus = async (email: string, password: string) =>
    (await server.request('POST', '/v1/auth/login', { token: null, body: { email, password } })).status;
  const audit = (action: string, subjectId: string) =>
    server.kioskhub.db
      .selectFrom('audit_log')
      .select(['actor', 'before', 'after'])
      .where('action', '=', action)
      .where('subject_id', '=', subjectId)
      .execute();

  it('an admin resets a staff password: the old one and every token stop, audited without the hash', async () => {
    const admin = await staffUser('admin');
    const victim = await staffUser('technician', 'leaked-password');
    const res = await server.request('PATCH', `/v1/users/${victim.id}`, {
      token: admin.token,
      body: { password: 'a brand new password' },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body).toMatchObject({ id: victim.id, role: 'technician', disabled: false });
    expect((await server.request('GET', '/v1/auth/me', { token: victim.token })).status).toBe(401);
    expect(await loginStatus(victim.email, 'leaked-password')).toBe(401);
    expect(await loginStatus(victim.email, 'a brand new password')).toBe(200);
    const rows = await audit('user.update', victim.id);
    expect(rows).toHaveLength(1);
    expect(JSON.stringify(rows)).toContain('passwordChanged');
    expect(JSON.stringify(rows)).not.toMatch(/argon2|a brand new password/);
    // A short password is refused like at creation.
    const short = await server.request('PATCH', `/v1/users/${victim.id}`, { body: { password: 'short' } });
    expect(short.status).toBe(400);
  });

  it('a staff user changes its own password: every other session ends, this one gets a new token', async () => {
    const tech = await staffUser('technician', 'first-password');
    const otherDevice = await login(tech.email, 'first-password');
    const wrong = await server.request('POST', '/v1/auth/password', {
      token: tech.token,
      body: { currentPassword: 'not-the-password', newPassword: 'second-password' },
    });
    expect({ status: wrong.status, code: wrong.body?.error?.code }).toEqual({
      status: 403,
      code: 'FORBIDDEN',
    });
    expect((await server.request('GET', '/v1/auth/me', { token: tech.token })).status).toBe(200);

    const res = await server.request('POST', '/v1/auth/password', {
      token: tech.token,
      body: { currentPassword: 'first-password', newPassword: 'second-password' },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.user).toMatchObject({ id: tech.id, role: 'technician' });
    for (const old of [tech.token, otherDevice]) {
      expect((await server.request('GET', '/v1/auth/me', { token: old })).status).toBe(401);
    }
    expect((await server.request('GET', '/v1/auth/me', { token: res.body.token })).status).toBe(200);
    expect(await loginStatus(tech.email, 'first-password')).toBe(401);
    expect(await loginStatus(tech.email, 'second-password')).toBe(200);
    const rows = await audit('user.password_change', tech.id);
    expect(rows).toHaveLength(1);
    expect(JSON.stringify(rows)).not.toMatch(/argon2|password"/);
    // ADMIN_TOKEN has no password; a short new password is refused like at creation.
    expect(
      (
        await server.request('POST', '/v1/auth/password', {
          body: { currentPassword: 'x', newPassword: 'y'.repeat(9) },
        })
      ).status,
    ).toBe(403);
    const short = await server.request('POST', '/v1/auth/password', {
      token: res.body.token,
      body: { currentPassword: 'second-password', newPassword: 'short' },
    });
    expect(short.status).toBe(400);
  });

  it('the last enabled admin of a tenant cannot be demoted, disabled or deleted', async () => {
    const lone = `ar2-lone-${engine}`;
    expect((await server.request('POST', '/v1/tenants', { body: { id: lone, name: 'Lone' } })).status).toBe(
      201,
    );
    const email = `lone-${engine}@ar2.example`;
    const created = await server.request('POST', '/v1/users', {
      body: { email, password: 'correct-horse', role: 'admin', tenantId: lone },
    });
    expect(created.status).toBe(201);
    const token = await login(email, 'correct-horse');
    const userId = created.body.id as string;
    for (const body of [{ role: 'staff' }, { disabled: true }]) {
      const res = await server.request('PATCH', `/v1/users/${userId}`, { token, body });
      expect({ status: res.status, code: res.body?.error?.code }, JSON.stringify(body)).toEqual({
        status: 409,
        code: 'CONFLICT',
      });
    }
    const del = await server.request('DELETE', `/v1/users/${userId}`, { token });
    expect({ status: del.status, code: del.body?.error?.code }).toEqual({ status: 409, code: 'CONFLICT' });
    // Still an admin, still signed in.
    expect((await server.request('GET', '/v1/auth/me', { token })).body.role).toBe('admin');

    // Two admins demoting each other at the same moment: one admin remains.
    const email2 = `lone2-${engine}@ar2.example`;
    const second = await server.request('POST', '/v1/users', {
      body: { email: email2, password: 'correct-horse', role: 'admin', tenantId: lone },
    });
    expect(second.status).toBe(201);
    const token2 = await login(email2, 'correct-horse');
    const both = await Promise.all([
      server.request('PATCH', `/v1/users/${userId}`, { token: token2, body: { role: 'staff' } }),
      server.request('PATCH', `/v1/users/${second.body.id}`, { token, body: { role: 'staff' } }),
    ]);
    expect(both.map((r) => r.status)).not.toContain(500);
    const users = await server.request('GET', '/v1/users');
    const admins = (users.body.items as { tenantId: string; role: string; disabled: boolean }[]).filter(
      (u) => u.tenantId === lone && u.role === 'admin' && !u.disabled,
    );
    expect(admins).toHaveLength(1);

    const last = admins[0] as unknown as { id: string };
    // Another tenant's last admin is "not found" to a tenant admin, never a conflict naming its tenant.
    const outsider = await staffUser('admin');
    const foreign = await server.request('DELETE', `/v1/users/${last.id}`, { token: outsider.token });
    expect({ status: foreign.status, code: foreign.body?.error?.code }).toEqual({
      status: 404,
      code: 'NOT_FOUND',
    });
    // ADMIN_TOKEN, which can always recover a tenant, may still shut its last admin (an incident).
    const shut = await server.request('PATCH', `/v1/users/${last.id}`, { body: { disabled: true } });
    expect(shut.status).toBe(200);
  });
});
