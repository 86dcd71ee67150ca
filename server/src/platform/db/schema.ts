// Table types for Kysely. Times are ISO-8601 UTC text, money is integer minor units,
// booleans are 0/1 integers and JSON is text, so one schema serves SQLite and PostgreSQL.
import type { Generated, Insertable, Selectable, Updateable } from 'kysely';

export interface TenantsTable {
  id: string;
  name: string;
  /** Calling code for local phone numbers ("254"), or null: numbers must be international. */
  default_country_code: Generated<string | null>;
  created_at: string;
}

/** A water customer or a cafe wallet holder: one per phone number (E.164) and tenant. */
export interface CustomersTable {
  id: string;
  tenant_id: string;
  /** `TSF` + 6 characters, unique per tenant (the earlier water system's format). */
  account_id: string;
  phone: string;
  full_name: string | null;
  active: number;
  /** argon2id hash of the 4-digit PIN; null: not registered. */
  pin_hash: string | null;
  pin_failures: number;
  pin_locked_until: string | null;
  daily_limit_ml: number | null;
  subscription_plan_id: string | null;
  subscription_expires_at: string | null;
  /** When the current unbroken run of the subscription began; null: unknown (or none). */
  subscription_started_at: string | null;
  /** When the run before the current one ended; null: none, or unknown. */
  subscription_prior_expires_at: string | null;
  /** When the run before began; null: none, or not known (rows from before it was stored). */
  subscription_prior_started_at: string | null;
  /** JSON array of site ids the customer may use; [] = every site. */
  site_ids: string;
  created_at: string;
  updated_at: string;
}

/**
 * Water a customer took from a kiosk: an approval's hold (`HELD`, `held_ml`) until the kiosk
 * settles what it dispensed (`SETTLED`) or the hold expires (`RELEASED`), or water the kiosk
 * dispensed offline and uploaded later (`OFFLINE`). Owned by the water module.
 */
export interface WaterDispensesTable {
  /** The authorization id for an approval. */
  id: string;
  tenant_id: string;
  kiosk_id: string;
  customer_id: string;
  tap: number | null;
  held_ml: number;
  dispensed_ml: number | null;
  /** HELD | SETTLED | RELEASED | OFFLINE */
  status: string;
  /** `<user>|<timestamp>` of the verification request: the same request holds once. */
  request_key: string | null;
  /** The kiosk's own transaction id (unique per kiosk across settlements and batches). */
  kiosk_txn_id: string | null;
  /** 1: more than held was dispensed, or an offline dispense overdrew the customer. */
  flagged: number;
  /** When the water was requested (UTC): the day it counts against. */
  at: string;
  hold_expires_at: string | null;
  settled_at: string | null;
  /** What an approval draws on: `subscription` (daily limit only) or `credit` (ml held). */
  funding: Generated<string | null>;
}

/** A customer's PIN sealed (AES-256-GCM, key derived from PIN_SECRET) for kiosk credential caches. */
export interface WaterPinSealsTable {
  customer_id: string;
  tenant_id: string;
  sealed: string;
  updated_at: string;
}

/** A water kiosk's last heartbeat (one row per machine of kind `water`); owned by the water module. */
export interface WaterKiosksTable {
  machine_id: string;
  tenant_id: string;
  site_id: string;
  firmware: string | null;
  /** JSON array `[{tap, status, totalMl?}]` as last reported. */
  taps: Generated<string>;
  signal_dbm: number | null;
  sd_free_mb: number | null;
  /** The credential cache version the kiosk says it holds. */
  cache_version: number | null;
  /** null: never heard from; OFFLINE is derived on read after 5 minutes of silence. */
  last_heartbeat_at: string | null;
  /** The latest credential cache version the server issued to this kiosk. */
  cache_issued_version: Generated<number>;
}

