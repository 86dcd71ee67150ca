// Cash payment routes of the earlier restaurant kiosk (CONTRACTS.md §9), served unchanged
// for its Raspberry Pi peripherals client: field names and major-unit amounts are kept.
import { Type } from '@sinclair/typebox';
import { AppError, rateLimited, validation } from '../platform/errors.js';
import type { Authenticator } from '../platform/http/auth.js';
import type { FastifyTypebox } from '../platform/http/fastify.js';
import { errors, OrderNumber } from '../platform/http/schemas.js';
import { MAX_MAJOR_AMOUNT, currencyExponent, majorToMinor, minorToMajor } from '../platform/money.js';
import type { CatalogService } from '../modules/catalog/catalog.service.js';
import type { CashService, SessionView } from '../modules/cash/cash.service.js';
import type { WindowCounter } from '../platform/http/login-guard.js';
import { deviceScope, siteOf, type DeviceScope } from './device-scope.js';

const CASH_DEVICE_KINDS = ['kiosk', 'cash'] as const;

const Amount = Type.Number({
  exclusiveMinimum: 0,
  maximum: MAX_MAJOR_AMOUNT,
  description: 'major units of the site’s currency, at most its ISO 4217 decimals (PHP 2, UGX 0, KWD 3)',
});

/** Major units of `currency` → minor units, refusing more decimals than the currency has. */
const toMinor = (field: string, value: number, currency: string): number => {
  const minor = majorToMinor(value, currency);
  if (minor === undefined || minor <= 0) {
    const decimals = currencyExponent(currency);
    throw validation(`${field} must be a positive amount with at most ${decimals} decimals (${currency})`);
  }
  return minor;
};

const statusBody = (v: SessionView) => ({
  success: true as const,
  orderNumber: v.orderNumber,
  amountInserted: v.amountInserted,
  totalRequired: v.totalRequired,
  remainingAmount: v.remainingAmount,
  change: v.change,
  status: v.status,
  startedAt: v.startedAt,
  completedAt: v.completedAt,
  currency: v.currency,
});

