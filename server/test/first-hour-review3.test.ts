// A new operator's first hour, third pass: README → docs/water-simulator.md → docs/customers.md.
// The customers page registers `0712 345 678`, and water-payments.md says "give the tenant its
// calling code", but a fresh installation has none and no route set it: the example answered
// `400 … use the international form` and nothing said how to make local numbers work. Now
// `PATCH /v1/tenants/:id {defaultCountryCode}` sets it (ADMIN_TOKEN, or an admin of that tenant;
// audited as `tenant.update`), `GET /v1/tenants` shows it, and the refusal of a local number names
// the setting.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { engines, startServer, type TestServer } from './harness.js';
import { staffToken } from './dashboard-fixtures.js';

const uid = (p: string) => `${p}${randomBytes(4).toString('hex')}`;

describe.each(engines())('first hour: a tenant calling code for local phone numbers (%s)', (engine) => {
  let server: TestServer;

  beforeAll(async () => {
    server = await startServer({ engine });
  });

  afterAll(async () => {
    await server?.close();
  });

  it('a local number on a fresh installation is refused with the setting that makes it work', async () => {
    const res = await server.request('POST', '/v1/customers', {
      body: { phone: '0712 345 678', fullName: 'Amina Wanjiru', pin: '4821', reason: 'walk-in' },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(400);
    expect(res.body.error.code).toBe('VALIDATION_FAILED');
    expect(res.body.error.message).toContain('+254712345678');
    expect(res.body.error.message).toContain('PATCH /v1/tenants/default {"defaultCountryCode":');
    // Something that is no phone number at all is not told about calling codes.
    const junk = await server.request('POST', '/v1/customers', { body: { phone: 'call me', pin: '1234' } });
    expect(junk.status).toBe(400);
    expect(junk.body.error.message).not.toContain('defaultCountryCode');
    expect((await server.request('GET', '/v1/customers')).body.items).toEqual([]);
  });

  it('PATCH /v1/tenants/:id sets the calling code (audited); local numbers then register and are found', async () => {
    const before = await server.request('GET', '/v1/tenants');
    expect(before.status).toBe(200);
    expect(before.body.items.find((t: any) => t.id === 'default')).toMatchObject({
      defaultCountryCode: null,
    });

    const set = await server.request('PATCH', '/v1/tenants/default', { body: { defaultCountryCode: '254' } });
    expect(set.status, JSON.stringify(set.body)).toBe(200);
    expect(set.body).toMatchObject({ id: 'default', name: 'Default tenant', defaultCountryCode: '254' });

    const audit = await server.request('GET', '/v1/audit?action=tenant.update');
    expect(audit.status, JSON.stringify(audit.body)).toBe(200);
    expect(audit.body.items[0]).toMatchObject({
      tenantId: 'default',
      actor: 'admin-token',
      action: 'tenant.update',
      subjectType: 'tenant',
      subjectId: 'default',
      before: { defaultCountryCode: null },
      after: { defaultCountryCode: '254' },
    });

    const phone = `07${String(randomBytes(4).readUInt32BE(0) % 100_000_000).padStart(8, '0')}`;
    const created = await server.request('POST', '/v1/customers', {
      body: { phone: `${phone.slice(0, 4)} ${phone.slice(4, 7)} ${phone.slice(7)}`, pin: '4821' },
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    expect(created.body.phone).toBe(`+254${phone.slice(1)}`);
    const found = await server.request('GET', `/v1/customers?query=${phone}`);
    expect(found.body.items.map((c: any) => c.id)).toEqual([created.body.id]);

    // The same value again changes nothing and writes no second audit row.
    const again = await server.request('PATCH', '/v1/tenants/default', {
      body: { defaultCountryCode: '254' },
    });
    expect(again.status).toBe(200);
    const audit2 = await server.request('GET', '/v1/audit?action=tenant.update');
    expect(audit2.body.items).toHaveLength(1);
  });

  it('bad input and other callers are refused and change nothing', async () => {
    const tenant = uid('t');
    expect((await server.request('POST', '/v1/tenants', { body: { id: tenant, name: 'T' } })).status).toBe(
      201,
    );
    const ownAdmin = await staffToken(server, `${uid('adm')}@example.com`, 'admin', tenant);
    const ownCs = await staffToken(server, `${uid('cs')}@example.com`, 'customer_service', tenant);

    for (const body of [
      { defaultCountryCode: '+254' },
      { defaultCountryCode: '0254' },
      { defaultCountryCode: '12345' },
      { defaultCountryCode: 254 },
      {},
      { defaultCountryCode: '256', currency: 'UGX' },
    ]) {
      const res = await server.request('PATCH', `/v1/tenants/${tenant}`, { body });
      expect(res.status, JSON.stringify({ body, res: res.body })).toBe(400);
      expect(res.body.error.code).toBe('VALIDATION_FAILED');
    }
    expect(
      (await server.request('PATCH', '/v1/tenants/nosuch', { body: { defaultCountryCode: '256' } })).status,
    ).toBe(404);
    const noAuth = await server.request('PATCH', `/v1/tenants/${tenant}`, {
      body: { defaultCountryCode: '256' },
      token: null,
    });
    expect(noAuth.status).toBe(401);
    const cs = await server.request('PATCH', `/v1/tenants/${tenant}`, {
      body: { defaultCountryCode: '256' },
      token: ownCs,
    });
    expect(cs.status).toBe(403);
    // Another tenant's admin does not see this one.
    const other = await server.request('PATCH', '/v1/tenants/default', {
      body: { defaultCountryCode: '256' },
      token: ownAdmin,
    });
    expect(other.status).toBe(404);
    const list = await server.request('GET', '/v1/tenants');
    expect(list.body.items.find((t: any) => t.id === tenant).defaultCountryCode).toBeNull();
    expect(list.body.items.find((t: any) => t.id === 'default').defaultCountryCode).toBe('254');

    // The tenant's own admin may set it, and clear it with null.
    const own = await server.request('PATCH', `/v1/tenants/${tenant}`, {
      body: { defaultCountryCode: '256' },
      token: ownAdmin,
    });
    expect(own.status, JSON.stringify(own.body)).toBe(200);
    expect(own.body.defaultCountryCode).toBe('256');
    const cleared = await server.request('PATCH', `/v1/tenants/${tenant}`, {
      body: { defaultCountryCode: null },
      token: ownAdmin,
    });
    expect(cleared.body.defaultCountryCode).toBeNull();
    const audit = await server.request('GET', `/v1/audit?action=tenant.update&tenantId=${tenant}`);
    expect(audit.body.items.map((a: any) => [a.actor.startsWith('user:'), a.after])).toEqual([
      [true, { defaultCountryCode: null }],
      [true, { defaultCountryCode: '256' }],
    ]);
  });
});

// docs/operations.md §5: Prometheus scrapes /metrics with METRICS_TOKEN. A scrape without it, with
// a wrong one or with a staff token was answered "send Authorization: Bearer <token> or X-API-Key"
// (no machine key opens it) or "only ADMIN_TOKEN may do that" (METRICS_TOKEN does too): the
// refusals now name METRICS_TOKEN; statuses and codes are unchanged.
describe.each(engines())('first hour: a refused /metrics scrape names METRICS_TOKEN (%s)', (engine) => {
  let server: TestServer;
  const METRICS_TOKEN = 'metrics-token-first-hour-0123456789';

  beforeAll(async () => {
    server = await startServer({ engine, env: { METRICS_TOKEN } });
  });

  afterAll(async () => {
    await server?.close();
  });

  it('401 without a token or with an unknown one, 403 for a staff token; each says which token', async () => {
    const none = await server.request('GET', '/metrics', { token: null });
    const wrong = await server.request('GET', '/metrics', { token: 'not-the-metrics-token-0123' });
    const machine = await server.createMachine(uid('MX'));
    const byKey = await server.request('GET', '/metrics', {
      token: null,
      headers: { 'x-api-key': machine.key },
    });
    const staff = await staffToken(server, `${uid('ops')}@example.com`, 'admin');
    const byStaff = await server.request('GET', '/metrics', { token: staff });
    expect([none, wrong, byKey, byStaff].map((r) => [r.status, r.body.error?.code])).toEqual([
      [401, 'UNAUTHORIZED'],
      [401, 'UNAUTHORIZED'],
      [403, 'FORBIDDEN'],
      [403, 'FORBIDDEN'],
    ]);
    for (const r of [none, wrong, byKey, byStaff]) {
      expect(r.body.error.message).toContain('METRICS_TOKEN');
      expect(r.body.error.message).not.toContain('X-API-Key');
    }
    expect((await server.request('GET', '/metrics', { token: METRICS_TOKEN })).status).toBe(200);
    expect((await server.request('GET', '/metrics')).status).toBe(200);
  });
});
