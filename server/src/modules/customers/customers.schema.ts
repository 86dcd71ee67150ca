// Request and response schemas of the customers and plans API (CONTRACTS.md §11); the OpenAPI
// document is generated from these.
import { Type } from '@sinclair/typebox';
import { Currency, EntityId } from '../../platform/http/schemas.js';

const Nullable = <T extends ReturnType<typeof Type.String>>(t: T) => Type.Union([t, Type.Null()]);

export const Reason = Type.String({ minLength: 1, maxLength: 500, description: 'why, for the audit log' });
export const Phone = Type.String({
  minLength: 3,
  maxLength: 32,
  description: 'any form: 0712345678, 254712345678, +254712345678',
});
export const Pin = Type.String({ pattern: '^[0-9]{4}$', description: 'exactly 4 digits; never returned' });
export const FullName = Type.String({ minLength: 1, maxLength: 120 });
export const SiteIds = Type.Array(EntityId, { maxItems: 100, description: '[] = every site' });
export const Ml = Type.Integer({ minimum: 0, maximum: 1_000_000_000 });

export const CustomerSchema = Type.Object({
  id: Type.String(),
  accountId: Type.String({ description: '`TSF` + 6 characters' }),
  phone: Type.String({ description: 'E.164' }),
  fullName: Type.Union([Type.String(), Type.Null()]),
  registered: Type.Boolean({ description: 'has a PIN' }),
  active: Type.Boolean(),
  subscription: Type.Union([
    Type.Object({ planId: Type.Union([Type.String(), Type.Null()]), expiresAt: Type.String() }),
    Type.Null(),
  ]),
  dailyLimitMl: Type.Union([Type.Integer(), Type.Null()]),
  creditsMl: Type.Integer(),
  usedTodayMl: Type.Integer(),
  pinLocked: Type.Boolean(),
  siteIds: Type.Array(Type.String()),
  createdAt: Type.String(),
});

export const CreateCustomerBody = Type.Object(
  {
    phone: Phone,
    fullName: Type.Optional(Nullable(FullName)),
    pin: Type.Optional(Pin),
    siteIds: Type.Optional(SiteIds),
    reason: Type.Optional(Reason),
  },
  { additionalProperties: false },
);

export const UpdateCustomerBody = Type.Object(
  {
    fullName: Type.Optional(Nullable(FullName)),
    active: Type.Optional(Type.Boolean()),
    dailyLimitMl: Type.Optional(Type.Union([Ml, Type.Null()])),
    siteIds: Type.Optional(SiteIds),
    reason: Type.Optional(Reason),
  },
  { additionalProperties: false },
);

export const ReasonBody = Type.Object({ reason: Type.Optional(Reason) }, { additionalProperties: false });

export const CreditsBody = Type.Object(
  {
    deltaMl: Type.Integer({
      minimum: -1_000_000_000,
      maximum: 1_000_000_000,
      description: 'signed: positive adds credit, negative takes it',
    }),
    reason: Reason,
    adjustmentId: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 64,
        pattern: '^[A-Za-z0-9_.:-]+$',
        description:
          'your id for this adjustment: the same id again (a retry, a second click) changes nothing',
      }),
    ),
  },
  { additionalProperties: false },
);

export const SubscriptionBody = Type.Object(
  {
    planId: Type.Optional(EntityId),
    expiresAt: Type.Optional(
      Type.Union([Type.String({ format: 'date-time' }), Type.Null()], {
        description: 'exact expiry; null ends the subscription',
      }),
    ),
    reason: Type.Optional(Reason),
  },
  { additionalProperties: false },
);

export const PinResetResponse = Type.Union([
  Type.Object({ sent: Type.Literal(true) }),
  Type.Object({
    sent: Type.Literal(false),
    pin: Type.String({ description: 'only when no SMS provider is configured; shown once' }),
  }),
]);

export const EntrySchema = Type.Object({
  id: Type.String(),
  accountId: Type.String(),
  amount: Type.Integer({ description: 'signed, in the account’s unit' }),
  unit: Type.String(),
  cause: Type.Object({ type: Type.String(), id: Type.String() }),
  memo: Type.Optional(Type.String()),
  createdAt: Type.String(),
});

export const DispenseSchema = Type.Object({
  id: Type.String(),
  kioskId: Type.String(),
  tap: Type.Union([Type.Integer(), Type.Null()]),
  heldMl: Type.Integer(),
  dispensedMl: Type.Union([Type.Integer(), Type.Null()]),
  status: Type.String({ description: 'HELD | SETTLED | RELEASED | OFFLINE' }),
  flagged: Type.Boolean(),
  at: Type.String(),
  settledAt: Type.Union([Type.String(), Type.Null()]),
});

export const CustomerPaymentSchema = Type.Object({
  id: Type.String(),
  purpose: Type.String(),
  planId: Type.Union([Type.String(), Type.Null()]),
  method: Type.String(),
  provider: Type.Union([Type.String(), Type.Null()]),
  amountMinor: Type.Integer(),
  currency: Type.String(),
  status: Type.String(),
  refundedMinor: Type.Integer(),
  createdAt: Type.String(),
  completedAt: Type.Union([Type.String(), Type.Null()]),
});

export const PlanSchema = Type.Object({
  id: Type.String(),
  name: Type.String(),
  kind: Type.Union([Type.Literal('subscription'), Type.Literal('credit')]),
  priceMinor: Type.Integer(),
  currency: Type.String(),
  days: Type.Union([Type.Integer(), Type.Null()]),
  creditMl: Type.Union([Type.Integer(), Type.Null()]),
  dailyLimitMl: Type.Union([Type.Integer(), Type.Null()]),
  active: Type.Boolean(),
  createdAt: Type.String(),
});

/** A plan's id, chosen by staff: what customers type after BUY. */
export const PlanId = Type.String({ minLength: 1, maxLength: 32, pattern: '^[A-Za-z0-9_-]+$' });

export const CreatePlanBody = Type.Object(
  {
    id: PlanId,
    name: Type.String({ minLength: 1, maxLength: 80 }),
    kind: Type.Union([Type.Literal('subscription'), Type.Literal('credit')]),
    priceMinor: Type.Integer({ minimum: 1, maximum: 1_000_000_000_000 }),
    currency: Currency,
    days: Type.Optional(Type.Integer({ minimum: 1, maximum: 3660 })),
    creditMl: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000_000 })),
    dailyLimitMl: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000_000 })),
  },
  { additionalProperties: false },
);
