// What the water kiosk tests share: a registered customer with a PIN, and water credit put on
// their account through the ledger (from the tenant's `water_issued`, as a plan's settlement does).
import type { TestServer } from './harness.js';

const DAY_MS = 86_400_000;

export interface WaterCustomer {
  id: string;
  accountId: string;
  phone: string;
}

/**
 * A customer of `tenantId` (default `default`) with `phone` and `pin` (null: none); optionally
 * with credit, a subscription of `subscriptionDays`, a daily limit, inactive, or tied to sites.
 */
export async function addWaterCustomer(
  server: TestServer,
  o: {
    phone: string;
    pin: string | null;
    tenantId?: string;
    fullName?: string;
    creditMl?: number;
    subscriptionDays?: number;
    dailyLimitMl?: number;
    active?: boolean;
    siteIds?: string[];
  },
): Promise<WaterCustomer> {
  const { customers } = server.kioskhub.services;
  const tenantId = o.tenantId ?? 'default';
  let row = await customers.create({
    tenantId,
    phone: o.phone,
    ...(o.fullName ? { fullName: o.fullName } : {}),
    ...(o.siteIds ? { siteIds: o.siteIds } : {}),
    actor: 'test',
  });
  if (o.pin !== null) row = await customers.setPin(row, o.pin, 'test');
  const changes: Record<string, unknown> = {};
  if (o.subscriptionDays !== undefined) {
    changes['subscription_plan_id'] = 'monthly';
    changes['subscription_expires_at'] = new Date(Date.now() + o.subscriptionDays * DAY_MS).toISOString();
  }
  if (o.dailyLimitMl !== undefined) changes['daily_limit_ml'] = o.dailyLimitMl;
  if (o.active === false) changes['active'] = 0;
  if (Object.keys(changes).length > 0) await customers.repo.update(row.id, changes);
  if (o.creditMl) await addWaterCredit(server, tenantId, row.id, o.creditMl);
  return { id: row.id, accountId: row.account_id, phone: row.phone };
}

/** `ml` of water credit for a customer, moved from the tenant's `water_issued` account. */
export async function addWaterCredit(server: TestServer, tenantId: string, customerId: string, ml: number) {
  const { customers, ledger } = server.kioskhub.services;
  await server.kioskhub.db.transaction().execute(async (tx) => {
    const issued = await ledger.account(tx, {
      tenantId,
      ownerType: 'tenant',
      ownerId: tenantId,
      kind: 'water_issued',
      unit: 'ml',
    });
    const credit = await customers.waterCredit(tx, tenantId, customerId);
    await ledger.transfer(tx, {
      tenantId,
      from: issued.id,
      to: credit.id,
      amount: ml,
      unit: 'ml',
      cause: { type: 'test', id: customerId },
    });
  });
}
