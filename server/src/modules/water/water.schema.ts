// Request and response schemas of the water kiosk firmware API (CONTRACTS §11, docs/water.md).
import { Type } from '@sinclair/typebox';

const TxnId = Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9_.:-]+$' });
const Ml = Type.Integer({ minimum: 0, maximum: 1_000_000 });
const Tap = Type.Integer({ minimum: 0, maximum: 64 });
/** ISO text, or Unix seconds or milliseconds. */
const KioskTime = Type.Union([
  Type.String({ minLength: 1, maxLength: 40 }),
  Type.Integer({ minimum: 1, maximum: 99_999_999_999_999 }),
]);

export const DispenseVerificationBody = Type.Object(
  {
    kiosk_id: Type.String({ minLength: 1, maxLength: 64 }),
    user_id: Type.Union([Type.String({ minLength: 1, maxLength: 32 }), Type.Integer({ minimum: 0 })], {
      description: 'the customer’s phone number, in any form',
    }),
    pin: Type.Union([
      // Anything but 4 digits is a malformed body, never a wrong PIN counted toward the lockout.
      Type.String({ minLength: 4, maxLength: 4, pattern: '^[0-9]{4}$' }),
      Type.Integer({ minimum: 0, maximum: 9999 }),
    ]),
    volume_ml: Type.Integer({ minimum: 1, maximum: 100_000 }),
    /**
     * Marks a retry: the same timestamp again is the same request. Optional, as on the earlier
     * hardware server, whose documented request has none; without it every request is a new one.
     */
    timestamp: Type.Optional(KioskTime),
    /** The earlier firmware's message type (`dispense_request`), ignored. */
    type: Type.Optional(Type.String({ maxLength: 40 })),
  },
  { additionalProperties: false },
);

export const DispenseResponse = Type.Object({
  type: Type.Literal('dispense_response'),
  user_id: Type.String(),
  volume_ml: Type.Integer(),
  approved: Type.Boolean(),
  reason: Type.String(),
  code: Type.String(),
  authorization_id: Type.Optional(Type.String()),
  timestamp: Type.String(),
  kiosk_id: Type.String(),
  user_data: Type.Optional(
    Type.Object({
      phone_number: Type.String(),
      account_id: Type.String(),
      full_name: Type.Union([Type.String(), Type.Null()]),
      active: Type.Boolean(),
      credits: Type.Integer({ description: 'whole litres of credit' }),
      credits_ml: Type.Integer(),
      remaining_today_ml: Type.Union([Type.Integer(), Type.Null()], { description: 'null: no daily limit' }),
    }),
  ),
});

export const SettleBody = Type.Object(
  {
    authorizationId: Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9_-]+$' }),
    dispensedMl: Ml,
    kioskTxnId: TxnId,
    tap: Type.Optional(Tap),
  },
  { additionalProperties: false },
);

export const SettleResponse = Type.Object({
  ok: Type.Literal(true),
  duplicate: Type.Optional(Type.Literal(true)),
  creditsMl: Type.Integer(),
});

export const BatchBody = Type.Object(
  {
    transactions: Type.Array(
      Type.Object(
        {
          kioskTxnId: TxnId,
          userId: Type.String({ minLength: 1, maxLength: 32 }),
          dispensedMl: Ml,
          at: KioskTime,
          tap: Type.Optional(Tap),
          authorizationId: Type.Optional(
            Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9_-]+$' }),
          ),
        },
        { additionalProperties: false },
      ),
      { minItems: 1, maxItems: 500 },
    ),
  },
  { additionalProperties: false },
);

export const BatchResponse = Type.Object({
  results: Type.Array(
    Type.Object({
      kioskTxnId: Type.String(),
      status: Type.Union([Type.Literal('applied'), Type.Literal('duplicate'), Type.Literal('rejected')]),
      code: Type.Optional(Type.String()),
    }),
  ),
});

export const CacheQuery = Type.Object(
  { since: Type.Optional(Type.Integer({ minimum: 0, maximum: 2_147_483_647 })) },
  { additionalProperties: false },
);

export const CacheResponse = Type.Object({
  kioskId: Type.String(),
  version: Type.Integer(),
  generatedAt: Type.String(),
  full: Type.Boolean(),
  customers: Type.Array(
    Type.Object({
      accountId: Type.String(),
      phone: Type.String(),
      verifier: Type.String({ description: 'hex HMAC-SHA256(kioskSecret, "<accountId>:<pin>")' }),
      status: Type.String({ description: 'active | inactive | locked' }),
      subscriptionExpiresAt: Type.Union([Type.String(), Type.Null()]),
      creditsMl: Type.Integer(),
      dailyLimitMl: Type.Union([Type.Integer(), Type.Null()]),
      usedTodayMl: Type.Integer(),
    }),
  ),
  removed: Type.Array(Type.String(), { description: 'account ids no longer in this kiosk’s cache' }),
  signature: Type.String({ description: 'hex HMAC-SHA256(kioskSecret, canonical text); docs/water.md' }),
});

export const HeartbeatBody = Type.Object(
  {
    firmware: Type.String({ minLength: 1, maxLength: 64 }),
    taps: Type.Array(
      Type.Object(
        {
          tap: Tap,
          status: Type.String({ minLength: 1, maxLength: 32 }),
          totalMl: Type.Optional(Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER })),
        },
        { additionalProperties: false },
      ),
      { maxItems: 16 },
    ),
    signalDbm: Type.Optional(Type.Integer({ minimum: -200, maximum: 0 })),
    sdFreeMb: Type.Optional(Type.Integer({ minimum: 0, maximum: 10_000_000 })),
    cacheVersion: Type.Optional(Type.Integer({ minimum: 0, maximum: 2_147_483_647 })),
  },
  { additionalProperties: false },
);

export const KioskStatusSchema = Type.Object({
  machineId: Type.String(),
  siteId: Type.String(),
  status: Type.Union([Type.Literal('ONLINE'), Type.Literal('OFFLINE')]),
  firmware: Type.Union([Type.String(), Type.Null()]),
  taps: Type.Array(
    Type.Object({ tap: Type.Integer(), status: Type.String(), totalMl: Type.Optional(Type.Integer()) }),
  ),
  signalDbm: Type.Union([Type.Integer(), Type.Null()]),
  sdFreeMb: Type.Union([Type.Integer(), Type.Null()]),
  cacheVersion: Type.Union([Type.Integer(), Type.Null()]),
  cacheIssuedVersion: Type.Integer(),
  lastHeartbeatAt: Type.Union([Type.String(), Type.Null()]),
});
