// The staff API of water customers and plans (CONTRACTS.md §11): roles admin and
// customer_service; another tenant's customer is "not found". Each route parses, authorizes and
// calls one service function; the rules and the audit are in customers-staff.ts and plans.ts.
import { Type } from '@sinclair/typebox';
import { validation } from '../../platform/errors.js';
import {
  actingExistingTenant,
  actingTenant,
  tenantFilter,
  type StaffRole,
} from '../../platform/http/auth.js';
import type { FastifyTypebox } from '../../platform/http/fastify.js';
import { Cursor, EntityId, errors, Page } from '../../platform/http/schemas.js';
import type { PaymentsService } from '../payments/payments.service.js';
import type { DispenseView } from '../water/customer-dispenses.js';
import type { CustomersStaff } from './customers-staff.js';
import {
  CreateCustomerBody,
  CreatePlanBody,
  CreditsBody,
  CustomerPaymentSchema,
  CustomerSchema,
  DispenseSchema,
  EntrySchema,
  PinResetResponse,
  PlanId,
  PlanSchema,
  ReasonBody,
  SubscriptionBody,
  UpdateCustomerBody,
} from './customers.schema.js';
import type { Plans } from './plans.js';

/** Who may see and change water customers and plans. */
export const CUSTOMER_STAFF: readonly StaffRole[] = ['admin', 'customer_service'];

const IdParams = Type.Object({ id: EntityId });
const TenantQuery = Type.Object({ tenantId: Type.Optional(EntityId) }, { additionalProperties: false });
const PageQuery = Type.Object(
  { cursor: Type.Optional(Cursor), limit: Type.Integer({ minimum: 1, maximum: 100, default: 25 }) },
  { additionalProperties: false },
);
const tags = ['customers'];

/** An action with nothing to say (no body, no content type) is the same as `{}`. */
const noBodyIsEmpty = async (request: { body: unknown }): Promise<void> => {
  if (request.body === undefined || request.body === null) request.body = {};
};

export interface CustomersRoutesDeps {
  staff: CustomersStaff;
  plans: Plans;
  payments: Pick<PaymentsService, 'list'>;
  dispenses(
    tenantId: string,
    customerId: string,
    page: { cursor?: string; limit: number },
  ): Promise<{ items: DispenseView[]; nextCursor: string | null }>;
  /** Whether a tenant exists (ADMIN_TOKEN registering a customer or a plan in a tenant it names). */
  tenantExists(tenantId: string): Promise<boolean>;
}

const page = (q: { cursor?: string | undefined; limit: number }) => ({
  limit: q.limit,
  ...(q.cursor !== undefined ? { cursor: q.cursor } : {}),
});

