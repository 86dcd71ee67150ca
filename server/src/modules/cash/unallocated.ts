// Unallocated cash: money a machine took that no order could use. It sits on the ledger in the
// site's unallocated_cash account until staff resolve it, once: RETURNED to the customer
// (→ external), KEPT (→ revenue), APPLIED to an order's open cash session exactly like a bill
// inserted there (→ revenue, and the payment may complete), or VOID: a device's repeated report
// of money that is not in the machine (→ external, as if never recorded). Each is audited.
//
// A device that sends no eventId cannot be told from a retry: the earlier restaurant kiosk's cash
// reader sends every refused report up to 3 times, 2 s apart. Nothing is dropped; an item that
// repeats the same report within REPEAT_WINDOW_MS names the first one (`possibleRepeatOf`).
import type { UnallocatedCashView } from '@kioskhub/protocol';
import { sql } from 'kysely';
import { nowIso, newId, type Db, type Executor } from '../../platform/db/database.js';
import type { UnallocatedCashTable } from '../../platform/db/schema.js';
import { AppError } from '../../platform/errors.js';
import { formatMinor, minorToMajor } from '../../platform/money.js';
import type { AlertsService } from '../alerts/alerts.service.js';
import { recordAudit } from '../audit/audit.service.js';
import type { LedgerService } from '../ledger/ledger.service.js';
import type { CatalogService } from '../catalog/catalog.service.js';
import type {
  CashScope,
  CashService,
  InsertInput,
  InsertOutcome,
  UnallocatedReason,
} from './cash.service.js';

type Row = Omit<UnallocatedCashTable, 'status'> & { status: string };

export type ResolveAction = 'returned' | 'applied' | 'kept' | 'void';
const STATUS_OF = { returned: 'RETURNED', applied: 'APPLIED', kept: 'KEPT', void: 'VOID' } as const;

/**
 * A report without an eventId this soon after the same one (machine, order, amount) is flagged as
 * a possible repeat: the earlier cash reader retries a refused report twice, 2 s apart, each
 * attempt taking up to its 10 s timeout.
 */
export const REPEAT_WINDOW_MS = 30_000;

export const toUnallocatedView = (r: Row): UnallocatedCashView => ({
  id: r.id,
  tenantId: r.tenant_id,
  siteId: r.site_id,
  machineId: r.machine_id,
  orderNumber: r.order_number,
  amount: minorToMajor(Number(r.amount_minor), r.currency),
  amountMinor: Number(r.amount_minor),
  currency: r.currency,
  reason: r.reason,
  eventId: r.event_id,
  possibleRepeatOf: r.repeat_of,
  recordedAt: r.recorded_at,
  status: r.status as UnallocatedCashView['status'],
  resolvedAt: r.resolved_at,
  resolvedBy: r.resolved_by,
  resolutionNote: r.resolution_note,
  appliedOrderNumber: r.applied_order_number,
});

/**
 * Records money no order could use (never dropped), in the caller's transaction: the item, the
 * ledger transfer external → unallocated_cash of the site, and an UNALLOCATED_CASH alert.
 * `currency`: what the amount is in when it is not the site's (money for an order of the site,
 * in that order's currency).
 */
export async function parkUnallocated(
  ex: Executor,
  deps: {
    catalog: Pick<CatalogService, 'siteRow'>;
    alerts: Pick<AlertsService, 'raise'>;
    ledger: LedgerService;
  },
  scope: CashScope,
  input: InsertInput,
  reason: UnallocatedReason,
  currency?: string,
): Promise<InsertOutcome> {
  const site = await deps.catalog.siteRow(scope.tenantId, scope.siteId, ex);
  const unit = currency ?? site.currency;
  const id = newId();
  const recordedAt = nowIso();
  const repeatOf = input.eventId === undefined ? await repeatedItem(ex, scope, input, recordedAt) : null;
  await ex
    .insertInto('unallocated_cash')
    .values({
      id,
      tenant_id: scope.tenantId,
      site_id: scope.siteId,
      machine_id: scope.machineId,
      order_number: input.orderNumber,
      event_id: input.eventId ?? null,
      kind: input.kind ?? null,
      amount_minor: input.amountMinor,
      currency: unit,
      reason,
      recorded_at: recordedAt,
      repeat_of: repeatOf,
    })
    .execute();
  await recordAudit(ex, {
    tenantId: scope.tenantId,
    actor: scope.actor,
    action: 'unallocated_cash.recorded',
    subjectType: 'unallocated_cash',
    subjectId: id,
    after: {
      status: 'OPEN',
      reason,
      orderNumber: input.orderNumber,
      amountMinor: input.amountMinor,
      currency: unit,
      eventId: input.eventId ?? null,
      machineId: scope.machineId,
      possibleRepeatOf: repeatOf,
    },
  });
  // The money is in the machine: from the outside world into the site's unallocated cash.
  const { tenantId, siteId } = scope;
  const from = await deps.ledger.external(ex, tenantId, unit);
  const to = await deps.ledger.siteAccount(ex, tenantId, siteId, 'unallocated_cash', unit);
  await deps.ledger.transfer(ex, {
    tenantId,
    from: from.id,
    to: to.id,
    amount: input.amountMinor,
    unit,
    cause: { type: 'unallocated_cash', id },
    memo: `${reason}, order ${input.orderNumber}`,
  });
  const amount = `${formatMinor(input.amountMinor, unit)} ${unit}`;
  const what = `${amount} for order ${input.orderNumber}`;
  await deps.alerts.raise(ex, {
    tenantId: scope.tenantId,
    kind: 'UNALLOCATED_CASH',
    subjectType: 'machine',
    subjectId: scope.machineId ?? scope.siteId,
    message:
      repeatOf === null
        ? `${what} could not be applied (${reason})`
        : `${what} could not be applied (${reason}); probably a repeat of ${repeatOf} (the same report ` +
          'without an eventId moments earlier): count the cash box, and void it if the money is not there',
  });
  const { amountMinor, orderNumber } = input;
  return { kind: 'unallocated', reason, amountMinor, currency: unit, orderNumber };
}

