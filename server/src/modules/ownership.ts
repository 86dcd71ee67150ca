// Which module owns each table (ARCHITECTURE: "one module owns each table; another module calls
// its service, never its repo"). boundaries.test.ts reads every module's queries against this map;
// the exceptions below are the only places a module names a table it does not own.
import type { Database } from '../platform/db/schema.js';

/** A module folder under src/modules, or `platform` for the platform's own tables. */
export type Owner =
  | 'alerts'
  | 'audit'
  | 'cafe'
  | 'cash'
  | 'catalog'
  | 'commands'
  | 'customers'
  | 'dashboard'
  | 'firmware'
  | 'ledger'
  | 'machines'
  | 'orders'
  | 'payments'
  | 'platform'
  | 'printing'
  | 'tenants'
  | 'users'
  | 'water'
  | 'water-messaging'
  | 'water-ops';

/** Every table of the schema and its one owner (the compiler refuses a table left out). */
export const TABLE_OWNERS = {
  tenants: 'tenants',
  settings: 'tenants',
  users: 'users',
  ended_sessions: 'users',
  machines: 'machines',
  commands: 'commands',
  orders: 'orders',
  order_events: 'orders',
  // Payments, intents (PENDING payments), the provider inbox and refunds (ARCHITECTURE).
  payments: 'payments',
  payment_events: 'payments',
  webhook_deliveries: 'payments',
  refunds: 'payments',
  ledger_accounts: 'ledger',
  ledger_entries: 'ledger',
  ledger_balance_slots: 'ledger',
  // Sites and what they sell; a new tenant's default site too (catalog/sites.service.ts).
  sites: 'catalog',
  products: 'catalog',
  print_queue_claims: 'catalog',
  print_jobs: 'printing',
  cash_sessions: 'cash',
  cash_inserts: 'cash',
  unallocated_cash: 'cash',
  alerts: 'alerts',
  audit_log: 'audit',
  // The durable job table: platform/outbox.ts enqueues, claims and retries.
  outbox: 'platform',
  dashboard_alert_marks: 'dashboard',
  machine_online_samples: 'dashboard',
  export_links: 'dashboard',
  firmware_artifacts: 'firmware',
  firmware_campaigns: 'firmware',
  firmware_deployments: 'firmware',
  // Water customers and cafe wallet holders are one customers module, their sign-in codes too.
  customers: 'customers',
  plans: 'customers',
  customer_otps: 'customers',
  water_kiosks: 'water',
  water_dispenses: 'water',
  water_pin_seals: 'water',
  water_cache_entries: 'water',
  water_verifications: 'water-ops',
  ussd_sessions: 'water-messaging',
  cafe_tables: 'cafe',
  cafe_settings: 'cafe',
  cafe_menu: 'cafe',
  cafe_orders: 'cafe',
} as const satisfies Record<keyof Database, Owner>;

export type Table = keyof typeof TABLE_OWNERS;

/** A module allowed to name tables it does not own, for one stated reason. */
export interface BoundaryException {
  module: string;
  tables: readonly Table[];
  /** `read`: selects and joins only; no insert, update or delete. */
  access: 'read';
  reason: string;
}

/** A module allowed to call another module's repository directly, for one stated reason. */
export interface RepoException {
  module: string;
  repoOf: Owner;
  reason: string;
}

export const REPO_EXCEPTIONS: readonly RepoException[] = [
  {
    // Presence batches every machine's connection state and last-seen time (one write per window,
    // not per heartbeat) and is built before the machines service, which reads its pending times.
    module: 'gateway',
    repoOf: 'machines',
    reason: 'presence writes machine connection state in batches through the machines repo',
  },
];

export const BOUNDARY_EXCEPTIONS: readonly BoundaryException[] = [
  {
    // The "reporting may keep read-only queries in one clearly named place": the dashboard
    // charts, the water overview and alerts, and the cafe tips report aggregate across owners
    // (GROUP BY over joins) in one query, which per-owner service calls could only do by loading
    // every row. Payments are not on this list: what counts as paid or stuck is the payments
    // module's rule, so reporting asks it (payments/payment-queries.ts).
    module: 'reporting',
    tables: [
      'orders',
      'commands',
      'machines',
      'machine_online_samples',
      'water_kiosks',
      'water_dispenses',
      'water_verifications',
      'ledger_accounts',
      'customers',
      'cafe_orders',
    ],
    access: 'read',
    reason: 'read-only aggregates across owners for the dashboard, the water overview and the tips report',
  },
  {
    // The offline credential cache picks the few hundred customers a kiosk holds, ranked by their
    // last water (water) or last change (customers), with their credit (ledger), in one limited
    // query. Split per owner, it would load every registered customer of the tenant on each build.
    module: 'water',
    tables: ['customers', 'ledger_accounts'],
    access: 'read',
    reason: 'one ranked, limited read for the offline credential cache (water.repo.ts candidatesForKiosk)',
  },
  {
    // The expiry and review sweeps pick commands by the protocol of their machine's latest
    // connection (queued MQTT commands of a machine that stays away, v2 commands of a machine
    // back on v1) as a subquery of one limited select: asking the machines service first would
    // load the id of every machine of the fleet on that protocol, every sweep.
    module: 'commands',
    tables: ['machines'],
    access: 'read',
    reason:
      "the sweeps' subquery on a machine's latest protocol (commands.service.ts expireOverdue, escalateSilentV1)",
  },
];
