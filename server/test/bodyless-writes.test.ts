// Writes that take no body (an acknowledgement, "ready", a token rotation) answer a body field
// they do not know with 400 VALIDATION_FAILED naming it, and change nothing, as every other route
// refuses an unknown field (docs/api.md §1). They used to ignore the body and act: a client that
// meant something else by `{"dryRun": true}` got the action done.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { engines, startServer, type TestServer } from './harness.js';
import { createBurgerSite, openCashSession } from './restaurant-fixtures.js';

const uid = (p: string) => `${p}${randomBytes(3).toString('hex')}`;

for (const engine of engines()) {
  describe(`body-less writes refuse a body field (${engine})`, () => {
    let server: TestServer;
    let site: { siteId: string; kiosk: string; cash: string };

    beforeAll(async () => {
      server = await startServer({ engine });
      const siteId = uid('bl');
      const kiosk = uid('K');
      const cash = uid('C');
      const keys = await createBurgerSite(server, {
        siteId,
        skuPrefix: `${siteId}-`,
        machines: { [kiosk]: 'kiosk', [cash]: 'cash' },
      });
      site = { siteId, kiosk: keys[kiosk]!, cash: keys[cash]! };
    });
    afterAll(async () => {
      await server?.close();
    });

    const refused = (res: { status: number; body: any }, field: string) => {
      expect(res.status, JSON.stringify(res.body)).toBe(400);
      expect(res.body.error).toMatchObject({ code: 'VALIDATION_FAILED', details: [{ field }] });
    };

    it('POST /v1/orders/:id/ready', async () => {
      const { orderId } = await openCashSession(server, site, 150);
      expect((await server.request('GET', `/v1/orders/${orderId}`)).body.status).toBe('PAID');
      refused(
        await server.request('POST', `/v1/orders/${orderId}/ready`, { body: { notify: false } }),
        'notify',
      );
      expect((await server.request('GET', `/v1/orders/${orderId}`)).body.status).toBe('PAID');
      const ready = await server.request('POST', `/v1/orders/${orderId}/ready`, { body: {} });
      expect(ready.status).toBe(200);
      expect(ready.body.status).toBe('COMPLETED');
    });

    it('POST /v1/alerts/:id/ack', async () => {
      // Money for an order number nobody has: unallocated, with an alert.
      const stray = `X${randomBytes(3).toString('hex').toUpperCase()}`;
      const money = await server.request('POST', '/api/cash-payment/update', {
        token: null,
        headers: { 'x-api-key': site.cash },
        body: { orderNumber: stray, amountAdded: 20 },
      });
      expect(money.status).toBeGreaterThanOrEqual(400);
      const alert = (
        (await server.request('GET', '/v1/alerts?open=true&limit=200')).body.items as {
          id: string;
          kind: string;
          message: string;
          acknowledgedAt?: string | null;
        }[]
      ).find((a) => a.kind === 'UNALLOCATED_CASH' && a.message.includes(stray));
      expect(alert).toBeDefined();
      refused(
        await server.request('POST', `/v1/alerts/${alert!.id}/ack`, { body: { silently: true } }),
        'silently',
      );
      const open = async () =>
        ((await server.request('GET', '/v1/alerts?open=true&limit=200')).body.items as { id: string }[]).some(
          (a) => a.id === alert!.id,
        );
      expect(await open()).toBe(true);
      expect((await server.request('POST', `/v1/alerts/${alert!.id}/ack`)).status).toBe(200);
      expect(await open()).toBe(false);
    });

    it('POST /v1/machines/:id/table-qr/rotate', async () => {
      const table = uid('T');
      await server.createMachine(table, { kind: 'table', siteId: site.siteId });
      refused(
        await server.request('POST', `/v1/machines/${table}/table-qr/rotate`, { body: { keepOld: true } }),
        'keepOld',
      );
      // Still the first version: the refused call rotated nothing.
      const rotated = await server.request('POST', `/v1/machines/${table}/table-qr/rotate`);
      expect(rotated.status).toBe(200);
      expect(rotated.body.version).toBe(2);
    });
  });
}
