// A cafe's tables (machines of kind `table`), their QR tokens and their servers, the cafe
// settings of a site (tips, bank account, card gateway, pay-later) and how products show on the
// menu. Tokens are checked here for every guest request: signature, scope, tenant, site, table
// kind and the table's current token version.
import QRCode from 'qrcode';
import { AppError, notFound, validation } from '../../platform/errors.js';
import { nowIso, type Db, type Executor } from '../../platform/db/database.js';
import type { CafeSettingsRow, MachineRow } from '../../platform/db/schema.js';
import { recordAudit } from '../audit/audit.service.js';
import { isBic, normaliseIban } from './iban.js';
import type { TableTokens } from './table-token.js';

export const TIP_SPLITS = ['pool', 'server'] as const;
export type TipSplit = (typeof TIP_SPLITS)[number];

export interface BankAccount {
  name: string;
  iban: string;
  bic?: string;
}

export interface CafeSettings {
  tipPresetsPercent: number[];
  tipSplit: TipSplit;
  bankAccount: BankAccount | null;
  cardGateway: 'stripe' | null;
  payLater: boolean;
}

export type CafeSettingsChange = Partial<{
  tipPresetsPercent: number[];
  tipSplit: TipSplit;
  bankAccount: BankAccount | null;
  cardGateway: 'stripe' | null;
  payLater: boolean;
}>;

export const DEFAULT_SETTINGS: CafeSettings = {
  tipPresetsPercent: [0, 5, 10, 15],
  tipSplit: 'pool',
  bankAccount: null,
  cardGateway: null,
  payLater: false,
};

const toSettings = (r: CafeSettingsRow | undefined): CafeSettings =>
  r
    ? {
        tipPresetsPercent: JSON.parse(r.tip_presets) as number[],
        tipSplit: r.tip_split as TipSplit,
        bankAccount: r.bank_account ? (JSON.parse(r.bank_account) as BankAccount) : null,
        cardGateway: r.card_gateway === 'stripe' ? 'stripe' : null,
        payLater: r.pay_later === 1,
      }
    : { ...DEFAULT_SETTINGS, tipPresetsPercent: [...DEFAULT_SETTINGS.tipPresetsPercent] };

/** A guest's table, resolved from a valid current token. */
export interface GuestTable {
  tenantId: string;
  siteId: string;
  tableId: string;
  tableName: string;
}