/**
 * The item a report without an eventId probably repeats: the latest one without an eventId for
 * the same amount and order from the same machine at the same site, recorded within
 * REPEAT_WINDOW_MS; the first item of that run is named.
 */
async function repeatedItem(
  ex: Executor,
  scope: CashScope,
  input: InsertInput,
  now: string,
): Promise<string | null> {
  const since = new Date(Date.parse(now) - REPEAT_WINDOW_MS).toISOString();
  const earlier = await ex
    .selectFrom('unallocated_cash')
    .select(['id', 'repeat_of'])
    .where('tenant_id', '=', scope.tenantId)
    .where('site_id', '=', scope.siteId)
    .where('order_number', '=', input.orderNumber)
    .where('event_id', 'is', null)
    .where('amount_minor', '=', input.amountMinor)
    .where('machine_id', scope.machineId === null ? 'is' : '=', scope.machineId)
    .where('recorded_at', '>=', since)
    .orderBy('recorded_at', 'desc')
    .orderBy('id', 'desc')
    .limit(1)
    .executeTakeFirst();
  return earlier ? (earlier.repeat_of ?? earlier.id) : null;
}

export function createUnallocatedService(deps: {
  db: Db;
  dialect: 'sqlite' | 'postgres';
  cash: Pick<CashService, 'insertIn'>;
  ledger: LedgerService;
}) {
  const { db, ledger } = deps;

  return {
    /**
     * Resolves an OPEN item (tenantId null: any tenant, ADMIN_TOKEN). Everything happens in one
     * transaction: the status, the ledger transfer, the cash insert for `applied`, the audit.
     */
    async resolve(
      tenantId: string | null,
      id: string,
      input: { action: ResolveAction; orderNumber?: string; note: string },
      actor: string,
    ): Promise<UnallocatedCashView> {
      return db.transaction().execute(async (tx) => {
        let q = tx.selectFrom('unallocated_cash').selectAll().where('id', '=', id);
        if (tenantId !== null) q = q.where('tenant_id', '=', tenantId);
        if (deps.dialect === 'postgres') q = q.modifyEnd(sql`for update`);
        const row = await q.executeTakeFirst();
        if (!row) throw new AppError('NOT_FOUND', `unallocated cash "${id}" does not exist`);
        if (row.status !== 'OPEN') {
          throw new AppError('INVALID_STATE', `unallocated cash "${id}" is already ${row.status}`);
        }
        const status = STATUS_OF[input.action];
        const resolved: Row = {
          ...row,
          status,
          resolved_at: nowIso(),
          resolved_by: actor,
          resolution_note: input.note,
          applied_order_number: input.action === 'applied' ? (input.orderNumber ?? null) : null,
        };
        const claimed = await tx
          .updateTable('unallocated_cash')
          .set({
            status,
            resolved_at: resolved.resolved_at,
            resolved_by: actor,
            resolution_note: input.note,
            applied_order_number: resolved.applied_order_number,
          })
          .where('id', '=', id)
          .where('status', '=', 'OPEN')
          .executeTakeFirst();
        if (Number(claimed.numUpdatedRows) !== 1) {
          throw new AppError('INVALID_STATE', `unallocated cash "${id}" was resolved meanwhile`);
        }

        const amount = Number(row.amount_minor);
        const siteId = row.site_id ?? 'default';
        if (input.action === 'applied') {
          const orderNumber = input.orderNumber!;
          const scope = { tenantId: row.tenant_id, siteId, machineId: row.machine_id, actor };
          const insert = {
            orderNumber,
            amountMinor: amount,
            eventId: `unallocated:${id}`,
            ...(row.kind ? { kind: row.kind } : {}),
          };
          const outcome = await deps.cash.insertIn(tx, scope, insert, { currency: row.currency });
          if (outcome.kind === 'unallocated') {
            const why =
              outcome.reason === 'WRONG_SITE'
                ? `is not an order of site ${siteId}`
                : `is not waiting for cash (${outcome.reason})`;
            throw new AppError('INVALID_STATE', `order ${orderNumber} ${why}; nothing changed`);
          }
        }
        const from = await ledger.siteAccount(tx, row.tenant_id, siteId, 'unallocated_cash', row.currency);
        // Returned: back to the customer. Applied: it joins the order's payment as if inserted
        // now, and that payment's settlement posts the order's revenue. Kept: the site's revenue.
        // Void: it never was in the machine, so the recording is reversed (back to external).
        const to =
          input.action === 'kept'
            ? await ledger.siteAccount(tx, row.tenant_id, siteId, 'revenue', row.currency)
            : await ledger.external(tx, row.tenant_id, row.currency);
        await ledger.transfer(tx, {
          tenantId: row.tenant_id,
          from: from.id,
          to: to.id,
          amount,
          unit: row.currency,
          cause: { type: 'unallocated_cash', id },
          memo: `${status.toLowerCase()}: ${input.note}`,
        });
        const view = toUnallocatedView(resolved);
        await recordAudit(tx, {
          tenantId: row.tenant_id,
          actor,
          action: `unallocated_cash.${input.action}`,
          subjectType: 'unallocated_cash',
          subjectId: id,
          before: toUnallocatedView(row),
          after: view,
        });
        return view;
      });
    },
  };
}

export type UnallocatedService = ReturnType<typeof createUnallocatedService>;