export function restaurantCashRoutes(
  app: FastifyTypebox,
  deps: {
    auth: Authenticator;
    catalog: CatalogService;
    cash: CashService;
    /**
     * Key-less cancels naming an order number the site has no session for, per site and client address in
     * 10-minute windows; past `max` the address's key-less cancels are refused (guessing).
     */
    keylessMisses: { counter: WindowCounter; max: number };
  },
): void {
  const { cash } = deps;
  // The contract's devices here are the kiosk and its cash unit; a printer's, vending machine's or
  // water kiosk's key of the same site must not be able to report cash or open sessions.
  const scopeOf = (request: Parameters<typeof deviceScope>[1], staff: boolean) =>
    deviceScope(deps, request, { staff, machineKinds: CASH_DEVICE_KINDS });

  app.post(
    '/api/cash-payment/init',
    {
      schema: {
        tags: ['cash (kiosk compatible)'],
        summary: 'Open the cash session of an order (kiosk key or staff)',
        description:
          'An unknown orderNumber is 404 NOT_FOUND, unless the site has adHocCashOrders: true ' +
          'and the caller is staff or a kiosk of that site: then an item-less order of totalAmount is created.',
        body: Type.Object(
          {
            orderNumber: OrderNumber,
            totalAmount: Type.Number({ exclusiveMinimum: 0, maximum: 10_000_000 }),
          },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Object({
            success: Type.Literal(true),
            sessionId: Type.String(),
            orderNumber: Type.String(),
            totalRequired: Type.Number(),
            amountInserted: Type.Number(),
            remainingAmount: Type.Number(),
            status: Type.String(),
            orderToken: Type.String(),
          }),
          ...errors(400, 401, 403, 404, 409),
        },
      },
    },
    async (request) => {
      const scope = await scopeOf(request, true);
      // An order the server has not seen may be opened (on a site that allows it) by staff or a kiosk.
      const adHocCaller = scope.machineId === null || scope.machineKind === 'kiosk';
      const currency = await cash.currencyFor(scope.tenantId, scope.siteId, request.body.orderNumber);
      const totalMinor = toMinor('totalAmount', request.body.totalAmount, currency);
      const v = await cash.init(scope, { orderNumber: request.body.orderNumber, totalMinor, adHocCaller });
      const orderToken = await deps.auth.issueOrderToken({
        tenantId: scope.tenantId,
        room: `order:${v.orderNumber}`,
      });
      return {
        success: true as const,
        sessionId: v.sessionId,
        orderNumber: v.orderNumber,
        totalRequired: v.totalRequired,
        amountInserted: v.amountInserted,
        remainingAmount: v.remainingAmount,
        status: v.status,
        orderToken,
      };
    },
  );

  app.get(
    '/api/cash-payment/active-sessions',
    {
      schema: {
        tags: ['cash (kiosk compatible)'],
        summary: 'Open cash sessions of the caller’s site, oldest first',
        response: {
          200: Type.Object({
            success: Type.Literal(true),
            count: Type.Integer(),
            sessions: Type.Array(
              Type.Object({
                orderNumber: Type.String(),
                totalRequired: Type.Number(),
                amountInserted: Type.Number(),
                remainingAmount: Type.Number(),
                startedAt: Type.String(),
                kioskId: Type.Optional(
                  Type.String({
                    description:
                      'the machine whose key opened the session; cash agents pick their own kiosk’s session by it',
                  }),
                ),
              }),
            ),
          }),
          ...errors(401, 403),
        },
      },
    },
    async (request) => {
      const scope = await scopeOf(request, true);
      const sessions = await cash.activeSessions(scope.tenantId, siteOf(scope));
      return {
        success: true as const,
        count: sessions.length,
        sessions: sessions.map((s) => ({
          orderNumber: s.orderNumber,
          totalRequired: s.totalRequired,
          amountInserted: s.amountInserted,
          remainingAmount: s.remainingAmount,
          startedAt: s.startedAt,
          ...(s.kioskId ? { kioskId: s.kioskId } : {}),
        })),
      };
    },
  );

  app.post(
    '/api/cash-payment/update',
    {
      schema: {
        tags: ['cash (kiosk compatible)'],
        summary: 'Record one bill or coin (device key); repeated eventIds count once',
        body: Type.Object(
          {
            orderNumber: OrderNumber,
            amountAdded: Amount,
            eventId: Type.Optional(Type.String({ minLength: 1, maxLength: 100 })),
            kind: Type.Optional(Type.Union([Type.Literal('BILL'), Type.Literal('COIN')])),
          },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Object({
            success: Type.Literal(true),
            orderNumber: Type.String(),
            amountInserted: Type.Number(),
            totalRequired: Type.Number(),
            remainingAmount: Type.Number(),
            isComplete: Type.Boolean(),
            change: Type.Number(),
            status: Type.String(),
          }),
          ...errors(400, 401, 403, 404, 409),
        },
      },
    },
    async (request) => {
      const scope = await scopeOf(request, false);
      const b = request.body;
      const siteId = siteOf(scope);
      const currency = await cash.currencyFor(scope.tenantId, siteId, b.orderNumber);
      const input = {
        orderNumber: b.orderNumber,
        amountMinor: toMinor('amountAdded', b.amountAdded, currency),
        ...(b.eventId ? { eventId: b.eventId } : {}),
        ...(b.kind ? { kind: b.kind } : {}),
      };
      const outcome = await cash.insert({ ...scope, siteId }, input);
      if (outcome.kind === 'unallocated') {
        const details = {
          recordedAmount: minorToMajor(outcome.amountMinor, outcome.currency),
          amountMinor: outcome.amountMinor,
          currency: outcome.currency,
          reason: outcome.reason,
          orderNumber: outcome.orderNumber,
        };
        if (outcome.reason === 'UNKNOWN_ORDER' || outcome.reason === 'WRONG_SITE') {
          throw new AppError(
            'NOT_FOUND',
            `no order ${outcome.orderNumber} here; the money was recorded as unallocated cash`,
            details,
          );
        }
        throw new AppError(
          'INVALID_STATE',
          `order ${outcome.orderNumber} is not waiting for cash (${outcome.reason}); the money was recorded as unallocated cash`,
          details,
        );
      }
      const v = outcome.view;
      return {
        success: true as const,
        orderNumber: v.orderNumber,
        amountInserted: v.amountInserted,
        totalRequired: v.totalRequired,
        remainingAmount: v.remainingAmount,
        isComplete: v.status === 'PAID',
        change: v.change,
        status: v.status,
      };
    },
  );

  const cancelResponse = {
    200: Type.Object({
      success: Type.Literal(true),
      orderNumber: Type.String(),
      amountReturned: Type.Number(),
      status: Type.String(),
    }),
    ...errors(400, 401, 403, 404, 409),
  };
  const noKey = () => new AppError('UNAUTHORIZED', 'send X-API-Key with the key of a machine of this site');
  const hasSession = (tenantId: string, siteId: string | null, orderNumber: string) =>
    cash.status(tenantId, siteId, orderNumber).then(
      () => true,
      (err: unknown) => {
        if (err instanceof AppError && err.code === 'NOT_FOUND') return false;
        throw err;
      },
    );
  const cancel = async (
    request: Parameters<typeof deviceScope>[1],
    orderNumber: string,
    keyless: boolean,
  ) => {
    const scope = keyless
      ? await deviceScope(deps, request, {
          staff: true,
          machineKinds: CASH_DEVICE_KINDS,
          keylessCashCancel: true,
        })
      : await scopeOf(request, true);
    if (scope.keyless) return keylessCancel(scope, orderNumber, request.ip);
    return cancelled(await cash.cancel(scope, orderNumber));
  };
  const cancelled = (v: Awaited<ReturnType<CashService['cancel']>>) => ({
    success: true as const,
    orderNumber: v.orderNumber,
    amountReturned: v.refundDue,
    status: v.status,
  });
  /** Runs a count of the key-less guard; without its store the cancel is refused, never unguarded. */
  const guard = async <T>(work: () => Promise<T>): Promise<T> => {
    try {
      return await work();
    } catch {
      throw new AppError(
        'UNAVAILABLE',
        'key-less cancels are briefly unavailable (the rate-limit store does not answer)',
      );
    }
  };
  const keylessCancel = async (scope: DeviceScope, orderNumber: string, address: string) => {
    const { counter, max } = deps.keylessMisses;
    // Per site (the sessions being guessed at) and address.
    const key = `keyless-cancel:${scope.tenantId}:${scope.siteId}:${address}`;
    // Every attempt takes one of the `max` misses before it is tried, in one atomic step (checking
    // first and counting after a miss let concurrent guesses all pass the check), and gives it back
    // when it turns out no miss. So at most `max` misses per window, however many arrive at once.
    const place = await guard(() => counter.reserve(key, max));
    if (!place.granted) {
      // Places still being tried may come back within moments (a valid cancel gives its place
      // back): then a second is the honest wait, not the rest of the window.
      if (place.inFlight > 0)
        throw rateLimited(
          1_000,
          (s) =>
            `too many key-less cancels at once from this address (KEYLESS_CANCEL_MAX_MISSES: ${max} in ` +
            `10 minutes, ${place.inFlight} still being tried); retry in ${s} s, or give the reader a key`,
        );
      throw rateLimited(
        place.ttlMs,
        (s) =>
          `too many key-less cancels of orders this site has no session for from this address ` +
          `(KEYLESS_CANCEL_MAX_MISSES: ${max} in 10 minutes); retry in ${s} s, or give the reader a key`,
      );
    }
    let missed = false;
    const miss = (err: AppError): never => {
      missed = true;
      throw err;
    };
    try {
      // The key-less grant covers the site's own sessions: another site's order is answered as
      // without the grant (401), an unknown one as a keyed cancel (404). Both are misses.
      const here = await hasSession(scope.tenantId, scope.siteId, orderNumber);
      if (!here && (await hasSession(scope.tenantId, null, orderNumber))) return miss(noKey());
      try {
        return cancelled(await cash.cancel(scope, orderNumber));
      } catch (err) {
        if (err instanceof AppError && err.code === 'NOT_FOUND') return miss(err);
        throw err;
      }
    } finally {
      // A settle the store does not take only leaves the place counted (and in flight) until the
      // window ends (stricter, never looser); the cancel's own answer stands.
      await (missed ? place.keep() : place.release()).catch(() => undefined);
    }
  };
  app.post(
    '/api/cash-payment/cancel/:orderNumber',
    {
      schema: {
        tags: ['cash (kiosk compatible)'],
        summary: 'Cancel a cash session; the answer says how much to give back',
        description:
          'Device key or staff. Under /sites/<id>/ of a site with keylessCashCancel: true, also ' +
          'without any credentials (the legacy cash reader), for that site’s own sessions.',
        params: Type.Object({ orderNumber: OrderNumber }),
        response: cancelResponse,
      },
    },
    async (request) => cancel(request, request.params.orderNumber, true),
  );
  app.post(
    '/api/cash-payment/cancel',
    {
      schema: {
        tags: ['cash (kiosk compatible)'],
        summary: 'Cancel a cash session (order number in the body)',
        body: Type.Object({ orderNumber: OrderNumber }, { additionalProperties: false }),
        response: cancelResponse,
      },
    },
    async (request) => cancel(request, request.body.orderNumber, false),
  );

  app.get(
    '/api/cash-payment/status/:orderNumber',
    {
      schema: {
        tags: ['cash (kiosk compatible)'],
        summary: 'Where a cash session stands (device key, staff, or the order’s orderToken as Bearer)',
        params: Type.Object({ orderNumber: OrderNumber }),
        response: {
          200: Type.Object({
            success: Type.Literal(true),
            orderNumber: Type.String(),
            amountInserted: Type.Number(),
            totalRequired: Type.Number(),
            remainingAmount: Type.Number(),
            change: Type.Number(),
            status: Type.String(),
            startedAt: Type.String(),
            completedAt: Type.Union([Type.String(), Type.Null()]),
            currency: Type.String({ description: 'ISO 4217; the amounts are major units of it' }),
          }),
          ...errors(400, 401, 403, 404),
        },
      },
    },
    async (request) => {
      const bearer = /^Bearer\s+(.+)$/i.exec(request.headers.authorization ?? '')?.[1];
      const orderScope = bearer ? await deps.auth.verifyOrderToken(bearer) : null;
      if (orderScope) {
        if (orderScope.room !== `order:${request.params.orderNumber}`)
          throw new AppError('FORBIDDEN', 'this token is for another order');
        return statusBody(await cash.status(orderScope.tenantId, null, request.params.orderNumber));
      }
      const scope = await scopeOf(request, true);
      return statusBody(await cash.status(scope.tenantId, scope.siteId, request.params.orderNumber));
    },
  );
}