/** What each kiosk's credential cache holds: one row per customer, with the version it changed in. */
export interface WaterCacheEntriesTable {
  machine_id: string;
  customer_id: string;
  account_id: string;
  /** SHA-256 of the entry as last sent: a different digest is a change. */
  digest: string;
  version: number;
  /** 1: no longer in this kiosk's cache (sent in `removed` after `version`). */
  removed: Generated<number>;
}

/** What customers buy with purpose `plan`: days of water (subscription) or millilitres (credit). */
export interface PlansTable {
  tenant_id: string;
  id: string;
  name: string;
  /** subscription | credit */
  kind: string;
  price_minor: number;
  currency: string;
  days: number | null;
  credit_ml: number | null;
  daily_limit_ml: number | null;
  active: number;
  created_at: string;
  updated_at: string;
}

export interface SettingsTable {
  key: string;
  value: string;
}

export interface UsersTable {
  id: string;
  tenant_id: string;
  email: string;
  password_hash: string;
  role: string;
  created_at: string;
  /** Bumped by logout, disable, role change: tokens carrying an older version are refused. */
  token_version: Generated<number>;
  disabled_at: string | null;
}

/**
 * A staff sign-in ended on its own (`DELETE /v1/auth/session`): its token's id, refused until the
 * token expires, when the row is purged. Deleting the user deletes its rows.
 */
export interface EndedSessionsTable {
  /** The token's `jti`. */
  token_id: string;
  user_id: string;
  /** The token's `exp` (ISO UTC). */
  expires_at: string;
  ended_at: string;
}

/**
 * A site id that key-less devices may use under /sites/<id>/ (printers with print_queue_open, the
 * cash reader's cancel with keyless_cash_cancel), held by exactly one tenant while either is on.
 */
export interface PrintQueueClaimsTable {
  site_id: string;
  tenant_id: string;
  claimed_at: string;
}

export interface SitesTable {
  tenant_id: string;
  id: string;
  name: string;
  currency: string;
  print_queue_open: number;
  address: Generated<string | null>;
  phone: Generated<string | null>;
  /** VAT included in prices, in basis points (1200 = 12%); 0 = no tax line. */
  tax_rate_bp: Generated<number>;
  /** 1: cash sessions may open for order numbers the server has not seen (staff or the site's kiosks). */
  ad_hoc_cash_orders: Generated<number>;
  /** 1: the cash reader may cancel this site's sessions without a key under /sites/<id>/. */
  keyless_cash_cancel: Generated<number>;
  /** IANA time zone: a water customer's daily limit counts this site's local day. */
  time_zone: Generated<string>;
  created_at: string;
  updated_at: string;
}

export interface MachinesTable {
  id: string;
  tenant_id: string;
  site_id: string;
  name: string;
  kind: string;
  key_hash: string;
  status: string;
  socket_connected: number;
  connection_id: string | null;
  protocol: string | null;
  last_seen_at: string | null;
  firmware: string | null;
  payment_provider: string | null;
  payment_qr_code_id: string | null;
  payment_qr_image_url: string | null;
  payment_qr_short_url: string | null;
  payment_fixed_amount_minor: number | null;
  payment_qr_content: string | null;
  currency: string;
  created_at: string;
  updated_at: string;
}

export interface OrdersTable {
  id: string;
  tenant_id: string;
  site_id: string | null;
  machine_id: string | null;
  order_number: string | null;
  amount: number;
  currency: string;
  source: string;
  provider: string | null;
  provider_payment_id: string | null;
  provider_qr_code_id: string | null;
  paid_at: string | null;
  status: string;
  failure_code: string | null;
  items: string | null;
  customer_name: string | null;
  /** 1 when a machine must execute the order after payment (vending). */
  requires_dispense: Generated<number>;
  created_at: string;
  updated_at: string;
}

export interface OrderEventsTable {
  id: string;
  tenant_id: string;
  order_id: string;
  type: string;
  actor: string;
  detail: string | null;
  at: string;
}

