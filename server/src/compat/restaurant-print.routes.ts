// Receipt print queue routes of the earlier restaurant kiosk (CONTRACTS.md §10). Printers
// poll (or long-poll with ?wait=) and report; jobs are leased so a vanished printer's job
// returns to the queue.
import { Type } from '@sinclair/typebox';
import type { Authenticator } from '../platform/http/auth.js';
import type { FastifyTypebox } from '../platform/http/fastify.js';
import { errors } from '../platform/http/schemas.js';
import type { CatalogService } from '../modules/catalog/catalog.service.js';
import type { PrintNotifier } from '../modules/printing/print-notifier.js';
import type { PrintingService } from '../modules/printing/printing.service.js';
import { deviceScope, siteOf } from './device-scope.js';

const JobParams = Type.Object({ jobId: Type.String({ minLength: 1, maxLength: 64 }) });
const Receipt = Type.Object(
  {},
  {
    additionalProperties: true,
    description:
      'restaurantName, orderNumber, items[{productName, quantity, lineTotal}], subTotal, tax, totalAmount, paymentMethod, amountPaid?, change?, currency (major units; currency: ISO 4217 code, which sets the decimals)',
  },
);

/**
 * The machines whose keys use the print queue: receipt printers, and kiosks that print their own
 * receipts (the earlier kiosk's computer runs its printer). Another machine of the site (a cash
 * unit, a vending machine…) may not read receipts nor take or report jobs.
 */
const PRINT_DEVICE_KINDS = ['printer', 'kiosk'] as const;

export function restaurantPrintRoutes(
  app: FastifyTypebox,
  deps: { auth: Authenticator; catalog: CatalogService; printing: PrintingService; notifier: PrintNotifier },
): void {
  const { printing, notifier } = deps;
  const scopeOf = (request: Parameters<typeof deviceScope>[1]) =>
    deviceScope(deps, request, { staff: true, keylessPrinter: true, machineKinds: PRINT_DEVICE_KINDS });

  app.get(
    '/api/receipt/queue/next',
    {
      schema: {
        tags: ['printing (kiosk compatible)'],
        summary:
          'Lease the next receipt of the printer’s site; 204 when none (wait up to ?wait= seconds for one)',
        querystring: Type.Object(
          { wait: Type.Optional(Type.Integer({ minimum: 0, maximum: 30 })) },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Object({
            hasPrintJob: Type.Literal(true),
            jobId: Type.String(),
            receipt: Receipt,
            queuedAt: Type.String(),
            receiptData: Type.Object({ jobId: Type.String(), receipt: Receipt, queuedAt: Type.String() }),
          }),
          204: Type.Null(),
          ...errors(400, 401, 403),
        },
      },
    },
    async (request, reply) => {
      let scope = await scopeOf(request);
      const deadline = Date.now() + (request.query.wait ?? 0) * 1000;
      const gone = new AbortController();
      request.raw.once('close', () => gone.abort());
      for (let woken = false; ; woken = true) {
        if (gone.signal.aborted) return reply.code(204).send(null);
        // Woken after a wait: the credentials are checked again (a key rotated, a machine moved or
        // a staff user disabled meanwhile is refused, not handed the next receipt).
        if (woken) scope = await scopeOf(request);
        const printerScope = { tenantId: scope.tenantId, siteId: siteOf(scope), printer: scope.printer };
        // Listen before looking: a job queued between an empty look and the wait still wakes it.
        const wakeUp =
          deadline > Date.now() ? notifier.listen(printerScope.tenantId, printerScope.siteId) : undefined;
        try {
          const job = await printing.leaseNext(printerScope);
          // The earlier client reads `receiptData.{jobId, receipt}`; the contract names them at the top level.
          if (job) return { hasPrintJob: true as const, ...job, receiptData: job };
          const remaining = deadline - Date.now();
          if (remaining <= 0 || !wakeUp) return reply.code(204).send(null);
          await wakeUp.wait(remaining, gone.signal);
        } finally {
          wakeUp?.close();
        }
      }
    },
  );

  app.post(
    '/api/receipt/queue/complete/:jobId',
    {
      schema: {
        tags: ['printing (kiosk compatible)'],
        summary:
          'The receipt printed (by the printer holding its lease; a repeat is fine, anyone else’s is 409)',
        params: JobParams,
        response: { 200: Type.Object({ success: Type.Literal(true) }), ...errors(400, 401, 403, 404, 409) },
      },
    },
    async (request) => {
      const scope = await scopeOf(request);
      await printing.complete(request.params.jobId, {
        tenantId: scope.tenantId,
        siteId: siteOf(scope),
        printer: scope.printer,
      });
      return { success: true as const };
    },
  );

  app.post(
    '/api/receipt/queue/failed/:jobId',
    {
      schema: {
        tags: ['printing (kiosk compatible)'],
        summary:
          'The receipt did not print; it is retried (FAILED after 5 attempts). Only the lease holder’s report counts; any other changes nothing and answers the job’s status',
        params: JobParams,
        body: Type.Optional(
          Type.Object(
            { error: Type.Optional(Type.String({ maxLength: 2000 })) },
            { additionalProperties: false },
          ),
        ),
        response: {
          200: Type.Object({ success: Type.Literal(true), status: Type.String() }),
          ...errors(400, 401, 403, 404),
        },
      },
      // The body is optional, but the schema validator would reject a missing one as "must be object".
      preValidation: async (request) => {
        request.body ??= {};
      },
    },
    async (request) => {
      const scope = await scopeOf(request);
      const status = await printing.reportFailure(
        request.params.jobId,
        { tenantId: scope.tenantId, siteId: siteOf(scope), printer: scope.printer },
        request.body?.error ?? 'printer reported a failure',
      );
      return { success: true as const, status };
    },
  );

  app.get(
    '/api/receipt/queue/status',
    {
      schema: {
        tags: ['printing (kiosk compatible)'],
        summary: 'Queue counts of the printer’s site',
        response: {
          200: Type.Object({
            success: Type.Literal(true),
            pending: Type.Integer(),
            leased: Type.Integer(),
            printed: Type.Integer(),
            failed: Type.Integer(),
          }),
          ...errors(401, 403),
        },
      },
    },
    async (request) => {
      const scope = await scopeOf(request);
      return { success: true as const, ...(await printing.counts(scope.tenantId, siteOf(scope))) };
    },
  );

  app.get(
    '/api/receipt/queue/status/:jobId',
    {
      schema: {
        tags: ['printing (kiosk compatible)'],
        summary: 'One job',
        params: JobParams,
        response: {
          200: Type.Object({
            success: Type.Literal(true),
            jobId: Type.String(),
            status: Type.String(),
            attempts: Type.Integer(),
            printedAt: Type.Optional(Type.String()),
            error: Type.Optional(Type.String()),
          }),
          ...errors(400, 401, 403, 404),
        },
      },
    },
    async (request) => {
      const scope = await scopeOf(request);
      return {
        success: true as const,
        ...(await printing.jobStatus(request.params.jobId, {
          tenantId: scope.tenantId,
          siteId: siteOf(scope),
        })),
      };
    },
  );
}