export function customersRoutes(app: FastifyTypebox, deps: CustomersRoutesDeps): void {
  const { staff } = deps;
  const ok = { ...errors(400, 401, 403, 404) };

  app.post(
    '/v1/customers',
    {
      schema: {
        tags,
        summary: 'Register a water customer (phone in any form; optional 4-digit PIN)',
        querystring: TenantQuery,
        body: CreateCustomerBody,
        response: { 201: CustomerSchema, ...errors(400, 401, 403, 404, 409) },
      },
    },
    async (request, reply) => {
      const p = await request.staff(CUSTOMER_STAFF);
      const tenantId = await actingExistingTenant(p, request.query.tenantId, deps.tenantExists);
      const { phone, fullName, pin, siteIds, reason } = request.body;
      const customer = await staff.register(
        {
          tenantId,
          phone,
          ...(fullName !== undefined ? { fullName } : {}),
          ...(pin !== undefined ? { pin } : {}),
          ...(siteIds !== undefined ? { siteIds } : {}),
          ...(reason !== undefined ? { reason } : {}),
        },
        p.actor,
      );
      return reply.code(201).send(customer);
    },
  );

  app.get(
    '/v1/customers',
    {
      schema: {
        tags,
        summary: 'Search customers: phone in any form, account id, or part of the name; newest first',
        querystring: Type.Object(
          {
            query: Type.Optional(Type.String({ maxLength: 120 })),
            cursor: Type.Optional(Cursor),
            limit: Type.Integer({ minimum: 1, maximum: 100, default: 25 }),
          },
          { additionalProperties: false },
        ),
        response: { 200: Page(CustomerSchema), ...errors(400, 401, 403) },
      },
    },
    async (request) => {
      const p = await request.staff(CUSTOMER_STAFF);
      const { query, cursor, limit } = request.query;
      return staff.list(tenantFilter(p), {
        limit,
        ...(query !== undefined ? { query } : {}),
        ...(cursor !== undefined ? { cursor } : {}),
      });
    },
  );

  app.get(
    '/v1/customers/:id',
    { schema: { tags, summary: 'One customer', params: IdParams, response: { 200: CustomerSchema, ...ok } } },
    async (request) => {
      const p = await request.staff(CUSTOMER_STAFF);
      return staff.get(tenantFilter(p), request.params.id);
    },
  );

  app.patch(
    '/v1/customers/:id',
    {
      schema: {
        tags,
        summary: 'Change name, active, daily limit or sites (audited with the reason)',
        params: IdParams,
        body: UpdateCustomerBody,
        response: { 200: CustomerSchema, ...ok },
      },
    },
    async (request) => {
      const p = await request.staff(CUSTOMER_STAFF);
      const { reason, ...changes } = request.body;
      if (Object.keys(changes).length === 0) {
        throw validation('nothing to change: name fullName, active, dailyLimitMl or siteIds');
      }
      return staff.update(tenantFilter(p), request.params.id, changes, p.actor, reason);
    },
  );

  app.post(
    '/v1/customers/:id/pin-reset',
    {
      preValidation: noBodyIsEmpty,
      schema: {
        tags,
        summary: 'Send the customer a new PIN by SMS (without an SMS provider: the PIN, once)',
        params: IdParams,
        body: Type.Optional(ReasonBody),
        response: { 200: PinResetResponse, ...ok },
      },
    },
    async (request) => {
      const p = await request.staff(CUSTOMER_STAFF);
      return staff.resetPin(tenantFilter(p), request.params.id, p.actor, request.body?.reason);
    },
  );

  app.post(
    '/v1/customers/:id/unlock',
    {
      preValidation: noBodyIsEmpty,
      schema: {
        tags,
        summary: 'Lift a PIN lockout (5 wrong PINs)',
        params: IdParams,
        body: Type.Optional(ReasonBody),
        response: { 200: CustomerSchema, ...ok },
      },
    },
    async (request) => {
      const p = await request.staff(CUSTOMER_STAFF);
      return staff.unlock(tenantFilter(p), request.params.id, p.actor, request.body?.reason);
    },
  );

  app.post(
    '/v1/customers/:id/credits',
    {
      schema: {
        tags,
        summary: 'Add (positive) or take (negative) water credit, with a reason',
        params: IdParams,
        body: CreditsBody,
        response: { 200: CustomerSchema, ...errors(400, 401, 403, 404, 409) },
      },
    },
    async (request) => {
      const p = await request.staff(CUSTOMER_STAFF);
      const { deltaMl, reason, adjustmentId } = request.body;
      return staff.adjustCredit(tenantFilter(p), request.params.id, deltaMl, p.actor, reason, adjustmentId);
    },
  );

  app.post(
    '/v1/customers/:id/subscription',
    {
      schema: {
        tags,
        summary: 'Extend by a plan’s days, set the expiry, or end the subscription (expiresAt: null)',
        params: IdParams,
        body: SubscriptionBody,
        response: { 200: CustomerSchema, ...ok },
      },
    },
    async (request) => {
      const p = await request.staff(CUSTOMER_STAFF);
      const { reason, ...input } = request.body;
      return staff.setSubscription(tenantFilter(p), request.params.id, input, p.actor, reason);
    },
  );

  app.get(
    '/v1/customers/:id/ledger',
    {
      schema: {
        tags,
        summary: 'Ledger entries of the customer’s accounts (credit in ml, wallets), newest first',
        params: IdParams,
        querystring: PageQuery,
        response: { 200: Page(EntrySchema), ...ok },
      },
    },
    async (request) => {
      const p = await request.staff(CUSTOMER_STAFF);
      const result = await staff.ledgerEntries(tenantFilter(p), request.params.id, page(request.query));
      return { items: result.items.map(({ transferId: _t, ...e }) => e), nextCursor: result.nextCursor };
    },
  );

  app.get(
    '/v1/customers/:id/payments',
    {
      schema: {
        tags,
        summary: 'The customer’s payments (plans, wallet top-ups), newest first',
        params: IdParams,
        querystring: PageQuery,
        response: { 200: Page(CustomerPaymentSchema), ...ok },
      },
    },
    async (request) => {
      const p = await request.staff(CUSTOMER_STAFF);
      const customer = await staff.row(tenantFilter(p), request.params.id);
      const result = await deps.payments.list({
        tenantId: customer.tenant_id,
        customerId: customer.id,
        ...page(request.query),
      });
      return {
        items: result.items.map((x) => ({
          id: x.id,
          purpose: x.purpose,
          planId: x.planId,
          method: x.method,
          provider: x.provider,
          amountMinor: x.amountMinor,
          currency: x.currency,
          status: x.status,
          refundedMinor: x.refundedMinor,
          createdAt: x.createdAt,
          completedAt: x.completedAt,
        })),
        nextCursor: result.nextCursor,
      };
    },
  );

  app.get(
    '/v1/customers/:id/dispenses',
    {
      schema: {
        tags,
        summary: 'Water the customer took from kiosks, newest first',
        params: IdParams,
        querystring: PageQuery,
        response: { 200: Page(DispenseSchema), ...ok },
      },
    },
    async (request) => {
      const p = await request.staff(CUSTOMER_STAFF);
      const row = await staff.row(tenantFilter(p), request.params.id);
      return deps.dispenses(row.tenant_id, row.id, page(request.query));
    },
  );

  app.post(
    '/v1/water/plans',
    {
      schema: {
        tags: ['plans'],
        summary: 'Create a water plan (subscription: days; credit: creditMl)',
        querystring: TenantQuery,
        body: CreatePlanBody,
        response: { 201: PlanSchema, ...errors(400, 401, 403, 404, 409) },
      },
    },
    async (request, reply) => {
      const p = await request.staff(CUSTOMER_STAFF);
      const tenantId = await actingExistingTenant(p, request.query.tenantId, deps.tenantExists);
      const plan = await deps.plans.create(tenantId, request.body, p.actor);
      return reply.code(201).send(plan);
    },
  );

  app.patch(
    '/v1/water/plans/:id',
    {
      schema: {
        tags: ['plans'],
        summary: 'Take a water plan off sale (active: false) or put it back on sale',
        params: Type.Object({ id: PlanId }),
        querystring: TenantQuery,
        body: Type.Object({ active: Type.Boolean() }, { additionalProperties: false }),
        response: { 200: PlanSchema, ...errors(400, 401, 403, 404) },
      },
    },
    async (request) => {
      const p = await request.staff(CUSTOMER_STAFF);
      return deps.plans.setActive(
        actingTenant(p, request.query.tenantId),
        request.params.id,
        request.body.active,
        p.actor,
      );
    },
  );

  app.get(
    '/v1/water/plans',
    {
      schema: {
        tags: ['plans'],
        summary: 'The tenant’s water plans, cheapest first',
        querystring: TenantQuery,
        response: { 200: Page(PlanSchema), ...errors(400, 401, 403) },
      },
    },
    async (request) => {
      const p = await request.staff(CUSTOMER_STAFF);
      return { items: await deps.plans.list(actingTenant(p, request.query.tenantId)), nextCursor: null };
    },
  );
}
