// Issue 12, exposure (items 13, 14, 16, 17): browser security headers with no inline script,
// no token in request logs, metrics behind a token, database errors logged without values,
// and key-less printing that no other tenant can take over.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { engines, startServer, type TestServer } from '../harness.js';

const METRICS_TOKEN = 'metrics-token-0123456789abcdef';

describe.each(engines())('security: exposure (%s)', (engine) => {
  let server: TestServer;
  const logs: string[] = [];
  beforeAll(async () => {
    server = await startServer({
      engine,
      env: { METRICS_TOKEN, LOG_LEVEL: 'info' },
      logStream: { write: (line) => void logs.push(line) },
    });
  });
  afterAll(async () => {
    await server?.close();
  });

  it('item 13: pages carry a CSP without inline script, nosniff, Referrer-Policy and frame-ancestors; ?token= is not logged', async () => {
    const secret = 'eyJhbGciOiJIUzI1NiJ9.c2VjcmV0LW9yZGVyLXRva2Vu.sig-never-in-logs';
    for (const path of [
      `/kiosk/cash/1001?token=${secret}`,
      '/kitchen/default',
      '/',
      '/docs/',
      '/v1/machines',
    ]) {
      const res = await fetch(server.url + path, {
        headers: { authorization: 'Bearer test-admin-token-0123456789' },
      });
      const csp = res.headers.get('content-security-policy') ?? '';
      expect(csp, path).toMatch(/frame-ancestors 'none'/);
      const scriptSrc = /script-src ([^;]*)/.exec(csp)?.[1] ?? /default-src ([^;]*)/.exec(csp)?.[1] ?? '';
      expect(scriptSrc, path).not.toMatch(/unsafe-inline|unsafe-eval/);
      expect(res.headers.get('x-content-type-options'), path).toBe('nosniff');
      expect(res.headers.get('referrer-policy'), path).toBe('no-referrer');
      const body = await res.text();
      if (path !== '/v1/machines') {
        // Every script of the page is a file of this server.
        const inline = [...body.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/g)].filter(
          (m) => !/\bsrc=/.test(m[1]!) || m[2]!.trim() !== '',
        );
        expect(inline, path).toEqual([]);
      }
    }
    const js = await fetch(`${server.url}/screens/cash-screen.js`);
    expect(js.status).toBe(200);
    expect(js.headers.get('content-type')).toMatch(/javascript/);
    const logged = logs.join('');
    expect(logged).toContain('/kiosk/cash/1001');
    expect(logged).not.toContain(secret);
  });

  it('item 14: /metrics needs METRICS_TOKEN or ADMIN_TOKEN', async () => {
    expect((await server.request('GET', '/metrics', { token: null })).status).toBe(401);
    expect((await server.request('GET', '/metrics', { token: 'wrong-token-0123456789' })).status).toBe(401);
    const tenant = `metrics-${engine}`;
    expect((await server.request('POST', '/v1/tenants', { body: { id: tenant, name: 'x' } })).status).toBe(
      201,
    );
    const user = {
      email: `admin-${engine}@metrics.example`,
      password: 'correct-horse',
      role: 'admin',
      tenantId: tenant,
    };
    expect((await server.request('POST', '/v1/users', { body: user })).status).toBe(201);
    const login = await server.request('POST', '/v1/auth/login', {
      token: null,
      body: { email: user.email, password: user.password },
    });
    // A tenant's admin would see every tenant's counts: not enough.
    expect((await server.request('GET', '/metrics', { token: login.body.token })).status).toBe(403);
    const scraped = await server.request('GET', '/metrics', { token: METRICS_TOKEN });
    expect(scraped.status).toBe(200);
    expect(scraped.body).toContain('# TYPE');
    expect((await server.request('GET', '/metrics')).status).toBe(200);
  });

  it('item 16: a database error is logged without the values bound to the query', async () => {
    const value = `secret-${engine}-value@example.com`;
    const row = {
      id: `u-${engine}-1`,
      tenant_id: 'default',
      email: value,
      password_hash: 'x',
      role: 'staff',
      created_at: new Date().toISOString(),
    };
    await server.kioskhub.db.insertInto('users').values(row).execute();
    const err = await server.kioskhub.db
      .insertInto('users')
      .values({ ...row, id: `u-${engine}-2` })
      .execute()
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(err).toBeInstanceOf(Error);
    logs.length = 0;
    server.kioskhub.app.log.error({ err }, 'unhandled error');
    const logged = logs.join('');
    expect(logged).toContain('unhandled error');
    expect(logged.toLowerCase()).toMatch(/unique|duplicate/);
    expect(logged).not.toContain(value);
  });

  it('item 17: another tenant opening a site with the same id changes nothing for key-less printers', async () => {
    const siteId = `open-${engine}`;
    const other = `print-other-${engine}`;
    expect(
      (
        await server.request('POST', '/v1/sites', {
          body: { id: siteId, name: 'Ours', printQueueOpen: true },
        })
      ).status,
    ).toBe(201);
    const keyless = () => server.request('GET', `/sites/${siteId}/api/receipt/queue/status`, { token: null });
    expect((await keyless()).status).toBe(200);
    expect((await server.request('POST', '/v1/tenants', { body: { id: other, name: 'Other' } })).status).toBe(
      201,
    );
    const theirs = await server.request('POST', '/v1/sites', {
      body: { id: siteId, name: 'Theirs', printQueueOpen: true, tenantId: other },
    });
    expect(theirs.status).toBe(409);
    expect((await keyless()).status).toBe(200);
    // Nor with a site of that id opened later, nor by closing it: their site holds nothing.
    const plain = await server.request('POST', '/v1/sites', {
      body: { id: siteId, name: 'Theirs', tenantId: other },
    });
    expect(plain.status).toBe(201);
    const patch = (open: boolean) =>
      server.request('PATCH', `/v1/sites/${siteId}?tenantId=${other}`, { body: { printQueueOpen: open } });
    expect((await patch(true)).status).toBe(409);
    expect((await keyless()).status).toBe(200);
    expect((await patch(false)).status).toBe(200);
    expect((await keyless()).status).toBe(200);
  });
});
