// Queries on the machines table (owned by the machines module).
import { sql, type SelectQueryBuilder, type Updateable } from 'kysely';
import type { Db, Executor } from '../../platform/db/database.js';
import { compiled } from '../../platform/db/compiled.js';
import { likeEscape } from '../../platform/db/like.js';
import type { Database, MachineRow, MachinesTable } from '../../platform/db/schema.js';

export interface ConnectionWrite {
  connectionId: string;
  protocol: 'v1' | 'v2' | 'mqtt';
  at: string;
}

export interface OfflineWrite {
  machineId: string;
  at: string;
}

export type OfflineMachine = Pick<MachineRow, 'id' | 'tenant_id' | 'name'> & { last_seen_at: string };

export interface MachineListFilter {
  tenantId: string | null;
  after?: string;
  limit: number;
  status?: string;
  siteId?: string;
  kind?: string;
  /** Part of the id or name, case-insensitive. */
  q?: string;
}

/** The list filters on a query of `machines` (tenant, status, site, kind, part of the id or name). */
function matching<Q extends SelectQueryBuilder<Database, 'machines', object>>(
  q: Q,
  filter: Omit<MachineListFilter, 'after' | 'limit'>,
): Q {
  let out = q as SelectQueryBuilder<Database, 'machines', object>;
  if (filter.tenantId !== null) out = out.where('tenant_id', '=', filter.tenantId);
  if (filter.status !== undefined) out = out.where('status', '=', filter.status);
  if (filter.siteId !== undefined) out = out.where('site_id', '=', filter.siteId);
  if (filter.kind !== undefined) out = out.where('kind', '=', filter.kind);
  if (filter.q !== undefined && filter.q.trim() !== '') {
    const pattern = `%${likeEscape(filter.q.trim().toLowerCase())}%`;
    out = out.where(sql<boolean>`(lower(id) like ${pattern} escape '\\'
          or lower(name) like ${pattern} escape '\\')`);
  }
  return out as Q;
}

const byId = <T>(entries: Iterable<[string, T]>): [string, T][] =>
  [...entries].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));

// What a payment through a machine's QR code needs of the machine: its owner, price and link.
const QR_MACHINE_COLUMNS = [
  'id',
  'tenant_id',
  'site_id',
  'currency',
  'payment_fixed_amount_minor',
  'status',
  'socket_connected',
  'protocol',
] as const;
export type QrMachine = Pick<MachineRow, (typeof QR_MACHINE_COLUMNS)[number]>;

// On every payment (the webhook's first read): compiled once, and only the columns a payment
// uses (on PostgreSQL every column of a result is described and parsed per row).
const byQrCodeId = compiled((ex, p: { qrCodeId: string }) =>
  ex.selectFrom('machines').select(QR_MACHINE_COLUMNS).where('payment_qr_code_id', '=', p.qrCodeId),
);

// Every request a machine makes with its key reads these two: compiled once.
const machineById = compiled((ex, p: { id: string }) =>
  ex.selectFrom('machines').selectAll().where('id', '=', p.id),
);
const machineByKeyHash = compiled((ex, p: { keyHash: string }) =>
  ex.selectFrom('machines').select(['id', 'tenant_id', 'site_id', 'kind']).where('key_hash', '=', p.keyHash),
);

