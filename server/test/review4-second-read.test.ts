// Second read of the operator scope (money no tenant owns is tenant `*`), the print routes'
// machine kinds and the key-less cash-reader cancel: defects found on review, each shown on a real
// server first.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { enqueueOutbox } from '../src/platform/outbox.js';
import type {} from '../src/modules/payments/card-payments.js';
import { engines, eventually, startServer, type TestServer } from './harness.js';
import { signInAs, twoTenantAdmins } from './fixtures/staff.js';

const key = (k: string) => ({ token: null, headers: { 'x-api-key': k } }) as const;
const rand = () => randomBytes(4).toString('hex');

type AlertItem = { id: string; tenantId: string; kind: string; subjectId: string; message: string };

/**
 * A card refund's look-again job (`card_refund_parked`, the job that raises CARD_REFUND_UNMATCHED
 * for money no tenant owns) on a deployment that no longer takes cards (STRIPE_* removed while a
 * refund was parked): nothing handles it, so it fails for good. Its payload names no tenant.
 */
async function tenantlessJobFailsForGood(server: TestServer): Promise<AlertItem> {
  const pi = `pi_${rand()}`;
  await enqueueOutbox(server.kioskhub.db, 'card_refund_parked', {
    providerPaymentId: pi,
    eventId: `evt_${rand()}`,
  });
  const row = await server.kioskhub.db
    .selectFrom('outbox')
    .select('id')
    .where('topic', '=', 'card_refund_parked')
    .where('payload', 'like', `%${pi}%`)
    .executeTakeFirstOrThrow();
  const subjectId = String(row.id);
  return eventually(
    async () => {
      server.kioskhub.services.outbox.flushSoon();
      const items = (await server.request('GET', '/v1/alerts?limit=200')).body.items as AlertItem[];
      return items.find((a) => a.kind === 'JOB_FAILED' && a.subjectId === subjectId);
    },
    30_000,
    'the JOB_FAILED alert of the card_refund_parked job',
  );
}

