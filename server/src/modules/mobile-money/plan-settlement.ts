// Settlement of purpose `plan`: a paid water plan applies once, in the transaction that recorded
// the money. A subscription extends from max(now, current expiry) by the plan's days (and sets
// the plan's daily limit); a plan with millilitres adds them to the customer's credit (tenant
// `water_issued` → customer `water_credit`). The money goes to revenue on the ledger. A payment
// whose amount or currency is not the one asked for applies nothing: it ends FAILED with
// AMOUNT_MISMATCH and an alert for staff, who refund or settle it by hand. On PostgreSQL the
// customer's row is locked first: two plan payments of one customer settling at once (two job
// runners) apply one after the other, the second extending from the first one's expiry.
import { SqliteAdapter } from 'kysely';
import type { Executor } from '../../platform/db/database.js';
import type { CustomerRow, PaymentRow, PlanRow } from '../../platform/db/schema.js';
import { formatMinor } from '../../platform/money.js';
import { enqueueOutbox } from '../../platform/outbox.js';
import type { AlertsService } from '../alerts/alerts.service.js';
import { recordAudit } from '../audit/audit.service.js';
import type { CustomersService } from '../customers/customers.service.js';
import { subscriptionRunChange } from '../customers/subscription-run.js';
import type { LedgerService } from '../ledger/ledger.service.js';
import type { Sms } from '../messaging/sms.js';
import type { Settlement, SettlementHandler } from '../payments/settlement.js';

const DAY_MS = 86_400_000;

/** What a customer whose plan payment cannot be applied (another amount or currency) is told. */
export const PLAN_NOT_APPLIED_SMS =
  'Your water plan payment arrived in a form we cannot apply. No plan was added; we will refund it.';

export const litres = (ml: number): string => `${(Math.round(ml / 100) / 10).toFixed(1)} L`;

export interface PlanSettlementDeps {
  ledger: Pick<LedgerService, 'account' | 'external' | 'transfer' | 'siteAccount'>;
  customers: Pick<CustomersService, 'get' | 'lockForUpdate' | 'plan' | 'update' | 'waterCredit'>;
  /** The settlement path: a plan payment whose amount does not fit is refused there. */
  payments: Pick<Settlement, 'refuse'>;
  alerts: Pick<AlertsService, 'raise'>;
  sms: Pick<Sms, 'queue'>;
  now?: () => number;
}

