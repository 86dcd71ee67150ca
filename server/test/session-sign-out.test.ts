// Signing out one session: DELETE /v1/auth/session ends the calling staff token only (its `jti`
// is stored until the token expires), on HTTP and on /live, audited once as `user.session_end`;
// the user's other sessions keep working and POST /v1/auth/logout still ends them all.
import { decodeJwt, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ADMIN_TOKEN,
  connected,
  dropSchema,
  engines,
  eventually,
  liveSocket,
  newSchemaName,
  startServer,
  type TestServer,
} from './harness.js';

const JWT_SECRET = 'session-sign-out-jwt-secret-0123456789abcdef';
const PASSWORD = 'correct-horse';

describe.each(engines())('signing out one session (%s)', (engine) => {
  let server: TestServer;
  const tenant = `so-${engine}`;
  // PostgreSQL: a second process on the same schema (and the same Redis, when there is one).
  const schema = engine === 'postgres' ? newSchemaName() : undefined;
  const redisUrl = process.env['TEST_REDIS_URL'];
  let peer: TestServer | undefined;
  beforeAll(async () => {
    const env = { JWT_SECRET, ...(schema && redisUrl ? { REDIS_URL: redisUrl } : {}) };
    server = await startServer({ engine, env, ...(schema ? { schema } : {}) });
    if (schema) peer = await startServer({ engine, env, schema });
    const created = await server.request('POST', '/v1/tenants', { body: { id: tenant, name: 'Sign-out' } });
    expect(created.status).toBe(201);
  });
  afterAll(async () => {
    await peer?.close();
    await server?.close();
    if (schema) await dropSchema(schema);
  });

  let seq = 0;
  async function newUser(): Promise<{ id: string; email: string }> {
    const email = `u${seq++}-${engine}@sign-out.example`;
    const created = await server.request('POST', '/v1/users', {
      body: { email, password: PASSWORD, role: 'staff', tenantId: tenant },
    });
    expect(created.status).toBe(201);
    return { id: created.body.id as string, email };
  }
  async function signIn(email: string): Promise<string> {
    const login = await server.request('POST', '/v1/auth/login', {
      token: null,
      body: { email, password: PASSWORD },
    });
    expect(login.status).toBe(200);
    return login.body.token as string;
  }
  const me = async (token: string) => (await server.request('GET', '/v1/auth/me', { token })).status;
  const endSession = (token: string, body?: unknown) =>
    server.request('DELETE', '/v1/auth/session', { token, ...(body !== undefined ? { body } : {}) });
  const auditRows = (action: string, userId: string) =>
    server.kioskhub.db
      .selectFrom('audit_log')
      .selectAll()
      .where('action', '=', action)
      .where('subject_id', '=', userId)
      .execute();
  const endedRows = (userId: string) =>
    server.kioskhub.db.selectFrom('ended_sessions').selectAll().where('user_id', '=', userId).execute();
  const refusedOnLive = (token: string) =>
    new Promise<string>((resolve, reject) => {
      const socket = liveSocket(server.url, { token });
      socket.once('connect', () => {
        socket.disconnect();
        reject(new Error('an ended session opened /live'));
      });
      socket.once('connect_error', (err) => {
        socket.disconnect();
        resolve(err.message);
      });
    });

  it('ends the calling token only, on HTTP and /live; once; the other session keeps working', async () => {
    const user = await newUser();
    const first = await signIn(user.email);
    const second = await signIn(user.email);
    const firstId = decodeJwt(first).jti;
    expect(typeof firstId).toBe('string');
    expect(decodeJwt(second).jti).not.toBe(firstId);
    const firstLive = liveSocket(server.url, { token: first });
    const secondLive = liveSocket(server.url, { token: second });
    await Promise.all([connected(firstLive), connected(secondLive)]);
    // With Redis, the other process drops the ended session's socket too (and forgets its cache).
    const peerLive = peer && redisUrl ? liveSocket(peer.url, { token: first }) : undefined;
    if (peerLive) await connected(peerLive);

    // A body is refused and changes nothing.
    const withBody = await endSession(first, { everywhere: true });
    expect(withBody.status).toBe(400);
    expect(withBody.body.error).toMatchObject({
      code: 'VALIDATION_FAILED',
      details: [{ field: 'everywhere' }],
    });
    expect(await me(first)).toBe(200);
    expect(await endedRows(user.id)).toHaveLength(0);
    expect(await auditRows('user.session_end', user.id)).toHaveLength(0);

    expect((await endSession(first)).status).toBe(204);
    expect(await me(first)).toBe(401);
    expect(await me(second)).toBe(200);
    await eventually(() => !firstLive.connected, 5_000, 'the ended session dropped from /live');
    expect(await refusedOnLive(first)).toBe('unauthorized');
    expect(secondLive.connected).toBe(true);

    // Ended already: 401, and nothing more is stored or audited.
    const again = await endSession(first);
    expect(again.status).toBe(401);
    expect(again.body.error.code).toBe('UNAUTHORIZED');
    const audited = await auditRows('user.session_end', user.id);
    expect(audited).toHaveLength(1);
    expect(audited[0]!.actor).toBe(`user:${user.email}`);
    expect(JSON.stringify(audited[0])).toContain(String(firstId));
    expect(JSON.stringify(audited[0])).not.toContain(first);
    expect(await endedRows(user.id)).toHaveLength(1);
    expect(await auditRows('user.logout', user.id)).toHaveLength(0);

    // Another process refuses it too: from the database (a cold cache), or told through Redis.
    if (peer) {
      const onPeer = async (token: string) => (await peer!.request('GET', '/v1/auth/me', { token })).status;
      if (peerLive) await eventually(() => !peerLive.connected, 5_000, 'the other process dropped it');
      await eventually(async () => (await onPeer(first)) === 401, 3_000, 'the other process refused it');
      expect(await onPeer(second)).toBe(200);
      peerLive?.disconnect();
    }

    // Logout still ends every session of the user.
    expect((await server.request('POST', '/v1/auth/logout', { token: second })).status).toBe(204);
    expect(await me(second)).toBe(401);
    await eventually(() => !secondLive.connected, 5_000, 'logout dropped the other socket');
    firstLive.disconnect();
    secondLive.disconnect();
  });

  it('ADMIN_TOKEN and a machine key get a clear error; a token without an id ends with logout only', async () => {
    const admin = await endSession(ADMIN_TOKEN);
    expect(admin.status).toBe(403);
    expect(admin.body.error.message).toContain('ADMIN_TOKEN');
    const machine = await server.createMachine(`SO-${engine}`, { tenantId: tenant });
    const byMachine = await endSession(machine.key);
    expect(byMachine.status).toBe(403);
    expect(byMachine.body.error.code).toBe('FORBIDDEN');

    // A token issued before sign-ins had ids (no `jti`) keeps working until logout or expiry.
    const user = await newUser();
    const legacy = await new SignJWT({ tenantId: tenant, role: 'staff', email: user.email, ver: 0 })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject(user.id)
      .setIssuedAt()
      .setExpirationTime('12h')
      .sign(new TextEncoder().encode(JWT_SECRET));
    expect(await me(legacy)).toBe(200);
    const noId = await endSession(legacy);
    expect(noId.status).toBe(409);
    expect(noId.body.error.code).toBe('INVALID_STATE');
    expect(noId.body.error.message).toContain('POST /v1/auth/logout');
    expect(await me(legacy)).toBe(200);
    expect((await server.request('POST', '/v1/auth/logout', { token: legacy })).status).toBe(204);
    expect(await me(legacy)).toBe(401);
    expect(await auditRows('user.session_end', user.id)).toHaveLength(0);
  });

  it('keeps an ended session until its token expires, then purges it', async () => {
    const user = await newUser();
    const token = await signIn(user.email);
    expect((await endSession(token)).status).toBe(204);
    const [row] = await endedRows(user.id);
    const exp = decodeJwt(token).exp!;
    expect(row).toMatchObject({
      token_id: decodeJwt(token).jti,
      expires_at: new Date(exp * 1000).toISOString(),
    });
    const users = server.kioskhub.services.users;
    await users.purgeEndedSessions();
    expect(await endedRows(user.id)).toHaveLength(1);
    expect(await me(token)).toBe(401);
    await users.purgeEndedSessions(new Date(exp * 1000 + 1).toISOString());
    expect(await endedRows(user.id)).toHaveLength(0);
  });
});