export interface PaymentEventsTable {
  id: string;
  provider: string;
  provider_payment_id: string;
  event_id: string | null;
  event_type: string;
  tenant_id: string | null;
  status: string;
  reason: string | null;
  machine_id: string | null;
  order_id: string | null;
  amount_minor: number | null;
  currency: string | null;
  raw: string;
  received_at: string;
  processed_at: string;
}

export interface WebhookDeliveriesTable {
  provider: string;
  event_id: string;
  response: string;
  received_at: string;
}

export interface CommandsTable {
  id: string;
  tenant_id: string;
  machine_id: string;
  order_id: string;
  status: string;
  protocol: string | null;
  payload: string;
  attempts: number;
  queued_at: string;
  sent_at: string | null;
  accepted_at: string | null;
  finished_at: string | null;
  result: string | null;
  failure_code: string | null;
}

export interface AuditLogTable {
  id: string;
  tenant_id: string | null;
  actor: string;
  action: string;
  subject_type: string;
  subject_id: string;
  before: string | null;
  after: string | null;
  at: string;
}

/** The job table: after-commit effects and background work, retried until done or FAILED. */
export interface OutboxTable {
  id: Generated<number>;
  topic: string;
  payload: string;
  created_at: string;
  /** QUEUED until done (then deleted) or FAILED after the last attempt. */
  status: Generated<string>;
  attempts: Generated<number>;
  /** Not before this time (retry backoff, scheduled work); null: at once. */
  run_at: string | null;
  leased_until: Generated<string | null>;
  last_error: Generated<string | null>;
}

export interface ProductsTable {
  tenant_id: string;
  sku: string;
  site_id: string;
  name: string;
  price_minor: number;
  stock: number | null;
  created_at: string;
  updated_at: string;
}

export interface CashSessionsTable {
  id: string;
  tenant_id: string;
  site_id: string;
  machine_id: string | null;
  order_id: string;
  order_number: string;
  total_required_minor: number;
  currency: string;
  status: string;
  refund_due_minor: Generated<number>;
  started_at: string;
  completed_at: string | null;
  cancelled_at: string | null;
}

export interface CashInsertsTable {
  id: string;
  tenant_id: string;
  session_id: string;
  machine_id: string | null;
  event_id: string | null;
  kind: string | null;
  amount_minor: number;
  recorded_at: string;
}

export interface UnallocatedCashTable {
  id: string;
  tenant_id: string;
  site_id: string | null;
  machine_id: string | null;
  order_number: string;
  event_id: string | null;
  kind: string | null;
  amount_minor: number;
  currency: string;
  reason: string;
  recorded_at: string;
  /**
   * A report without an eventId that came within REPEAT_WINDOW_MS of the same report (machine,
   * order, amount): the first item of that run, which this one probably repeats.
   */
  repeat_of: string | null;
  /** OPEN until staff resolve it: RETURNED (handed back), APPLIED (to an order), KEPT, VOID. */
  status: Generated<string>;
  resolved_at: string | null;
  resolved_by: string | null;
  resolution_note: string | null;
  applied_order_number: string | null;
}

export interface LedgerAccountsTable {
  id: string;
  tenant_id: string;
  owner_type: string;
  owner_id: string;
  kind: string;
  /** 'ml' or an ISO 4217 currency (amounts in its minor units). */
  unit: string;
  /**
   * Cached sum of the account's entries, updated in the same transaction as each entry (on
   * PostgreSQL, a sink account's changes go to `ledger_balance_slots`: add them).
   */
  balance: number;
  allow_negative: number;
  created_at: string;
}

/**
 * Balance changes of an account that every payment of a site or tenant touches, on PostgreSQL:
 * one row per slot, so concurrent transactions do not queue on one row. Balance = the account
 * row's `balance` plus the `delta` of its slots.
 */
export interface LedgerBalanceSlotsTable {
  account_id: string;
  slot: number;
  delta: number;
}

export interface LedgerEntriesTable {
  id: string;
  tenant_id: string;
  transfer_id: string;
  account_id: string;
  amount: number;
  unit: string;
  cause_type: string;
  cause_id: string;
  memo: string | null;
  created_at: string;
}

