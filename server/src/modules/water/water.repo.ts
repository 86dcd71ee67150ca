// Queries on the water module's tables: water_dispenses (holds, settlements, offline water),
// water_pin_seals, water_kiosks (heartbeats) and water_cache_entries (what each kiosk's
// credential cache holds). The cache's candidate query also reads customers and their credit
// account: a reporting read in one named place (see candidatesForKiosk).
import { sql, type Insertable, type Updateable } from 'kysely';
import { compiled, insertRows } from '../../platform/db/compiled.js';
import type { Executor } from '../../platform/db/database.js';
import type {
  WaterCacheEntriesTable,
  WaterDispenseRow,
  WaterDispensesTable,
  WaterKioskRow,
  WaterKiosksTable,
} from '../../platform/db/schema.js';

export interface CacheCandidate {
  id: string;
  account_id: string;
  phone: string;
  active: number;
  pin_locked_until: string | null;
  daily_limit_ml: number | null;
  subscription_expires_at: string | null;
  updated_at: string;
  sealed: string;
  credit_ml: number | null;
  last_at: string | null;
}

// Every verification and settlement runs these: compiled once.
const insertDispenseRow = insertRows('water_dispenses', { onConflictDoNothing: true, returning: 'id' });
const dispenseByRequestKey = compiled((ex, p: { kioskId: string; key: string }) =>
  ex
    .selectFrom('water_dispenses')
    .selectAll()
    .where('kiosk_id', '=', p.kioskId)
    .where('request_key', '=', p.key),
);
const dispenseById = compiled((ex, p: { tenantId: string; id: string }) =>
  ex.selectFrom('water_dispenses').selectAll().where('tenant_id', '=', p.tenantId).where('id', '=', p.id),
);
const dispenseByIdForUpdate = compiled((ex, p: { tenantId: string; id: string }) =>
  ex
    .selectFrom('water_dispenses')
    .selectAll()
    .where('tenant_id', '=', p.tenantId)
    .where('id', '=', p.id)
    .forUpdate(),
);
const dispenseByKioskTxn = compiled((ex, p: { kioskId: string; txnId: string }) =>
  ex
    .selectFrom('water_dispenses')
    .selectAll()
    .where('kiosk_id', '=', p.kioskId)
    .where('kiosk_txn_id', '=', p.txnId),
);
type SettleChange = {
  id: string;
  from: string;
  dispensedMl: number;
  kioskTxnId: string;
  tap: number | null;
  flagged: number;
  settledAt: string;
};
const settleIfStatus = compiled((ex, p: SettleChange) =>
  ex
    .updateTable('water_dispenses')
    .set({
      status: 'SETTLED',
      dispensed_ml: p.dispensedMl,
      kiosk_txn_id: p.kioskTxnId,
      tap: p.tap,
      flagged: p.flagged,
      settled_at: p.settledAt,
    })
    .where('id', '=', p.id)
    .where('status', '=', p.from),
);

