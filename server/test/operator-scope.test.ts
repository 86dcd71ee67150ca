// Money that reaches the deployment's own provider accounts and matches no tenant (a bank credit
// whose reference is no payment's) belongs to whoever runs the deployment: with several tenants
// its alert and audit entry are shown to ADMIN_TOKEN only, never to one tenant's staff; with one
// tenant, that tenant's staff run the deployment and see them.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { engines, startServer, type TestServer } from './harness.js';
import { signInAs, twoTenantAdmins } from './fixtures/staff.js';
import { signatureHeader } from '../src/providers/bank/bank.signature.js';

const BANK_SECRET = 'bank-secret-operator-scope';
const rand = () => randomBytes(4).toString('hex');

async function unmatchedCredit(server: TestServer): Promise<string> {
  const eventId = `bank-evt-${rand()}`;
  const raw = JSON.stringify({ eventId, reference: 'RF18539007547034', amountMinor: 1250, currency: 'EUR' });
  const res = await server.request('POST', '/webhooks/bank', {
    raw,
    token: null,
    headers: {
      'content-type': 'application/json',
      'kioskhub-signature': signatureHeader(raw, BANK_SECRET, Math.floor(Date.now() / 1000)),
    },
  });
  expect(res.body).toEqual({ ok: true, outcome: 'unknown_reference' });
  return `bank:${eventId}`;
}

async function alertIds(server: TestServer, subjectId: string, token?: string): Promise<string[]> {
  const res = await server.request('GET', '/v1/alerts?limit=200', token ? { token } : {});
  expect(res.status).toBe(200);
  return (res.body.items as { id: string; subjectId: string }[])
    .filter((a) => a.subjectId === subjectId)
    .map((a) => a.id);
}

async function auditCount(server: TestServer, subjectId: string, token?: string): Promise<number> {
  const res = await server.request(
    'GET',
    `/v1/audit?action=payment.unmatched_credit&subjectId=${encodeURIComponent(subjectId)}`,
    token ? { token } : {},
  );
  expect(res.status).toBe(200);
  return res.body.items.length as number;
}

describe.each(engines())('money no tenant owns (%s)', (engine) => {
  describe('a deployment with several tenants', () => {
    let server: TestServer;
    let defaultAdmin = '';
    let otherAdmin = '';
    beforeAll(async () => {
      server = await startServer({ engine, env: { BANK_WEBHOOK_SECRET: BANK_SECRET } });
      ({ defaultAdmin, otherAdmin } = await twoTenantAdmins(server, 'op_'));
    });
    afterAll(async () => {
      await server?.close();
    });

    it("is shown to ADMIN_TOKEN only: no tenant's staff see, list or acknowledge it", async () => {
      const subject = await unmatchedCredit(server);
      for (const token of [defaultAdmin, otherAdmin]) {
        expect(await alertIds(server, subject, token)).toEqual([]);
        expect(await auditCount(server, subject, token)).toBe(0);
      }
      const [id] = await alertIds(server, subject);
      expect(id).toBeDefined();
      const listed = (await server.request('GET', '/v1/alerts?limit=200')).body.items.find(
        (a: { id: string }) => a.id === id,
      );
      expect(listed).toMatchObject({ kind: 'BANK_CREDIT_UNMATCHED', tenantId: '*', acknowledgedAt: null });
      expect(await auditCount(server, subject)).toBe(1);
      // A tenant's admin cannot acknowledge it (it is not theirs: 404, as for another tenant's alert).
      for (const token of [defaultAdmin, otherAdmin]) {
        const ack = await server.request('POST', `/v1/alerts/${id}/ack`, { token });
        expect(ack.status).toBe(404);
      }
      const still = (await server.request('GET', '/v1/alerts?open=true&limit=200')).body.items;
      expect(still.map((a: { id: string }) => a.id)).toContain(id);
      // ADMIN_TOKEN can.
      expect((await server.request('POST', `/v1/alerts/${id}/ack`)).body).toEqual({ ok: true });
      const acked = (await server.request('GET', '/v1/alerts?limit=200')).body.items.find(
        (a: { id: string }) => a.id === id,
      );
      expect(acked.acknowledgedBy).toBe('admin-token');
    });

    it("the audit log's tenantId filter of ADMIN_TOKEN finds it under *", async () => {
      const subject = await unmatchedCredit(server);
      const res = await server.request(
        'GET',
        `/v1/audit?tenantId=*&subjectId=${encodeURIComponent(subject)}`,
      );
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      expect(res.body.items).toHaveLength(1);
      expect(res.body.items[0]).toMatchObject({ tenantId: '*', action: 'payment.unmatched_credit' });
      const dflt = await server.request(
        'GET',
        `/v1/audit?tenantId=default&subjectId=${encodeURIComponent(subject)}`,
      );
      expect(dflt.body.items).toHaveLength(0);
      // A tenant's admin naming * is refused like naming any other tenant.
      const refused = await server.request('GET', '/v1/audit?tenantId=*', { token: defaultAdmin });
      expect(refused.status).toBe(403);
    });
  });

  describe('a deployment with one tenant', () => {
    let server: TestServer;
    let admin = '';
    beforeAll(async () => {
      server = await startServer({ engine, env: { BANK_WEBHOOK_SECRET: BANK_SECRET } });
      admin = await signInAs(server, 'default');
    });
    afterAll(async () => {
      await server?.close();
    });

    it('its staff run the deployment: they see it, its audit entry, and acknowledge it', async () => {
      const subject = await unmatchedCredit(server);
      const [id] = await alertIds(server, subject, admin);
      expect(id).toBeDefined();
      expect(await auditCount(server, subject, admin)).toBe(1);
      expect((await server.request('POST', `/v1/alerts/${id}/ack`, { token: admin })).body).toEqual({
        ok: true,
      });
      const acked = (await server.request('GET', '/v1/alerts?limit=200', { token: admin })).body.items.find(
        (a: { id: string }) => a.id === id,
      );
      expect(acked.acknowledgedAt).not.toBeNull();
    });
  });
});