export interface PrintJobsTable {
  id: string;
  tenant_id: string;
  site_id: string;
  order_id: string | null;
  status: string;
  receipt: string;
  attempts: number;
  leased_by: string | null;
  lease_expires_at: string | null;
  last_error: string | null;
  queued_at: string;
  printed_at: string | null;
  updated_at: string;
}

export interface AlertsTable {
  id: string;
  tenant_id: string;
  kind: string;
  subject_type: string;
  subject_id: string;
  message: string;
  created_at: string;
  acknowledged_at: string | null;
  acknowledged_by: string | null;
  /** When the condition behind the alert cleared by itself (water kiosks, stuck payments). */
  resolved_at: Generated<string | null>;
}

/** Machines online per site at one moment (dashboard charts). */
export interface MachineOnlineSamplesTable {
  tenant_id: string;
  site_id: string;
  at: string;
  online: number;
  total: number;
  /** JSON array of the ids online then, so one machine's history can be charted too. */
  online_ids: string;
}

/** One row per dashboard alert already raised (kind + subject + outage mark): raised once. */
export interface DashboardAlertMarksTable {
  kind: string;
  subject_id: string;
  mark: string;
  tenant_id: string;
  created_at: string;
}

/**
 * A one-time link to the orders CSV export: who asked (a staff user with the token version of
 * that sign-in, or ADMIN_TOKEN: user_id null) in which tenant (null: all, ADMIN_TOKEN), and the
 * export's filters; the link's token only as its sha256 (hex).
 */
export interface ExportLinksTable {
  token_hash: string;
  user_id: string | null;
  tenant_id: string | null;
  token_version: number | null;
  /** The sign-in's token id (`jti`) that made the link; null for ADMIN_TOKEN and older tokens. */
  session_id: string | null;
  /** ADMIN_TOKEN's links: a fingerprint of the ADMIN_TOKEN that made it (null for a user's). */
  admin_key: string | null;
  actor: string;
  /** JSON: the export's filters as asked (machineId, siteId, status, from, to). */
  filters: string;
  expires_at: string;
  used_at: string | null;
  created_at: string;
}

/** One row per payment of every channel (QR webhook, cash, and the channels built on them). */
export interface PaymentsTable {
  id: string;
  tenant_id: string;
  site_id: string | null;
  /** order | plan | wallet_topup: which settlement handler applies it. */
  purpose: string;
  order_id: string | null;
  customer_id: string | null;
  plan_id: string | null;
  machine_id: string | null;
  /** upi_qr | cash | momo | airtel | card | bank_transfer | credit */
  method: string;
  provider: string | null;
  provider_payment_id: string | null;
  /** Our reference for the payer (a one-off intent's RF/transaction reference, or the QR id). */
  reference: string | null;
  /** What is to be paid. */
  amount_minor: number;
  /** What has arrived so far (cash inserts; the provider's amount). */
  received_minor: number;
  currency: string;
  /** PENDING → SUCCEEDED | FAILED | EXPIRED, then PARTIALLY_REFUNDED | REFUNDED */
  status: string;
  failure_code: string | null;
  refunded_minor: number;
  created_at: string;
  completed_at: string | null;
  updated_at: string;
  /** A one-off intent not paid by then ends EXPIRED; null for standing intents and cash. */
  expires_at: Generated<string | null>;
}

/** A refund against a payment; never more in total than the payment received. */
export interface RefundsTable {
  id: string;
  tenant_id: string;
  payment_id: string;
  amount_minor: number;
  currency: string;
  reason: string;
  /** original (the provider's refund API) | refund_due (staff hand it back) | credit (wallet) */
  destination: string;
  /** PENDING (provider call queued) | DUE (waiting for staff) | SUCCEEDED | FAILED */
  status: string;
  actor: string;
  provider_refund_id: string | null;
  error: string | null;
  created_at: string;
  completed_at: string | null;
}

