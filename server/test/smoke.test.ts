import { SimulatedMachine } from '@kioskhub/machine-simulator';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { engines, eventually, qrCredited, startServer, type TestServer } from './harness.js';

describe.each(engines())('vending pipeline end to end (%s)', (engine) => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer({ engine });
  });
  afterAll(async () => {
    await server?.close();
  });

  it('a signed qr_code.credited dispenses once on a connected v2 machine', async () => {
    const m = await server.createVendingMachine('SMOKE1', 2000);
    const machine = new SimulatedMachine({
      url: server.url,
      machineId: m.id,
      key: m.key,
      dispenseDelayMs: 10,
      heartbeatMs: 1000,
    });
    await machine.start();
    try {
      const res = await server.postWebhook(qrCredited(m.qrCodeId, 2000));
      expect(res.status).toBe(200);
      expect(res.body.ok).toBe(true);
      const orderId = res.body.orderId as string;
      const order = await eventually(async () => {
        const o = await server.request('GET', `/v1/orders/${orderId}`);
        return o.body.status === 'COMPLETED' ? o.body : undefined;
      });
      expect(order.machineId).toBe('SMOKE1');
      expect(machine.dispensed.map((d) => d.orderId)).toEqual([orderId]);
    } finally {
      machine.stop();
    }
  });
});
