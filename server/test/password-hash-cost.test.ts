// Staff password hashes are argon2id at the cost PASSWORD_HASH_MEMORY_KIB / PASSWORD_HASH_TIME_COST
// set (defaults 64 MiB and 3 passes, argon2's own; floors 19 MiB and 2, OWASP's least for
// argon2id). A hash records its cost, so changing the setting never locks anyone out.
import { afterAll, describe, expect, it } from 'vitest';
import { engines, startServer, type TestServer } from './harness.js';
import { STAFF_PASSWORD } from './fixtures/staff.js';

describe.each(engines())('staff password hash cost (%s)', (engine) => {
  const servers: TestServer[] = [];
  afterAll(async () => {
    for (const s of servers) await s.close();
  });

  const start = async (env: Record<string, string>, schema?: string) => {
    const server = await startServer({ engine, env, ...(schema ? { schema } : {}) });
    servers.push(server);
    return server;
  };
  const storedHash = async (server: TestServer, email: string) =>
    (
      await server.kioskhub.db
        .selectFrom('users')
        .select('password_hash')
        .where('email', '=', email)
        .executeTakeFirstOrThrow()
    ).password_hash;
  /** A staff user of `default` made through the API: its id. */
  const createUser = async (server: TestServer, email: string): Promise<string> => {
    const created = await server.request('POST', '/v1/users', {
      body: { email, password: STAFF_PASSWORD, role: 'staff' },
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    return created.body.id as string;
  };
  const login = async (server: TestServer, email: string, password = STAFF_PASSWORD) =>
    (await server.request('POST', '/v1/auth/login', { token: null, body: { email, password } })).status;

  it('hashes at the configured cost (the default when unset), on creation and on a reset', async () => {
    // The harness sets the floor; an empty value falls back to the default.
    const strong = await start({ PASSWORD_HASH_MEMORY_KIB: '', PASSWORD_HASH_TIME_COST: '' });
    const email = `cost-${engine}@hash.example`;
    await createUser(strong, email);
    expect(await storedHash(strong, email)).toMatch(/^\$argon2id\$v=19\$m=65536,t=3,p=\d+\$/);
    expect(await login(strong, email)).toBe(200);
    expect(await login(strong, email, 'wrong-password')).toBe(401);

    const light = await start({ PASSWORD_HASH_MEMORY_KIB: '32768', PASSWORD_HASH_TIME_COST: '2' });
    const other = `cost2-${engine}@hash.example`;
    const id = await createUser(light, other);
    expect(await storedHash(light, other)).toMatch(/^\$argon2id\$v=19\$m=32768,t=2,p=\d+\$/);
    // A password reset hashes at the server's cost too.
    const reset = await light.request('PATCH', `/v1/users/${id}`, {
      body: { password: 'another-horse' },
    });
    expect(reset.status, JSON.stringify(reset.body)).toBe(200);
    expect(await storedHash(light, other)).toMatch(/^\$argon2id\$v=19\$m=32768,t=2,/);
    expect(await login(light, other, 'another-horse')).toBe(200);
  });
});
