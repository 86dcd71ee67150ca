// Authentication, tenants, staff users and tenant isolation against the real server
// (CONTRACTS.md §2, §3), on every storage engine.
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ADMIN_TOKEN,
  dropSchema,
  engines,
  newSchemaName,
  startServer,
  tempDir,
  type Engine,
  type TestServer,
} from './harness.js';

// Known JWT secret so tests can present forged and expired tokens.
const JWT_SECRET = 'test-jwt-secret-0123456789abcdef-0123456789';
const PASSWORD = 'correct horse battery';

type Res = { status: number; body: any };

function expectError(res: Res, status: number, code: string): void {
  expect({ status: res.status, body: res.body }).toMatchObject({ status, body: { error: { code } } });
  expect(typeof res.body.error.message).toBe('string');
  expect(res.body.error.message.length).toBeGreaterThan(0);
  const text = JSON.stringify(res.body);
  expect(text).not.toMatch(/"stack"|\bat .+:\d+:\d+|node_modules|\.ts:\d+/);
}

async function signJwt(
  claims: Record<string, unknown>,
  options: { secret?: string; sub?: string; exp?: number | string } = {},
): Promise<string> {
  const jwt = new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setIssuedAt();
  if (options.sub !== undefined) jwt.setSubject(options.sub);
  jwt.setExpirationTime(options.exp ?? '1h');
  return jwt.sign(new TextEncoder().encode(options.secret ?? JWT_SECRET));
}