export function createPlanSettlement(deps: PlanSettlementDeps): SettlementHandler {
  const now = deps.now ?? Date.now;

  async function refuseMismatch(ex: Executor, payment: PaymentRow, why: string): Promise<void> {
    await deps.payments.refuse(ex, payment.id, 'AMOUNT_MISMATCH', new Date(now()).toISOString());
    await deps.alerts.raise(ex, {
      tenantId: payment.tenant_id,
      kind: 'PAYMENT_AMOUNT_MISMATCH',
      subjectType: 'payment',
      subjectId: payment.id,
      message: `Plan payment ${payment.id}: ${why}; no plan applied, refund or apply it by hand`,
    });
    await recordAudit(ex, {
      tenantId: payment.tenant_id,
      actor: 'system',
      action: 'payment.amount_mismatch',
      subjectType: 'payment',
      subjectId: payment.id,
      after: {
        amountMinor: Number(payment.amount_minor),
        receivedMinor: Number(payment.received_minor),
        why,
      },
    });
    // The wallet took the money: the customer is told it will be refunded, as when it came in
    // another currency (the payment ends here, not through intents, so no ended SMS follows).
    if (payment.customer_id !== null) {
      const customer = await deps.customers.get(payment.tenant_id, payment.customer_id, ex);
      await deps.sms.queue(ex, {
        tenantId: payment.tenant_id,
        to: customer.phone,
        text: PLAN_NOT_APPLIED_SMS,
        kind: 'payment_failed',
      });
    }
  }

  /**
   * The payment's customer, locked until the transaction ends on PostgreSQL (SQLite runs one
   * writer at a time): read unlocked, a concurrent settlement's new expiry would be overwritten.
   */
  async function lockedCustomer(ex: Executor, tenantId: string, id: string): Promise<CustomerRow> {
    if (!(ex.getExecutor().adapter instanceof SqliteAdapter)) {
      const row = await deps.customers.lockForUpdate(id, ex);
      if (row?.tenant_id === tenantId) return row;
    }
    return deps.customers.get(tenantId, id, ex);
  }

  async function revenue(ex: Executor, payment: PaymentRow, amount: number): Promise<void> {
    const external = await deps.ledger.external(ex, payment.tenant_id, payment.currency);
    const to =
      payment.site_id !== null
        ? await deps.ledger.siteAccount(ex, payment.tenant_id, payment.site_id, 'revenue', payment.currency)
        : await deps.ledger.account(ex, {
            tenantId: payment.tenant_id,
            ownerType: 'tenant',
            ownerId: payment.tenant_id,
            kind: 'revenue',
            unit: payment.currency,
          });
    await deps.ledger.transfer(ex, {
      tenantId: payment.tenant_id,
      from: external.id,
      to: to.id,
      amount,
      unit: payment.currency,
      cause: { type: 'payment', id: payment.id },
      memo: `water plan ${payment.plan_id ?? ''}`.trim(),
    });
  }

  async function addCredit(ex: Executor, customer: CustomerRow, plan: PlanRow, payment: PaymentRow) {
    const issued = await deps.ledger.account(ex, {
      tenantId: customer.tenant_id,
      ownerType: 'tenant',
      ownerId: customer.tenant_id,
      kind: 'water_issued',
      unit: 'ml',
    });
    const credit = await deps.customers.waterCredit(ex, customer.tenant_id, customer.id);
    await deps.ledger.transfer(ex, {
      tenantId: customer.tenant_id,
      from: issued.id,
      to: credit.id,
      amount: Number(plan.credit_ml),
      unit: 'ml',
      cause: { type: 'payment', id: payment.id },
      memo: `plan ${plan.id}`,
    });
    return credit.balance + Number(plan.credit_ml);
  }

  return async (ex, payment) => {
    if (!payment.customer_id || !payment.plan_id) {
      await refuseMismatch(ex, payment, 'the payment names no customer or plan');
      return;
    }
    const plan = await deps.customers.plan(payment.tenant_id, payment.plan_id, ex);
    const received = Number(payment.received_minor);
    if (!plan) return refuseMismatch(ex, payment, `plan ${payment.plan_id} does not exist`);
    // The price asked when the purchase started stands, even if the plan's price changed since.
    if (received !== Number(payment.amount_minor) || plan.currency !== payment.currency) {
      const got = formatMinor(received, payment.currency);
      const asked = formatMinor(Number(payment.amount_minor), payment.currency);
      return refuseMismatch(ex, payment, `received ${payment.currency} ${got}, asked ${asked}`);
    }
    const customer = await lockedCustomer(ex, payment.tenant_id, payment.customer_id);
    await revenue(ex, payment, received);

    const changes: {
      subscription_plan_id?: string;
      subscription_expires_at?: string;
      subscription_started_at?: string | null;
      subscription_prior_expires_at?: string | null;
      subscription_prior_started_at?: string | null;
      daily_limit_ml?: number;
    } = {};
    const days = plan.days === null ? 0 : Number(plan.days);
    if (days > 0) {
      const current = customer.subscription_expires_at ? Date.parse(customer.subscription_expires_at) : 0;
      const expiresAt = new Date(Math.max(now(), current) + days * DAY_MS).toISOString();
      changes.subscription_plan_id = plan.id;
      changes.subscription_expires_at = expiresAt;
      // Bought while none runs: the subscription starts now (offline water dated earlier is not its).
      Object.assign(changes, subscriptionRunChange(customer, expiresAt, now()));
      if (plan.daily_limit_ml !== null) changes.daily_limit_ml = Number(plan.daily_limit_ml);
    }
    const creditMl = plan.credit_ml === null ? 0 : Number(plan.credit_ml);
    const creditAfter = creditMl > 0 ? await addCredit(ex, customer, plan, payment) : undefined;
    if (Object.keys(changes).length > 0) {
      await deps.customers.update(customer.id, { ...changes, updated_at: new Date(now()).toISOString() }, ex);
    }
    await recordAudit(ex, {
      tenantId: customer.tenant_id,
      actor: `provider:${payment.provider ?? payment.method}`,
      action: 'customer.plan_applied',
      subjectType: 'customer',
      subjectId: customer.id,
      before: {
        planId: customer.subscription_plan_id,
        expiresAt: customer.subscription_expires_at,
        dailyLimitMl: customer.daily_limit_ml === null ? null : Number(customer.daily_limit_ml),
      },
      after: {
        planId: plan.id,
        paymentId: payment.id,
        ...(changes.subscription_expires_at ? { expiresAt: changes.subscription_expires_at } : {}),
        ...(changes.subscription_started_at ? { startedAt: changes.subscription_started_at } : {}),
        ...(changes.daily_limit_ml !== undefined ? { dailyLimitMl: changes.daily_limit_ml } : {}),
        ...(creditMl > 0 ? { creditAddedMl: creditMl } : {}),
      },
    });
    const parts = [
      `Payment received: ${payment.currency} ${formatMinor(received, payment.currency)} for ${plan.name}.`,
    ];
    if (changes.subscription_expires_at)
      parts.push(`Water until ${changes.subscription_expires_at.slice(0, 10)}.`);
    if (creditAfter !== undefined) parts.push(`Credit now ${litres(creditAfter)}.`);
    await deps.sms.queue(ex, {
      tenantId: customer.tenant_id,
      to: customer.phone,
      text: parts.join(' '),
      kind: 'payment_received',
    });
    await enqueueOutbox(ex, 'live', {
      tenantId: customer.tenant_id,
      rooms: [`tenant:${customer.tenant_id}`],
      event: 'customer_updated',
      data: {
        tenantId: customer.tenant_id,
        customerId: customer.id,
        reason: 'plan_applied',
        paymentId: payment.id,
        planId: plan.id,
      },
    });
  };
}
