// Water plans of a tenant (what customers buy over USSD, SMS and mobile money): a subscription
// gives days of water within a daily limit, a credit plan gives millilitres. Staff create and
// list them, and take one off sale or put it back; a plan's id is what customers type (`BUY
// month`), so it is chosen, not generated, and a plan is never deleted (payments name it).
import type { PlanView } from '@kioskhub/protocol';
import { isUniqueViolation } from '../../platform/db/errors.js';
import { nowIso, type Db } from '../../platform/db/database.js';
import type { PlanRow } from '../../platform/db/schema.js';
import { AppError, notFound, validation } from '../../platform/errors.js';
import { isKnownCurrency } from '../../platform/money.js';
import { recordAudit } from '../audit/audit.service.js';
import type { CustomersRepo } from './customers.repo.js';

export type { PlanView };

export interface NewPlan {
  id: string;
  name: string;
  kind: 'subscription' | 'credit';
  priceMinor: number;
  currency: string;
  days?: number;
  creditMl?: number;
  dailyLimitMl?: number;
}

const num = (v: number | null): number | null => (v === null ? null : Number(v));

export const toPlanView = (r: PlanRow): PlanView => ({
  id: r.id,
  name: r.name,
  kind: r.kind === 'credit' ? 'credit' : 'subscription',
  priceMinor: Number(r.price_minor),
  currency: r.currency,
  days: num(r.days),
  creditMl: num(r.credit_ml),
  dailyLimitMl: num(r.daily_limit_ml),
  active: r.active === 1,
  createdAt: r.created_at,
});

export function createPlans(deps: { db: Db; repo: Pick<CustomersRepo, 'insertPlan' | 'plans' | 'plan'> }) {
  return {
    list: async (tenantId: string): Promise<PlanView[]> => (await deps.repo.plans(tenantId)).map(toPlanView),

    async create(tenantId: string, input: NewPlan, actor: string): Promise<PlanView> {
      if (input.kind === 'subscription' && input.days === undefined) {
        throw validation('a subscription plan needs days');
      }
      if (input.kind === 'credit' && input.creditMl === undefined) {
        throw validation('a credit plan needs creditMl');
      }
      if (input.kind === 'credit' && input.days !== undefined) {
        throw validation('a credit plan has no days (make it a subscription)');
      }
      if (input.name.trim() === '') throw validation('a plan needs a name (not only spaces)');
      if (!isKnownCurrency(input.currency)) {
        throw validation(`"${input.currency}" is not an ISO 4217 currency`);
      }
      const now = nowIso();
      const row: PlanRow = {
        tenant_id: tenantId,
        id: input.id,
        name: input.name.trim(),
        kind: input.kind,
        price_minor: input.priceMinor,
        currency: input.currency,
        days: input.days ?? null,
        credit_ml: input.creditMl ?? null,
        daily_limit_ml: input.dailyLimitMl ?? null,
        active: 1,
        created_at: now,
        updated_at: now,
      };
      try {
        await deps.db.transaction().execute(async (tx) => {
          await deps.repo.insertPlan(row, tx);
          await recordAudit(tx, {
            tenantId,
            actor,
            action: 'plan.created',
            subjectType: 'plan',
            subjectId: row.id,
            after: toPlanView(row),
          });
        });
      } catch (err) {
        if (isUniqueViolation(err)) throw new AppError('CONFLICT', `plan "${input.id}" exists already`);
        throw err;
      }
      return toPlanView(row);
    },

    /**
     * Takes a plan off sale (`active: false`: no longer listed on USSD or SMS, `BUY <id>` finds
     * nothing) or puts it back. A purchase already started still gets the plan it paid for.
     */
    async setActive(tenantId: string, id: string, active: boolean, actor: string): Promise<PlanView> {
      return deps.db.transaction().execute(async (tx) => {
        const before = await deps.repo.plan(tenantId, id, tx);
        if (!before) throw notFound('plan', id);
        if ((before.active === 1) === active) return toPlanView(before);
        const after: PlanRow = { ...before, active: active ? 1 : 0, updated_at: nowIso() };
        await tx
          .updateTable('plans')
          .set({ active: after.active, updated_at: after.updated_at })
          .where('tenant_id', '=', tenantId)
          .where('id', '=', id)
          .execute();
        await recordAudit(tx, {
          tenantId,
          actor,
          action: active ? 'plan.put_on_sale' : 'plan.taken_off_sale',
          subjectType: 'plan',
          subjectId: id,
          before: { active: before.active === 1 },
          after: { active },
        });
        return toPlanView(after);
      });
    },
  };
}

export type Plans = ReturnType<typeof createPlans>;