describe.each(engines())('auth and tenants (%s)', (engine: Engine) => {
  let server: TestServer;

  const createUser = (body: Record<string, unknown>, token: string | null = ADMIN_TOKEN) =>
    server.request('POST', '/v1/users', { body, token });
  const login = (email: string, password: string) =>
    server.request('POST', '/v1/auth/login', { body: { email, password }, token: null });
  async function userToken(email: string, role: string, tenantId?: string): Promise<string> {
    const created = await createUser({ email, password: PASSWORD, role, ...(tenantId ? { tenantId } : {}) });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const res = await login(email, PASSWORD);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    return res.body.token as string;
  }

  beforeAll(async () => {
    // Many sign-ins from this one address: the per-address cap is not what these tests are about.
    server = await startServer({ engine, env: { JWT_SECRET, LOGIN_MAX_PER_ADDRESS: '1000' } });
    for (const id of ['acme', 'globex']) {
      const res = await server.request('POST', '/v1/tenants', { body: { id, name: `${id} Inc` } });
      expect(res.status, JSON.stringify(res.body)).toBe(201);
    }
  });
  afterAll(async () => {
    await server?.close();
  });

  describe('ADMIN_TOKEN and credentials', () => {
    it('ADMIN_TOKEN is an admin credential that sees all tenants', async () => {
      const me = await server.request('GET', '/v1/auth/me');
      expect(me.status).toBe(200);
      expect(me.body).toMatchObject({ kind: 'admin', tenantId: null });
      const tenants = await server.request('GET', '/v1/tenants');
      expect(tenants.status).toBe(200);
      expect(tenants.body.items.map((t: { id: string }) => t.id)).toEqual(
        expect.arrayContaining(['default', 'acme', 'globex']),
      );
      expect(tenants.body.nextCursor).toBeNull();
    });

    it('no credential → 401 UNAUTHORIZED', async () => {
      for (const [method, path] of [
        ['GET', '/v1/machines'],
        ['GET', '/v1/tenants'],
        ['GET', '/v1/auth/me'],
        ['GET', '/v1/orders'],
      ] as const) {
        const res = await server.request(method, path, { token: null });
        expectError(res, 401, 'UNAUTHORIZED');
      }
    });

    it('a wrong token → 401 UNAUTHORIZED', async () => {
      for (const token of [
        `${ADMIN_TOKEN}x`,
        ADMIN_TOKEN.slice(0, -1),
        'kh_admin_not-the-token',
        'x'.repeat(5000),
      ]) {
        expectError(await server.request('GET', '/v1/machines', { token }), 401, 'UNAUTHORIZED');
      }
    });

    it('a malformed Authorization header → 401 UNAUTHORIZED', async () => {
      const headers = [
        `Basic ${Buffer.from(`admin:${ADMIN_TOKEN}`).toString('base64')}`,
        'Bearer',
        `Token ${ADMIN_TOKEN}`,
        ADMIN_TOKEN,
        `Bearer ${ADMIN_TOKEN} extra`,
        `Bearer${ADMIN_TOKEN}`,
        'Bearer a.b.c',
        'Bearer ...',
      ];
      for (const authorization of headers) {
        const res = await server.request('GET', '/v1/machines', { token: null, headers: { authorization } });
        expectError(res, 401, 'UNAUTHORIZED');
      }
    });

    it('a wrong X-API-Key → 401 even when the Authorization header would be valid', async () => {
      const res = await server.request('GET', '/v1/machines', { headers: { 'x-api-key': 'mk_not-a-key' } });
      expectError(res, 401, 'UNAUTHORIZED');
    });

    it('JWTs that are forged, expired, unsigned or carry a bad role → 401', async () => {
      const mallory = { email: 'mallory@example.com', password: PASSWORD, role: 'admin', tenantId: 'acme' };
      const created = await createUser(mallory);
      const u1 = created.body.id as string;
      const claims = { tenantId: 'acme', role: 'admin', email: 'mallory@example.com' };
      const forged = await signJwt(claims, { secret: 'another-secret-another-secret-another', sub: u1 });
      const expired = await signJwt(claims, { sub: u1, exp: Math.floor(Date.now() / 1000) - 60 });
      const badRole = await signJwt({ ...claims, role: 'superuser' }, { sub: u1 });
      const noTenant = await signJwt({ role: 'admin' }, { sub: u1 });
      const noSubject = await signJwt(claims);
      const unsigned = `${Buffer.from('{"alg":"none","typ":"JWT"}').toString('base64url')}.${Buffer.from(JSON.stringify({ ...claims, sub: u1 })).toString('base64url')}.`;
      // Signed with the server's secret, but for a user that does not exist, or with another role.
      const noUser = await signJwt(claims, { sub: 'u1' });
      const otherRole = await signJwt({ ...claims, role: 'staff' }, { sub: u1 });
      for (const token of [forged, expired, badRole, noTenant, noSubject, unsigned, noUser, otherRole]) {
        expectError(await server.request('GET', '/v1/machines', { token }), 401, 'UNAUTHORIZED');
      }
      // The same claims signed with the server's secret do work: the checks above are the reason.
      const good = await signJwt(claims, { sub: u1 });
      expect((await server.request('GET', '/v1/machines', { token: good })).status).toBe(200);
    });
  });

  describe('tenants', () => {
    it('ADMIN_TOKEN creates a tenant with its default site', async () => {
      const res = await server.request('POST', '/v1/tenants', { body: { id: 'initech', name: 'Initech' } });
      expect(res.status).toBe(201);
      expect(res.body).toMatchObject({ id: 'initech', name: 'Initech' });
      expect(typeof res.body.createdAt).toBe('string');
      const machine = await server.request('POST', '/v1/machines', {
        body: { id: 'INITECH-1', tenantId: 'initech' },
      });
      expect(machine.status, JSON.stringify(machine.body)).toBe(201);
      expect(machine.body).toMatchObject({ tenantId: 'initech', siteId: 'default' });
    });

    it('a duplicate tenant id → 409 CONFLICT', async () => {
      expectError(
        await server.request('POST', '/v1/tenants', { body: { id: 'acme', name: 'Acme again' } }),
        409,
        'CONFLICT',
      );
      expectError(
        await server.request('POST', '/v1/tenants', { body: { id: 'default', name: 'Default again' } }),
        409,
        'CONFLICT',
      );
    });

    it('only ADMIN_TOKEN may create tenants: staff admin and machine keys → 403, nobody → 401', async () => {
      const adminJwt = await userToken('boss@acme.example', 'admin', 'acme');
      expectError(
        await server.request('POST', '/v1/tenants', {
          body: { id: 'rogue', name: 'Rogue' },
          token: adminJwt,
        }),
        403,
        'FORBIDDEN',
      );
      expectError(await server.request('GET', '/v1/tenants', { token: adminJwt }), 403, 'FORBIDDEN');
      const machine = await server.createMachine('TENANT-KEY-1');
      expectError(
        await server.request('POST', '/v1/tenants', {
          body: { id: 'rogue', name: 'Rogue' },
          token: machine.key,
        }),
        403,
        'FORBIDDEN',
      );
      expectError(
        await server.request('POST', '/v1/tenants', { body: { id: 'rogue', name: 'Rogue' }, token: null }),
        401,
        'UNAUTHORIZED',
      );
      const list = await server.request('GET', '/v1/tenants');
      expect(list.body.items.map((t: { id: string }) => t.id)).not.toContain('rogue');
    });

    it.each<[string, unknown]>([
      ['missing name', { id: 'nameless' }],
      ['missing id', { name: 'No id' }],
      ['empty name', { id: 'empty-name', name: '' }],
      ['bad id', { id: 'has space', name: 'x' }],
      ['unknown field', { id: 'extra', name: 'x', plan: 'gold' }],
      ['numeric id', { id: 5, name: 'x' }],
    ])('tenant with %s → 400 VALIDATION_FAILED', async (_label, body) => {
      expectError(await server.request('POST', '/v1/tenants', { body }), 400, 'VALIDATION_FAILED');
    });
  });

  describe('users', () => {
    it('ADMIN_TOKEN creates a user in the default tenant when no tenantId is given', async () => {
      const res = await createUser({ email: 'Ops@Example.com', password: PASSWORD, role: 'technician' });
      expect(res.status).toBe(201);
      expect(res.body).toMatchObject({ email: 'ops@example.com', role: 'technician', tenantId: 'default' });
      expect(typeof res.body.id).toBe('string');
      expect(JSON.stringify(res.body)).not.toContain(PASSWORD);
      expect(res.body).not.toHaveProperty('password');
      expect(res.body).not.toHaveProperty('passwordHash');
    });

    it('ADMIN_TOKEN creates a user in a named tenant; an unknown tenant → 404', async () => {
      const res = await createUser({
        email: 'cs@globex.example',
        password: PASSWORD,
        role: 'customer_service',
        tenantId: 'globex',
      });
      expect(res.status).toBe(201);
      expect(res.body.tenantId).toBe('globex');
      expectError(
        await createUser({
          email: 'x@nowhere.example',
          password: PASSWORD,
          role: 'staff',
          tenantId: 'nowhere',
        }),
        404,
        'NOT_FOUND',
      );
    });

    it('a tenant admin creates users only in its own tenant', async () => {
      const adminJwt = await userToken('admin2@acme.example', 'admin', 'acme');
      const implicit = await createUser(
        { email: 'tech@acme.example', password: PASSWORD, role: 'technician' },
        adminJwt,
      );
      expect(implicit.status).toBe(201);
      expect(implicit.body.tenantId).toBe('acme');
      const explicit = await createUser(
        { email: 'staff@acme.example', password: PASSWORD, role: 'staff', tenantId: 'acme' },
        adminJwt,
      );
      expect(explicit.status).toBe(201);
      expect(explicit.body.tenantId).toBe('acme');
      for (const tenantId of ['globex', 'default', 'nowhere']) {
        expectError(
          await createUser(
            { email: `spy-${tenantId}@acme.example`, password: PASSWORD, role: 'admin', tenantId },
            adminJwt,
          ),
          403,
          'FORBIDDEN',
        );
      }
      expect((await login('spy-globex@acme.example', PASSWORD)).status).toBe(401);
    });

    it.each(['technician', 'customer_service', 'staff'])('a %s may not create users → 403', async (role) => {
      const token = await userToken(`${role}-creator@acme.example`, role, 'acme');
      expectError(
        await createUser({ email: `made-by-${role}@acme.example`, password: PASSWORD, role: 'staff' }, token),
        403,
        'FORBIDDEN',
      );
      expectError(
        await createUser(
          { email: `made-by-${role}2@acme.example`, password: PASSWORD, role: 'admin', tenantId: 'acme' },
          token,
        ),
        403,
        'FORBIDDEN',
      );
    });

    it('a machine key may not create users → 403; no credential → 401', async () => {
      const machine = await server.createMachine('USER-KEY-1');
      expectError(
        await createUser({ email: 'bymachine@example.com', password: PASSWORD, role: 'staff' }, machine.key),
        403,
        'FORBIDDEN',
      );
      expectError(
        await createUser({ email: 'byanon@example.com', password: PASSWORD, role: 'staff' }, null),
        401,
        'UNAUTHORIZED',
      );
    });

    it('a duplicate email → 409 CONFLICT (case-insensitive, across tenants)', async () => {
      expect((await createUser({ email: 'dup@example.com', password: PASSWORD, role: 'staff' })).status).toBe(
        201,
      );
      expectError(
        await createUser({ email: 'dup@example.com', password: PASSWORD, role: 'admin' }),
        409,
        'CONFLICT',
      );
      expectError(
        await createUser({ email: 'DUP@Example.COM', password: PASSWORD, role: 'staff' }),
        409,
        'CONFLICT',
      );
      expectError(
        await createUser({ email: 'dup@example.com', password: PASSWORD, role: 'staff', tenantId: 'globex' }),
        409,
        'CONFLICT',
      );
    });

    it.each<[string, Record<string, unknown>]>([
      ['a short password', { email: 'weak@example.com', password: 'short', role: 'staff' }],
      ['a 7-character password', { email: 'weak7@example.com', password: '1234567', role: 'staff' }],
      ['an empty password', { email: 'weak0@example.com', password: '', role: 'staff' }],
      ['no password', { email: 'nopass@example.com', role: 'staff' }],
      ['no email', { password: PASSWORD, role: 'staff' }],
      ['an invalid email', { email: 'not-an-email', password: PASSWORD, role: 'staff' }],
      ['no role', { email: 'norole@example.com', password: PASSWORD }],
      ['an unknown role', { email: 'root@example.com', password: PASSWORD, role: 'root' }],
      ['an unknown field', { email: 'extra@example.com', password: PASSWORD, role: 'staff', isAdmin: true }],
      ['a numeric password', { email: 'num@example.com', password: 12345678, role: 'staff' }],
      [
        'a bad tenantId',
        { email: 'badtenant@example.com', password: PASSWORD, role: 'staff', tenantId: '../acme' },
      ],
    ])('a user with %s → 400 VALIDATION_FAILED', async (_label, body) => {
      expectError(await createUser(body), 400, 'VALIDATION_FAILED');
    });

    it('a rejected user leaves nothing behind: the same email can be created afterwards', async () => {
      expectError(
        await createUser({ email: 'retry@example.com', password: 'short', role: 'staff' }),
        400,
        'VALIDATION_FAILED',
      );
      expectError(await login('retry@example.com', 'short'), 401, 'UNAUTHORIZED');
      expect(
        (await createUser({ email: 'retry@example.com', password: PASSWORD, role: 'staff' })).status,
      ).toBe(201);
    });

    it('the unknown-field error names the field', async () => {
      const res = await createUser({
        email: 'extra2@example.com',
        password: PASSWORD,
        role: 'staff',
        isAdmin: true,
      });
      expectError(res, 400, 'VALIDATION_FAILED');
      expect(res.body.error.message).toContain('isAdmin');
    });
  });

  describe('login', () => {
    beforeAll(async () => {
      const res = await createUser({
        email: 'login@acme.example',
        password: PASSWORD,
        role: 'technician',
        tenantId: 'acme',
      });
      expect(res.status).toBe(201);
    });

    it('good credentials → a JWT usable as Bearer', async () => {
      const res = await login('login@acme.example', PASSWORD);
      expect(res.status).toBe(200);
      expect(typeof res.body.token).toBe('string');
      expect(res.body.token.split('.')).toHaveLength(3);
      expect(res.body.user).toMatchObject({
        email: 'login@acme.example',
        role: 'technician',
        tenantId: 'acme',
      });
      const me = await server.request('GET', '/v1/auth/me', { token: res.body.token });
      expect(me.status).toBe(200);
      expect(me.body).toMatchObject({ kind: 'user', tenantId: 'acme', role: 'technician' });
      const machines = await server.request('GET', '/v1/machines', { token: res.body.token });
      expect(machines.status).toBe(200);
    });

    it('the email is matched case-insensitively', async () => {
      expect((await login('LOGIN@Acme.Example', PASSWORD)).status).toBe(200);
    });

    it('a wrong password and an unknown email → 401 with the same message', async () => {
      const wrongPassword = await login('login@acme.example', 'not the password');
      const unknownEmail = await login('nobody@acme.example', PASSWORD);
      expectError(wrongPassword, 401, 'UNAUTHORIZED');
      expectError(unknownEmail, 401, 'UNAUTHORIZED');
      expect(unknownEmail.body.error.message).toBe(wrongPassword.body.error.message);
      expect(wrongPassword.body.token).toBeUndefined();
    });

    it('a password differing only in case → 401', async () => {
      expectError(await login('login@acme.example', PASSWORD.toUpperCase()), 401, 'UNAUTHORIZED');
    });

    it('password attempts are limited per email: a locked-out email does not lock out the others', async () => {
      expect(
        (
          await createUser({
            email: 'target@acme.example',
            password: PASSWORD,
            role: 'staff',
            tenantId: 'acme',
          })
        ).status,
      ).toBe(201);
      const statuses: number[] = [];
      for (let i = 0; i < 11; i++) statuses.push((await login('target@acme.example', `guess-${i}`)).status);
      expect(statuses.slice(0, 10)).toEqual(Array(10).fill(401));
      expect(statuses[10]).toBe(429);
      const limited = await login('target@acme.example', PASSWORD);
      expectError(limited, 429, 'RATE_LIMITED');
      // The wait is in Retry-After as well as in the message (at most the minute's window).
      const retry = Number(limited.headers.get('retry-after'));
      expect(retry).toBeGreaterThanOrEqual(1);
      expect(retry).toBeLessThanOrEqual(60);
      expect(limited.body.error.message).toContain(`retry in ${retry} s`);
      // Same address, another account: unaffected.
      expect((await login('login@acme.example', PASSWORD)).status).toBe(200);
    });

    it.each<[string, unknown]>([
      ['no password', { email: 'login@acme.example' }],
      ['no email', { password: PASSWORD }],
      ['an empty password', { email: 'login@acme.example', password: '' }],
      ['an unknown field', { email: 'login@acme.example', password: PASSWORD, remember: true }],
      ['a numeric password', { email: 'login@acme.example', password: 1 }],
    ])('a login with %s → 400 VALIDATION_FAILED', async (_label, body) => {
      expectError(
        await server.request('POST', '/v1/auth/login', { body, token: null }),
        400,
        'VALIDATION_FAILED',
      );
    });
  });

  describe('tenant isolation', () => {
    let acmeAdmin: string;
    let globexAdmin: string;
    beforeAll(async () => {
      acmeAdmin = await userToken('iso-admin@acme.example', 'admin', 'acme');
      globexAdmin = await userToken('iso-admin@globex.example', 'admin', 'globex');
      for (const id of ['ACME-1', 'ACME-2']) {
        const res = await server.request('POST', '/v1/machines', { body: { id }, token: acmeAdmin });
        expect(res.status, JSON.stringify(res.body)).toBe(201);
        expect(res.body.tenantId).toBe('acme');
      }
    });

    it('a JWT of tenant B sees none of tenant A’s machines', async () => {
      const acme = await server.request('GET', '/v1/machines', { token: acmeAdmin });
      expect(acme.body.items.map((m: { id: string }) => m.id)).toEqual(['ACME-1', 'ACME-2']);
      const globex = await server.request('GET', '/v1/machines', { token: globexAdmin });
      expect(globex.status).toBe(200);
      expect(globex.body).toEqual({ items: [], nextCursor: null });
      expectError(
        await server.request('GET', '/v1/machines/ACME-1', { token: globexAdmin }),
        404,
        'NOT_FOUND',
      );
      // The 404 for another tenant's machine looks exactly like one for a machine that does not exist.
      const missing = await server.request('GET', '/v1/machines/NO-SUCH-MACHINE', { token: globexAdmin });
      expectError(missing, 404, 'NOT_FOUND');
    });

    it('tenant B cannot change tenant A’s machines', async () => {
      expectError(
        await server.request('POST', '/v1/machines/ACME-1/rotate-key', { token: globexAdmin }),
        404,
        'NOT_FOUND',
      );
      const profile = { provider: 'razorpay', qrCodeId: 'qr_stolen', fixedAmountPaise: 100 };
      expectError(
        await server.request('PUT', '/v1/machines/ACME-1/payment-profile', {
          body: profile,
          token: globexAdmin,
        }),
        404,
        'NOT_FOUND',
      );
      const view = await server.request('GET', '/v1/machines/ACME-1', { token: acmeAdmin });
      expect(view.body.paymentProfile).toBeUndefined();
    });

    it('a tenant admin cannot create machines in another tenant, and ids are unique across tenants', async () => {
      expectError(
        await server.request('POST', '/v1/machines', {
          body: { id: 'GLOBEX-X', tenantId: 'acme' },
          token: globexAdmin,
        }),
        403,
        'FORBIDDEN',
      );
      expectError(
        await server.request('POST', '/v1/machines', { body: { id: 'ACME-1' }, token: globexAdmin }),
        409,
        'CONFLICT',
      );
    });

    it('ADMIN_TOKEN sees machines of every tenant', async () => {
      const res = await server.request('GET', '/v1/machines?limit=200');
      const ids = res.body.items.map((m: { id: string }) => m.id);
      expect(ids).toEqual(expect.arrayContaining(['ACME-1', 'ACME-2', 'INITECH-1']));
      expect((await server.request('GET', '/v1/machines/ACME-1')).status).toBe(200);
    });
  });
});

