// Machines: registration with a per-machine secret key (stored hashed, shown once),
// key rotation, payment profiles (the qrCodeId → machine mapping) and views.
import { randomBytes } from 'node:crypto';
import { SqliteAdapter, sql } from 'kysely';
import type { MachineKind, MachineStatus, MachineView, PaymentProfileView } from '@kioskhub/protocol';
import { AppError, notFound, validation } from '../../platform/errors.js';
import { isKnownCurrency } from '../../platform/money.js';
import { bool, nowIso, type Db, type Executor } from '../../platform/db/database.js';
import { isUniqueViolation } from '../../platform/db/errors.js';
import { pageOf } from '../../platform/db/pages.js';
import type { MachineRow } from '../../platform/db/schema.js';
import { sha256 } from '../../platform/http/auth.js';
import { recordAudit } from '../audit/audit.service.js';
import { DEFAULT_SITE } from '../tenants/tenants.service.js';
import type { MachineListFilter, MachinesRepo } from './machines.repo.js';

export type PaymentProfile = PaymentProfileView;

export interface Machine extends MachineView {
  kind: MachineKind;
}

export const newMachineKey = (): string => `mk_${randomBytes(24).toString('base64url')}`;

export function toMachine(row: MachineRow, lastSeenOverride?: string): Machine {
  const machine: Machine = {
    id: row.id,
    tenantId: row.tenant_id,
    siteId: row.site_id,
    name: row.name,
    kind: row.kind as MachineKind,
    status: row.status as MachineStatus,
    socketConnected: bool(row.socket_connected),
    lastSeenAt: lastSeenOverride ?? row.last_seen_at,
    firmware: row.firmware,
    protocol: row.protocol,
    currency: row.currency,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
  if (row.payment_provider && row.payment_qr_code_id) {
    machine.paymentProfile = {
      provider: row.payment_provider,
      qrCodeId: row.payment_qr_code_id,
      qrImageUrl: row.payment_qr_image_url,
      qrShortUrl: row.payment_qr_short_url,
      fixedAmountPaise: row.payment_fixed_amount_minor,
      qrContent: row.payment_qr_content,
    };
  }
  return machine;
}

export function createMachinesService(deps: {
  db: Db;
  repo: MachinesRepo;
  /** A site's currency (a machine takes its site's), undefined when the tenant has no such site. */
  siteCurrency(tenantId: string, siteId: string, ex?: Executor): Promise<string | undefined>;
  tenantExists(tenantId: string): Promise<boolean>;
  /** Freshest last-seen time held in memory, not yet flushed. */
  pendingLastSeen(machineId: string): string | undefined;
  /**
   * After a key rotation or a move to another site commits: drop the machine's connections,
   * everywhere (opened with the old key, or holding the old site). `reconnect`: a moved machine
   * connects again by itself; one whose key was replaced is sent away (its old key is no good).
   */
  dropConnections?(machineId: string, reconnect: boolean): void;
  /**
   * After a key is issued (creation or rotation) commits: brokers that keep their own
   * credentials (an external MQTT broker) take the new key. Never throws.
   */
  keyIssued?(machineId: string, key: string, reason: 'created' | 'rotated'): Promise<void>;
}) {
  const { db, repo } = deps;
  /** Per machine: the end of this process's queue of broker pushes. */
  const pushes = new Map<string, Promise<void>>();

  /**
   * Gives the broker `key` if it is still the machine's key in the database, one push per machine
   * at a time (on PostgreSQL under a lock every process takes, so pushes over different broker
   * connections cannot cross). Rotations commit in some order and push in another; this way the
   * last push is always of the key committed last. A superseded key is not pushed: the rotation
   * that replaced it pushes its own. Resolves once the broker has the key (or was skipped).
   */
  async function issueKey(id: string, key: string, reason: 'created' | 'rotated'): Promise<void> {
    const keyIssued = deps.keyIssued;
    if (!keyIssued) return;
    const push = async (ex: Executor) => {
      if ((await repo.findById(id, ex))?.key_hash !== sha256(key)) return;
      await keyIssued(id, key, reason);
    };
    const run = (pushes.get(id) ?? Promise.resolve()).then(() =>
      // SQLite has one process and one connection: the queue is enough, and no transaction holds
      // every other write back while the broker answers.
      (db.getExecutor().adapter instanceof SqliteAdapter
        ? push(db)
        : db.transaction().execute(async (tx) => {
            await sql`select pg_advisory_xact_lock(hashtext(${`machine-key:${id}`}))`.execute(tx);
            await push(tx);
          })
      ).catch(() =>
        // The key is committed: without the database to check it against, it is pushed as is
        // rather than the request failing (keyIssued never throws).
        keyIssued(id, key, reason),
      ),
    );
    const tail = run.catch(() => undefined);
    pushes.set(id, tail);
    try {
      await run;
    } finally {
      if (pushes.get(id) === tail) pushes.delete(id);
    }
  }

  /** Payment profiles whose QR codes are UPI: they pay rupees only. */
  const UPI_PROVIDERS = new Set(['razorpay', 'upi_local']);

  async function getScoped(id: string, tenantId: string | null): Promise<MachineRow> {
    const row = await repo.findById(id);
    if (!row || (tenantId !== null && row.tenant_id !== tenantId)) throw notFound('machine', id);
    return row;
  }

  return {
    async create(
      input: {
        id: string;
        tenantId: string;
        name?: string;
        kind?: MachineKind;
        siteId?: string;
        currency?: string;
      },
      actor: string,
    ): Promise<Machine & { key: string }> {
      // Its amounts are converted with the currency's ISO 4217 exponent: the code must be one.
      if (input.currency !== undefined && !isKnownCurrency(input.currency))
        throw validation(`currency "${input.currency}" is not an ISO 4217 code`, { field: 'currency' });
      if (!(await deps.tenantExists(input.tenantId))) throw notFound('tenant', input.tenantId);
      const siteId = input.siteId ?? DEFAULT_SITE;
      const siteCurrency = await deps.siteCurrency(input.tenantId, siteId);
      if (siteCurrency === undefined) throw notFound('site', siteId);
      const key = newMachineKey();
      const now = nowIso();
      const row: MachineRow = {
        id: input.id,
        tenant_id: input.tenantId,
        site_id: siteId,
        name: input.name ?? input.id,
        kind: input.kind ?? 'vending',
        key_hash: sha256(key),
        status: 'OFFLINE',
        socket_connected: 0,
        connection_id: null,
        protocol: null,
        last_seen_at: null,
        firmware: null,
        payment_provider: null,
        payment_qr_code_id: null,
        payment_qr_image_url: null,
        payment_qr_short_url: null,
        payment_fixed_amount_minor: null,
        payment_qr_content: null,
        currency: input.currency ?? siteCurrency,
        created_at: now,
        updated_at: now,
      };
      await db.transaction().execute(async (tx) => {
        const inserted = await repo.insert(row, tx);
        if (!inserted) throw new AppError('CONFLICT', `machine "${input.id}" already exists`);
        await recordAudit(tx, {
          tenantId: input.tenantId,
          actor,
          action: 'machine.create',
          subjectType: 'machine',
          subjectId: input.id,
          after: { name: row.name, kind: row.kind, siteId },
        });
      });
      await issueKey(input.id, key, 'created');
      return { ...toMachine(row), key };
    },

    async get(id: string, tenantId: string | null): Promise<Machine> {
      return toMachine(await getScoped(id, tenantId), deps.pendingLastSeen(id));
    },

    /** A tenant's machines matching every filter given (firmware campaigns pick their devices). */
    listForTarget: (
      tenantId: string,
      filter: { machineIds?: readonly string[]; siteIds?: readonly string[]; kinds?: readonly string[] },
    ) => repo.listForTarget(tenantId, filter),

    /** A page of machines by id; `q` matches part of the id or name (the dashboard's fleet search). */
    async list(filter: Omit<MachineListFilter, 'after'> & { cursor?: string }) {
      const rows = await repo.list({
        ...filter,
        ...(filter.cursor ? { after: filter.cursor } : {}),
        limit: filter.limit + 1,
      });
      return pageOf(rows, filter.limit, (r) => toMachine(r, deps.pendingLastSeen(r.id)));
    },

    /** Every machine a list filter matches, id and status only (the fleet's summary). */
    statuses: (filter: Omit<MachineListFilter, 'after' | 'limit'>) => repo.statuses(filter),

    async rotateKey(id: string, tenantId: string | null, actor: string): Promise<{ key: string }> {
      const row = await getScoped(id, tenantId);
      const key = newMachineKey();
      await db.transaction().execute(async (tx) => {
        await repo.update(id, { key_hash: sha256(key), updated_at: nowIso() }, tx);
        await recordAudit(tx, {
          tenantId: row.tenant_id,
          actor,
          action: 'machine.rotate_key',
          subjectType: 'machine',
          subjectId: id,
        });
      });
      deps.dropConnections?.(id, false);
      await issueKey(id, key, 'rotated');
      return { key };
    },

    async setPaymentProfile(
      id: string,
      tenantId: string | null,
      profile: PaymentProfile,
      actor: string,
    ): Promise<Machine> {
      await getScoped(id, tenantId);
      return db
        .transaction()
        .execute(async (tx) => {
          // Read locked: a move to another site committing meanwhile is seen (or waits for this).
          const row = (await repo.lockedById(id, tx))!;
          // A UPI QR (Razorpay's or a local one) asks for rupees: on a machine that takes another
          // currency every payment to it would be refused as a mismatch.
          if (UPI_PROVIDERS.has(profile.provider) && row.currency !== 'INR') {
            throw new AppError(
              'INVALID_STATE',
              `machine ${id} takes ${row.currency}; a ${profile.provider} QR code pays INR only`,
            );
          }
          const owner = await repo.findByQrCodeId(profile.qrCodeId, tx);
          if (owner && owner.id !== id) {
            // Name the other machine only to its own tenant.
            const which = owner.tenant_id === row.tenant_id ? `machine ${owner.id}` : 'another machine';
            throw new AppError('CONFLICT', `QR code ${profile.qrCodeId} is already mapped to ${which}`);
          }
          const changes = {
            payment_provider: profile.provider,
            payment_qr_code_id: profile.qrCodeId,
            payment_qr_image_url: profile.qrImageUrl,
            payment_qr_short_url: profile.qrShortUrl,
            payment_fixed_amount_minor: profile.fixedAmountPaise,
            payment_qr_content: profile.qrContent ?? null,
            updated_at: nowIso(),
          };
          await repo.update(id, changes, tx);
          await recordAudit(tx, {
            tenantId: row.tenant_id,
            actor,
            action: 'machine.payment_profile',
            subjectType: 'machine',
            subjectId: id,
            before: toMachine(row).paymentProfile ?? null,
            after: profile,
          });
          return toMachine({ ...row, ...changes });
        })
        .catch((err: unknown) => {
          // Two machines claiming one new QR at once: the unique index decides, the loser gets 409, not 500.
          if (isUniqueViolation(err))
            throw new AppError(
              'CONFLICT',
              `QR code ${profile.qrCodeId} is already mapped to another machine`,
            );
          throw err;
        });
    },

    /** Renames a machine or moves it to another site of its tenant (audited). */
    async update(
      id: string,
      tenantId: string | null,
      changes: { name?: string; siteId?: string },
      actor: string,
    ): Promise<Machine> {
      const scoped = await getScoped(id, tenantId);
      // A machine moved to another site takes that site's currency, as it would if created there.
      // Its own site named again (the dashboard's form sends it with a rename) is no move.
      const moveTo =
        changes.siteId !== undefined && changes.siteId !== scoped.site_id ? changes.siteId : undefined;
      const currency = moveTo !== undefined ? await deps.siteCurrency(scoped.tenant_id, moveTo) : undefined;
      if (moveTo !== undefined && currency === undefined) throw notFound('site', moveTo);
      const set = {
        ...(changes.name !== undefined ? { name: changes.name } : {}),
        ...(moveTo !== undefined ? { site_id: moveTo, currency: currency! } : {}),
        updated_at: nowIso(),
      };
      const row = await db.transaction().execute(async (tx) => {
        // Read locked: a payment profile set meanwhile is seen (or waits for this move).
        const row = (await repo.lockedById(id, tx))!;
        // Its payment QR asks for an amount in its currency (a UPI QR: rupees): moved to a site
        // of another currency, every payment to it would be refused as a mismatch.
        if (currency !== undefined && currency !== row.currency && row.payment_qr_code_id !== null) {
          throw new AppError(
            'INVALID_STATE',
            `machine ${id} has a payment QR in ${row.currency} and site ${moveTo} counts in ${currency}: ` +
              `move it to a site in ${row.currency}, or register it anew at that site`,
          );
        }
        await repo.update(id, set, tx);
        await recordAudit(tx, {
          tenantId: row.tenant_id,
          actor,
          action: 'machine.update',
          subjectType: 'machine',
          subjectId: id,
          before: { name: row.name, siteId: row.site_id },
          after: changes,
        });
        return row;
      });
      // Its connections hold the site they opened at (a printer would go on getting the old
      // site's receipts): the device reconnects as a machine of its new site.
      if (moveTo !== undefined && moveTo !== row.site_id) deps.dropConnections?.(id, true);
      return toMachine({ ...row, ...set }, deps.pendingLastSeen(id));
    },

    /** Every machine's site and status, for the samples of machines online per site. */
    statusSnapshot: () => repo.listStatuses(),
    /** Machines offline whose last sighting is older than `cutoff` (ISO time), for outage alerts. */
    offlineSince: (cutoff: string) => repo.listOfflineSince(cutoff),
    findByQrCodeId: (qrCodeId: string, ex?: Executor) => repo.findByQrCodeId(qrCodeId, ex),
    findRow: (id: string, ex?: Executor) => repo.findById(id, ex),
    /** The machines of one kind at a site (a cafe's tables), by id. */
    atSite: (tenantId: string, siteId: string, kind: MachineKind) => repo.listAtSite(tenantId, siteId, kind),
  };
}

export type MachinesService = ReturnType<typeof createMachinesService>;
