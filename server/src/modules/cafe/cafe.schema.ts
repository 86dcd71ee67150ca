// Wire schemas of the cafe routes (they feed /openapi.json).
import { Type, type TSchema } from '@sinclair/typebox';
import { Currency, EntityId, Sku } from '../../platform/http/schemas.js';
import { PAYMENT_STATUSES } from '../payments/settlement.js';
import { CAFE_METHODS } from './cafe-payments.js';
import { KITCHEN_STATUSES } from './cafe-orders.js';
import { TIP_SPLITS } from './cafe-tables.js';

export const Nullable = <T extends TSchema>(t: T) => Type.Union([t, Type.Null()]);
/** An object documented by its main fields; the rest is passed through (see docs/cafe.md). */
export const Open = (props: Record<string, TSchema>, description?: string) =>
  Type.Object(props, { additionalProperties: true, ...(description ? { description } : {}) });

export const TipMinor = Type.Integer({ minimum: 0, maximum: 100_000_000, description: 'minor units' });

export const BankAccountSchema = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 70, description: 'account holder, as the bank knows it' }),
    iban: Type.String({ minLength: 15, maxLength: 42, description: 'checked with its ISO 13616 checksum' }),
    bic: Type.Optional(Type.String({ minLength: 8, maxLength: 11 })),
  },
  { additionalProperties: false },
);

/** The cafe fields `PATCH /v1/sites/:id` also accepts. */
export const cafeSiteFields = {
  tipPresetsPercent: Type.Optional(
    Type.Array(Type.Integer({ minimum: 0, maximum: 100 }), {
      minItems: 1,
      maxItems: 8,
      description: 'tip choices shown to guests, whole percents',
    }),
  ),
  tipSplit: Type.Optional(
    Type.String({ enum: [...TIP_SPLITS], description: 'pool: tips shared; server: to the table’s server' }),
  ),
  bankAccount: Type.Optional(Nullable(BankAccountSchema)),
  cardGateway: Type.Optional(Nullable(Type.String({ enum: ['stripe'] }))),
  payLater: Type.Optional(
    Type.Boolean({ description: 'cash orders go to the kitchen before they are paid' }),
  ),
};

export const CafeSettingsSchema = Type.Object({
  tipPresetsPercent: Type.Array(Type.Integer()),
  tipSplit: Type.String({ enum: [...TIP_SPLITS] }),
  bankAccount: Nullable(
    Type.Object({ name: Type.String(), iban: Type.String(), bic: Type.Optional(Type.String()) }),
  ),
  cardGateway: Nullable(Type.String()),
  payLater: Type.Boolean(),
});

export const CafeOrderSchema = Open(
  {
    id: Type.String(),
    orderNumber: Nullable(Type.String()),
    status: Type.String(),
    siteId: Nullable(Type.String()),
    tableId: Type.String(),
    amount: Type.Integer({ description: 'the order total without the tip (= subtotalMinor)' }),
    subtotalMinor: Type.Integer(),
    tipMinor: Type.Integer(),
    totalMinor: Type.Integer({ description: 'what the guest pays: subtotal + tip' }),
    currency: Type.String(),
    paidAt: Nullable(Type.String()),
  },
  'a table order',
);

/** An order's newest refund, as `payment_refunded` / `refund_updated` carry it (no reason, no note). */
export const GuestRefundSchema = Type.Object(
  {
    orderId: Type.String(),
    refundId: Type.String(),
    amountMinor: Type.Integer(),
    currency: Currency,
    destination: Type.String({ enum: ['original', 'refund_due', 'credit'] }),
    status: Type.String({ enum: ['PENDING', 'DUE', 'SUCCEEDED', 'FAILED'] }),
  },
  { additionalProperties: false },
);

/** A table order as its guest reads it: the order and its newest refund (null: none). */
export const GuestOrderSchema = Open(
  { ...CafeOrderSchema.properties, refund: Nullable(GuestRefundSchema) },
  'a table order and its newest refund',
);

export const OrderBody = Type.Object(
  {
    siteId: Type.String({ minLength: 1, maxLength: 64 }),
    tableId: Type.String({ minLength: 1, maxLength: 64 }),
    items: Type.Array(
      Type.Object(
        {
          sku: Sku,
          qty: Type.Integer({ minimum: 1, maximum: 99 }),
          notes: Type.Optional(Type.String({ maxLength: 200 })),
        },
        { additionalProperties: false },
      ),
      { minItems: 1, maxItems: 50 },
    ),
    tip: Type.Optional(
      Type.Union([
        Type.Object({ percent: Type.Integer({ minimum: 0, maximum: 100 }) }, { additionalProperties: false }),
        Type.Object({ amountMinor: TipMinor }, { additionalProperties: false }),
      ]),
    ),
  },
  { additionalProperties: false },
);

export const InitiateBody = Type.Object(
  {
    orderId: EntityId,
    method: Type.String({ enum: [...CAFE_METHODS] }),
    tipMinor: Type.Optional(TipMinor),
  },
  { additionalProperties: false },
);

export const PaymentStatusSchema = Open({
  paymentId: Type.String(),
  status: Type.String({ enum: [...PAYMENT_STATUSES] }),
  method: Type.String(),
  amountMinor: Type.Integer(),
  receivedMinor: Type.Integer(),
  refundedMinor: Type.Integer(),
  currency: Currency,
  orderId: Nullable(Type.String()),
  failureCode: Nullable(Type.String()),
});

export const KitchenBody = Type.Object(
  { status: Type.String({ enum: [...KITCHEN_STATUSES] }) },
  { additionalProperties: false },
);

export const Phone = Type.String({ minLength: 3, maxLength: 32 });