describe.each(engines())('review 4, second read (%s)', (engine) => {
  describe('a background job of no tenant that fails for good, several tenants', () => {
    let server: TestServer;
    let defaultAdmin = '';
    let otherAdmin = '';
    beforeAll(async () => {
      server = await startServer({ engine, env: { JOB_RETRY_BASE_MS: '10' } });
      ({ defaultAdmin, otherAdmin } = await twoTenantAdmins(server, 'rv_'));
    });
    afterAll(async () => {
      await server?.close();
    });

    it("its JOB_FAILED alert is the operator's (*): no tenant's staff see or acknowledge it, ADMIN_TOKEN does", async () => {
      const alert = await tenantlessJobFailsForGood(server);
      expect(alert.tenantId).toBe('*');
      expect(alert.message).toContain('card_refund_parked');
      for (const token of [defaultAdmin, otherAdmin]) {
        const seen = (await server.request('GET', '/v1/alerts?limit=200', { token })).body
          .items as AlertItem[];
        expect(seen.map((a) => a.id)).not.toContain(alert.id);
        expect((await server.request('POST', `/v1/alerts/${alert.id}/ack`, { token })).status).toBe(404);
      }
      expect((await server.request('POST', `/v1/alerts/${alert.id}/ack`)).body).toEqual({ ok: true });
    });
  });

  describe('a background job of no tenant that fails for good, one tenant', () => {
    let server: TestServer;
    let admin = '';
    beforeAll(async () => {
      server = await startServer({ engine, env: { JOB_RETRY_BASE_MS: '10' } });
      admin = await signInAs(server, 'default');
    });
    afterAll(async () => {
      await server?.close();
    });

    it('the only tenant runs the deployment: its staff see and acknowledge the JOB_FAILED alert', async () => {
      const alert = await tenantlessJobFailsForGood(server);
      const seen = (await server.request('GET', '/v1/alerts?limit=200', { token: admin })).body
        .items as AlertItem[];
      expect(seen.map((a) => a.id)).toContain(alert.id);
      expect((await server.request('POST', `/v1/alerts/${alert.id}/ack`, { token: admin })).body).toEqual({
        ok: true,
      });
    });
  });

  describe('the key-less cash cancel and another tenant', () => {
    let server: TestServer;
    beforeAll(async () => {
      server = await startServer({ engine });
    });
    afterAll(async () => {
      await server?.close();
    });

    /** A site of `tenantId` with a menu, a kiosk and a cash unit; an order with `inserted` in its session. */
    async function openSessionAt(tenantId: string, siteId: string, site: Record<string, unknown>) {
      const created = await server.request('POST', '/v1/sites', {
        body: { id: siteId, name: 'Diner', currency: 'PHP', tenantId, ...site },
      });
      expect(created.status, JSON.stringify(created.body)).toBe(201);
      const sku = `${tenantId}-${siteId}-meal`;
      const product = await server.request('POST', '/v1/products', {
        body: { sku, name: 'Meal', priceMinor: 15_000, siteId, tenantId },
      });
      expect(product.status, JSON.stringify(product.body)).toBe(201);
      const kiosk = (await server.createMachine(`k-${rand()}`, { kind: 'kiosk', siteId, tenantId })).key;
      const order = await server.request('POST', '/v1/orders', {
        ...key(kiosk),
        body: { items: [{ sku, qty: 1 }] },
      });
      expect(order.status, JSON.stringify(order.body)).toBe(201);
      const orderNumber = order.body.orderNumber as string;
      for (const [path, body] of [
        ['/api/cash-payment/init', { orderNumber, totalAmount: 150 }],
        ['/api/cash-payment/update', { orderNumber, amountAdded: 100 }],
      ] as const)
        expect((await server.request('POST', path, { ...key(kiosk), body })).status).toBe(200);
      const status = async () =>
        (await server.request('GET', `/api/cash-payment/status/${orderNumber}`, key(kiosk))).body;
      return { orderNumber, status };
    }

    it("another tenant's order through a key-less site's prefix is unknown there (404) and stays open, even under the same site id", async () => {
      const other = `kt_${rand()}`;
      expect((await server.request('POST', '/v1/tenants', { body: { id: other, name: other } })).status).toBe(
        201,
      );
      const siteId = `ks${rand()}`;
      const ours = await openSessionAt('default', siteId, { keylessCashCancel: true });
      // The other tenant has a site of the same id (without the setting: the id is held) and one of another id.
      const sameId = await openSessionAt(other, siteId, {});
      const elsewhere = await openSessionAt(other, `ko${rand()}`, {});
      for (const theirs of [sameId, elsewhere]) {
        const res = await server.request(
          'POST',
          `/sites/${siteId}/api/cash-payment/cancel/${theirs.orderNumber}`,
          {
            token: null,
          },
        );
        expect(res.status, JSON.stringify(res.body)).toBe(404);
        expect(res.body.error.code).toBe('NOT_FOUND');
        expect(await theirs.status()).toMatchObject({ status: 'PENDING', amountInserted: 100 });
      }
      // The holder's own session is the reader's to cancel.
      const mine = await server.request(
        'POST',
        `/sites/${siteId}/api/cash-payment/cancel/${ours.orderNumber}`,
        {
          token: null,
        },
      );
      expect(mine.body).toMatchObject({ success: true, amountReturned: 100, status: 'CANCELLED' });
    });
  });

  // One claim covers both key-less flags, and whether to give it back is decided from the site as it
  // was read. Two PATCHes at once on PostgreSQL (one turning keylessCashCancel on, the other
  // printQueueOpen off) each read the other flag as before the other's commit: the second gave the
  // claim back, leaving the site saying keylessCashCancel: true with no claim, so its reader was
  // refused and another tenant could take the id. Forced here: both wait on the site's row (held
  // below) after reading it. SQLite runs one write transaction at a time, so they cannot interleave.
  describe('two PATCHes of the key-less flags at once', () => {
    let server: TestServer;
    beforeAll(async () => {
      server = await startServer({ engine });
    });
    afterAll(async () => {
      await server?.close();
    });

    it.runIf(engine === 'postgres')(
      'turning keylessCashCancel on while printQueueOpen is turned off keeps the claim: the reader works, another tenant gets 409',
      async () => {
        const db = server.kioskhub.db;
        const siteId = `kr${rand()}`;
        const created = await server.request('POST', '/v1/sites', {
          body: { id: siteId, name: 'Diner', currency: 'PHP', printQueueOpen: true },
        });
        expect(created.status, JSON.stringify(created.body)).toBe(201);
        const sku = `${siteId}-meal`;
        expect(
          (
            await server.request('POST', '/v1/products', {
              body: { sku, name: 'Meal', priceMinor: 15_000, siteId },
            })
          ).status,
        ).toBe(201);
        const kiosk = (await server.createMachine(`k-${rand()}`, { kind: 'kiosk', siteId })).key;

        const blockedBy = (pids: number[], except: number[] = []) =>
          eventually(async () => {
            const r = await sql<{ pid: number }>`select pid from pg_stat_activity
              where pg_blocking_pids(pid) && ${sql.raw(`array[${pids.map(Number).join(',')}]::int[]`)}`.execute(
              db,
            );
            return r.rows.map((row) => Number(row.pid)).find((pid) => !except.includes(pid));
          });
        let release!: () => void;
        const released = new Promise<void>((resolve) => (release = resolve));
        let holderPid = 0;
        let held!: () => void;
        const isHeld = new Promise<void>((resolve) => (held = resolve));
        const holding = db.transaction().execute(async (tx) => {
          await sql`select id from sites where tenant_id = 'default' and id = ${siteId} for update`.execute(
            tx,
          );
          holderPid = Number(
            (await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(tx)).rows[0]!.pid,
          );
          held();
          await released;
        });
        await isHeld;
        const patch = (body: Record<string, unknown>) =>
          server.request('PATCH', `/v1/sites/${siteId}`, { body });
        const turnOn = patch({ keylessCashCancel: true });
        const first = await blockedBy([holderPid]);
        const closePrinters = patch({ printQueueOpen: false });
        await blockedBy([holderPid, first], [first]);
        release();
        await holding;
        expect((await turnOn).status).toBe(200);
        expect((await closePrinters).status).toBe(200);

        const site = ((await server.request('GET', '/v1/sites')).body.items as any[]).find(
          (s) => s.id === siteId && s.tenantId === 'default',
        );
        expect(site).toMatchObject({ keylessCashCancel: true, printQueueOpen: false });
        // The setting works: the reader cancels an open session of the site without a key.
        const order = await server.request('POST', '/v1/orders', {
          ...key(kiosk),
          body: { items: [{ sku, qty: 1 }] },
        });
        const orderNumber = order.body.orderNumber as string;
        const init = await server.request('POST', '/api/cash-payment/init', {
          ...key(kiosk),
          body: { orderNumber, totalAmount: 150 },
        });
        expect(init.status).toBe(200);
        const cancel = await server.request(
          'POST',
          `/sites/${siteId}/api/cash-payment/cancel/${orderNumber}`,
          {
            token: null,
          },
        );
        expect(cancel.status, JSON.stringify(cancel.body)).toBe(200);
        // And the id is still held: another tenant cannot turn the setting on for it.
        const other = `kr_${rand()}`;
        expect(
          (await server.request('POST', '/v1/tenants', { body: { id: other, name: other } })).status,
        ).toBe(201);
        const theirs = await server.request('POST', '/v1/sites', {
          body: { id: siteId, name: 'Theirs', keylessCashCancel: true, tenantId: other },
        });
        expect(theirs.status, JSON.stringify(theirs.body)).toBe(409);
      },
    );
  });
});
