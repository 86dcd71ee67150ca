// Queries on the customers and plans tables (owned by the customers module).
import { sql, type Insertable, type Updateable } from 'kysely';
import { compiled } from '../../platform/db/compiled.js';
import type { Db, Executor } from '../../platform/db/database.js';
import { likeEscape } from '../../platform/db/like.js';
import type { CustomerRow, CustomersTable, PlanRow, PlansTable } from '../../platform/db/schema.js';

// Every kiosk verification looks its customer up by phone: compiled once.
const customerByPhone = compiled((ex, p: { tenantId: string; phone: string }) =>
  ex.selectFrom('customers').selectAll().where('tenant_id', '=', p.tenantId).where('phone', '=', p.phone),
);

export function createCustomersRepo(db: Db) {
  return {
    /** False when the phone number or the account id is taken already. */
    async insertIfAbsent(row: Insertable<CustomersTable>, ex: Executor = db): Promise<boolean> {
      const result = await ex
        .insertInto('customers')
        .values(row)
        .onConflict((oc) => oc.doNothing())
        .returning('id')
        .executeTakeFirst();
      return result !== undefined;
    },

    byId: (tenantId: string | null, id: string, ex: Executor = db): Promise<CustomerRow | undefined> => {
      let q = ex.selectFrom('customers').selectAll().where('id', '=', id);
      if (tenantId !== null) q = q.where('tenant_id', '=', tenantId);
      return q.executeTakeFirst();
    },

    byPhone: (tenantId: string, phone: string, ex: Executor = db): Promise<CustomerRow | undefined> =>
      customerByPhone.first(ex, { tenantId, phone }),

    /** The row, locked until the transaction ends (PostgreSQL; SQLite runs one writer at a time). */
    lockForUpdate: (id: string, ex: Executor): Promise<CustomerRow | undefined> =>
      ex.selectFrom('customers').selectAll().where('id', '=', id).forUpdate().executeTakeFirst(),

    update: (id: string, changes: Updateable<CustomersTable>, ex: Executor = db) =>
      ex.updateTable('customers').set(changes).where('id', '=', id).returningAll().executeTakeFirst(),

    /** Changes the row only while its PIN verifier is still `pinHash`; false when it changed. */
    async updateIfPinIs(
      id: string,
      pinHash: string,
      changes: Updateable<CustomersTable>,
      ex: Executor = db,
    ): Promise<boolean> {
      const result = await ex
        .updateTable('customers')
        .set(changes)
        .where('id', '=', id)
        .where('pin_hash', '=', pinHash)
        .executeTakeFirst();
      return Number(result.numUpdatedRows) === 1;
    },

    /** Staff search: an exact phone or account id, or a part of the name; newest first. */
    search(
      tenantId: string | null,
      q: {
        phone?: string;
        /** Over every tenant: a local number read with each tenant's own calling code. */
        tenantPhones?: { tenantId: string; phone: string }[];
        text?: string;
        before?: string;
        limit: number;
      },
    ): Promise<CustomerRow[]> {
      let query = db.selectFrom('customers').selectAll().orderBy('id', 'desc').limit(q.limit);
      if (tenantId !== null) query = query.where('tenant_id', '=', tenantId);
      if (q.before !== undefined) query = query.where('id', '<', q.before);
      const { phone, text, tenantPhones = [] } = q;
      if (phone !== undefined || text !== undefined || tenantPhones.length > 0) {
        query = query.where((eb) => {
          const any = [];
          if (phone !== undefined) any.push(eb('phone', '=', phone));
          for (const tp of tenantPhones) {
            any.push(eb.and([eb('tenant_id', '=', tp.tenantId), eb('phone', '=', tp.phone)]));
          }
          if (text !== undefined) {
            any.push(eb('account_id', '=', text.toUpperCase()));
            const pattern = `%${likeEscape(text.toLowerCase())}%`;
            any.push(sql<boolean>`lower(full_name) like ${pattern} escape '\\'`);
          }
          return eb.or(any);
        });
      }
      return query.execute();
    },

    insertPlan: (row: Insertable<PlansTable>, ex: Executor = db) =>
      ex.insertInto('plans').values(row).execute(),
    plan: (tenantId: string, id: string, ex: Executor = db): Promise<PlanRow | undefined> =>
      ex
        .selectFrom('plans')
        .selectAll()
        .where('tenant_id', '=', tenantId)
        .where('id', '=', id)
        .executeTakeFirst(),
    /** Account id and name of each customer id found (a page of a feed names who asked). */
    namesByIds: (ids: readonly string[]) =>
      ids.length === 0
        ? Promise.resolve([])
        : db
            .selectFrom('customers')
            .select(['id', 'account_id', 'full_name'])
            .where('id', 'in', ids)
            .execute(),
    /** Plans with these ids in any tenant (the caller matches the tenant). */
    plansByIds: (ids: readonly string[]) =>
      ids.length === 0
        ? Promise.resolve([])
        : db.selectFrom('plans').select(['tenant_id', 'id', 'name']).where('id', 'in', ids).execute(),
    plans: (tenantId: string, ex: Executor = db): Promise<PlanRow[]> =>
      ex.selectFrom('plans').selectAll().where('tenant_id', '=', tenantId).orderBy('price_minor').execute(),
  };
}

export type CustomersRepo = ReturnType<typeof createCustomersRepo>;
