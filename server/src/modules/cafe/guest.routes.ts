// The guest side of a cafe (`/api/…`): the menu of a table, orders, payments, the wallet. Guests
// carry a table token (the QR link), an order token (one order's status page) or a customer token
// (wallet sign-in); staff use their own tokens for verify, refund and adding credit.
import { Type } from '@sinclair/typebox';
import type { FastifyRequest } from 'fastify';
import { AppError } from '../../platform/errors.js';
import type { FastifyTypebox } from '../../platform/http/fastify.js';
import { requireStaff, tenantFilter, type Authenticator, type Principal } from '../../platform/http/auth.js';
import { Currency, EntityId, errors } from '../../platform/http/schemas.js';
import type { CafeOrders } from './cafe-orders.js';
import { paymentStatusView, type CafeMethod, type CafePayments, type Payer } from './cafe-payments.js';
import type { CafeTables, GuestTable } from './cafe-tables.js';
import {
  CafeOrderSchema,
  GuestOrderSchema,
  InitiateBody,
  Open,
  OrderBody,
  PaymentStatusSchema,
  Phone,
} from './cafe.schema.js';
import type { Wallet } from './wallet.js';

type Caller =
  | { kind: 'staff'; principal: Principal }
  | { kind: 'order'; tenantId: string; orderId: string }
  | { kind: 'customer'; tenantId: string; customerId: string; tableId?: string }
  | { kind: 'table'; guest: GuestTable };

const bearer = (request: FastifyRequest): string | undefined => {
  const header = request.headers['authorization'];
  return typeof header === 'string' ? /^Bearer\s+(\S+)$/i.exec(header.trim())?.[1] : undefined;
};

const STAFF = ['admin', 'customer_service', 'staff'] as const;
const REFUNDERS = ['admin', 'customer_service'] as const;