export function createCafeTables(deps: {
  db: Db;
  tokens: TableTokens;
  findMachine(id: string, ex?: Executor): Promise<MachineRow | undefined>;
  /** The table machines of a site, by id (machines module). */
  siteTableMachines(tenantId: string, siteId: string): Promise<Pick<MachineRow, 'id' | 'name'>[]>;
  /** Is the user a staff user of the tenant (users module)? */
  isStaffOf(userId: string, tenantId: string, ex?: Executor): Promise<boolean>;
  /** Does the tenant sell this sku (catalog module)? */
  productExists(tenantId: string, sku: string, ex?: Executor): Promise<boolean>;
}) {
  const { db, tokens } = deps;

  /** The table machine of the caller's tenant (null: ADMIN_TOKEN, any tenant). */
  async function tableMachine(id: string, tenantId: string | null, ex: Executor = db): Promise<MachineRow> {
    const m = await deps.findMachine(id, ex);
    if (!m || (tenantId !== null && m.tenant_id !== tenantId)) throw notFound('machine', id);
    if (m.kind !== 'table') throw new AppError('INVALID_STATE', `machine ${id} is a ${m.kind}, not a table`);
    return m;
  }

  async function tableRow(ex: Executor, m: MachineRow) {
    await ex
      .insertInto('cafe_tables')
      .values({
        machine_id: m.id,
        tenant_id: m.tenant_id,
        token_version: 1,
        server_user_id: null,
        updated_at: nowIso(),
      })
      .onConflict((oc) => oc.column('machine_id').doNothing())
      .execute();
    return ex.selectFrom('cafe_tables').selectAll().where('machine_id', '=', m.id).executeTakeFirstOrThrow();
  }

  async function tokenOf(m: MachineRow): Promise<string> {
    const row = await tableRow(db, m);
    return tokens.sign({
      tenantId: m.tenant_id,
      siteId: m.site_id,
      tableId: m.id,
      version: row.token_version,
    });
  }

  async function settingsRow(tenantId: string, siteId: string, ex: Executor = db) {
    return ex
      .selectFrom('cafe_settings')
      .selectAll()
      .where('tenant_id', '=', tenantId)
      .where('site_id', '=', siteId)
      .executeTakeFirst();
  }

  /** Checks a settings change before anything is written (IBAN checksum, presets, BIC). */
  function checkSettings(change: CafeSettingsChange): CafeSettingsChange {
    const out: CafeSettingsChange = { ...change };
    if (change.tipPresetsPercent !== undefined) {
      const presets = change.tipPresetsPercent;
      if (new Set(presets).size !== presets.length) throw validation('tipPresetsPercent has a value twice');
      out.tipPresetsPercent = [...presets].sort((a, b) => a - b);
    }
    if (change.bankAccount) {
      const iban = normaliseIban(change.bankAccount.iban);
      if (!iban)
        throw validation(
          `bankAccount.iban "${change.bankAccount.iban}" is not a valid IBAN (checksum or length)`,
        );
      const bic = change.bankAccount.bic?.replace(/\s/g, '').toUpperCase();
      if (bic !== undefined && !isBic(bic))
        throw validation(`bankAccount.bic "${change.bankAccount.bic}" is not a BIC`);
      // What the EPC QR code names as the payee (one line): refused blank now, not when a guest pays.
      const name = change.bankAccount.name.trim();
      if (!name) throw validation('bankAccount.name is blank: the account holder as the bank knows it');
      out.bankAccount = { name, iban, ...(bic ? { bic } : {}) };
    }
    return out;
  }

  return {
    tableMachine,
    checkSettings,

    /** The link a table's QR code opens. */
    async link(id: string, tenantId: string | null, publicUrl: string): Promise<string> {
      const m = await tableMachine(id, tenantId);
      return `${publicUrl.replace(/\/+$/, '')}/t/${await tokenOf(m)}`;
    },

    async qrPng(id: string, tenantId: string | null, publicUrl: string): Promise<Buffer> {
      const m = await tableMachine(id, tenantId);
      const url = `${publicUrl.replace(/\/+$/, '')}/t/${await tokenOf(m)}`;
      return QRCode.toBuffer(url, { type: 'png', errorCorrectionLevel: 'M', margin: 2, width: 512 });
    },

    /** A new token version: every QR printed before stops working. */
    async rotate(id: string, tenantId: string | null, actor: string): Promise<{ version: number }> {
      return db.transaction().execute(async (tx) => {
        const m = await tableMachine(id, tenantId, tx);
        const before = await tableRow(tx, m);
        const version = before.token_version + 1;
        await tx
          .updateTable('cafe_tables')
          .set({ token_version: version, updated_at: nowIso() })
          .where('machine_id', '=', m.id)
          .execute();
        await recordAudit(tx, {
          tenantId: m.tenant_id,
          actor,
          action: 'table.qr_rotate',
          subjectType: 'machine',
          subjectId: m.id,
          before: { version: before.token_version },
          after: { version },
        });
        return { version };
      });
    },

    /** Every table of a site with its QR link (for the printable sheet and the staff view). */
    async siteTables(tenantId: string, siteId: string, publicUrl?: string) {
      const machines = await deps.siteTableMachines(tenantId, siteId);
      const servers =
        machines.length === 0
          ? []
          : await db
              .selectFrom('cafe_tables')
              .select(['machine_id', 'server_user_id'])
              .where(
                'machine_id',
                'in',
                machines.map((m) => m.id),
              )
              .execute();
      const serverOf = new Map(servers.map((t) => [t.machine_id, t.server_user_id]));
      const out = [];
      for (const m of machines) {
        const link = publicUrl
          ? `${publicUrl.replace(/\/+$/, '')}/t/${await tokenOf((await deps.findMachine(m.id))!)}`
          : undefined;
        out.push({
          id: m.id,
          name: m.name,
          serverUserId: serverOf.get(m.id) ?? null,
          ...(link ? { link } : {}),
        });
      }
      return out;
    },

    async setServer(id: string, tenantId: string | null, serverUserId: string | null, actor: string) {
      return db.transaction().execute(async (tx) => {
        const m = await tableMachine(id, tenantId, tx);
        if (serverUserId !== null) {
          // The server must be a staff user of the same tenant.
          if (!(await deps.isStaffOf(serverUserId, m.tenant_id, tx)))
            throw validation(`user "${serverUserId}" is not a staff user of this tenant`);
        }
        const before = await tableRow(tx, m);
        await tx
          .updateTable('cafe_tables')
          .set({ server_user_id: serverUserId, updated_at: nowIso() })
          .where('machine_id', '=', m.id)
          .execute();
        await recordAudit(tx, {
          tenantId: m.tenant_id,
          actor,
          action: 'table.server',
          subjectType: 'machine',
          subjectId: m.id,
          before: { serverUserId: before.server_user_id },
          after: { serverUserId },
        });
        return { id: m.id, name: m.name, siteId: m.site_id, serverUserId };
      });
    },

    /** The table a guest token names, if the token is valid and current; UNAUTHORIZED otherwise. */
    async guestTable(token: string | undefined, ex: Executor = db): Promise<GuestTable> {
      if (!token)
        throw new AppError(
          'UNAUTHORIZED',
          "a guest route: send the table's token as Bearer (from the table's QR link, /t/<token>)",
        );
      const claims = await tokens.read(token);
      const refused = new AppError(
        'UNAUTHORIZED',
        'this table link is not valid (any more): scan the table QR again',
      );
      if (!claims) throw refused;
      const m = await deps.findMachine(claims.tableId, ex);
      if (!m || m.kind !== 'table' || m.tenant_id !== claims.tenantId || m.site_id !== claims.siteId)
        throw refused;
      const row = await ex
        .selectFrom('cafe_tables')
        .select('token_version')
        .where('machine_id', '=', m.id)
        .executeTakeFirst();
      if (!row || row.token_version !== claims.version) throw refused;
      return { tenantId: m.tenant_id, siteId: m.site_id, tableId: m.id, tableName: m.name };
    },

    /**
     * The server a table's tips go to under the `server` split: none while the user given the
     * table is disabled or gone (its tips are then recorded without a server).
     */
    async serverOf(tableId: string, ex: Executor = db): Promise<string | null> {
      const row = await ex
        .selectFrom('cafe_tables')
        .select(['server_user_id', 'tenant_id'])
        .where('machine_id', '=', tableId)
        .executeTakeFirst();
      if (!row?.server_user_id) return null;
      return (await deps.isStaffOf(row.server_user_id, row.tenant_id, ex)) ? row.server_user_id : null;
    },

    settings: async (tenantId: string, siteId: string, ex: Executor = db): Promise<CafeSettings> =>
      toSettings(await settingsRow(tenantId, siteId, ex)),

    /** Applies a checked change inside the site update's transaction, audited. */
    async applySettings(
      ex: Executor,
      tenantId: string,
      siteId: string,
      change: CafeSettingsChange,
      actor: string,
    ) {
      const before = toSettings(await settingsRow(tenantId, siteId, ex));
      const after: CafeSettings = {
        ...before,
        ...Object.fromEntries(Object.entries(change).filter(([, v]) => v !== undefined)),
      } as CafeSettings;
      const values = {
        tip_presets: JSON.stringify(after.tipPresetsPercent),
        tip_split: after.tipSplit,
        bank_account: after.bankAccount ? JSON.stringify(after.bankAccount) : null,
        card_gateway: after.cardGateway,
        pay_later: after.payLater ? 1 : 0,
        updated_at: nowIso(),
      };
      await ex
        .insertInto('cafe_settings')
        .values({ tenant_id: tenantId, site_id: siteId, ...values })
        .onConflict((oc) => oc.columns(['tenant_id', 'site_id']).doUpdateSet(values))
        .execute();
      await recordAudit(ex, {
        tenantId,
        actor,
        action: 'site.cafe_settings',
        subjectType: 'site',
        subjectId: siteId,
        before,
        after,
      });
      return after;
    },

    /** How a product shows on the menu: category, description, available (audited). */
    async setMenuItem(
      tenantId: string,
      sku: string,
      change: { category?: string | null; description?: string | null; available?: boolean; sort?: number },
      actor: string,
    ) {
      return db.transaction().execute(async (tx) => {
        if (!(await deps.productExists(tenantId, sku, tx))) throw notFound('product', sku);
        const before = await tx
          .selectFrom('cafe_menu')
          .selectAll()
          .where('tenant_id', '=', tenantId)
          .where('sku', '=', sku)
          .executeTakeFirst();
        const next = {
          category: change.category !== undefined ? change.category : (before?.category ?? null),
          description: change.description !== undefined ? change.description : (before?.description ?? null),
          available: change.available !== undefined ? (change.available ? 1 : 0) : (before?.available ?? 1),
          sort: change.sort ?? before?.sort ?? 0,
          updated_at: nowIso(),
        };
        await tx
          .insertInto('cafe_menu')
          .values({ tenant_id: tenantId, sku, ...next })
          .onConflict((oc) => oc.columns(['tenant_id', 'sku']).doUpdateSet(next))
          .execute();
        await recordAudit(tx, {
          tenantId,
          actor,
          action: 'menu.update',
          subjectType: 'product',
          subjectId: sku,
          before: before ?? null,
          after: next,
        });
        return {
          sku,
          category: next.category,
          description: next.description,
          available: next.available === 1,
          sort: next.sort,
        };
      });
    },
  };
}

export type CafeTables = ReturnType<typeof createCafeTables>;