describe.each(engines())('generated admin token (%s)', (engine: Engine) => {
  it('is generated once at first start, works, and survives a restart without being generated again', async () => {
    const dir = tempDir();
    const schema = engine === 'postgres' ? newSchemaName() : undefined;
    const options = { engine, dataDir: dir.path, env: { ADMIN_TOKEN: '' }, ...(schema ? { schema } : {}) };
    try {
      const first = await startServer(options);
      let generated: string;
      let staffToken: string;
      try {
        generated = first.kioskhub.generatedAdminToken!;
        expect(typeof generated).toBe('string');
        expect(generated.length).toBeGreaterThanOrEqual(16);
        expect(generated).not.toBe(ADMIN_TOKEN);
        expectError(await first.request('GET', '/v1/machines'), 401, 'UNAUTHORIZED');
        const me = await first.request('GET', '/v1/auth/me', { token: generated });
        expect(me.status).toBe(200);
        expect(me.body.kind).toBe('admin');
        expect(
          (await first.request('POST', '/v1/tenants', { body: { id: 'gen', name: 'Gen' }, token: generated }))
            .status,
        ).toBe(201);
        expect(
          (
            await first.request('POST', '/v1/users', {
              body: { email: 'gen@example.com', password: PASSWORD, role: 'admin' },
              token: generated,
            })
          ).status,
        ).toBe(201);
        const logged = await first.request('POST', '/v1/auth/login', {
          body: { email: 'gen@example.com', password: PASSWORD },
          token: null,
        });
        expect(logged.status).toBe(200);
        staffToken = logged.body.token as string;
      } finally {
        await first.close();
      }

      const second = await startServer(options);
      try {
        expect(second.kioskhub.generatedAdminToken).toBeUndefined();
        const me = await second.request('GET', '/v1/auth/me', { token: generated });
        expect(me.status).toBe(200);
        expect(me.body.kind).toBe('admin');
        const tenants = await second.request('GET', '/v1/tenants', { token: generated });
        expect(tenants.body.items.map((t: { id: string }) => t.id)).toContain('gen');
        // The JWT key is kept too: a staff token from before the restart still works.
        const staff = await second.request('GET', '/v1/auth/me', { token: staffToken });
        expect(staff.status).toBe(200);
        expect(staff.body).toMatchObject({ kind: 'user', tenantId: 'default', role: 'admin' });
      } finally {
        await second.close();
      }

      // An explicit ADMIN_TOKEN on a later start replaces the generated one for that run.
      const third = await startServer({ ...options, env: {} });
      try {
        expect(third.kioskhub.generatedAdminToken).toBeUndefined();
        expect((await third.request('GET', '/v1/auth/me')).status).toBe(200);
      } finally {
        await third.close();
      }
    } finally {
      dir.remove();
      if (schema) await dropSchema(schema);
    }
  }, 120_000);
});
