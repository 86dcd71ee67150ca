// Alerts for operators: things that need a person (failed print jobs, oversold stock…). Some
// alerts are about a condition (a silent kiosk, a stuck payment): those resolve when it clears.
import { LIVE_EVENTS, type AlertView, type Page } from '@kioskhub/protocol';
import { PostgresAdapter, sql } from 'kysely';
import { notFound } from '../../platform/errors.js';
import { nowIso, type Db, type Executor, newId } from '../../platform/db/database.js';
import { knownCursor, pageOf } from '../../platform/db/pages.js';
import { enqueueOutbox } from '../../platform/outbox.js';

export type Alert = AlertView;

export function createAlertsService(deps: { db: Db }) {
  const { db } = deps;
  const service = {
    async raise(
      ex: Executor,
      alert: { tenantId: string; kind: string; subjectType: string; subjectId: string; message: string },
    ): Promise<void> {
      await ex
        .insertInto('alerts')
        .values({
          id: newId(),
          tenant_id: alert.tenantId,
          kind: alert.kind,
          subject_type: alert.subjectType,
          subject_id: alert.subjectId,
          message: alert.message,
          created_at: nowIso(),
          acknowledged_at: null,
          acknowledged_by: null,
        })
        .execute();
      // After the commit, the tenant's screens hear of it (the dashboard's badge and alerts page).
      // An installation-wide alert (tenant `*`) has no room to go to.
      if (alert.tenantId !== '*') {
        await enqueueOutbox(ex, 'live', {
          tenantId: alert.tenantId,
          rooms: [`tenant:${alert.tenantId}`],
          event: LIVE_EVENTS.alertRaised,
          data: {
            tenantId: alert.tenantId,
            kind: alert.kind,
            subjectType: alert.subjectType,
            subjectId: alert.subjectId,
          },
        });
      }
    },
    /**
     * Raises an alert about a standing condition unless one about it (same tenant, kind and
     * subject) is still unresolved; true when this call raised it. `ex` must be a transaction:
     * concurrent callers (two processes sweeping at once) take turns on PostgreSQL until it ends;
     * SQLite runs one write transaction at a time already. `unacknowledged`: an alert staff have
     * acknowledged no longer counts as open (for news about its subject they have not seen yet).
     */
    async raiseUnlessOpen(
      ex: Executor,
      alert: { tenantId: string; kind: string; subjectType: string; subjectId: string; message: string },
      opts: { unacknowledged?: boolean } = {},
    ): Promise<boolean> {
      if (ex.getExecutor().adapter instanceof PostgresAdapter) {
        const key = `alert:${alert.tenantId}|${alert.kind}|${alert.subjectId}`;
        await sql`select pg_advisory_xact_lock(hashtext(${key}))`.execute(ex);
      }
      let openQuery = ex
        .selectFrom('alerts')
        .select('id')
        .where('kind', '=', alert.kind)
        .where('subject_id', '=', alert.subjectId)
        .where('tenant_id', '=', alert.tenantId)
        .where('resolved_at', 'is', null);
      if (opts.unacknowledged) openQuery = openQuery.where('acknowledged_at', 'is', null);
      const open = await openQuery.executeTakeFirst();
      if (open !== undefined) return false;
      await service.raise(ex, alert);
      return true;
    },
    /** `tenants`: the tenants the reader sees (`readableTenants`), null for all. */
    async list(
      tenants: readonly string[] | null,
      filter: { open?: boolean; cursor?: string; limit: number },
    ): Promise<Page<Alert>> {
      // Alerts are never deleted: a cursor names one the reader sees, or it is made up. (An alert
      // acknowledged since its page was read still pages an `open` list: its id is the position.)
      await knownCursor(filter.cursor, (id) => {
        let found = db.selectFrom('alerts').select('id').where('id', '=', id);
        if (tenants !== null) found = found.where('tenant_id', 'in', tenants);
        return found.executeTakeFirst();
      });
      let q = db
        .selectFrom('alerts')
        .selectAll()
        .orderBy('id', 'desc')
        .limit(filter.limit + 1);
      if (tenants !== null) q = q.where('tenant_id', 'in', tenants);
      if (filter.open) q = q.where('acknowledged_at', 'is', null).where('resolved_at', 'is', null);
      if (filter.cursor !== undefined) q = q.where('id', '<', filter.cursor);
      const rows = await q.execute();
      return pageOf(rows, filter.limit, (r) => ({
        id: r.id,
        tenantId: r.tenant_id,
        kind: r.kind,
        subjectType: r.subject_type,
        subjectId: r.subject_id,
        message: r.message,
        createdAt: r.created_at,
        acknowledgedAt: r.acknowledged_at,
        acknowledgedBy: r.acknowledged_by,
        resolvedAt: r.resolved_at,
      }));
    },
    /** Unresolved alerts of these kinds (acknowledged or not): the conditions still standing. */
    async unresolved(
      kinds: readonly string[],
    ): Promise<{ id: string; tenantId: string; kind: string; subjectId: string; createdAt: string }[]> {
      if (kinds.length === 0) return [];
      const rows = await db
        .selectFrom('alerts')
        .select(['id', 'tenant_id', 'kind', 'subject_id', 'created_at'])
        .where('kind', 'in', kinds)
        .where('resolved_at', 'is', null)
        .execute();
      return rows.map((r) => ({
        id: r.id,
        tenantId: r.tenant_id,
        kind: r.kind,
        subjectId: r.subject_id,
        createdAt: r.created_at,
      }));
    },
    /** Marks alerts resolved: their condition has cleared. */
    async resolve(ex: Executor, ids: readonly string[]): Promise<void> {
      if (ids.length === 0) return;
      await ex
        .updateTable('alerts')
        .set({ resolved_at: nowIso() })
        .where('id', 'in', ids)
        .where('resolved_at', 'is', null)
        .execute();
    },
    /** Marks the alerts of `kind` about `subjectId` resolved (none open: nothing happens). */
    async resolveSubject(ex: Executor, kind: string, subjectId: string): Promise<void> {
      await ex
        .updateTable('alerts')
        .set({ resolved_at: nowIso() })
        .where('kind', '=', kind)
        .where('subject_id', '=', subjectId)
        .where('resolved_at', 'is', null)
        .execute();
    },
    /** Acknowledges an alert once: the first acknowledgement stays, a later one changes nothing. */
    async acknowledge(id: string, tenants: readonly string[] | null, actor: string): Promise<void> {
      let q = db
        .updateTable('alerts')
        .set({ acknowledged_at: nowIso(), acknowledged_by: actor })
        .where('id', '=', id)
        .where('acknowledged_at', 'is', null);
      if (tenants !== null) q = q.where('tenant_id', 'in', tenants);
      const res = await q.executeTakeFirst();
      if (Number(res.numUpdatedRows) > 0) return;
      let found = db.selectFrom('alerts').select('id').where('id', '=', id);
      if (tenants !== null) found = found.where('tenant_id', 'in', tenants);
      if ((await found.executeTakeFirst()) === undefined) throw notFound('alert', id);
    },
  };
  return service;
}

export type AlertsService = ReturnType<typeof createAlertsService>;
