// Machines REST API (CONTRACTS.md §4), error shape (§2), machine keys (§3) and the
// operational endpoints, against the real server on every storage engine.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_TOKEN, engines, startServer, type Engine, type TestServer } from './harness.js';

type Res = { status: number; body: any; headers?: Headers };

function expectErrorShape(res: Res): void {
  expect(res.body, `status ${res.status}`).toMatchObject({
    error: { code: expect.any(String), message: expect.any(String) },
  });
  expect(res.body.error.message.length).toBeGreaterThan(0);
  expect(Object.keys(res.body)).toEqual(['error']);
  expect(JSON.stringify(res.body)).not.toMatch(/"stack"|\bat .+:\d+:\d+|node_modules|\.ts:\d+/);
}

function expectError(res: Res, status: number, code: string): void {
  expect({ status: res.status, code: res.body?.error?.code }, JSON.stringify(res.body)).toEqual({
    status,
    code,
  });
  expectErrorShape(res);
}

const PROFILE = {
  provider: 'razorpay',
  qrCodeId: 'qr_PROFILE_1',
  qrImageUrl: 'https://rzp.io/i/BWcUVrLp',
  qrShortUrl: 'https://rzp.io/i/short1',
  fixedAmountPaise: 2000,
};

describe.each(engines())('machines API (%s)', (engine: Engine) => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer({ engine });
  });
  afterAll(async () => {
    await server?.close();
  });

  const get = (id: string, token: string | null = ADMIN_TOKEN) =>
    server.request('GET', `/v1/machines/${id}`, { token });
  const putProfile = (id: string, body: unknown, token: string | null = ADMIN_TOKEN) =>
    server.request('PUT', `/v1/machines/${id}/payment-profile`, { body, token });

  describe('POST /v1/machines', () => {
    it('→ 201 with the key and the machine view', async () => {
      const res = await server.request('POST', '/v1/machines', { body: { id: 'M01', name: 'Lobby soda' } });
      expect(res.status).toBe(201);
      expect(res.body).toMatchObject({
        id: 'M01',
        name: 'Lobby soda',
        kind: 'vending',
        siteId: 'default',
        tenantId: 'default',
        status: 'OFFLINE',
        socketConnected: false,
        lastSeenAt: null,
      });
      expect(res.body.paymentProfile).toBeUndefined();
      expect(typeof res.body.key).toBe('string');
      expect(res.body.key.length).toBeGreaterThanOrEqual(24);
      expect(JSON.stringify(res.body)).not.toMatch(/key_?hash/i);
    });

    it('the name defaults to the id', async () => {
      const res = await server.request('POST', '/v1/machines', { body: { id: 'M02' } });
      expect(res.status).toBe(201);
      expect(res.body.name).toBe('M02');
    });

    it('the key is never returned again', async () => {
      const created = await server.request('POST', '/v1/machines', { body: { id: 'M03' } });
      const key = created.body.key as string;
      const one = await get('M03');
      expect(one.status).toBe(200);
      expect(one.body).not.toHaveProperty('key');
      const list = await server.request('GET', '/v1/machines?limit=200');
      for (const item of list.body.items) expect(item).not.toHaveProperty('key');
      const profiled = await putProfile('M03', { ...PROFILE, qrCodeId: 'qr_M03' });
      expect(profiled.status).toBe(200);
      expect(profiled.body).not.toHaveProperty('key');
      for (const body of [one.body, list.body, profiled.body]) {
        expect(JSON.stringify(body)).not.toContain(key);
        expect(JSON.stringify(body)).not.toMatch(/key_?hash/i);
      }
      // The machine sees itself without its key too.
      const self = await get('M03', key);
      expect(self.status).toBe(200);
      expect(self.body).not.toHaveProperty('key');
    });

    it('every machine gets its own key', async () => {
      const a = await server.createMachine('KEYS-A');
      const b = await server.createMachine('KEYS-B');
      expect(a.key).not.toBe(b.key);
    });

    it('an existing id → 409 CONFLICT and the first machine keeps its key', async () => {
      const first = await server.createMachine('DUP-1');
      expectError(
        await server.request('POST', '/v1/machines', { body: { id: 'DUP-1', name: 'again' } }),
        409,
        'CONFLICT',
      );
      expectError(
        await server.request('POST', '/v1/machines', { body: { id: 'DUP-1', kind: 'kiosk' } }),
        409,
        'CONFLICT',
      );
      const view = await get('DUP-1', first.key);
      expect(view.status).toBe(200);
      expect(view.body).toMatchObject({ name: 'DUP-1', kind: 'vending' });
    });

    it('concurrent creates of one id: exactly one 201, the rest 409', async () => {
      const results = await Promise.all(
        Array.from({ length: 5 }, () =>
          server.request('POST', '/v1/machines', { body: { id: 'RACE-CREATE' } }),
        ),
      );
      const statuses = results.map((r) => r.status).sort();
      expect(statuses).toEqual([201, 409, 409, 409, 409]);
    });

    it.each([
      ['a one-character id', 'A'],
      ['a 64-character id', 'x'.repeat(64)],
      ['dashes and underscores', 'Site_1-M-02'],
    ])('accepts %s', async (_label, id) => {
      expect((await server.request('POST', '/v1/machines', { body: { id } })).status).toBe(201);
    });

    it.each<[string, unknown]>([
      ['an empty id', ''],
      ['a 65-character id', 'y'.repeat(65)],
      ['an id with a space', 'M 01'],
      ['an id with a leading space', ' M01'],
      ['a unicode id', 'Mé01'],
      ['an emoji id', 'M🥤'],
      ['a path-traversal id', '../x'],
      ['an id with a slash', 'a/b'],
      ['an id with a dot', 'M.01'],
      ['a numeric id', 101],
      ['a null id', null],
    ])('rejects %s → 400 VALIDATION_FAILED', async (_label, id) => {
      expectError(await server.request('POST', '/v1/machines', { body: { id } }), 400, 'VALIDATION_FAILED');
    });

    it('rejects a missing id → 400', async () => {
      expectError(
        await server.request('POST', '/v1/machines', { body: { name: 'no id' } }),
        400,
        'VALIDATION_FAILED',
      );
    });

    it('rejects unknown fields → 400 naming the field', async () => {
      for (const field of ['key', 'status', 'paymentProfile', 'colour']) {
        const res = await server.request('POST', '/v1/machines', {
          body: { id: 'UNKNOWN-FIELD', [field]: 'x' },
        });
        expectError(res, 400, 'VALIDATION_FAILED');
        expect(res.body.error.message).toContain(field);
      }
      expectError(await get('UNKNOWN-FIELD'), 404, 'NOT_FOUND');
    });

    it('accepts every documented kind', async () => {
      for (const kind of ['vending', 'kiosk', 'water', 'printer', 'cash', 'table']) {
        const res = await server.request('POST', '/v1/machines', { body: { id: `KIND-${kind}`, kind } });
        expect(res.status, JSON.stringify(res.body)).toBe(201);
        expect(res.body.kind).toBe(kind);
      }
    });

    it.each<[string, unknown]>([
      ['an unknown kind', 'soda'],
      ['an upper-case kind', 'VENDING'],
      ['an empty kind', ''],
      ['a null kind', null],
      ['a numeric kind', 1],
    ])('rejects %s → 400', async (_label, kind) => {
      expectError(
        await server.request('POST', '/v1/machines', { body: { id: 'BAD-KIND', kind } }),
        400,
        'VALIDATION_FAILED',
      );
    });

    it('rejects an empty name → 400', async () => {
      expectError(
        await server.request('POST', '/v1/machines', { body: { id: 'EMPTY-NAME', name: '' } }),
        400,
        'VALIDATION_FAILED',
      );
    });

    it('an unknown siteId → 404 NOT_FOUND and nothing is created', async () => {
      expectError(
        await server.request('POST', '/v1/machines', { body: { id: 'NO-SITE', siteId: 'nowhere' } }),
        404,
        'NOT_FOUND',
      );
      expectError(await get('NO-SITE'), 404, 'NOT_FOUND');
    });

    it('an explicit siteId "default" is accepted', async () => {
      const res = await server.request('POST', '/v1/machines', {
        body: { id: 'SITE-DEFAULT', siteId: 'default' },
      });
      expect(res.status).toBe(201);
      expect(res.body.siteId).toBe('default');
    });

    it('an unknown tenantId → 404 NOT_FOUND', async () => {
      expectError(
        await server.request('POST', '/v1/machines', { body: { id: 'NO-TENANT', tenantId: 'nowhere' } }),
        404,
        'NOT_FOUND',
      );
    });

    it('without a credential → 401', async () => {
      expectError(
        await server.request('POST', '/v1/machines', { body: { id: 'ANON' }, token: null }),
        401,
        'UNAUTHORIZED',
      );
    });
  });

  describe('GET /v1/machines', () => {
    // Its own tenant, so other tests' machines do not show up.
    let adminJwt: string;
    const ids = ['L-01', 'L-02', 'L-03', 'L-04', 'L-05'];
    beforeAll(async () => {
      expect(
        (await server.request('POST', '/v1/tenants', { body: { id: 'listing', name: 'Listing' } })).status,
      ).toBe(201);
      const user = await server.request('POST', '/v1/users', {
        body: {
          email: 'list-admin@example.com',
          password: 'list-admin-password',
          role: 'admin',
          tenantId: 'listing',
        },
      });
      expect(user.status).toBe(201);
      const login = await server.request('POST', '/v1/auth/login', {
        body: { email: 'list-admin@example.com', password: 'list-admin-password' },
        token: null,
      });
      adminJwt = login.body.token as string;
      // Created out of order; the list is ordered by id.
      for (const id of ['L-03', 'L-01', 'L-05', 'L-02', 'L-04']) {
        const kind = id === 'L-02' || id === 'L-04' ? 'kiosk' : 'vending';
        expect(
          (await server.request('POST', '/v1/machines', { body: { id, kind }, token: adminJwt })).status,
        ).toBe(201);
      }
    });

    const list = (query = '') => server.request('GET', `/v1/machines${query}`, { token: adminJwt });

    it('answers {items, nextCursor}', async () => {
      const res = await list();
      expect(res.status).toBe(200);
      expect(Object.keys(res.body).sort()).toEqual(['items', 'nextCursor']);
      expect(res.body.items.map((m: { id: string }) => m.id)).toEqual(ids);
      expect(res.body.nextCursor).toBeNull();
      expect(res.body.items[0]).toMatchObject({
        tenantId: 'listing',
        siteId: 'default',
        status: 'OFFLINE',
        socketConnected: false,
      });
    });

    it('pages with limit and cursor, every machine exactly once', async () => {
      const seen: string[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const res: Res = await list(`?limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
        expect(res.status).toBe(200);
        expect(res.body.items.length).toBeLessThanOrEqual(2);
        seen.push(...res.body.items.map((m: { id: string }) => m.id));
        cursor = res.body.nextCursor;
        pages++;
      } while (cursor !== null && pages < 10);
      expect(seen).toEqual(ids);
      expect(pages).toBe(3);
    });

    it('a page that ends exactly at the last machine has no next cursor', async () => {
      const res = await list('?limit=5');
      expect(res.body.items).toHaveLength(5);
      expect(res.body.nextCursor).toBeNull();
      const four = await list('?limit=4');
      expect(four.body.nextCursor).toBe('L-04');
      const rest = await list('?limit=4&cursor=L-04');
      expect(rest.body).toMatchObject({ items: [{ id: 'L-05' }], nextCursor: null });
    });

    it('filters by kind, status and siteId', async () => {
      const kiosks = await list('?kind=kiosk');
      expect(kiosks.body.items.map((m: { id: string }) => m.id)).toEqual(['L-02', 'L-04']);
      const vending = await list('?kind=vending&limit=1');
      expect(vending.body.items.map((m: { id: string }) => m.id)).toEqual(['L-01']);
      expect(vending.body.nextCursor).toBe('L-01');
      const vendingRest = await list('?kind=vending&cursor=L-01');
      expect(vendingRest.body.items.map((m: { id: string }) => m.id)).toEqual(['L-03', 'L-05']);
      expect((await list('?status=OFFLINE')).body.items).toHaveLength(5);
      expect((await list('?status=IDLE')).body).toEqual({ items: [], nextCursor: null });
      expect((await list('?siteId=default')).body.items).toHaveLength(5);
      expect((await list('?siteId=elsewhere')).body).toEqual({ items: [], nextCursor: null });
      expect((await list('?kind=water')).body.items).toEqual([]);
    });

    it.each([
      '?limit=0',
      '?limit=201',
      '?limit=abc',
      '?limit=-1',
      '?kind=soda',
      '?status=ONLINE',
      '?cursor=',
      '?siteId=../x',
    ])('rejects %s → 400', async (query) => {
      expectError(await list(query), 400, 'VALIDATION_FAILED');
    });

    it('a value outside a list names the allowed ones; a bad time shows the format', async () => {
      const status = await list('?status=ONLINE');
      expect(status.body.error.message).toBe(
        'querystring.status must be one of: "OFFLINE", "IDLE", "BUSY", "ERROR"',
      );
      const res = await server.request('POST', '/v1/orders/export-links', { body: { from: '2026-03-01' } });
      expectError(res, 400, 'VALIDATION_FAILED');
      expect(res.body.error.message).toBe(
        'body.from must be a date and time in ISO 8601 with a time zone, e.g. 2026-03-01T00:00:00Z',
      );
    });

    it('GET /v1/machines/:id with a bad id → 400, an unknown id → 404', async () => {
      expectError(await get('..%2Fetc'), 400, 'VALIDATION_FAILED');
      expectError(await get('z'.repeat(65)), 400, 'VALIDATION_FAILED');
      expectError(await get('NOPE-404'), 404, 'NOT_FOUND');
    });
  });

  describe('machine keys', () => {
    it('rotate-key: the new key works at once, the old key → 401', async () => {
      const m = await server.createMachine('ROT-1');
      expect((await get('ROT-1', m.key)).status).toBe(200);
      const rotated = await server.request('POST', '/v1/machines/ROT-1/rotate-key');
      expect(rotated.status).toBe(200);
      expect(Object.keys(rotated.body)).toEqual(['key']);
      const newKey = rotated.body.key as string;
      expect(newKey).not.toBe(m.key);
      const viaApiKey = await server.request('GET', '/v1/machines/ROT-1', {
        token: null,
        headers: { 'x-api-key': newKey },
      });
      expect(viaApiKey.status).toBe(200);
      expect(viaApiKey.body.id).toBe('ROT-1');
      expect((await get('ROT-1', newKey)).status).toBe(200);
      expectError(
        await server.request('GET', '/v1/machines/ROT-1', { token: null, headers: { 'x-api-key': m.key } }),
        401,
        'UNAUTHORIZED',
      );
      expectError(await get('ROT-1', m.key), 401, 'UNAUTHORIZED');
      // Rotating again retires the second key too.
      const again = await server.request('POST', '/v1/machines/ROT-1/rotate-key');
      expect(again.status).toBe(200);
      expectError(await get('ROT-1', newKey), 401, 'UNAUTHORIZED');
      expect((await get('ROT-1', again.body.key)).status).toBe(200);
    });

    it('rotate-key of an unknown machine → 404, with a bad id → 400', async () => {
      expectError(await server.request('POST', '/v1/machines/NOPE-ROT/rotate-key'), 404, 'NOT_FOUND');
      expectError(await server.request('POST', '/v1/machines/a.b/rotate-key'), 400, 'VALIDATION_FAILED');
    });

    it('rotate-key accepts an empty JSON object as the body', async () => {
      await server.createMachine('ROT-EMPTY');
      const res = await server.request('POST', '/v1/machines/ROT-EMPTY/rotate-key', { body: {} });
      expect(res.status).toBe(200);
      expect(typeof res.body.key).toBe('string');
    });

    it('a machine key acts only as its own machine', async () => {
      const a = await server.createMachine('OWN-A');
      await server.createMachine('OWN-B');
      expect((await get('OWN-A', a.key)).status).toBe(200);
      expectError(await get('OWN-B', a.key), 403, 'FORBIDDEN');
      expectError(
        await server.request('GET', '/v1/machines/OWN-B', { token: null, headers: { 'x-api-key': a.key } }),
        403,
        'FORBIDDEN',
      );
      expectError(await server.request('GET', '/v1/machines', { token: a.key }), 403, 'FORBIDDEN');
      expectError(
        await server.request('POST', '/v1/machines', { body: { id: 'OWN-C' }, token: a.key }),
        403,
        'FORBIDDEN',
      );
      expectError(
        await server.request('POST', '/v1/machines/OWN-A/rotate-key', { token: a.key }),
        403,
        'FORBIDDEN',
      );
      expectError(
        await server.request('POST', '/v1/machines/OWN-B/rotate-key', { token: a.key }),
        403,
        'FORBIDDEN',
      );
      expectError(await putProfile('OWN-A', { ...PROFILE, qrCodeId: 'qr_OWN_A' }, a.key), 403, 'FORBIDDEN');
      expectError(await get('OWN-C'), 404, 'NOT_FOUND');
      expect((await get('OWN-A', a.key)).body.paymentProfile).toBeUndefined();
      // The key still works after all those refusals.
      expect((await get('OWN-A', a.key)).status).toBe(200);
    });
  });

  describe('PUT /v1/machines/:id/payment-profile', () => {
    it('sets paymentProfile {provider, qrCodeId, qrImageUrl, qrShortUrl, fixedAmountPaise}', async () => {
      await server.createMachine('PP-1');
      const res = await putProfile('PP-1', PROFILE);
      expect(res.status).toBe(200);
      expect(res.body.id).toBe('PP-1');
      expect(res.body.paymentProfile).toMatchObject(PROFILE);
      const view = await get('PP-1');
      expect(view.body.paymentProfile).toMatchObject(PROFILE);
    });

    it('optional fields may be left out or null', async () => {
      await server.createMachine('PP-MIN');
      const res = await putProfile('PP-MIN', { provider: 'razorpay', qrCodeId: 'qr_PP_MIN' });
      expect(res.status).toBe(200);
      expect(res.body.paymentProfile).toMatchObject({
        provider: 'razorpay',
        qrCodeId: 'qr_PP_MIN',
        qrImageUrl: null,
        qrShortUrl: null,
        fixedAmountPaise: null,
      });
      const nulls = await putProfile('PP-MIN', {
        provider: 'razorpay',
        qrCodeId: 'qr_PP_MIN',
        qrImageUrl: null,
        qrShortUrl: null,
        fixedAmountPaise: null,
      });
      expect(nulls.status).toBe(200);
    });

    it('setting the same profile again is fine; replacing it frees the old QR id', async () => {
      await server.createMachine('PP-2');
      await server.createMachine('PP-3');
      expect((await putProfile('PP-2', { ...PROFILE, qrCodeId: 'qr_MOVE' })).status).toBe(200);
      expect((await putProfile('PP-2', { ...PROFILE, qrCodeId: 'qr_MOVE' })).status).toBe(200);
      expectError(await putProfile('PP-3', { ...PROFILE, qrCodeId: 'qr_MOVE' }), 409, 'CONFLICT');
      expect(
        (await putProfile('PP-2', { ...PROFILE, qrCodeId: 'qr_MOVE_NEW', fixedAmountPaise: 3000 })).status,
      ).toBe(200);
      const taken = await putProfile('PP-3', { ...PROFILE, qrCodeId: 'qr_MOVE' });
      expect(taken.status).toBe(200);
      expect(taken.body.paymentProfile.qrCodeId).toBe('qr_MOVE');
      expect((await get('PP-2')).body.paymentProfile).toMatchObject({
        qrCodeId: 'qr_MOVE_NEW',
        fixedAmountPaise: 3000,
      });
    });

    it('the same qrCodeId on a second machine → 409 and the second machine is unchanged', async () => {
      await server.createMachine('PP-4');
      await server.createMachine('PP-5');
      expect((await putProfile('PP-4', { ...PROFILE, qrCodeId: 'qr_SHARED' })).status).toBe(200);
      expect(
        (await putProfile('PP-5', { ...PROFILE, qrCodeId: 'qr_PP5', fixedAmountPaise: 500 })).status,
      ).toBe(200);
      const res = await putProfile('PP-5', { ...PROFILE, qrCodeId: 'qr_SHARED' });
      expectError(res, 409, 'CONFLICT');
      expect((await get('PP-5')).body.paymentProfile).toMatchObject({
        qrCodeId: 'qr_PP5',
        fixedAmountPaise: 500,
      });
      expect((await get('PP-4')).body.paymentProfile).toMatchObject({ qrCodeId: 'qr_SHARED' });
    });

    it('two machines claiming one new qrCodeId at the same time: one 200, one 409, never 500', async () => {
      for (let round = 0; round < 5; round++) {
        const a = `PP-RACE-${round}-A`;
        const b = `PP-RACE-${round}-B`;
        await server.createMachine(a);
        await server.createMachine(b);
        const qrCodeId = `qr_RACE_${round}`;
        const [ra, rb] = await Promise.all([
          putProfile(a, { ...PROFILE, qrCodeId }),
          putProfile(b, { ...PROFILE, qrCodeId }),
        ]);
        expect([ra.status, rb.status].sort(), JSON.stringify([ra.body, rb.body])).toEqual([200, 409]);
        const loser = ra.status === 409 ? ra : rb;
        expectError(loser, 409, 'CONFLICT');
        const owners = [(await get(a)).body, (await get(b)).body].filter(
          (m) => m.paymentProfile?.qrCodeId === qrCodeId,
        );
        expect(owners).toHaveLength(1);
      }
    });

    it.each<[string, unknown]>([
      ['fixedAmountPaise 0', { ...PROFILE, fixedAmountPaise: 0 }],
      ['fixedAmountPaise -1', { ...PROFILE, fixedAmountPaise: -1 }],
      ['fixedAmountPaise 1.5', { ...PROFILE, fixedAmountPaise: 1.5 }],
      ['fixedAmountPaise "100"', { ...PROFILE, fixedAmountPaise: '100' }],
      ['fixedAmountPaise true', { ...PROFILE, fixedAmountPaise: true }],
      ['fixedAmountPaise too large', { ...PROFILE, fixedAmountPaise: 1e12 }],
      ['an unknown field', { ...PROFILE, amountRupees: 20 }],
      ['no provider', { qrCodeId: 'qr_X' }],
      ['no qrCodeId', { provider: 'razorpay' }],
      ['an empty qrCodeId', { ...PROFILE, qrCodeId: '' }],
      ['an upper-case provider', { ...PROFILE, provider: 'Razorpay' }],
      ['a numeric qrCodeId', { ...PROFILE, qrCodeId: 12 }],
    ])('rejects %s → 400 and the machine is unchanged', async (label, body) => {
      const id = `PP-BAD-${label.replace(/[^A-Za-z0-9]+/g, '-')}`.slice(0, 64);
      await server.createMachine(id);
      const before = { ...PROFILE, qrCodeId: `qr_${id}` };
      expect((await putProfile(id, before)).status).toBe(200);
      const res = await putProfile(id, body);
      expectError(res, 400, 'VALIDATION_FAILED');
      if (label === 'an unknown field') expect(res.body.error.message).toContain('amountRupees');
      const after = await get(id);
      expect(after.body.paymentProfile).toMatchObject(before);
    });

    it('an unknown machine → 404; a staff member who is not admin → 403', async () => {
      expectError(await putProfile('NOPE-PP', PROFILE), 404, 'NOT_FOUND');
      await server.createMachine('PP-TECH');
      const user = await server.request('POST', '/v1/users', {
        body: { email: 'tech-pp@example.com', password: 'tech-pp-password', role: 'technician' },
      });
      expect(user.status).toBe(201);
      const login = await server.request('POST', '/v1/auth/login', {
        body: { email: 'tech-pp@example.com', password: 'tech-pp-password' },
        token: null,
      });
      const tech = login.body.token as string;
      expect((await get('PP-TECH', tech)).status).toBe(200);
      expectError(await putProfile('PP-TECH', { ...PROFILE, qrCodeId: 'qr_TECH' }, tech), 403, 'FORBIDDEN');
      expectError(
        await server.request('POST', '/v1/machines/PP-TECH/rotate-key', { token: tech }),
        403,
        'FORBIDDEN',
      );
      expectError(
        await server.request('POST', '/v1/machines', { body: { id: 'BY-TECH' }, token: tech }),
        403,
        'FORBIDDEN',
      );
      expect((await get('PP-TECH')).body.paymentProfile).toBeUndefined();
    });
  });

  describe('bad bodies on every write endpoint', () => {
    const BAD_BODIES: Array<[string, { raw?: string; headers?: Record<string, string> }]> = [
      ['invalid JSON', { raw: '{"id": "M99",' }],
      ['plain text', { raw: 'hello', headers: { 'content-type': 'text/plain' } }],
      [
        'a form body',
        { raw: 'id=M99&name=x', headers: { 'content-type': 'application/x-www-form-urlencoded' } },
      ],
      ['XML', { raw: '<machine id="M99"/>', headers: { 'content-type': 'application/xml' } }],
      ['a JSON array', { raw: '[{"id":"M99"}]' }],
      ['an empty JSON array', { raw: '[]' }],
      ['JSON null', { raw: 'null' }],
      ['a JSON string', { raw: '"M99"' }],
      ['a JSON number', { raw: '42' }],
      ['an empty body with Content-Type: application/json', { raw: '' }],
      ['no body at all', {}],
    ];

    const endpoints: Array<{
      name: string;
      method: string;
      path: () => string;
      token: () => string | null;
      acceptsNoBody?: boolean;
    }> = [
      { name: 'POST /v1/tenants', method: 'POST', path: () => '/v1/tenants', token: () => ADMIN_TOKEN },
      { name: 'POST /v1/users', method: 'POST', path: () => '/v1/users', token: () => ADMIN_TOKEN },
      { name: 'POST /v1/auth/login', method: 'POST', path: () => '/v1/auth/login', token: () => null },
      { name: 'POST /v1/machines', method: 'POST', path: () => '/v1/machines', token: () => ADMIN_TOKEN },
      {
        name: 'POST /v1/machines/:id/rotate-key',
        method: 'POST',
        path: () => '/v1/machines/BODY-TARGET/rotate-key',
        token: () => ADMIN_TOKEN,
        acceptsNoBody: true,
      },
      {
        name: 'PUT /v1/machines/:id/payment-profile',
        method: 'PUT',
        path: () => '/v1/machines/BODY-TARGET/payment-profile',
        token: () => ADMIN_TOKEN,
      },
    ];

    let targetKey: string;
    beforeAll(async () => {
      targetKey = (await server.createMachine('BODY-TARGET')).key;
      expect((await putProfile('BODY-TARGET', { ...PROFILE, qrCodeId: 'qr_BODY_TARGET' })).status).toBe(200);
    });

    for (const endpoint of endpoints) {
      for (const [label, body] of BAD_BODIES) {
        if (label === 'no body at all' && endpoint.acceptsNoBody) continue;
        it(`${endpoint.name} with ${label} → 400 VALIDATION_FAILED`, async () => {
          const res = await server.request(endpoint.method, endpoint.path(), {
            ...body,
            token: endpoint.token(),
          });
          expectError(res, 400, 'VALIDATION_FAILED');
        });
        it(`${endpoint.name} with ${label} and no credential → 400 or 401, never 500`, async () => {
          const res = await server.request(endpoint.method, endpoint.path(), { ...body, token: null });
          expect([400, 401], JSON.stringify(res.body)).toContain(res.status);
          expectErrorShape(res);
          expect(res.body.error.code).toBe(res.status === 400 ? 'VALIDATION_FAILED' : 'UNAUTHORIZED');
        });
      }
    }

    it('rotate-key with an unknown field in its body → 400 naming it', async () => {
      const res = await server.request('POST', '/v1/machines/BODY-TARGET/rotate-key', {
        body: { key: 'mk_chosen_by_me' },
      });
      expectError(res, 400, 'VALIDATION_FAILED');
      expect(res.body.error.message).toContain('key');
    });

    it('none of those requests changed anything', async () => {
      expect((await get('BODY-TARGET', targetKey)).status).toBe(200);
      const view = await get('BODY-TARGET');
      expect(view.body.paymentProfile).toMatchObject({ ...PROFILE, qrCodeId: 'qr_BODY_TARGET' });
      expectError(await get('M99'), 404, 'NOT_FOUND');
      const tenants = await server.request('GET', '/v1/tenants');
      expect(tenants.body.items.map((t: { id: string }) => t.id)).not.toContain('M99');
    });
  });

  describe('errors and operations', () => {
    // Other GET paths may be dashboard client routes (served as the web app), so API prefixes are checked.
    it('an unknown route → 404 NOT_FOUND in the error shape', async () => {
      expectError(await server.request('GET', '/v1/nope'), 404, 'NOT_FOUND');
      expectError(await server.request('GET', '/v1/nope?x=1', { token: null }), 404, 'NOT_FOUND');
      expectError(await server.request('GET', '/api/nope', { token: null }), 404, 'NOT_FOUND');
      expectError(await server.request('GET', '/webhooks/nope', { token: null }), 404, 'NOT_FOUND');
      expectError(await server.request('DELETE', '/v1/machines/M01'), 404, 'NOT_FOUND');
      expectError(await server.request('POST', '/v1/unknown', { body: { a: 1 } }), 404, 'NOT_FOUND');
      expectError(await server.request('POST', '/nope', { body: { a: 1 }, token: null }), 404, 'NOT_FOUND');
    });

    it('GET /openapi.json is a valid OpenAPI 3 document with the main paths', async () => {
      const res = await server.request('GET', '/openapi.json', { token: null });
      expect(res.status).toBe(200);
      expect(res.headers?.get('content-type')).toMatch(/application\/json/);
      const doc = res.body;
      expect(doc.openapi).toMatch(/^3\.\d+\.\d+$/);
      expect(typeof doc.info?.title).toBe('string');
      expect(typeof doc.info?.version).toBe('string');
      expect(Object.keys(doc.paths)).toEqual(
        expect.arrayContaining(['/v1/machines', '/v1/machines/{id}', '/webhooks/razorpay', '/v1/orders']),
      );
      expect(doc.paths['/v1/machines'].post).toBeDefined();
      expect(doc.paths['/v1/machines'].get).toBeDefined();
      expect(doc.paths['/webhooks/razorpay'].post).toBeDefined();
      expect(doc.paths['/v1/orders'].get).toBeDefined();
      expect(openApiProblems(doc)).toEqual([]);
    });

    it('GET /docs answers HTML', async () => {
      const res = await fetch(`${server.url}/docs`);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/text\/html/);
      expect(await res.text()).toMatch(/<html/i);
    });

    it('/healthz and /readyz → 200', async () => {
      const health = await server.request('GET', '/healthz', { token: null });
      expect(health.status).toBe(200);
      expect(health.body).toEqual({ ok: true });
      const ready = await server.request('GET', '/readyz', { token: null });
      expect(ready.status).toBe(200);
      expect(ready.body).toEqual({ ok: true });
    });

    it('/metrics is Prometheus text with the Kioskhub metrics', async () => {
      const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };
      const res = await fetch(`${server.url}/metrics`, { headers: admin });
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
      const text = await res.text();
      expect(text).toMatch(/^# TYPE kioskhub_machines_online gauge$/m);
      expect(text).toMatch(/^kioskhub_machines_online \d+$/m);
      expect(text).toMatch(/^# TYPE kioskhub_dispatch_latency_seconds histogram$/m);
      expect(text).toMatch(/^kioskhub_dispatch_latency_seconds_bucket\{le="\+Inf"\} \d+$/m);
      expect(text).toMatch(/^kioskhub_dispatch_latency_seconds_count \d+$/m);
      // Every sample line is `name{labels} value`.
      for (const line of text.split('\n')) {
        if (line === '' || line.startsWith('#')) continue;
        expect(line).toMatch(/^[a-zA-Z_:][a-zA-Z0-9_:]*(\{.*\})? [-+0-9.eENaInf]+$/);
      }
    });
  });
});

/** Structural checks of an OpenAPI 3 document: internal $refs resolve, operations are well formed. */
function openApiProblems(doc: any): string[] {
  const problems: string[] = [];
  const resolve = (ref: string): unknown => {
    if (!ref.startsWith('#/')) return undefined;
    let node: any = doc;
    for (const part of ref.slice(2).split('/')) {
      const key = decodeURIComponent(part).replaceAll('~1', '/').replaceAll('~0', '~');
      if (node === null || typeof node !== 'object' || !(key in node)) return undefined;
      node = node[key];
    }
    return node;
  };
  const walk = (node: unknown, where: string): void => {
    if (Array.isArray(node)) return node.forEach((n, i) => walk(n, `${where}/${i}`));
    if (node === null || typeof node !== 'object') return;
    for (const [key, value] of Object.entries(node)) {
      if (key === '$ref' && typeof value === 'string' && resolve(value) === undefined)
        problems.push(`${where}: unresolved $ref ${value}`);
      walk(value, `${where}/${key}`);
    }
  };
  walk(doc, '#');
  const methods = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];
  for (const [path, item] of Object.entries<any>(doc.paths ?? {})) {
    if (!path.startsWith('/')) problems.push(`${path}: path must start with /`);
    // A Fastify parameter starts a segment (`/:id`); a colon inside a segment is a literal custom
    // method such as `/v1/water/transactions:batch`, which OpenAPI allows.
    if (/\/:[A-Za-z]/.test(path)) problems.push(`${path}: Fastify-style parameter instead of {param}`);
    const templated = [...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]);
    for (const [method, op] of Object.entries<any>(item)) {
      if (!methods.includes(method)) continue;
      if (!op.responses || Object.keys(op.responses).length === 0)
        problems.push(`${method} ${path}: no responses`);
      for (const status of Object.keys(op.responses ?? {})) {
        if (!/^([1-5]\d\d|[1-5]XX|default)$/.test(status))
          problems.push(`${method} ${path}: bad response key ${status}`);
      }
      const params: any[] = [...(item.parameters ?? []), ...(op.parameters ?? [])];
      for (const name of templated) {
        const p = params.find((x) => x.in === 'path' && x.name === name);
        if (!p) problems.push(`${method} ${path}: path parameter ${name} not declared`);
        else if (p.required !== true) problems.push(`${method} ${path}: path parameter ${name} not required`);
      }
      for (const p of params) {
        if (!['query', 'header', 'path', 'cookie'].includes(p.in))
          problems.push(`${method} ${path}: parameter ${p.name} has in=${p.in}`);
      }
    }
  }
  return problems;
}
