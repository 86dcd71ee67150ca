// Money beyond what a payment asked for (an overpaid bank transfer, or a transfer for a payment
// that no longer takes money) is never kept silently: it goes to the payer's wallet when the payer
// is known, else to the site's unallocated money with an alert, for staff to return or keep.
import type { Executor } from '../../platform/db/database.js';
import type { PaymentRow } from '../../platform/db/schema.js';
import { recordAudit } from '../audit/audit.service.js';
import type { AlertsService } from '../alerts/alerts.service.js';
import type { CatalogService } from '../catalog/catalog.service.js';
import { parkUnallocated } from '../cash/unallocated.js';
import type { LedgerService } from '../ledger/ledger.service.js';
import type { OrdersService } from '../orders/orders.service.js';

export type SurplusReason = 'OVERPAID' | 'PAYMENT_NOT_PENDING' | 'PART_PAID_ENDED';
const MEMOS: Record<SurplusReason, string> = {
  OVERPAID: 'overpayment',
  PAYMENT_NOT_PENDING: 'paid after the payment had ended',
  PART_PAID_ENDED: 'part paid of a payment that ended unpaid',
};
export type SurplusDestination = 'wallet' | 'review';

export function createSurplus(deps: {
  ledger: LedgerService;
  catalog: Pick<CatalogService, 'siteRow'>;
  alerts: Pick<AlertsService, 'raise'>;
  /** The order a surplus belongs to: staff find it by its number. */
  orders: Pick<OrdersService, 'findRow'>;
}) {
  return async function allocateSurplus(
    ex: Executor,
    payment: PaymentRow,
    amountMinor: number,
    why: { reason: SurplusReason; eventId: string; actor: string },
  ): Promise<SurplusDestination> {
    const unit = payment.currency;
    if (payment.customer_id !== null) {
      const from = await deps.ledger.external(ex, payment.tenant_id, unit);
      const wallet = await deps.ledger.account(ex, {
        tenantId: payment.tenant_id,
        ownerType: 'customer',
        ownerId: payment.customer_id,
        kind: 'wallet',
        unit,
      });
      await deps.ledger.transfer(ex, {
        tenantId: payment.tenant_id,
        from: from.id,
        to: wallet.id,
        amount: amountMinor,
        unit,
        cause: { type: 'payment', id: payment.id },
        memo: MEMOS[why.reason],
      });
      await recordAudit(ex, {
        tenantId: payment.tenant_id,
        actor: why.actor,
        action: 'payment.surplus',
        subjectType: 'payment',
        subjectId: payment.id,
        after: { amountMinor, currency: unit, to: 'wallet', customerId: payment.customer_id, ...why },
      });
      return 'wallet';
    }
    const scope = {
      tenantId: payment.tenant_id,
      siteId: payment.site_id ?? 'default',
      machineId: payment.machine_id,
      actor: why.actor,
    };
    // Staff find the money by the number the guest and the receipt show, not the internal id.
    const order = payment.order_id ? await deps.orders.findRow(payment.order_id, ex) : undefined;
    const input = {
      orderNumber: order?.order_number ?? payment.order_id ?? payment.id,
      amountMinor,
      eventId: `${payment.provider ?? payment.method}:${why.eventId}`,
    };
    // In the payment's currency, whatever the site's is now (it may have changed since).
    await parkUnallocated(ex, deps, scope, input, why.reason, unit);
    return 'review';
  };
}

export type AllocateSurplus = ReturnType<typeof createSurplus>;
