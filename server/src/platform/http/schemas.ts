// Schema pieces shared by routes; the OpenAPI document is generated from these.
import { Type, type TSchema } from '@sinclair/typebox';
import { validation } from '../errors.js';

export const ErrorResponse = Type.Object(
  {
    error: Type.Object({
      code: Type.String(),
      message: Type.String(),
      details: Type.Optional(Type.Unknown()),
      requestId: Type.Optional(Type.String()),
    }),
  },
  { $id: 'ErrorResponse', description: 'Every 4xx/5xx answer' },
);

export const errorRef = Type.Unsafe<{ error: { code: string; message: string } }>({ $ref: 'ErrorResponse#' });

/** Standard error responses to merge into a route's `response`. */
export const errors = (...statuses: number[]): Record<number, TSchema> =>
  Object.fromEntries(statuses.map((s) => [s, errorRef]));

export const EntityId = Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9_-]+$' });
// A product's sku and an order number travel in URL paths: `.` and `..` alone are dot segments
// every URL parser removes (`/v1/products/..` is `/v1/`), so such an id could be made and never
// reached again.
const notDotSegment = '(?!\\.{1,2}$)';
export const Sku = Type.String({ minLength: 1, maxLength: 64, pattern: `^${notDotSegment}[A-Za-z0-9_.-]+$` });
export const OrderNumber = Type.String({
  minLength: 1,
  maxLength: 64,
  pattern: `^${notDotSegment}[A-Za-z0-9_.:#-]+$`,
});
export const IsoTime = Type.String({ format: 'date-time' });
export const Currency = Type.String({ pattern: '^[A-Z]{3}$' });
export const Limit = Type.Integer({ minimum: 1, maximum: 200, default: 50 });
export const Cursor = Type.String({ minLength: 1, maxLength: 64 });

export const Page = <T extends TSchema>(item: T) =>
  Type.Object({ items: Type.Array(item), nextCursor: Type.Union([Type.String(), Type.Null()]) });

/** A list that is always whole: every item in one page, `nextCursor` always null. */
export const OnePage = <T extends TSchema>(item: T) =>
  Type.Object({ items: Type.Array(item), nextCursor: Type.Null() });

/** An object whose fields the route does not pin down (views with their own documentation). */
export const OpenObject = Type.Object({}, { additionalProperties: true });

export const bearerSecurity = [{ bearer: [] }, { apiKey: [] }];

/**
 * For a write that takes no body: none, or `{}`. Anything else is refused like an unknown field
 * (`400 VALIDATION_FAILED`, naming it) before anything is read or changed (docs/api.md §1).
 */
export function expectNoBody(body: unknown): void {
  if (body === undefined) return;
  if (body !== null && typeof body === 'object' && !Array.isArray(body)) {
    const field = Object.keys(body)[0];
    if (field === undefined) return;
    throw validation(`body: unknown field "${field}"`, [
      { path: 'body', message: 'must NOT have additional properties', field },
    ]);
  }
  throw validation('body must be empty or an empty JSON object');
}
