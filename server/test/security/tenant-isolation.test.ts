// Issue 12, kept fixed: the tenant-isolation sweep. Every route of /openapi.json (so new routes
// are swept without a change here) is called by each staff role and each machine kind of tenant
// A with tenant B's ids in the path, the body and the query. No answer may carry B's data, and
// B's rows must be exactly as before.
import { randomBytes } from 'node:crypto';
import { MACHINE_KINDS } from '@kioskhub/protocol';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { engines, qrCredited, startServer, type TestServer } from '../harness.js';

type Schema = {
  type?: string | string[];
  properties?: Record<string, Schema>;
  required?: string[];
  items?: Schema;
  minItems?: number;
  enum?: unknown[];
  const?: unknown;
  anyOf?: Schema[];
  oneOf?: Schema[];
  format?: string;
  minLength?: number;
  minimum?: number;
  pattern?: string;
};

const rand = () => randomBytes(4).toString('hex');

describe.each(engines())('security: tenant isolation sweep (%s)', (engine) => {
  let server: TestServer;
  const A = `iso_a_${rand()}`;
  const B = `iso_b_${rand()}`;
  // B's ids (sent in requests) and B's data (never sent: must never come back).
  const b = {
    site: `bsite_${rand()}`,
    machine: `bmach_${rand()}`,
    vending: `bvend_${rand()}`,
    sku: `bsku_${rand()}`,
  };
  const secrets = {
    site: `B-site-name-${rand()}`,
    machine: `B-machine-name-${rand()}`,
    product: `B-product-name-${rand()}`,
    email: `b-${rand()}@tenant-b.example`,
  };
  let bUserId = '';
  let bOrder = { id: '', number: '' };
  const principals: { name: string; token: string }[] = [];

  beforeAll(async () => {
    server = await startServer({
      engine,
      env: {
        RATE_LIMIT_PER_MINUTE: '10000000',
        DASHBOARD_SWEEP_MS: '86400000',
        LOGIN_MAX_PER_ADDRESS: '1000',
      },
    });
    const ok = async (method: string, path: string, body: unknown) => {
      const res = await server.request(method, path, { body });
      if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(res.body)}`);
      return res.body;
    };
    for (const id of [A, B]) await ok('POST', '/v1/tenants', { id, name: id });
    await ok('POST', '/v1/sites', { id: b.site, name: secrets.site, tenantId: B, printQueueOpen: true });
    await ok('POST', '/v1/machines', {
      id: b.machine,
      name: secrets.machine,
      siteId: b.site,
      kind: 'printer',
      tenantId: B,
    });
    await ok('POST', '/v1/products', {
      sku: b.sku,
      name: secrets.product,
      priceMinor: 1000,
      siteId: b.site,
      tenantId: B,
    });
    bUserId = (
      await ok('POST', '/v1/users', {
        email: secrets.email,
        password: 'correct-horse',
        role: 'admin',
        tenantId: B,
      })
    ).id;
    const vending = await server.createVendingMachine(b.vending, 2500, B);
    expect((await server.postWebhook(qrCredited(vending.qrCodeId, 2500))).status).toBe(200);
    const orders = (await server.request('GET', '/v1/orders?limit=200')).body.items as any[];
    const order = orders.find((o) => o.machineId === b.vending);
    bOrder = { id: order.id, number: String(order.orderNumber ?? order.id) };

    for (const role of ['admin', 'technician', 'customer_service', 'staff']) {
      const email = `${role}-${rand()}@tenant-a.example`;
      await ok('POST', '/v1/users', { email, password: 'correct-horse', role, tenantId: A });
      const login = await server.request('POST', '/v1/auth/login', {
        token: null,
        body: { email, password: 'correct-horse' },
      });
      principals.push({ name: role, token: login.body.token });
    }
    for (const kind of MACHINE_KINDS) {
      const created = await ok('POST', '/v1/machines', { id: `a_${kind}_${rand()}`, kind, tenantId: A });
      principals.push({ name: `machine:${kind}`, token: created.key });
    }
  }, 120_000);
  afterAll(async () => {
    // First: later files of this worker must hash at production cost even if close() throws.
    await server?.close();
  });

  /** Every row of every table that belongs to B. */
  async function snapshotOfB(): Promise<string> {
    const db = server.kioskhub.db;
    // PostgreSQL lists every schema's tables (other test files' too): only this server's count.
    const schema =
      server.engine === 'postgres'
        ? (await sql<{ s: string }>`select current_schema() as s`.execute(db)).rows[0]?.s
        : undefined;
    const tables = await db.introspection.getTables();
    const owned = tables
      .filter((t) => schema === undefined || t.schema === schema)
      .filter((t) => t.columns.some((c) => c.name === 'tenant_id'))
      .map((t) => t.name)
      .sort();
    const dump: Record<string, unknown[]> = {};
    for (const table of owned) {
      const rows = await (server.kioskhub.db as any)
        .selectFrom(table)
        .selectAll()
        .where('tenant_id', '=', B)
        .execute();
      dump[table] = rows.map((r: unknown) => JSON.stringify(r)).sort();
    }
    return JSON.stringify(dump);
  }

  /** B's value for a path parameter or body field; the whole set when the name says nothing. */
  function valuesFor(name: string): string[] {
    const lower = name.toLowerCase();
    if (lower === 'tenantid') return [B];
    if (lower === 'siteid') return [b.site];
    if (lower === 'machineid') return [b.machine, b.vending];
    if (lower === 'orderid' || lower === 'ordernumber') return [bOrder.id, bOrder.number];
    if (lower === 'sku') return [b.sku];
    return [b.machine, b.vending, b.site, bOrder.id, bOrder.number, b.sku, bUserId, B];
  }

  function example(schema: Schema | undefined, name = ''): unknown {
    if (!schema) return undefined;
    if (schema.const !== undefined) return schema.const;
    if (schema.enum) return schema.enum[0];
    const options = schema.anyOf ?? schema.oneOf;
    if (options) return example(options.find((o) => o.type !== 'null') ?? options[0], name);
    const type = Array.isArray(schema.type) ? schema.type.find((t) => t !== 'null') : schema.type;
    if (type === 'object' || schema.properties) {
      const out: Record<string, unknown> = {};
      for (const [key, sub] of Object.entries(schema.properties ?? {})) {
        const pointsAtB = /^(tenantId|siteId|machineId|orderId|orderNumber|sku)$/.test(key);
        if (schema.required?.includes(key) || pointsAtB)
          out[key] =
            pointsAtB && (sub.type === 'string' || sub.anyOf) ? valuesFor(key)[0] : example(sub, key);
      }
      return out;
    }
    if (type === 'array')
      return Array.from({ length: Math.max(1, schema.minItems ?? 0) }, () => example(schema.items, name));
    if (type === 'integer' || type === 'number') return Math.max(1, schema.minimum ?? 1);
    if (type === 'boolean') return true;
    if (schema.format === 'email') return `sweep-${rand()}@tenant-a.example`;
    if (schema.format === 'date-time') return new Date().toISOString();
    if (schema.pattern === '^[A-Z]{3}$') return 'INR';
    if (/id$/i.test(name)) return valuesFor(name)[0];
    return 'sweep'.padEnd(Math.max(5, schema.minLength ?? 0), 'x');
  }

  it('no role or machine kind of tenant A reads or writes anything of tenant B, on any route', async () => {
    const spec = (await server.request('GET', '/openapi.json', { token: null })).body;
    const before = await snapshotOfB();
    // The check can see B's data: ADMIN_TOKEN (all tenants) gets it back.
    expect(JSON.stringify((await server.request('GET', `/v1/machines/${b.machine}`)).body)).toContain(
      secrets.machine,
    );

    let calls = 0;
    const leaks: string[] = [];
    const swept = new Set<string>();
    for (const [path, operations] of Object.entries(spec.paths as Record<string, Record<string, any>>)) {
      // Would end the sweeping principal's own session (all of them, or this one).
      if (path === '/v1/auth/logout' || path === '/v1/auth/session') continue;
      for (const [method, operation] of Object.entries(operations)) {
        if (!['get', 'post', 'put', 'patch', 'delete'].includes(method)) continue;
        swept.add(`${method.toUpperCase()} ${path}`);
        const params = [...path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]!);
        // Every combination would explode; each parameter takes each of its candidates in turn.
        const rounds = Math.max(1, ...params.map((p) => valuesFor(p).length));
        const body = operation.requestBody?.content?.['application/json']?.schema;
        for (let round = 0; round < rounds; round++) {
          let url = path;
          for (const p of params) {
            const values = valuesFor(p);
            url = url.replace(`{${p}}`, encodeURIComponent(values[round % values.length]!));
          }
          for (const query of ['', `?tenantId=${B}`]) {
            if (query && method !== 'get') continue;
            // Every principal at once: they are A's own, independent of each other.
            await Promise.all(
              principals.map(async (principal) => {
                const res = await server.request(method.toUpperCase(), url + query, {
                  token: principal.token,
                  ...(body && method !== 'get' && method !== 'delete' ? { body: example(body) } : {}),
                });
                calls++;
                const text = typeof res.body === 'string' ? res.body : JSON.stringify(res.body ?? '');
                const seen = Object.values(secrets).filter((s) => text.includes(s));
                if (seen.length > 0)
                  leaks.push(
                    `${principal.name} ${method.toUpperCase()} ${url + query} → ${res.status} shows ${seen.join(', ')}`,
                  );
              }),
            );
          }
        }
      }
    }
    expect(leaks).toEqual([]);
    expect(swept.size).toBeGreaterThan(40);
    expect(calls).toBeGreaterThan(1000);
    expect(await snapshotOfB()).toBe(before);
  }, 600_000);
});