/** A table of a cafe (a machine of kind `table`): its QR token version and its server. */
export interface CafeTablesTable {
  machine_id: string;
  tenant_id: string;
  token_version: number;
  server_user_id: string | null;
  updated_at: string;
}

/** Cafe settings of a site (CONTRACTS §12). */
export interface CafeSettingsTable {
  tenant_id: string;
  site_id: string;
  /** JSON array of whole percents. */
  tip_presets: string;
  tip_split: string;
  /** JSON {name, iban, bic?} or null. */
  bank_account: string | null;
  card_gateway: string | null;
  pay_later: number;
  updated_at: string;
}

/** How a product shows on the cafe menu. */
export interface CafeMenuTable {
  tenant_id: string;
  sku: string;
  category: string | null;
  description: string | null;
  available: number;
  sort: number;
  updated_at: string;
}

/** A table order's cafe facts: its table, subtotal and tip (kept apart from the order total). */
export interface CafeOrdersTable {
  order_id: string;
  tenant_id: string;
  site_id: string;
  table_id: string;
  subtotal_minor: number;
  tip_minor: number;
  currency: string;
  tip_split: string;
  server_user_id: string | null;
  sent_to_kitchen_at: string | null;
  created_at: string;
}

/** A one-time wallet sign-in code (hashed), per phone. */
export interface CustomerOtpsTable {
  id: string;
  tenant_id: string;
  phone: string;
  address: string;
  code_hash: string;
  attempts: number;
  expires_at: string;
  used_at: string | null;
  created_at: string;
}

/** One USSD session (Africa's Talking `sessionId`) of a tenant: where the menu stands. */
export interface UssdSessionsTable {
  tenant_id: string;
  session_id: string;
  phone: string;
  /** The screen the next input answers (`menu`, `register_pin`, …, `ended`). */
  state: string;
  /** JSON: choices so far (plan page, plan id, where the PINs sit in `text`); never a PIN. */
  data: string;
  /**
   * A keyed digest of the last hop's `text` (never the text: it holds the PINs typed) and our
   * answer: the same hop delivered again gets the same answer.
   */
  last_text: string | null;
  last_response: string | null;
  created_at: string;
  updated_at: string;
}

/** One water verification's outcome (approved or the denial code); owned by the water-ops module. */
export interface WaterVerificationsTable {
  id: string;
  tenant_id: string;
  kiosk_id: string;
  /** Null when the phone number matched no customer. */
  customer_id: string | null;
  approved: number;
  /** VERIFIED or the denial code (CONTRACTS §11). */
  code: string;
  volume_ml: number;
  at: string;
}

export interface FirmwareArtifactsTable {
  id: string;
  tenant_id: string;
  sha256: string;
  size: number;
  product: string;
  version: string;
  /** JSON array of hardware models. */
  hw_models: string;
  min_from_version: string | null;
  allow_downgrade: number;
  /** The manifest's exact signed text. */
  manifest: string;
  signature: string;
  key_id: string;
  sig_alg: string;
  created_by: string;
  created_at: string;
}

export interface FirmwareCampaignsTable {
  id: string;
  tenant_id: string;
  artifact_id: string;
  name: string | null;
  status: string;
  /** JSON {machineIds?, siteIds?, kinds?, hwModel}. */
  target: string;
  hw_model: string;
  /** JSON array of waves with their progress. */
  waves: string;
  current_wave: Generated<number>;
  max_concurrent: number;
  failure_threshold_percent: number;
  min_finished_for_threshold: number;
  device_timeout_minutes: number;
  download_retries: number;
  allow_downgrade: number;
  pause_reason: string | null;
  acknowledged_failures: Generated<number>;
  tick_seq: Generated<number>;
  created_by: string;
  created_at: string;
  updated_at: string;
  started_at: string | null;
  finished_at: string | null;
}

