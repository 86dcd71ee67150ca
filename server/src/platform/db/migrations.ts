// Schema migrations written with Kysely's schema builder so the same steps run on SQLite
// and PostgreSQL. Add new migrations at the end; never edit one that has shipped.
import { sql, type Kysely, type Migration, type MigrationProvider } from 'kysely';
import { monotonicFactory } from 'ulid';
import { firmwareMigration } from './migration-firmware.js';

/* eslint-disable @typescript-eslint/no-explicit-any -- migrations see the schema before it exists */
type AnyDb = Kysely<any>;

const initial: Migration = {
  async up(db: AnyDb) {
    await db.schema
      .createTable('tenants')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema
      .createTable('settings')
      .addColumn('key', 'text', (c) => c.primaryKey())
      .addColumn('value', 'text', (c) => c.notNull())
      .execute();
    await db.schema
      .createTable('users')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id'))
      .addColumn('email', 'text', (c) => c.notNull().unique())
      .addColumn('password_hash', 'text', (c) => c.notNull())
      .addColumn('role', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema
      .createTable('sites')
      .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id'))
      .addColumn('id', 'text', (c) => c.notNull())
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('currency', 'text', (c) => c.notNull())
      .addColumn('print_queue_open', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('sites_pk', ['tenant_id', 'id'])
      .execute();
    await db.schema
      .createTable('machines')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id'))
      .addColumn('site_id', 'text', (c) => c.notNull())
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('kind', 'text', (c) => c.notNull())
      .addColumn('key_hash', 'text', (c) => c.notNull().unique())
      .addColumn('status', 'text', (c) => c.notNull())
      .addColumn('socket_connected', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('connection_id', 'text')
      .addColumn('protocol', 'text')
      .addColumn('last_seen_at', 'text')
      .addColumn('firmware', 'text')
      .addColumn('payment_provider', 'text')
      .addColumn('payment_qr_code_id', 'text', (c) => c.unique())
      .addColumn('payment_qr_image_url', 'text')
      .addColumn('payment_qr_short_url', 'text')
      .addColumn('payment_fixed_amount_minor', 'integer')
      .addColumn('payment_qr_content', 'text')
      .addColumn('currency', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('machines_tenant_idx').on('machines').columns(['tenant_id', 'id']).execute();
    await db.schema
      .createTable('orders')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id'))
      .addColumn('site_id', 'text')
      .addColumn('machine_id', 'text', (c) => c.references('machines.id'))
      .addColumn('order_number', 'text')
      .addColumn('amount', 'bigint', (c) => c.notNull())
      .addColumn('currency', 'text', (c) => c.notNull())
      .addColumn('source', 'text', (c) => c.notNull())
      .addColumn('provider', 'text')
      .addColumn('provider_payment_id', 'text')
      .addColumn('provider_qr_code_id', 'text')
      .addColumn('paid_at', 'text')
      .addColumn('status', 'text', (c) => c.notNull())
      .addColumn('failure_code', 'text')
      .addColumn('items', 'text')
      .addColumn('customer_name', 'text')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .addUniqueConstraint('orders_payment_uq', ['provider', 'provider_payment_id'])
      .addUniqueConstraint('orders_number_uq', ['tenant_id', 'order_number'])
      .execute();
    await db.schema.createIndex('orders_tenant_idx').on('orders').columns(['tenant_id', 'id']).execute();
    await db.schema.createIndex('orders_machine_idx').on('orders').columns(['machine_id', 'id']).execute();
    await db.schema
      .createTable('order_events')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('tenant_id', 'text', (c) => c.notNull())
      .addColumn('order_id', 'text', (c) => c.notNull())
      .addColumn('type', 'text', (c) => c.notNull())
      .addColumn('actor', 'text', (c) => c.notNull())
      .addColumn('detail', 'text')
      .addColumn('at', 'text', (c) => c.notNull())
      .execute();
    await db.schema
      .createIndex('order_events_order_idx')
      .on('order_events')
      .columns(['order_id', 'id'])
      .execute();
    await db.schema
      .createTable('payment_events')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('provider', 'text', (c) => c.notNull())
      .addColumn('provider_payment_id', 'text', (c) => c.notNull())
      .addColumn('event_id', 'text')
      .addColumn('event_type', 'text', (c) => c.notNull())
      .addColumn('tenant_id', 'text')
      .addColumn('status', 'text', (c) => c.notNull())
      .addColumn('reason', 'text')
      .addColumn('machine_id', 'text')
      .addColumn('order_id', 'text')
      .addColumn('amount_minor', 'bigint')
      .addColumn('currency', 'text')
      .addColumn('raw', 'text', (c) => c.notNull())
      .addColumn('received_at', 'text', (c) => c.notNull())
      .addColumn('processed_at', 'text', (c) => c.notNull())
      .addUniqueConstraint('payment_events_payment_uq', ['provider', 'provider_payment_id'])
      .execute();
    await db.schema
      .createTable('webhook_deliveries')
      .addColumn('provider', 'text', (c) => c.notNull())
      .addColumn('event_id', 'text', (c) => c.notNull())
      .addColumn('response', 'text', (c) => c.notNull())
      .addColumn('received_at', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('webhook_deliveries_pk', ['provider', 'event_id'])
      .execute();
    await db.schema
      .createTable('commands')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('tenant_id', 'text', (c) => c.notNull())
      .addColumn('machine_id', 'text', (c) => c.notNull().references('machines.id'))
      .addColumn('order_id', 'text', (c) => c.notNull().unique().references('orders.id'))
      .addColumn('status', 'text', (c) => c.notNull())
      .addColumn('protocol', 'text')
      .addColumn('payload', 'text', (c) => c.notNull())
      .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('queued_at', 'text', (c) => c.notNull())
      .addColumn('sent_at', 'text')
      .addColumn('accepted_at', 'text')
      .addColumn('finished_at', 'text')
      .addColumn('result', 'text')
      .addColumn('failure_code', 'text')
      .execute();
    await db.schema
      .createIndex('commands_queue_idx')
      .on('commands')
      .columns(['machine_id', 'status', 'queued_at'])
      .execute();
    // The database itself guarantees "at most one command in flight per machine".
    await db.schema
      .createIndex('commands_one_in_flight_uq')
      .on('commands')
      .column('machine_id')
      .unique()
      .where(sql.ref('status'), 'in', ['SENT', 'ACCEPTED'])
      .execute();
    await db.schema
      .createTable('audit_log')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('tenant_id', 'text')
      .addColumn('actor', 'text', (c) => c.notNull())
      .addColumn('action', 'text', (c) => c.notNull())
      .addColumn('subject_type', 'text', (c) => c.notNull())
      .addColumn('subject_id', 'text', (c) => c.notNull())
      .addColumn('before', 'text')
      .addColumn('after', 'text')
      .addColumn('at', 'text', (c) => c.notNull())
      .execute();
  },
};

function outbox(dialect: 'sqlite' | 'postgres'): Migration {
  return {
    async up(db: AnyDb) {
      await db.schema
        .createTable('outbox')
        .addColumn('id', dialect === 'postgres' ? 'bigserial' : 'integer', (c) =>
          dialect === 'postgres' ? c.primaryKey() : c.primaryKey().autoIncrement(),
        )
        .addColumn('topic', 'text', (c) => c.notNull())
        .addColumn('payload', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .execute();
    },
  };
}

// Restaurant kiosks: catalog, cash sessions, unallocated cash, the receipt print queue, alerts.
const restaurant: Migration = {
  async up(db: AnyDb) {
    await db.schema.alterTable('sites').addColumn('address', 'text').execute();
    await db.schema.alterTable('sites').addColumn('phone', 'text').execute();
    await db.schema
      .alterTable('sites')
      .addColumn('tax_rate_bp', 'integer', (c) => c.notNull().defaultTo(0))
      .execute();
    await db.schema
      .alterTable('orders')
      .addColumn('requires_dispense', 'integer', (c) => c.notNull().defaultTo(0))
      .execute();
    await db
      .updateTable('orders')
      .set({ requires_dispense: 1 })
      .where('machine_id', 'is not', null)
      .execute();
    await db.schema
      .createTable('products')
      .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id'))
      .addColumn('sku', 'text', (c) => c.notNull())
      .addColumn('site_id', 'text', (c) => c.notNull())
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('price_minor', 'bigint', (c) => c.notNull())
      .addColumn('stock', 'integer')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('products_pk', ['tenant_id', 'sku'])
      .execute();
    await db.schema
      .createTable('cash_sessions')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('tenant_id', 'text', (c) => c.notNull())
      .addColumn('site_id', 'text', (c) => c.notNull())
      .addColumn('machine_id', 'text')
      .addColumn('order_id', 'text', (c) => c.notNull().references('orders.id'))
      .addColumn('order_number', 'text', (c) => c.notNull())
      .addColumn('total_required_minor', 'bigint', (c) => c.notNull())
      .addColumn('currency', 'text', (c) => c.notNull())
      .addColumn('status', 'text', (c) => c.notNull())
      .addColumn('refund_due_minor', 'bigint', (c) => c.notNull().defaultTo(0))
      .addColumn('started_at', 'text', (c) => c.notNull())
      .addColumn('completed_at', 'text')
      .addColumn('cancelled_at', 'text')
      .execute();
    await db.schema
      .createIndex('cash_sessions_order_idx')
      .on('cash_sessions')
      .columns(['tenant_id', 'order_number', 'status'])
      .execute();
    await db.schema
      .createIndex('cash_sessions_site_idx')
      .on('cash_sessions')
      .columns(['tenant_id', 'site_id', 'status', 'started_at'])
      .execute();
    await db.schema
      .createTable('cash_inserts')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('tenant_id', 'text', (c) => c.notNull())
      .addColumn('session_id', 'text', (c) => c.notNull().references('cash_sessions.id'))
      .addColumn('machine_id', 'text')
      .addColumn('event_id', 'text')
      .addColumn('kind', 'text')
      .addColumn('amount_minor', 'bigint', (c) => c.notNull())
      .addColumn('recorded_at', 'text', (c) => c.notNull())
      .addUniqueConstraint('cash_inserts_event_uq', ['tenant_id', 'event_id'])
      .execute();
    await db.schema.createIndex('cash_inserts_session_idx').on('cash_inserts').column('session_id').execute();
    await db.schema
      .createTable('unallocated_cash')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('tenant_id', 'text', (c) => c.notNull())
      .addColumn('site_id', 'text')
      .addColumn('machine_id', 'text')
      .addColumn('order_number', 'text', (c) => c.notNull())
      .addColumn('event_id', 'text')
      .addColumn('kind', 'text')
      .addColumn('amount_minor', 'bigint', (c) => c.notNull())
      .addColumn('currency', 'text', (c) => c.notNull())
      .addColumn('reason', 'text', (c) => c.notNull())
      .addColumn('recorded_at', 'text', (c) => c.notNull())
      .addUniqueConstraint('unallocated_cash_event_uq', ['tenant_id', 'event_id'])
      .execute();
    await db.schema
      .createTable('print_jobs')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('tenant_id', 'text', (c) => c.notNull())
      .addColumn('site_id', 'text', (c) => c.notNull())
      .addColumn('order_id', 'text')
      .addColumn('status', 'text', (c) => c.notNull())
      .addColumn('receipt', 'text', (c) => c.notNull())
      .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('leased_by', 'text')
      .addColumn('lease_expires_at', 'text')
      .addColumn('last_error', 'text')
      .addColumn('queued_at', 'text', (c) => c.notNull())
      .addColumn('printed_at', 'text')
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema
      .createIndex('print_jobs_queue_idx')
      .on('print_jobs')
      .columns(['tenant_id', 'site_id', 'status', 'queued_at'])
      .execute();
    await db.schema
      .createTable('alerts')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('tenant_id', 'text', (c) => c.notNull())
      .addColumn('kind', 'text', (c) => c.notNull())
      .addColumn('subject_type', 'text', (c) => c.notNull())
      .addColumn('subject_id', 'text', (c) => c.notNull())
      .addColumn('message', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('acknowledged_at', 'text')
      .addColumn('acknowledged_by', 'text')
      .execute();
    await db.schema
      .createIndex('alerts_tenant_idx')
      .on('alerts')
      .columns(['tenant_id', 'acknowledged_at', 'created_at'])
      .execute();
  },
};

// Operator dashboard: periodic samples of machines online (per site) and the marks that make
// dashboard alerts (offline too long, failed dispenses) fire once per outage or order.
const dashboard: Migration = {
  async up(db: AnyDb) {
    await db.schema
      .createTable('machine_online_samples')
      .addColumn('tenant_id', 'text', (c) => c.notNull())
      .addColumn('site_id', 'text', (c) => c.notNull())
      .addColumn('at', 'text', (c) => c.notNull())
      .addColumn('online', 'integer', (c) => c.notNull())
      .addColumn('total', 'integer', (c) => c.notNull())
      .addColumn('online_ids', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('machine_online_samples_pk', ['tenant_id', 'site_id', 'at'])
      .execute();
    await db.schema
      .createIndex('machine_online_samples_at_idx')
      .on('machine_online_samples')
      .columns(['at'])
      .execute();
    await db.schema
      .createTable('dashboard_alert_marks')
      .addColumn('kind', 'text', (c) => c.notNull())
      .addColumn('subject_id', 'text', (c) => c.notNull())
      .addColumn('mark', 'text', (c) => c.notNull())
      .addColumn('tenant_id', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('dashboard_alert_marks_pk', ['kind', 'subject_id', 'mark'])
      .execute();
  },
};

// Security hardening: staff tokens carry a per-user version (logout, disable, role change and
// delete revoke them), and a key-less print site id is claimed by one tenant only.
const security: Migration = {
  async up(db: AnyDb) {
    await db.schema
      .alterTable('users')
      .addColumn('token_version', 'integer', (c) => c.notNull().defaultTo(0))
      .execute();
    await db.schema.alterTable('users').addColumn('disabled_at', 'text').execute();
    await db.schema
      .createTable('print_queue_claims')
      .addColumn('site_id', 'text', (c) => c.primaryKey())
      .addColumn('tenant_id', 'text', (c) => c.notNull())
      .addColumn('claimed_at', 'text', (c) => c.notNull())
      .execute();
    // Sites already open keep working: the one opened first (by creation) holds its id.
    const open = await db
      .selectFrom('sites')
      .select(['id', 'tenant_id', 'created_at'])
      .where('print_queue_open', '=', 1)
      .orderBy('created_at')
      .orderBy('tenant_id')
      .execute();
    const claimed = new Set<string>();
    for (const site of open as { id: string; tenant_id: string; created_at: string }[]) {
      if (claimed.has(site.id)) continue;
      claimed.add(site.id);
      await db
        .insertInto('print_queue_claims')
        .values({ site_id: site.id, tenant_id: site.tenant_id, claimed_at: site.created_at })
        .execute();
    }
  },
};

// Operator settings: a site may allow cash sessions for order numbers the server has not seen
// (the kiosk priced the order itself); off by default, so a mistyped number is refused.
const operator: Migration = {
  async up(db: AnyDb) {
    await db.schema
      .alterTable('sites')
      .addColumn('ad_hoc_cash_orders', 'integer', (c) => c.notNull().defaultTo(0))
      .execute();
  },
};

// The ledger (double entry; each transfer is a pair of entries summing to zero, each account
// caches its balance) and the resolution of unallocated cash. Unallocated cash recorded before
// this migration moves onto the ledger: external → unallocated_cash of its site.
const ledger: Migration = {
  async up(db: AnyDb) {
    await db.schema
      .createTable('ledger_accounts')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('tenant_id', 'text', (c) => c.notNull())
      .addColumn('owner_type', 'text', (c) => c.notNull())
      .addColumn('owner_id', 'text', (c) => c.notNull())
      .addColumn('kind', 'text', (c) => c.notNull())
      .addColumn('unit', 'text', (c) => c.notNull())
      .addColumn('balance', 'bigint', (c) => c.notNull().defaultTo(0))
      .addColumn('allow_negative', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addUniqueConstraint('ledger_accounts_owner_uq', [
        'tenant_id',
        'owner_type',
        'owner_id',
        'kind',
        'unit',
      ])
      .execute();
    await db.schema
      .createTable('ledger_entries')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('tenant_id', 'text', (c) => c.notNull())
      .addColumn('transfer_id', 'text', (c) => c.notNull())
      .addColumn('account_id', 'text', (c) => c.notNull().references('ledger_accounts.id'))
      .addColumn('amount', 'bigint', (c) => c.notNull())
      .addColumn('unit', 'text', (c) => c.notNull())
      .addColumn('cause_type', 'text', (c) => c.notNull())
      .addColumn('cause_id', 'text', (c) => c.notNull())
      .addColumn('memo', 'text')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema
      .createIndex('ledger_entries_account_idx')
      .on('ledger_entries')
      .columns(['account_id', 'id'])
      .execute();
    await db.schema
      .createIndex('ledger_entries_cause_idx')
      .on('ledger_entries')
      .columns(['tenant_id', 'cause_type', 'cause_id'])
      .execute();
    const add = (name: string) => db.schema.alterTable('unallocated_cash').addColumn(name, 'text').execute();
    await db.schema
      .alterTable('unallocated_cash')
      .addColumn('status', 'text', (c) => c.notNull().defaultTo('OPEN'))
      .execute();
    for (const column of ['resolved_at', 'resolved_by', 'resolution_note', 'applied_order_number']) {
      await add(column);
    }

    const id = monotonicFactory();
    const now = new Date().toISOString();
    const accounts = new Map<string, string>();
    type Key = [tenantId: string, ownerType: string, ownerId: string, kind: string, unit: string];
    const account = async (...[tenantId, ownerType, ownerId, kind, unit]: Key) => {
      const key = [tenantId, ownerType, ownerId, kind, unit].join('|');
      let accountId = accounts.get(key);
      if (!accountId) {
        accountId = id();
        accounts.set(key, accountId);
        const allowNegative = kind === 'external' ? 1 : 0;
        await db
          .insertInto('ledger_accounts')
          .values({
            id: accountId,
            tenant_id: tenantId,
            owner_type: ownerType,
            owner_id: ownerId,
            kind,
            unit,
            balance: 0,
            allow_negative: allowNegative,
            created_at: now,
          })
          .execute();
      }
      return accountId;
    };
    const parked = (await db.selectFrom('unallocated_cash').selectAll().orderBy('id').execute()) as {
      id: string;
      tenant_id: string;
      site_id: string | null;
      amount_minor: number | string;
      currency: string;
      recorded_at: string;
    }[];
    for (const u of parked) {
      const amount = Number(u.amount_minor);
      const from = await account(u.tenant_id, 'tenant', u.tenant_id, 'external', u.currency);
      const to = await account(u.tenant_id, 'site', u.site_id ?? 'default', 'unallocated_cash', u.currency);
      const transferId = id();
      for (const [accountId, signed] of [
        [from, -amount],
        [to, amount],
      ] as const) {
        await db
          .insertInto('ledger_entries')
          .values({
            id: id(),
            tenant_id: u.tenant_id,
            transfer_id: transferId,
            account_id: accountId,
            amount: signed,
            unit: u.currency,
            cause_type: 'unallocated_cash',
            cause_id: u.id,
            memo: null,
            created_at: u.recorded_at,
          })
          .execute();
        await db
          .updateTable('ledger_accounts')
          .set((eb: any) => ({ balance: eb('balance', '+', signed) }))
          .where('id', '=', accountId)
          .execute();
      }
    }
  },
};

// The outbox grows into the durable job table: attempts, backoff, leases and a FAILED state.
const jobs: Migration = {
  async up(db: AnyDb) {
    await db.schema
      .alterTable('outbox')
      .addColumn('status', 'text', (c) => c.notNull().defaultTo('QUEUED'))
      .execute();
    await db.schema
      .alterTable('outbox')
      .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
      .execute();
    await db.schema.alterTable('outbox').addColumn('run_at', 'text').execute();
    await db.schema.alterTable('outbox').addColumn('leased_until', 'text').execute();
    await db.schema.alterTable('outbox').addColumn('last_error', 'text').execute();
    await db.schema.createIndex('outbox_due_idx').on('outbox').columns(['status', 'id']).execute();
  },
};

// One payments row for every channel; earlier Razorpay and cash payments are carried over.
const payments: Migration = {
  async up(db: AnyDb) {
    await db.schema
      .createTable('payments')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('tenant_id', 'text', (c) => c.notNull())
      .addColumn('site_id', 'text')
      .addColumn('purpose', 'text', (c) => c.notNull())
      .addColumn('order_id', 'text')
      .addColumn('customer_id', 'text')
      .addColumn('plan_id', 'text')
      .addColumn('machine_id', 'text')
      .addColumn('method', 'text', (c) => c.notNull())
      .addColumn('provider', 'text')
      .addColumn('provider_payment_id', 'text')
      .addColumn('reference', 'text')
      .addColumn('amount_minor', 'bigint', (c) => c.notNull())
      .addColumn('received_minor', 'bigint', (c) => c.notNull().defaultTo(0))
      .addColumn('currency', 'text', (c) => c.notNull())
      .addColumn('status', 'text', (c) => c.notNull())
      .addColumn('failure_code', 'text')
      .addColumn('refunded_minor', 'bigint', (c) => c.notNull().defaultTo(0))
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('completed_at', 'text')
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .addUniqueConstraint('payments_provider_uq', ['provider', 'provider_payment_id'])
      .execute();
    await db.schema.createIndex('payments_tenant_idx').on('payments').columns(['tenant_id', 'id']).execute();
    await db.schema.createIndex('payments_order_idx').on('payments').columns(['order_id']).execute();
    // Razorpay payments that made an order, as the inbox recorded them.
    await sql`insert into payments (id, tenant_id, site_id, purpose, order_id, machine_id, method, provider,
        provider_payment_id, reference, amount_minor, received_minor, currency, status, failure_code,
        refunded_minor, created_at, completed_at, updated_at)
      select e.id, o.tenant_id, o.site_id, 'order', o.id, o.machine_id, 'upi_qr', e.provider,
        e.provider_payment_id, o.provider_qr_code_id, o.amount, o.amount, o.currency,
        case when o.failure_code = 'AMOUNT_MISMATCH' then 'FAILED' else 'SUCCEEDED' end,
        case when o.failure_code = 'AMOUNT_MISMATCH' then 'AMOUNT_MISMATCH' else null end,
        0, e.received_at, e.processed_at, e.processed_at
      from payment_events e join orders o on o.id = e.order_id`.execute(db);
    // Cash sessions: one cash payment each.
    await sql`insert into payments (id, tenant_id, site_id, purpose, order_id, machine_id, method, provider,
        provider_payment_id, reference, amount_minor, received_minor, currency, status, failure_code,
        refunded_minor, created_at, completed_at, updated_at)
      select s.id, s.tenant_id, s.site_id, 'order', s.order_id, s.machine_id, 'cash', null, null, null,
        s.total_required_minor,
        coalesce((select sum(i.amount_minor) from cash_inserts i where i.session_id = s.id), 0),
        s.currency,
        case s.status when 'PAID' then 'SUCCEEDED' when 'CANCELLED' then 'FAILED' else 'PENDING' end,
        case s.status when 'CANCELLED' then 'CANCELLED' else null end,
        0, s.started_at, coalesce(s.completed_at, s.cancelled_at), coalesce(s.completed_at, s.cancelled_at, s.started_at)
      from cash_sessions s`.execute(db);
  },
};

// Refunds are rows against their payment; a cancelled cash session's money and a vending order
// marked "refund due" are refunds too.
const refunds: Migration = {
  async up(db: AnyDb) {
    await db.schema
      .createTable('refunds')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('tenant_id', 'text', (c) => c.notNull())
      .addColumn('payment_id', 'text', (c) => c.notNull().references('payments.id'))
      .addColumn('amount_minor', 'bigint', (c) => c.notNull())
      .addColumn('currency', 'text', (c) => c.notNull())
      .addColumn('reason', 'text', (c) => c.notNull())
      .addColumn('destination', 'text', (c) => c.notNull())
      .addColumn('status', 'text', (c) => c.notNull())
      .addColumn('actor', 'text', (c) => c.notNull())
      .addColumn('provider_refund_id', 'text')
      .addColumn('error', 'text')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('completed_at', 'text')
      .execute();
    await db.schema.createIndex('refunds_payment_idx').on('refunds').columns(['payment_id', 'id']).execute();
  },
};

// Customers (water customers and cafe wallet holders, one per phone number and tenant), the
// tenant's calling code for local numbers, the plans they buy, and the expiry of one-off intents.
const customers: Migration = {
  async up(db: AnyDb) {
    await db.schema.alterTable('tenants').addColumn('default_country_code', 'text').execute();
    await db.schema
      .createTable('customers')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id'))
      .addColumn('account_id', 'text', (c) => c.notNull())
      .addColumn('phone', 'text', (c) => c.notNull())
      .addColumn('full_name', 'text')
      .addColumn('active', 'integer', (c) => c.notNull().defaultTo(1))
      .addColumn('pin_hash', 'text')
      .addColumn('pin_failures', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('pin_locked_until', 'text')
      .addColumn('daily_limit_ml', 'bigint')
      .addColumn('subscription_plan_id', 'text')
      .addColumn('subscription_expires_at', 'text')
      .addColumn('site_ids', 'text', (c) => c.notNull().defaultTo('[]'))
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .addUniqueConstraint('customers_phone_uq', ['tenant_id', 'phone'])
      .addUniqueConstraint('customers_account_uq', ['tenant_id', 'account_id'])
      .execute();
    await db.schema
      .createTable('plans')
      .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id'))
      .addColumn('id', 'text', (c) => c.notNull())
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('kind', 'text', (c) => c.notNull())
      .addColumn('price_minor', 'bigint', (c) => c.notNull())
      .addColumn('currency', 'text', (c) => c.notNull())
      .addColumn('days', 'integer')
      .addColumn('credit_ml', 'bigint')
      .addColumn('daily_limit_ml', 'bigint')
      .addColumn('active', 'integer', (c) => c.notNull().defaultTo(1))
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('plans_pk', ['tenant_id', 'id'])
      .execute();
    // Water taken from kiosks: an approval's hold until settled, and water logged offline.
    await db.schema
      .createTable('water_dispenses')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('tenant_id', 'text', (c) => c.notNull())
      .addColumn('kiosk_id', 'text', (c) => c.notNull())
      .addColumn('customer_id', 'text', (c) => c.notNull())
      .addColumn('tap', 'integer')
      .addColumn('held_ml', 'bigint', (c) => c.notNull().defaultTo(0))
      .addColumn('dispensed_ml', 'bigint')
      .addColumn('status', 'text', (c) => c.notNull())
      .addColumn('request_key', 'text')
      .addColumn('kiosk_txn_id', 'text')
      .addColumn('flagged', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('at', 'text', (c) => c.notNull())
      .addColumn('hold_expires_at', 'text')
      .addColumn('settled_at', 'text')
      .addUniqueConstraint('water_dispenses_request_uq', ['kiosk_id', 'request_key'])
      .addUniqueConstraint('water_dispenses_txn_uq', ['kiosk_id', 'kiosk_txn_id'])
      .execute();
    await db.schema
      .createIndex('water_dispenses_customer_idx')
      .on('water_dispenses')
      .columns(['customer_id', 'at'])
      .execute();
    await db.schema
      .createIndex('water_dispenses_held_idx')
      .on('water_dispenses')
      .columns(['status', 'hold_expires_at'])
      .execute();
    await db.schema.alterTable('payments').addColumn('expires_at', 'text').execute();
    await db.schema
      .createIndex('payments_pending_idx')
      .on('payments')
      .columns(['status', 'expires_at'])
      .execute();
    await db.schema.createIndex('payments_reference_idx').on('payments').columns(['reference']).execute();
    await db.schema
      .createIndex('payments_customer_idx')
      .on('payments')
      .columns(['customer_id', 'id'])
      .execute();
  },
};

// 0015: cafe tables (token versions, server), settings per site, menu, orders' tips, wallet OTPs.
const cafe: Migration = {
  async up(db: AnyDb) {
    await db.schema
      .createTable('cafe_tables')
      .addColumn('machine_id', 'text', (c) => c.primaryKey())
      .addColumn('tenant_id', 'text', (c) => c.notNull())
      .addColumn('token_version', 'integer', (c) => c.notNull().defaultTo(1))
      .addColumn('server_user_id', 'text')
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema
      .createTable('cafe_settings')
      .addColumn('tenant_id', 'text', (c) => c.notNull())
      .addColumn('site_id', 'text', (c) => c.notNull())
      .addColumn('tip_presets', 'text', (c) => c.notNull().defaultTo('[0,5,10,15]'))
      .addColumn('tip_split', 'text', (c) => c.notNull().defaultTo('pool'))
      .addColumn('bank_account', 'text')
      .addColumn('card_gateway', 'text')
      .addColumn('pay_later', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('cafe_settings_pk', ['tenant_id', 'site_id'])
      .execute();
    await db.schema
      .createTable('cafe_menu')
      .addColumn('tenant_id', 'text', (c) => c.notNull())
      .addColumn('sku', 'text', (c) => c.notNull())
      .addColumn('category', 'text')
      .addColumn('description', 'text')
      .addColumn('available', 'integer', (c) => c.notNull().defaultTo(1))
      .addColumn('sort', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('cafe_menu_pk', ['tenant_id', 'sku'])
      .execute();
    await db.schema
      .createTable('cafe_orders')
      .addColumn('order_id', 'text', (c) => c.primaryKey())
      .addColumn('tenant_id', 'text', (c) => c.notNull())
      .addColumn('site_id', 'text', (c) => c.notNull())
      .addColumn('table_id', 'text', (c) => c.notNull())
      .addColumn('subtotal_minor', 'bigint', (c) => c.notNull())
      .addColumn('tip_minor', 'bigint', (c) => c.notNull().defaultTo(0))
      .addColumn('currency', 'text', (c) => c.notNull())
      .addColumn('tip_split', 'text', (c) => c.notNull())
      .addColumn('server_user_id', 'text')
      .addColumn('sent_to_kitchen_at', 'text')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema
      .createIndex('cafe_orders_site_idx')
      .on('cafe_orders')
      .columns(['tenant_id', 'site_id', 'created_at'])
      .execute();
    await db.schema
      .createTable('customer_otps')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('tenant_id', 'text', (c) => c.notNull())
      .addColumn('phone', 'text', (c) => c.notNull())
      .addColumn('address', 'text', (c) => c.notNull())
      .addColumn('code_hash', 'text', (c) => c.notNull())
      .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('expires_at', 'text', (c) => c.notNull())
      .addColumn('used_at', 'text')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema
      .createIndex('customer_otps_phone_idx')
      .on('customer_otps')
      .columns(['tenant_id', 'phone', 'created_at'])
      .execute();
    await db.schema
      .createIndex('customer_otps_address_idx')
      .on('customer_otps')
      .columns(['address', 'created_at'])
      .execute();
  },
};

// 0013: the water kiosk firmware API. Which wallet a hold took from (`funding`), the PIN sealed
// for offline credential caches, each kiosk's last heartbeat, and what each kiosk's cache holds.
const water: Migration = {
  async up(db: AnyDb) {
    await db.schema.alterTable('water_dispenses').addColumn('funding', 'text').execute();
    await db.schema
      .createTable('water_pin_seals')
      .addColumn('customer_id', 'text', (c) => c.primaryKey())
      .addColumn('tenant_id', 'text', (c) => c.notNull())
      .addColumn('sealed', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema
      .createTable('water_kiosks')
      .addColumn('machine_id', 'text', (c) => c.primaryKey())
      .addColumn('tenant_id', 'text', (c) => c.notNull())
      .addColumn('site_id', 'text', (c) => c.notNull())
      .addColumn('firmware', 'text')
      .addColumn('taps', 'text', (c) => c.notNull().defaultTo('[]'))
      .addColumn('signal_dbm', 'integer')
      .addColumn('sd_free_mb', 'integer')
      .addColumn('cache_version', 'integer')
      .addColumn('last_heartbeat_at', 'text')
      .addColumn('cache_issued_version', 'integer', (c) => c.notNull().defaultTo(0))
      .execute();
    await db.schema
      .createIndex('water_kiosks_tenant_idx')
      .on('water_kiosks')
      .columns(['tenant_id', 'site_id'])
      .execute();
    await db.schema
      .createTable('water_cache_entries')
      .addColumn('machine_id', 'text', (c) => c.notNull())
      .addColumn('customer_id', 'text', (c) => c.notNull())
      .addColumn('account_id', 'text', (c) => c.notNull())
      .addColumn('digest', 'text', (c) => c.notNull())
      .addColumn('version', 'integer', (c) => c.notNull())
      .addColumn('removed', 'integer', (c) => c.notNull().defaultTo(0))
      .addPrimaryKeyConstraint('water_cache_entries_pk', ['machine_id', 'customer_id'])
      .execute();
    await db.schema
      .createIndex('water_cache_entries_version_idx')
      .on('water_cache_entries')
      .columns(['machine_id', 'version'])
      .execute();
  },
};

// USSD sessions kept in the database, so a restart between two hops continues the session. The
// PIN typed in a session is never stored: only where it sits in the session's `text` is.
const waterMessaging: Migration = {
  async up(db: AnyDb) {
    await db.schema
      .createTable('ussd_sessions')
      .addColumn('tenant_id', 'text', (c) => c.notNull())
      .addColumn('session_id', 'text', (c) => c.notNull())
      .addColumn('phone', 'text', (c) => c.notNull())
      .addColumn('state', 'text', (c) => c.notNull())
      .addColumn('data', 'text', (c) => c.notNull())
      .addColumn('last_text', 'text')
      .addColumn('last_response', 'text')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('ussd_sessions_pk', ['tenant_id', 'session_id'])
      .execute();
    await db.schema
      .createIndex('ussd_sessions_updated_idx')
      .on('ussd_sessions')
      .column('updated_at')
      .execute();
  },
};

// 0019: each water verification's outcome (the kiosk page's live feed and the water charts), and
// alerts that resolve themselves once their condition clears (water kiosks, stuck payments).
const waterUi: Migration = {
  async up(db: AnyDb) {
    await db.schema
      .createTable('water_verifications')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('tenant_id', 'text', (c) => c.notNull())
      .addColumn('kiosk_id', 'text', (c) => c.notNull())
      .addColumn('customer_id', 'text')
      .addColumn('approved', 'integer', (c) => c.notNull())
      .addColumn('code', 'text', (c) => c.notNull())
      .addColumn('volume_ml', 'bigint', (c) => c.notNull())
      .addColumn('at', 'text', (c) => c.notNull())
      .execute();
    await db.schema
      .createIndex('water_verifications_kiosk_idx')
      .on('water_verifications')
      .columns(['tenant_id', 'kiosk_id', 'id'])
      .execute();
    await db.schema
      .createIndex('water_verifications_at_idx')
      .on('water_verifications')
      .columns(['tenant_id', 'at'])
      .execute();
    await db.schema.alterTable('alerts').addColumn('resolved_at', 'text').execute();
    await db.schema
      .createIndex('alerts_open_kind_idx')
      .on('alerts')
      .columns(['kind', 'resolved_at', 'subject_id'])
      .execute();
  },
};

// Scheduled jobs (a water hold's expiry, 10 minutes out) must not slow every claim of due ones:
// the relay finds immediate jobs and due scheduled jobs each by a range of this index.
const outboxScheduled: Migration = {
  async up(db: AnyDb) {
    await db.schema.createIndex('outbox_run_idx').on('outbox').columns(['status', 'run_at', 'id']).execute();
  },
};

// Every query of the job table that filters by status (the relay's claims, "is one of this topic
// queued") reads a range of outbox_run_idx (status, run_at, id): outbox_due_idx (status, id) only cost an
// index entry written and deleted per job, three of each per payment.
const outboxOneIndex: Migration = {
  async up(db: AnyDb) {
    await db.schema.dropIndex('outbox_due_idx').ifExists().execute();
  },
};

// On PostgreSQL the accounts every payment of a site or tenant moves money through (the outside
// world, a site's revenue, water issued) keep their balance changes in slots: each transaction
// adds to a slot of its own instead of queueing on the account's one row (ledger.repo.ts). An
// account's balance is its row's plus its slots'. No foreign key: a key check would lock the
// account row in every transaction again; a slot is written only for an account the ledger has
// read, and accounts are never deleted on their own.
const ledgerBalanceSlots: Migration = {
  async up(db: AnyDb) {
    await db.schema
      .createTable('ledger_balance_slots')
      .addColumn('account_id', 'text', (c) => c.notNull())
      .addColumn('slot', 'integer', (c) => c.notNull())
      .addColumn('delta', 'bigint', (c) => c.notNull().defaultTo(0))
      .addPrimaryKeyConstraint('ledger_balance_slots_pk', ['account_id', 'slot'])
      .execute();
  },
};

// A cash insert's eventId is the device's idempotency key for one bill or coin of one order: a
// repeat for the same order's session counts once, while the same id reported for another order
// (a reader whose counter restarted) is that order's money. Unique per session (cash_inserts) and
// per site and order number (unallocated cash), no longer per tenant. The new cash_inserts index leads with
// session_id, so it also serves the per-session sums cash_inserts_session_idx served.
// SQLite cannot drop a table's constraint: both tables are copied into new ones, as its manual says,
// in one transaction of their own (Kysely runs SQLite migrations without one), so a crash leaves
// either the old tables or the new ones, and the migration runs again from the start.
function cashEventScope(dialect: 'sqlite' | 'postgres'): Migration {
  return {
    async up(db: AnyDb) {
      if (dialect === 'postgres') {
        await db.schema.alterTable('cash_inserts').dropConstraint('cash_inserts_event_uq').execute();
        await db.schema.alterTable('unallocated_cash').dropConstraint('unallocated_cash_event_uq').execute();
        await db.schema.dropIndex('cash_inserts_session_idx').execute();
        await cashEventIndexes(db);
        return;
      }
      await sql`begin immediate`.execute(db);
      try {
        await db.schema
          .createTable('cash_inserts_next')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('tenant_id', 'text', (c) => c.notNull())
          .addColumn('session_id', 'text', (c) => c.notNull().references('cash_sessions.id'))
          .addColumn('machine_id', 'text')
          .addColumn('event_id', 'text')
          .addColumn('kind', 'text')
          .addColumn('amount_minor', 'bigint', (c) => c.notNull())
          .addColumn('recorded_at', 'text', (c) => c.notNull())
          .execute();
        await db
          .insertInto('cash_inserts_next')
          .columns([
            'id',
            'tenant_id',
            'session_id',
            'machine_id',
            'event_id',
            'kind',
            'amount_minor',
            'recorded_at',
          ])
          .expression(
            db
              .selectFrom('cash_inserts')
              .select([
                'id',
                'tenant_id',
                'session_id',
                'machine_id',
                'event_id',
                'kind',
                'amount_minor',
                'recorded_at',
              ]),
          )
          .execute();
        await db.schema.dropTable('cash_inserts').execute();
        await db.schema.alterTable('cash_inserts_next').renameTo('cash_inserts').execute();

        const unallocated = [
          'id',
          'tenant_id',
          'site_id',
          'machine_id',
          'order_number',
          'event_id',
          'kind',
          'amount_minor',
          'currency',
          'reason',
          'recorded_at',
          'status',
          'resolved_at',
          'resolved_by',
          'resolution_note',
          'applied_order_number',
        ] as const;
        await db.schema
          .createTable('unallocated_cash_next')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('tenant_id', 'text', (c) => c.notNull())
          .addColumn('site_id', 'text')
          .addColumn('machine_id', 'text')
          .addColumn('order_number', 'text', (c) => c.notNull())
          .addColumn('event_id', 'text')
          .addColumn('kind', 'text')
          .addColumn('amount_minor', 'bigint', (c) => c.notNull())
          .addColumn('currency', 'text', (c) => c.notNull())
          .addColumn('reason', 'text', (c) => c.notNull())
          .addColumn('recorded_at', 'text', (c) => c.notNull())
          .addColumn('status', 'text', (c) => c.notNull().defaultTo('OPEN'))
          .addColumn('resolved_at', 'text')
          .addColumn('resolved_by', 'text')
          .addColumn('resolution_note', 'text')
          .addColumn('applied_order_number', 'text')
          .execute();
        await db
          .insertInto('unallocated_cash_next')
          .columns([...unallocated])
          .expression(db.selectFrom('unallocated_cash').select([...unallocated]))
          .execute();
        await db.schema.dropTable('unallocated_cash').execute();
        await db.schema.alterTable('unallocated_cash_next').renameTo('unallocated_cash').execute();
        await cashEventIndexes(db);
        await sql`commit`.execute(db);
      } catch (err) {
        await sql`rollback`.execute(db);
        throw err;
      }
    },
  };
}

async function cashEventIndexes(db: AnyDb): Promise<void> {
  await db.schema
    .createIndex('cash_inserts_session_event_uq')
    .unique()
    .on('cash_inserts')
    .columns(['session_id', 'event_id'])
    .execute();
  await db.schema
    .createIndex('unallocated_cash_order_event_uq')
    .unique()
    .on('unallocated_cash')
    .columns(['tenant_id', 'site_id', 'order_number', 'event_id'])
    .execute();
}

/**
 * The audit log is read by tenant (newest first) and by subject (one payment's or user's rows):
 * both in index order, not a scan of every row ever written.
 */
const auditIndexes: Migration = {
  async up(db: AnyDb) {
    await db.schema
      .createIndex('audit_log_tenant_idx')
      .on('audit_log')
      .columns(['tenant_id', 'id'])
      .execute();
    await db.schema
      .createIndex('audit_log_subject_idx')
      .on('audit_log')
      .columns(['subject_id', 'id'])
      .execute();
  },
};

/**
 * Unallocated cash a device reported again without an eventId (a refused report retried): the
 * earlier item of that run it probably repeats, for staff to void once the cash box is counted.
 */
const unallocatedRepeats: Migration = {
  async up(db: AnyDb) {
    await db.schema.alterTable('unallocated_cash').addColumn('repeat_of', 'text').execute();
  },
};

/**
 * When a customer's subscription run began (the purchase that started it after none was running)
 * and when the run before it ended: an offline kiosk's water dated before the run is not paid by
 * it. Existing rows: null, unknown (a purchase time alone does not say whether it extended an
 * earlier run), so their water is judged by the expiry alone, as before.
 */
const subscriptionStart: Migration = {
  async up(db: AnyDb) {
    await db.schema.alterTable('customers').addColumn('subscription_started_at', 'text').execute();
    await db.schema.alterTable('customers').addColumn('subscription_prior_expires_at', 'text').execute();
  },
};

/**
 * When the run before the current one began: offline water dated before that run began (a time
 * no subscription ran) is not paid by it. Existing rows: null, unknown, judged as before (by the
 * earlier run's expiry alone).
 */
const subscriptionPriorStart: Migration = {
  async up(db: AnyDb) {
    await db.schema.alterTable('customers').addColumn('subscription_prior_started_at', 'text').execute();
  },
};

/**
 * The state a firmware deployment was in when it timed out: a device reporting later continues
 * from there, never skipping a step (SUCCEEDED only after REBOOTING). Rows timed out before: null,
 * read as the earliest state a released deployment can be in.
 */
const deploymentTimedOutIn: Migration = {
  async up(db: AnyDb) {
    await db.schema.alterTable('firmware_deployments').addColumn('timed_out_in', 'text').execute();
  },
};

/**
 * A failed firmware deployment the operator accepted by resuming its campaign past the failure
 * threshold (counted in the campaign's acknowledged_failures): if it comes back from TIMED_OUT
 * later, it leaves that count. Rows before: 0 (such a revival keeps the count, as before).
 */
const deploymentFailureAcknowledged: Migration = {
  async up(db: AnyDb) {
    await db.schema
      .alterTable('firmware_deployments')
      .addColumn('failure_acknowledged', 'integer', (c) => c.notNull().defaultTo(0))
      .execute();
  },
};

/**
 * Alerts and audit entries about money no tenant owns (a bank credit or card refund matching no
 * payment) were filed under the tenant `default`, whose staff then saw other tenants' money. They
 * now belong to the deployment's operator, tenant `*` (platform/operator-scope.ts).
 */
const operatorScope: Migration = {
  async up(db: AnyDb) {
    await db
      .updateTable('alerts')
      .set({ tenant_id: '*' })
      .where('tenant_id', '=', 'default')
      .where('kind', 'in', ['BANK_CREDIT_UNMATCHED', 'CARD_REFUND_UNMATCHED'])
      .execute();
    await db
      .updateTable('audit_log')
      .set({ tenant_id: '*' })
      .where('tenant_id', '=', 'default')
      .where('action', '=', 'payment.unmatched_credit')
      .execute();
  },
};

// The standalone cash reader of the restaurant kiosk cancels without a key: a site may accept that
// cancel under /sites/<id>/ (off by default). It shares print_queue_claims, the key-less claim of
// a site id, with the printers' print_queue_open.
const keylessCashCancel: Migration = {
  async up(db: AnyDb) {
    await db.schema
      .alterTable('sites')
      .addColumn('keyless_cash_cancel', 'integer', (c) => c.notNull().defaultTo(0))
      .execute();
  },
};

/**
 * One-time links to the orders CSV export (dashboard/export-links.ts): a browser downloads the
 * file by following a link, straight to disk, without the bearer header a link cannot carry. The
 * token is kept only as its sha256; a row lives 60 s and is spent by its first use.
 */
const exportLinks: Migration = {
  async up(db: AnyDb) {
    await db.schema
      .createTable('export_links')
      .addColumn('token_hash', 'text', (c) => c.primaryKey())
      .addColumn('user_id', 'text')
      .addColumn('tenant_id', 'text')
      .addColumn('token_version', 'integer')
      .addColumn('actor', 'text', (c) => c.notNull())
      .addColumn('filters', 'text', (c) => c.notNull())
      .addColumn('expires_at', 'text', (c) => c.notNull())
      .addColumn('used_at', 'text')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema
      .createIndex('export_links_expires_idx')
      .on('export_links')
      .columns(['expires_at'])
      .execute();
  },
};

/**
 * An export link made with ADMIN_TOKEN remembers which ADMIN_TOKEN (a fingerprint of its hash):
 * after ADMIN_TOKEN is changed, a link made with the old one no longer works.
 */
const exportLinksAdminKey: Migration = {
  async up(db: AnyDb) {
    await db.schema.alterTable('export_links').addColumn('admin_key', 'text').execute();
  },
};

/**
 * USSD sessions kept their last hop's text, which holds the PINs a customer typed
 * (`1*5678*5678`), for a day. They now keep a keyed digest of it (water-keys.ts `ussdHop`); the
 * texts already stored are dropped (a session lives minutes: at worst one hop sent again during
 * the upgrade is taken as a new input).
 */
const ussdHopDigest: Migration = {
  async up(db: AnyDb) {
    await db.updateTable('ussd_sessions').set({ last_text: null }).execute();
  },
};

/**
 * A site's IANA time zone: the day a water customer's daily limit counts is the local day of the
 * kiosk's site (it was the UTC day, so a kiosk in Nairobi started a new day at 03:00). Existing
 * sites keep UTC until staff set theirs.
 */
const siteTimeZone: Migration = {
  async up(db: AnyDb) {
    await db.schema
      .alterTable('sites')
      .addColumn('time_zone', 'text', (c) => c.notNull().defaultTo('UTC'))
      .execute();
  },
};

/** The idle cash-session sweep reads PENDING sessions by age: a partial index keeps it small. */
const cashSessionsPending: Migration = {
  async up(db: AnyDb) {
    await sql`create index cash_sessions_pending_idx on cash_sessions (started_at) where status = 'PENDING'`.execute(
      db,
    );
  },
};

/**
 * The dashboard's revenue reads payments by completion time and refunds by creation time, per
 * tenant (reporting through payment-queries): without these, each chart scanned the tenant's
 * payments and every refund.
 */
const revenueIndexes: Migration = {
  async up(db: AnyDb) {
    await db.schema
      .createIndex('payments_completed_idx')
      .on('payments')
      .columns(['tenant_id', 'completed_at'])
      .execute();
    await db.schema
      .createIndex('refunds_created_idx')
      .on('refunds')
      .columns(['tenant_id', 'created_at'])
      .execute();
  },
};

/**
 * Staff sign-ins ended one by one (`DELETE /v1/auth/session`): the token's id (`jti`), kept until
 * the token expires (then purged), and read with the user's state on each token check.
 */
const endedSessions: Migration = {
  async up(db: AnyDb) {
    await db.schema
      .createTable('ended_sessions')
      .addColumn('token_id', 'text', (c) => c.primaryKey())
      .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
      .addColumn('expires_at', 'text', (c) => c.notNull())
      .addColumn('ended_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema
      .createIndex('ended_sessions_user_idx')
      .on('ended_sessions')
      .columns(['user_id'])
      .execute();
    await db.schema
      .createIndex('ended_sessions_expires_idx')
      .on('ended_sessions')
      .columns(['expires_at'])
      .execute();
  },
};

/** An export link remembers the sign-in that made it: signing that session out voids the link. */
const exportLinkSessions: Migration = {
  async up(db: AnyDb) {
    await db.schema.alterTable('export_links').addColumn('session_id', 'text').execute();
  },
};

/**
 * The hourly refund sweep (refund-polls.ts) reads the PENDING refunds, a page at a time in id
 * order: without this it read every refund ever made (SQLite: every payment of the providers),
 * which grow for ever while the pending refunds stay a handful.
 */
const refundsPending: Migration = {
  async up(db: AnyDb) {
    await sql`create index refunds_pending_idx on refunds (id) where status = 'PENDING'`.execute(db);
  },
};

export function migrationProvider(dialect: 'sqlite' | 'postgres'): MigrationProvider {
  return {
    getMigrations: async () => ({
      '0001_initial': initial,
      '0002_outbox': outbox(dialect),
      '0003_restaurant': restaurant,
      '0004_dashboard': dashboard,
      '0006_security': security,
      '0007_operator': operator,
      '0008_ledger': ledger,
      '0009_jobs': jobs,
      '0010_payments': payments,
      '0011_refunds': refunds,
      '0012_customers': customers,
      '0013_water': water,
      '0014_water_messaging': waterMessaging,
      '0015_cafe': cafe,
      '0019_water_ui': waterUi,
      '0018_firmware': firmwareMigration,
      '0020_outbox_scheduled': outboxScheduled,
      '0021_outbox_one_index': outboxOneIndex,
      '0022_ledger_balance_slots': ledgerBalanceSlots,
      '0023_cash_event_scope': cashEventScope(dialect),
      '0024_audit_indexes': auditIndexes,
      '0025_unallocated_repeats': unallocatedRepeats,
      '0026_subscription_start': subscriptionStart,
      '0027_deployment_timed_out_in': deploymentTimedOutIn,
      '0028_deployment_failure_acknowledged': deploymentFailureAcknowledged,
      '0029_operator_scope': operatorScope,
      '0030_keyless_cash_cancel': keylessCashCancel,
      '0031_export_links': exportLinks,
      '0032_export_links_admin_key': exportLinksAdminKey,
      '0033_ussd_hop_digest': ussdHopDigest,
      '0034_site_time_zone': siteTimeZone,
      '0035_cash_sessions_pending': cashSessionsPending,
      '0036_revenue_indexes': revenueIndexes,
      '0037_ended_sessions': endedSessions,
      '0038_export_link_sessions': exportLinkSessions,
      '0039_refunds_pending': refundsPending,
      '0040_subscription_prior_start': subscriptionPriorStart,
    }),
  };
}