export function createWaterRepo() {
  return {
    /** False when this kiosk already holds for the same request (the caller reads that one). */
    async insertDispense(ex: Executor, row: Insertable<WaterDispensesTable>): Promise<boolean> {
      return (await insertDispenseRow(ex, [row])).length > 0;
    },

    byRequestKey: (ex: Executor, kioskId: string, key: string): Promise<WaterDispenseRow | undefined> =>
      dispenseByRequestKey.first(ex, { kioskId, key }),

    byId: (ex: Executor, tenantId: string, id: string): Promise<WaterDispenseRow | undefined> =>
      dispenseById.first(ex, { tenantId, id }),

    /** `byId`, locked until the transaction ends (PostgreSQL; SQLite runs one writer at a time). */
    byIdLocked: (
      ex: Executor,
      dialect: 'sqlite' | 'postgres',
      tenantId: string,
      id: string,
    ): Promise<WaterDispenseRow | undefined> =>
      (dialect === 'postgres' ? dispenseByIdForUpdate : dispenseById).first(ex, { tenantId, id }),

    byKioskTxn: (ex: Executor, kioskId: string, txnId: string): Promise<WaterDispenseRow | undefined> =>
      dispenseByKioskTxn.first(ex, { kioskId, txnId }),

    /** A settlement of a dispense still in status `from`; false when another change won. */
    async settleIfStatus(ex: Executor, change: SettleChange): Promise<boolean> {
      return (await settleIfStatus.affected(ex, change)) === 1;
    },

    /** Changes a dispense only while it is in one of `from`; false when another change won. */
    async updateIfStatus(
      ex: Executor,
      id: string,
      from: string[],
      changes: Updateable<WaterDispensesTable>,
    ): Promise<boolean> {
      const result = await ex
        .updateTable('water_dispenses')
        .set(changes)
        .where('id', '=', id)
        .where('status', 'in', from)
        .executeTakeFirst();
      return Number(result.numUpdatedRows) === 1;
    },

    async upsertSeal(
      ex: Executor,
      row: { customer_id: string; tenant_id: string; sealed: string; updated_at: string },
    ) {
      await ex
        .insertInto('water_pin_seals')
        .values(row)
        .onConflict((oc) =>
          oc.column('customer_id').doUpdateSet({ sealed: row.sealed, updated_at: row.updated_at }),
        )
        .execute();
    },

    async ensureKiosk(ex: Executor, row: { machine_id: string; tenant_id: string; site_id: string }) {
      await ex
        .insertInto('water_kiosks')
        .values(row)
        .onConflict((oc) => oc.column('machine_id').doNothing())
        .execute();
    },

    kiosk(ex: Executor, machineId: string, forUpdate = false): Promise<WaterKioskRow | undefined> {
      let q = ex.selectFrom('water_kiosks').selectAll().where('machine_id', '=', machineId);
      if (forUpdate) q = q.forUpdate();
      return q.executeTakeFirst();
    },

    kiosks: (ex: Executor, tenantId: string | null): Promise<WaterKioskRow[]> => {
      let q = ex.selectFrom('water_kiosks').selectAll().orderBy('machine_id');
      if (tenantId !== null) q = q.where('tenant_id', '=', tenantId);
      return q.execute();
    },

    updateKiosk: (ex: Executor, machineId: string, changes: Updateable<WaterKiosksTable>) =>
      ex.updateTable('water_kiosks').set(changes).where('machine_id', '=', machineId).execute(),

    /**
     * Registered customers a kiosk of `siteId` may serve offline, with their sealed PIN and
     * credit, most recently active first (last water, else last change).
     */
    candidatesForKiosk(
      ex: Executor,
      q: { tenantId: string; siteId: string; limit: number },
    ): Promise<CacheCandidate[]> {
      const lastWater = ex
        .selectFrom('water_dispenses')
        .select(['customer_id', sql<string>`max(at)`.as('last_at')])
        .where('tenant_id', '=', q.tenantId)
        .groupBy('customer_id')
        .as('w');
      return ex
        .selectFrom('customers as c')
        .innerJoin('water_pin_seals as s', 's.customer_id', 'c.id')
        .leftJoin('ledger_accounts as a', (j) =>
          j
            .onRef('a.owner_id', '=', 'c.id')
            .on('a.owner_type', '=', 'customer')
            .on('a.kind', '=', 'water_credit')
            .on('a.tenant_id', '=', q.tenantId),
        )
        .leftJoin(lastWater, 'w.customer_id', 'c.id')
        .select([
          'c.id',
          'c.account_id',
          'c.phone',
          'c.active',
          'c.pin_locked_until',
          'c.daily_limit_ml',
          'c.subscription_expires_at',
          'c.updated_at',
          's.sealed',
          'a.balance as credit_ml',
          'w.last_at',
        ])
        .where('c.tenant_id', '=', q.tenantId)
        .where('c.pin_hash', 'is not', null)
        .where((eb) =>
          eb.or([
            eb('c.site_ids', '=', '[]'),
            // The quoted id as a whole element, matched exactly: LIKE would read `_` in a site id
            // as a wildcard (and SQLite's LIKE ignores case), handing the kiosk other sites' customers.
            sql<boolean>`replace(c.site_ids, ${JSON.stringify(q.siteId)}, '') <> c.site_ids`,
          ]),
        )
        .orderBy(sql`coalesce(w.last_at, c.updated_at)`, 'desc')
        .orderBy('c.id', 'desc')
        .limit(q.limit)
        .execute() as Promise<CacheCandidate[]>;
    },

    /** Water counted against today's limit per customer (see usage.ts), for many customers at once. */
    async usedTodayByCustomer(
      ex: Executor,
      tenantId: string,
      day: { start: string; end: string },
    ): Promise<Map<string, number>> {
      const rows = await ex
        .selectFrom('water_dispenses')
        .select([
          'customer_id',
          sql<string | number | null>`sum(case when status = 'HELD' then held_ml
            when status = 'RELEASED' then 0 else coalesce(dispensed_ml, 0) end)`.as('used'),
        ])
        .where('tenant_id', '=', tenantId)
        .where('at', '>=', day.start)
        // Only that day: offline water dated tomorrow (a kiosk clock running ahead) is not today's.
        .where('at', '<', day.end)
        .groupBy('customer_id')
        .execute();
      return new Map(rows.map((r) => [r.customer_id, Number(r.used ?? 0)]));
    },

    cacheEntries: (ex: Executor, machineId: string) =>
      ex.selectFrom('water_cache_entries').selectAll().where('machine_id', '=', machineId).execute(),

    async putCacheEntry(ex: Executor, row: Insertable<WaterCacheEntriesTable>) {
      await ex
        .insertInto('water_cache_entries')
        .values(row)
        .onConflict((oc) =>
          oc.columns(['machine_id', 'customer_id']).doUpdateSet({
            account_id: row.account_id,
            digest: row.digest,
            version: row.version,
            removed: row.removed ?? 0,
          }),
        )
        .execute();
    },
  };
}

export type WaterRepo = ReturnType<typeof createWaterRepo>;