export function cafeGuestRoutes(
  app: FastifyTypebox,
  deps: {
    auth: Authenticator;
    tables: CafeTables;
    cafeOrders: CafeOrders;
    payments: CafePayments;
    wallet: Wallet;
    publicUrl: (request: FastifyRequest) => string;
  },
): void {
  const { auth, tables, cafeOrders, payments, wallet } = deps;

  const tableGuest = (request: FastifyRequest) => tables.guestTable(bearer(request));

  /** Whoever holds one of the cafe's tokens (or a staff credential). */
  async function caller(request: FastifyRequest): Promise<Caller> {
    const token = bearer(request);
    if (!token)
      throw new AppError(
        'UNAUTHORIZED',
        'send Authorization: Bearer <table, order, customer or staff token>',
      );
    const order = await auth.verifyOrderToken(token);
    if (order) {
      const match = /^order:(.+)$/.exec(order.room);
      if (match) return { kind: 'order', tenantId: order.tenantId, orderId: match[1]! };
    }
    const customer = await auth.verifyCustomerToken(token);
    if (customer) return { kind: 'customer', ...customer };
    const staff = await auth.fromToken(token);
    if (staff && staff.kind !== 'machine') return { kind: 'staff', principal: staff };
    return { kind: 'table', guest: await tables.guestTable(token) };
  }

  /** May this caller see this order? (404 otherwise, so ids are not probed.) */
  async function seeOrder(c: Caller, orderId: string) {
    const tenant =
      c.kind === 'staff' ? tenantFilter(c.principal) : c.kind === 'table' ? c.guest.tenantId : c.tenantId;
    const order = await cafeOrders.view(orderId, tenant);
    const mine =
      c.kind === 'staff' ||
      (c.kind === 'order' && c.orderId === order.id) ||
      (c.kind === 'table' && c.guest.tableId === order.tableId) ||
      (c.kind === 'customer' && (await payments.isPayer(order.id, c.customerId)));
    if (!mine) throw new AppError('NOT_FOUND', `order "${orderId}" does not exist`);
    return order;
  }

  app.get(
    '/api/menu',
    {
      schema: {
        tags: ['cafe'],
        summary: 'The menu of a table (table token as Bearer, or ?token=)',
        querystring: Type.Object(
          { token: Type.Optional(Type.String({ maxLength: 2048 })) },
          { additionalProperties: false },
        ),
        response: { 200: Open({ currency: Type.String() }), ...errors(401) },
      },
    },
    async (request) => cafeOrders.menu(await tables.guestTable(request.query.token ?? bearer(request))),
  );

  app.post(
    '/api/orders',
    {
      schema: {
        tags: ['cafe'],
        summary: 'A guest orders at a table (table token as Bearer)',
        body: OrderBody,
        response: {
          201: Open({ ...CafeOrderSchema.properties, orderToken: Type.String() }),
          ...errors(400, 401, 403, 404, 409),
        },
      },
    },
    async (request, reply) => {
      const guest = await tableGuest(request);
      const order = await cafeOrders.create(guest, request.body);
      const orderToken = await auth.issueOrderToken({ tenantId: guest.tenantId, room: `order:${order.id}` });
      return reply.code(201).send({ ...order, orderToken });
    },
  );

  app.get(
    '/api/orders/:id',
    {
      schema: {
        tags: ['cafe'],
        summary: 'A table order and its newest refund (order, table or staff token)',
        params: Type.Object({ id: EntityId }),
        response: { 200: GuestOrderSchema, ...errors(401, 404) },
      },
    },
    async (request) => {
      const order = await seeOrder(await caller(request), request.params.id);
      // The page's refund line after a reload: what payment_refunded / refund_updated said live.
      return { ...order, refund: await payments.latestRefund(order.id) };
    },
  );

  app.post(
    '/api/payments/initiate',
    {
      schema: {
        tags: ['cafe'],
        summary: 'Pay a table order: cash, wallet credit, bank transfer or card',
        body: InitiateBody,
        response: { 201: PaymentStatusSchema, ...errors(400, 401, 403, 404, 409, 503) },
      },
    },
    async (request, reply) => {
      const c = await caller(request);
      let payer: Payer;
      if (c.kind === 'table') payer = { kind: 'table', tenantId: c.guest.tenantId, tableId: c.guest.tableId };
      else if (c.kind === 'customer') {
        // Wallet sign-ins are bound to their table; one from before that binding signs in again.
        if (c.tableId === undefined)
          throw new AppError('UNAUTHORIZED', 'sign in to the wallet again from your table’s page');
        payer = c;
      } else
        throw new AppError('UNAUTHORIZED', 'pay with the table token, or the customer token for the wallet');
      const returnUrl = `${deps.publicUrl(request)}/t/order/${request.body.orderId}`;
      const answer = await payments.initiate(
        payer,
        { ...request.body, method: request.body.method as CafeMethod },
        returnUrl,
      );
      return reply.code(201).send(answer);
    },
  );

  /** The payment, if this caller may see it (404 otherwise, so ids are not probed). */
  async function seePayment(request: FastifyRequest, paymentId: string) {
    const c = await caller(request);
    const tenant =
      c.kind === 'staff' ? tenantFilter(c.principal) : c.kind === 'table' ? c.guest.tenantId : c.tenantId;
    const p = await payments.payment(paymentId, tenant);
    const hidden = new AppError('NOT_FOUND', `payment "${paymentId}" does not exist`);
    if (c.kind === 'customer' && p.customer_id !== c.customerId) throw hidden;
    if (c.kind !== 'staff' && c.kind !== 'customer') {
      if (!p.order_id) throw hidden;
      await seeOrder(c, p.order_id).catch(() => {
        throw hidden;
      });
    }
    return p;
  }

  app.get(
    '/api/payments/:id/status',
    {
      schema: {
        tags: ['cafe'],
        summary: 'Where a payment stands (order, table, customer or staff token)',
        params: Type.Object({ id: EntityId }),
        response: { 200: PaymentStatusSchema, ...errors(401, 404) },
      },
    },
    async (request) => paymentStatusView(await seePayment(request, request.params.id)),
  );

  app.get(
    '/api/payments/:id/epc',
    {
      schema: {
        tags: ['cafe'],
        summary: 'The EPC QR code of a pending bank transfer again (order, table, customer or staff token)',
        params: Type.Object({ id: EntityId }),
        response: {
          200: Open({
            epc: Open({ payload: Type.String(), reference: Type.String(), qrPngUrl: Type.String() }),
          }),
          ...errors(401, 404, 409, 503),
        },
      },
    },
    async (request) => payments.transferDetails(await seePayment(request, request.params.id)),
  );

  app.post(
    '/api/payments/:id/verify',
    {
      schema: {
        tags: ['cafe'],
        summary: 'Staff confirm a cash payment, or a bank transfer seen on the statement',
        params: Type.Object({ id: EntityId }),
        body: Type.Optional(
          Type.Object(
            {
              receivedMinor: Type.Optional(
                Type.Integer({ minimum: 1, maximum: 1_000_000_000, description: 'default: the amount due' }),
              ),
            },
            { additionalProperties: false },
          ),
        ),
        response: { 200: PaymentStatusSchema, ...errors(400, 401, 403, 404, 409) },
      },
    },
    async (request) => {
      const principal = await request.staff(STAFF);
      return payments.verify(
        request.params.id,
        tenantFilter(principal),
        request.body?.receivedMinor,
        principal.actor,
      );
    },
  );

  // Refunds: `POST /api/payments/:id/refund` of the payments module (a wallet payment goes back to
  // the wallet; `to: "credit"` with `customerId` for a payer who was not signed in).

  // ---- wallet -------------------------------------------------------------------------------

  app.post(
    '/api/customers/otp',
    {
      schema: {
        tags: ['cafe'],
        summary: 'Send a one-time wallet sign-in code by SMS (table token as Bearer)',
        body: Type.Object({ phone: Phone }, { additionalProperties: false }),
        response: {
          202: Type.Object({ sent: Type.Boolean(), expiresInSeconds: Type.Integer() }),
          ...errors(400, 401, 429, 503),
        },
      },
    },
    async (request, reply) => {
      const guest = await tableGuest(request);
      const site = await cafeOrders.site(guest);
      const out = await wallet.requestCode(guest.tenantId, request.body.phone, request.ip, site.name);
      return reply.code(202).send({ sent: true, ...out });
    },
  );

  app.post(
    '/api/customers/session',
    {
      schema: {
        tags: ['cafe'],
        summary: 'Exchange the SMS code for a customer token (table token as Bearer)',
        body: Type.Object(
          { phone: Phone, code: Type.String({ minLength: 1, maxLength: 12 }) },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Object({ token: Type.String(), customerId: Type.String() }),
          ...errors(400, 401, 429),
        },
      },
    },
    async (request) => {
      const guest = await tableGuest(request);
      const { currency } = await cafeOrders.site(guest);
      return wallet.signIn(guest.tenantId, request.body.phone, request.body.code, currency, guest.tableId);
    },
  );

  app.get(
    '/api/credits/balance',
    {
      schema: {
        tags: ['cafe'],
        summary: 'The signed-in customer’s wallet (customer token as Bearer)',
        querystring: Type.Object({ currency: Type.Optional(Currency) }, { additionalProperties: false }),
        response: {
          200: Open({ balanceMinor: Type.Integer(), currency: Type.String(), history: Type.Array(Open({})) }),
          ...errors(400, 401),
        },
      },
    },
    async (request) => {
      const token = bearer(request);
      const customer = token ? await auth.verifyCustomerToken(token) : null;
      if (!customer)
        throw new AppError('UNAUTHORIZED', 'sign in to the wallet first (customer token as Bearer)');
      return wallet.balance(customer.tenantId, customer.customerId, request.query.currency);
    },
  );

  app.post(
    '/api/credits/add',
    {
      schema: {
        tags: ['cafe'],
        summary: 'Staff add credit to a customer’s wallet (audited)',
        body: Type.Object(
          {
            customerId: EntityId,
            amountMinor: Type.Integer({ minimum: 1, maximum: 1_000_000_000 }),
            reason: Type.String({ minLength: 1, maxLength: 500 }),
            currency: Type.Optional(Currency),
          },
          { additionalProperties: false },
        ),
        response: {
          201: Open({ creditId: Type.String(), balanceMinor: Type.Integer(), currency: Type.String() }),
          ...errors(400, 401, 403, 404),
        },
      },
    },
    async (request, reply) => {
      const principal = await request.staff(REFUNDERS);
      requireStaff(principal, REFUNDERS);
      return reply.code(201).send(await wallet.add(tenantFilter(principal), request.body, principal.actor));
    },
  );
}
