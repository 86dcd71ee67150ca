// The millilitre accounts water moves between (ARCHITECTURE "every balance is a ledger account"):
// a customer's `water_credit` (what they may take), their `water_held` (approved, not yet
// settled) and the tenant's `water_issued` (water that left the kiosks). Every move is a ledger
// transfer in the caller's transaction, caused by the water dispense it belongs to.
import type { Executor } from '../../platform/db/database.js';
import type { CustomersService } from '../customers/customers.service.js';
import type { LedgerService } from '../ledger/ledger.service.js';

export interface WaterLedgerDeps {
  ledger: Pick<LedgerService, 'account' | 'balanceOf' | 'transfer'>;
  customers: Pick<CustomersService, 'waterCredit'>;
}

export function createWaterLedger(deps: WaterLedgerDeps) {
  const { ledger } = deps;
  const credit = (ex: Executor, tenantId: string, customerId: string) =>
    deps.customers.waterCredit(ex, tenantId, customerId);
  const held = (ex: Executor, tenantId: string, customerId: string) =>
    ledger.account(ex, {
      tenantId,
      ownerType: 'customer',
      ownerId: customerId,
      kind: 'water_held',
      unit: 'ml',
    });
  const issued = (ex: Executor, tenantId: string) =>
    ledger.account(ex, {
      tenantId,
      ownerType: 'tenant',
      ownerId: tenantId,
      kind: 'water_issued',
      unit: 'ml',
    });

  async function move(
    ex: Executor,
    t: {
      tenantId: string;
      from: string;
      to: string;
      ml: number;
      dispenseId: string;
      memo: string;
      overdraw?: boolean;
    },
  ): Promise<void> {
    if (t.ml <= 0) return;
    await ledger.transfer(ex, {
      tenantId: t.tenantId,
      from: t.from,
      to: t.to,
      amount: t.ml,
      unit: 'ml',
      cause: { type: 'water_dispense', id: t.dispenseId },
      memo: t.memo,
      ...(t.overdraw ? { overdraw: true } : {}),
    });
  }

  const heldMl = (
    ex: Executor,
    key: { tenantId: string; ownerType: 'customer'; ownerId: string; unit: 'ml' },
  ): Promise<number> => ledger.balanceOf(ex, { ...key, kind: 'water_held' });

  return {
    /** The customer's available credit in ml (holds already taken out). */
    creditMl: async (ex: Executor, tenantId: string, customerId: string) =>
      (await credit(ex, tenantId, customerId)).balance,

    /**
     * What the customer has: their credit with every unsettled hold counted back in. An approval
     * (credit → held) or a release (held → credit) leaves it as it is; only water taken moves it,
     * so it crosses the low-credit threshold once however many holds settle. A read: no account
     * is created.
     */
    async balanceMl(ex: Executor, tenantId: string, customerId: string) {
      const key = { tenantId, ownerType: 'customer', ownerId: customerId, unit: 'ml' } as const;
      return (await ledger.balanceOf(ex, { ...key, kind: 'water_credit' })) + (await heldMl(ex, key));
    },

    /** The customer's unsettled holds in ml (a read: no account is created). */
    heldMl: (ex: Executor, tenantId: string, customerId: string) =>
      heldMl(ex, { tenantId, ownerType: 'customer', ownerId: customerId, unit: 'ml' }),

    /** Credit → held for an approval. Throws INVALID_STATE when the credit does not cover it. */
    async hold(ex: Executor, tenantId: string, customerId: string, ml: number, dispenseId: string) {
      const [from, to] = [await credit(ex, tenantId, customerId), await held(ex, tenantId, customerId)];
      await move(ex, { tenantId, from: from.id, to: to.id, ml, dispenseId, memo: 'water hold' });
    },

    /** Held → issued for what was dispensed, held → credit for the rest. */
    async settleHold(
      ex: Executor,
      tenantId: string,
      customerId: string,
      d: { heldMl: number; takenMl: number; dispenseId: string },
    ) {
      const h = await held(ex, tenantId, customerId);
      const taken = Math.min(d.takenMl, d.heldMl);
      await move(ex, {
        tenantId,
        from: h.id,
        to: (await issued(ex, tenantId)).id,
        ml: taken,
        dispenseId: d.dispenseId,
        memo: 'water dispensed',
      });
      const c = await credit(ex, tenantId, customerId);
      await move(ex, {
        tenantId,
        from: h.id,
        to: c.id,
        ml: d.heldMl - taken,
        dispenseId: d.dispenseId,
        memo: 'water hold released',
      });
    },

    /**
     * Credit → issued for water that already left a kiosk without (or beyond) a hold: it is
     * recorded even when the credit does not cover it. Returns the credit before and after.
     */
    async takeCredit(
      ex: Executor,
      tenantId: string,
      customerId: string,
      ml: number,
      dispenseId: string,
      memo: string,
    ) {
      const c = await credit(ex, tenantId, customerId);
      await move(ex, {
        tenantId,
        from: c.id,
        to: (await issued(ex, tenantId)).id,
        ml,
        dispenseId,
        memo,
        overdraw: true,
      });
      return { beforeMl: c.balance, afterMl: c.balance - Math.max(0, ml) };
    },
  };
}

export type WaterLedger = ReturnType<typeof createWaterLedger>;