export interface FirmwareDeploymentsTable {
  id: string;
  tenant_id: string;
  campaign_id: string;
  machine_id: string;
  wave: number;
  ordinal: number;
  state: string;
  code: string | null;
  message: string | null;
  from_version: string | null;
  current_version: string | null;
  bytes: number | null;
  total: number | null;
  seq: Generated<number>;
  retries: Generated<number>;
  notified_at: string | null;
  active_at: string | null;
  finished_at: string | null;
  updated_at: string;
  /** TIMED_OUT: the state it was in when it timed out (a late report continues from there); null: unknown. */
  timed_out_in: string | null;
  /** 1: a failure accepted by a resume past the failure threshold (in acknowledged_failures). */
  failure_acknowledged: Generated<number>;
}

export interface Database {
  firmware_artifacts: FirmwareArtifactsTable;
  firmware_campaigns: FirmwareCampaignsTable;
  firmware_deployments: FirmwareDeploymentsTable;
  cafe_tables: CafeTablesTable;
  cafe_settings: CafeSettingsTable;
  cafe_menu: CafeMenuTable;
  cafe_orders: CafeOrdersTable;
  customer_otps: CustomerOtpsTable;
  ussd_sessions: UssdSessionsTable;
  customers: CustomersTable;
  plans: PlansTable;
  water_dispenses: WaterDispensesTable;
  water_pin_seals: WaterPinSealsTable;
  water_kiosks: WaterKiosksTable;
  water_cache_entries: WaterCacheEntriesTable;
  payments: PaymentsTable;
  refunds: RefundsTable;
  machine_online_samples: MachineOnlineSamplesTable;
  dashboard_alert_marks: DashboardAlertMarksTable;
  export_links: ExportLinksTable;
  products: ProductsTable;
  cash_sessions: CashSessionsTable;
  cash_inserts: CashInsertsTable;
  unallocated_cash: UnallocatedCashTable;
  ledger_accounts: LedgerAccountsTable;
  ledger_entries: LedgerEntriesTable;
  ledger_balance_slots: LedgerBalanceSlotsTable;
  print_jobs: PrintJobsTable;
  alerts: AlertsTable;
  tenants: TenantsTable;
  settings: SettingsTable;
  users: UsersTable;
  ended_sessions: EndedSessionsTable;
  sites: SitesTable;
  machines: MachinesTable;
  orders: OrdersTable;
  order_events: OrderEventsTable;
  payment_events: PaymentEventsTable;
  webhook_deliveries: WebhookDeliveriesTable;
  commands: CommandsTable;
  audit_log: AuditLogTable;
  outbox: OutboxTable;
  print_queue_claims: PrintQueueClaimsTable;
  water_verifications: WaterVerificationsTable;
}

export type MachineRow = Selectable<MachinesTable>;
export type OrderRow = Selectable<OrdersTable>;
export type NewOrder = Insertable<OrdersTable>;
export type OrderUpdate = Updateable<OrdersTable>;
export type CommandRow = Selectable<CommandsTable>;
export type PaymentEventRow = Selectable<PaymentEventsTable>;
export type PaymentRow = Selectable<PaymentsTable>;
export type RefundRow = Selectable<RefundsTable>;
export type CustomerRow = Selectable<CustomersTable>;
export type PlanRow = Selectable<PlansTable>;
export type CafeOrderRow = Selectable<CafeOrdersTable>;
export type CafeSettingsRow = Selectable<CafeSettingsTable>;
export type UssdSessionRow = Selectable<UssdSessionsTable>;
export type WaterDispenseRow = Selectable<WaterDispensesTable>;
export type WaterKioskRow = Selectable<WaterKiosksTable>;
export type UserRow = Selectable<UsersTable>;
export type SiteRow = Selectable<SitesTable>;
export type ProductRow = Selectable<ProductsTable>;
export type CashSessionRow = Selectable<CashSessionsTable>;
export type PrintJobRow = Selectable<PrintJobsTable>;
export type FirmwareArtifactRow = Selectable<FirmwareArtifactsTable>;
export type FirmwareCampaignRow = Selectable<FirmwareCampaignsTable>;
export type FirmwareDeploymentRow = Selectable<FirmwareDeploymentsTable>;