export function createMachinesRepo(db: Db, dialect: 'sqlite' | 'postgres' = 'sqlite') {
  /** PostgreSQL: lock the rows in id order first, so two processes' batches never deadlock. */
  const lockInOrder = async (tx: Executor, ids: string[]) => {
    // FOR NO KEY UPDATE: does not wait for (or block) the key-share locks of inserts that
    // reference these machines (orders, commands). One array parameter, however many ids.
    if (dialect === 'postgres')
      await sql`select id from machines where id = any(${ids}::text[]) order by id for no key update`.execute(
        tx,
      );
  };
  return {
    /** The machine's row, locked for the rest of the transaction (PostgreSQL; SQLite has one writer). */
    async lockedById(id: string, tx: Executor): Promise<MachineRow | undefined> {
      await lockInOrder(tx, [id]);
      return tx.selectFrom('machines').selectAll().where('id', '=', id).executeTakeFirst();
    },
    insert(row: MachineRow, ex: Executor = db) {
      return ex
        .insertInto('machines')
        .values(row)
        .onConflict((oc) => oc.column('id').doNothing())
        .returning('id')
        .executeTakeFirst();
    },
    findById(id: string, ex: Executor = db): Promise<MachineRow | undefined> {
      return machineById.first(ex, { id });
    },
    findByKeyHash(
      keyHash: string,
    ): Promise<Pick<MachineRow, 'id' | 'tenant_id' | 'site_id' | 'kind'> | undefined> {
      return machineByKeyHash.first(db, { keyHash });
    },
    findByQrCodeId(qrCodeId: string, ex: Executor = db): Promise<QrMachine | undefined> {
      return byQrCodeId.first(ex, { qrCodeId });
    },
    list(filter: MachineListFilter) {
      let q = matching(db.selectFrom('machines').selectAll().orderBy('id').limit(filter.limit), filter);
      if (filter.after !== undefined) q = q.where('id', '>', filter.after);
      return q.execute();
    },
    /** Every machine a list filter matches, id and status only (the fleet's summary line). */
    statuses(
      filter: Omit<MachineListFilter, 'after' | 'limit'>,
    ): Promise<Pick<MachineRow, 'id' | 'status'>[]> {
      return matching(db.selectFrom('machines').select(['id', 'status']), filter).execute();
    },
    /** A tenant's machines matching every filter given (a firmware campaign's target). */
    listForTarget(
      tenantId: string,
      filter: { machineIds?: readonly string[]; siteIds?: readonly string[]; kinds?: readonly string[] },
    ): Promise<Pick<MachineRow, 'id' | 'site_id' | 'kind' | 'firmware'>[]> {
      let q = db
        .selectFrom('machines')
        .select(['id', 'site_id', 'kind', 'firmware'])
        .where('tenant_id', '=', tenantId)
        .orderBy('id');
      if (filter.machineIds) q = q.where('id', 'in', filter.machineIds);
      if (filter.siteIds) q = q.where('site_id', 'in', filter.siteIds);
      if (filter.kinds) q = q.where('kind', 'in', filter.kinds);
      return q.execute();
    },
    /** Every machine's site and status (the dashboard samples machines online per site). */
    /** The machines of one kind at a site, by id. */
    listAtSite(
      tenantId: string,
      siteId: string,
      kind: string,
    ): Promise<Pick<MachineRow, 'id' | 'name' | 'tenant_id' | 'site_id'>[]> {
      return db
        .selectFrom('machines')
        .select(['id', 'name', 'tenant_id', 'site_id'])
        .where('tenant_id', '=', tenantId)
        .where('site_id', '=', siteId)
        .where('kind', '=', kind)
        .orderBy('id')
        .execute();
    },
    listStatuses(): Promise<Pick<MachineRow, 'id' | 'tenant_id' | 'site_id' | 'status'>[]> {
      return db.selectFrom('machines').select(['id', 'tenant_id', 'site_id', 'status']).execute();
    },
    /** Machines offline whose last sighting is older than `cutoff` (ISO time). */
    listOfflineSince(cutoff: string): Promise<OfflineMachine[]> {
      return db
        .selectFrom('machines')
        .select(['id', 'tenant_id', 'name', 'last_seen_at'])
        .where('status', '=', 'OFFLINE')
        .where('last_seen_at', 'is not', null)
        .where('last_seen_at', '<', cutoff)
        .$narrowType<{ last_seen_at: string }>()
        .execute();
    },
    update(id: string, changes: Updateable<MachinesTable>, ex: Executor = db) {
      return ex.updateTable('machines').set(changes).where('id', '=', id).executeTakeFirst();
    },
    /**
     * A status a connection reported, written only while the row is still that connection's; a
     * firmware version it reported is the machine's whichever connection holds the row now.
     */
    updateForConnection(
      id: string,
      connectionId: string,
      changes: { status: string; last_seen_at: string; updated_at: string },
      firmware?: string,
    ) {
      if (firmware === undefined)
        return db
          .updateTable('machines')
          .set(changes)
          .where('id', '=', id)
          .where('connection_id', '=', connectionId)
          .executeTakeFirst();
      const ours = (value: string, column: 'status' | 'last_seen_at') =>
        sql<string>`case when connection_id = ${connectionId} then ${value} else ${sql.ref(column)} end`;
      return db
        .updateTable('machines')
        .set({
          firmware,
          updated_at: changes.updated_at,
          status: ours(changes.status, 'status'),
          last_seen_at: ours(changes.last_seen_at, 'last_seen_at'),
        })
        .where('id', '=', id)
        .executeTakeFirst();
    },
    /** Last-seen times in one transaction (one statement on PostgreSQL); never moves a time back. */
    async touchMany(seen: ReadonlyMap<string, string>): Promise<void> {
      if (seen.size === 0) return;
      const rows = byId(seen);
      await db.transaction().execute(async (tx) => {
        await lockInOrder(
          tx,
          rows.map(([id]) => id),
        );
        if (dialect === 'postgres') {
          await sql`update machines as m set last_seen_at = v.at
            from unnest(${rows.map(([id]) => id)}::text[], ${rows.map(([, at]) => at)}::text[]) as v(id, at)
            where m.id = v.id and (m.last_seen_at is null or m.last_seen_at < v.at)`.execute(tx);
          return;
        }
        for (const [id, at] of rows) {
          await tx
            .updateTable('machines')
            .set({ last_seen_at: at })
            .where('id', '=', id)
            .where((eb) => eb.or([eb('last_seen_at', 'is', null), eb('last_seen_at', '<', at)]))
            .execute();
        }
      });
    },
    /**
     * Records connections (machine id → connection). Written unconditionally, like each single
     * registration before: a guard on times would trust the clocks of different hosts. A group
     * is written within milliseconds of its connections, and the one-live-socket rule evicts an
     * older connection of the same machine on another process.
     */
    async connectMany(connections: ReadonlyMap<string, ConnectionWrite>): Promise<void> {
      if (connections.size === 0) return;
      const rows = byId(connections);
      await db.transaction().execute(async (tx) => {
        await lockInOrder(
          tx,
          rows.map(([id]) => id),
        );
        if (dialect === 'postgres') {
          await sql`update machines as m
            set status = 'IDLE', socket_connected = 1, connection_id = v.conn, protocol = v.proto, last_seen_at = v.at, updated_at = v.at
            from unnest(${rows.map(([id]) => id)}::text[], ${rows.map(([, c]) => c.connectionId)}::text[],
                        ${rows.map(([, c]) => c.protocol)}::text[], ${rows.map(([, c]) => c.at)}::text[]) as v(id, conn, proto, at)
            where m.id = v.id`.execute(tx);
          return;
        }
        for (const [id, c] of rows) {
          await tx
            .updateTable('machines')
            .set({
              status: 'IDLE',
              socket_connected: 1,
              connection_id: c.connectionId,
              protocol: c.protocol,
              last_seen_at: c.at,
              updated_at: c.at,
            })
            .where('id', '=', id)
            .execute();
        }
      });
    },
    /** Marks machines offline (connection id → machine) where that connection is still theirs; returns the rows changed by connection id. */
    async offlineMany(
      closed: ReadonlyMap<string, OfflineWrite>,
    ): Promise<Map<string, { id: string; tenant_id: string; last_seen_at: string | null }>> {
      const changed = new Map<string, { id: string; tenant_id: string; last_seen_at: string | null }>();
      if (closed.size === 0) return changed;
      const rows = [...closed].sort(([, a], [, b]) =>
        a.machineId < b.machineId ? -1 : a.machineId > b.machineId ? 1 : 0,
      );
      await db.transaction().execute(async (tx) => {
        await lockInOrder(
          tx,
          rows.map(([, c]) => c.machineId),
        );
        if (dialect === 'postgres') {
          const result = await sql<{
            id: string;
            tenant_id: string;
            last_seen_at: string | null;
            conn: string;
          }>`update machines as m
            set status = 'OFFLINE', socket_connected = 0, connection_id = null, updated_at = v.at
            from unnest(${rows.map(([, c]) => c.machineId)}::text[], ${rows.map(([conn]) => conn)}::text[], ${rows.map(([, c]) => c.at)}::text[]) as v(id, conn, at)
            where m.id = v.id and m.connection_id = v.conn
            returning m.id, m.tenant_id, m.last_seen_at, v.conn`.execute(tx);
          for (const r of result.rows)
            changed.set(r.conn, { id: r.id, tenant_id: r.tenant_id, last_seen_at: r.last_seen_at });
          return;
        }
        for (const [conn, c] of rows) {
          const row = await tx
            .updateTable('machines')
            .set({ status: 'OFFLINE', socket_connected: 0, connection_id: null, updated_at: c.at })
            .where('id', '=', c.machineId)
            .where('connection_id', '=', conn)
            .returning(['id', 'tenant_id', 'last_seen_at'])
            .executeTakeFirst();
          if (row) changed.set(conn, row);
        }
      });
      return changed;
    },
    /** Devices calling over HTTP (no socket) were heard from: OFFLINE ones become IDLE; returns those. */
    async seenOverHttp(
      seen: ReadonlyMap<string, string>,
    ): Promise<{ id: string; tenant_id: string; at: string }[]> {
      if (seen.size === 0) return [];
      const rows = byId(seen);
      return db.transaction().execute(async (tx) => {
        await lockInOrder(
          tx,
          rows.map(([id]) => id),
        );
        const asleep = await tx
          .selectFrom('machines')
          .select(['id', 'tenant_id'])
          .where(
            'id',
            'in',
            rows.map(([id]) => id),
          )
          .where('status', '=', 'OFFLINE')
          .where('socket_connected', '=', 0)
          .execute();
        const woke = asleep.map((r) => ({ id: r.id, tenant_id: r.tenant_id, at: seen.get(r.id)! }));
        for (const w of woke) {
          await tx
            .updateTable('machines')
            .set({ status: 'IDLE', last_seen_at: w.at, updated_at: w.at })
            .where('id', '=', w.id)
            .execute();
        }
        return woke;
      });
    },
    /** HTTP devices silent since `cutoff` (in every process: last-seen is shared) become OFFLINE. */
    offlineSilentHttp(ids: string[], cutoff: string, at: string) {
      return db
        .updateTable('machines')
        .set({ status: 'OFFLINE', updated_at: at })
        .where('id', 'in', ids)
        .where('socket_connected', '=', 0)
        .where('status', '!=', 'OFFLINE')
        .where((eb) => eb.or([eb('last_seen_at', 'is', null), eb('last_seen_at', '<', cutoff)]))
        .returning(['id', 'tenant_id', 'last_seen_at'])
        .execute();
    },
    /**
     * Every device online without a socket (an HTTP device) and silent since `cutoff`, whichever
     * process heard it last (one that restarted, or another of the cluster, has no memory of it).
     */
    offlineAllSilentHttp(cutoff: string, at: string) {
      return db
        .updateTable('machines')
        .set({ status: 'OFFLINE', updated_at: at })
        .where('socket_connected', '=', 0)
        .where('status', '!=', 'OFFLINE')
        .where((eb) => eb.or([eb('last_seen_at', 'is', null), eb('last_seen_at', '<', cutoff)]))
        .returning(['id', 'tenant_id', 'last_seen_at'])
        .execute();
    },
    /**
     * Every machine still marked connected over Socket.IO but silent since `cutoff`: its process
     * died (`kill -9`, a lost host) without writing its disconnect, and no live process holds it
     * (a live connection's last-seen moves with every heartbeat batch). MQTT sessions are left to
     * the broker's keep-alive and last will.
     */
    offlineAllSilentSockets(cutoff: string, at: string, exceptNode?: string) {
      let q = db
        .updateTable('machines')
        .set({ status: 'OFFLINE', socket_connected: 0, connection_id: null, updated_at: at })
        .where('socket_connected', '=', 1);
      if (exceptNode !== undefined) {
        const own = `${likeEscape(exceptNode)}:%`;
        q = q.where((eb) =>
          eb.or([eb('connection_id', 'is', null), sql<boolean>`connection_id not like ${own} escape '\\'`]),
        );
      }
      return q
        .where((eb) => eb.or([eb('protocol', 'is', null), eb('protocol', '!=', 'mqtt')]))
        .where((eb) => eb.or([eb('last_seen_at', 'is', null), eb('last_seen_at', '<', cutoff)]))
        .returning(['id', 'tenant_id', 'last_seen_at'])
        .execute();
    },
    /** After a crash nothing is connected to this process any more. */
    resetConnections(connectionPrefix: string) {
      return db
        .updateTable('machines')
        .set({ status: 'OFFLINE', socket_connected: 0, connection_id: null })
        .where('connection_id', 'like', `${connectionPrefix}%`)
        .execute();
    },
  };
}

export type MachinesRepo = ReturnType<typeof createMachinesRepo>;
