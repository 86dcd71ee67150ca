// SMS notices to water customers: registration done, and credit running low. (Payment received
// is sent by the plan settlement, in the payment's transaction.) Each is queued in the caller's
// transaction through the SMS job table, so it goes out once the change commits, with retries.
import type { Executor } from '../../platform/db/database.js';
import type { CustomerRow } from '../../platform/db/schema.js';
import type { Sms } from '../messaging/sms.js';
import { litres } from '../mobile-money/plan-settlement.js';

/** Credit below this (after having been at or above it) sends one low-credit notice. */
export const LOW_CREDIT_ML = 20_000;

export function createWaterNotices(deps: { sms: Pick<Sms, 'queue'>; lowCreditMl?: number }) {
  const threshold = deps.lowCreditMl ?? LOW_CREDIT_ML;
  return {
    registered: (ex: Executor, customer: CustomerRow) =>
      deps.sms.queue(ex, {
        tenantId: customer.tenant_id,
        to: customer.phone,
        text: `Registration complete. Account ID: ${customer.account_id}. Use your phone number and PIN at the kiosk. Reply HELP for commands.`,
        kind: 'registered',
      }),

    /**
     * Call after a dispense took credit, in its transaction and after the customer's lock: one
     * notice when the balance crosses below the threshold, none while it stays below. The balance
     * is the credit with unsettled holds counted back in (approvals and releases never move it),
     * so two holds settling, or a hold and an offline item, cross it once between them; `creditMl`
     * (default `afterMl`) is the credit left now, for the text. Returns whether one was queued.
     */
    async lowCredit(
      ex: Executor,
      customer: Pick<CustomerRow, 'tenant_id' | 'phone'>,
      balance: { beforeMl: number; afterMl: number; creditMl?: number },
    ): Promise<boolean> {
      if (!(balance.beforeMl >= threshold && balance.afterMl < threshold)) return false;
      await deps.sms.queue(ex, {
        tenantId: customer.tenant_id,
        to: customer.phone,
        text: `Your water credit is low: ${litres(Math.max(0, balance.creditMl ?? balance.afterMl))} left. Reply BUY to top up.`,
        kind: 'low_credit',
      });
      return true;
    },
  };
}

export type WaterNotices = ReturnType<typeof createWaterNotices>;
