// Fixtures for the dashboard tests: staff users per role and tenant, a second tenant with its
// own machine and order, and a minimal v1 machine that never answers (for NEEDS_REVIEW).
import { io, type Socket } from 'socket.io-client';
import { connected, eventually, qrCredited, type TestServer } from './harness.js';

export const PASSWORD = 'correct-horse-battery';

export async function staffToken(
  server: TestServer,
  email: string,
  role: string,
  tenantId?: string,
): Promise<string> {
  const created = await server.request('POST', '/v1/users', {
    body: { email, password: PASSWORD, role, ...(tenantId ? { tenantId } : {}) },
  });
  if (created.status !== 201)
    throw new Error(`user ${email}: ${created.status} ${JSON.stringify(created.body)}`);
  const login = await server.request('POST', '/v1/auth/login', {
    body: { email, password: PASSWORD },
    token: null,
  });
  if (login.status !== 200) throw new Error(`login ${email}: ${login.status}`);
  return login.body.token as string;
}

/** Tenant `other` with an admin and a staff user, a vending machine O01 and one paid order. */
export async function otherTenant(
  server: TestServer,
): Promise<{ adminToken: string; staffToken: string; machineId: string; orderId: string }> {
  const t = await server.request('POST', '/v1/tenants', { body: { id: 'other', name: 'Other Co' } });
  if (t.status !== 201) throw new Error(`tenant: ${t.status}`);
  const machine = await server.createVendingMachine('O01', 2000, 'other');
  const paid = await server.postWebhook(qrCredited(machine.qrCodeId, 2000));
  return {
    adminToken: await staffToken(server, 'admin@other.test', 'admin', 'other'),
    staffToken: await staffToken(server, 'staff@other.test', 'staff', 'other'),
    machineId: machine.id,
    orderId: paid.body.orderId as string,
  };
}

/** A v1 machine (default namespace) that takes its dispense and never reports a result. */
export async function silentV1Machine(url: string, machineId: string, key: string): Promise<Socket> {
  const socket = io(url, { transports: ['websocket'], reconnection: false, forceNew: true });
  await connected(socket);
  const ack = (await socket.timeout(5_000).emitWithAck('machine:connect', { machineId, token: key })) as {
    ok?: boolean;
  };
  if (!ack.ok) throw new Error(`v1 connect ${machineId}: ${JSON.stringify(ack)}`);
  return socket;
}

/** Waits until an order has the status. */
export function orderStatus(server: TestServer, orderId: string, status: string, timeoutMs = 10_000) {
  return eventually(
    async () => {
      const res = await server.request('GET', `/v1/orders/${orderId}`);
      return res.body?.status === status ? res.body : undefined;
    },
    timeoutMs,
    `order ${orderId} ${status}`,
  );
}
