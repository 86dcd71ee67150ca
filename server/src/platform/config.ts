// Reads and validates the environment once (CONTRACTS.md §1). A bad value stops start-up
// with a message that names the variable.
import { readFileSync, statSync } from 'node:fs';
import { isIP } from 'node:net';
import { createSecureContext } from 'node:tls';
import { firmwareConfig, type FirmwareConfig } from './config-firmware.js';

export type DatabaseTarget =
  { kind: 'sqlite-file'; file: string } | { kind: 'sqlite-memory' } | { kind: 'postgres'; url: string };

export interface Config {
  host: string;
  port: number;
  dataDir: string;
  database: DatabaseTarget;
  /** PostgreSQL schema to use (`DATABASE_SCHEMA`); unset: the connection's default search_path. */
  databaseSchema?: string | undefined;
  redisUrl: string | undefined;
  adminToken: string | undefined;
  jwtSecret: string | undefined;
  /** The key customer PINs are sealed under (PIN_SECRET); generated and stored when unset. */
  pinSecret: string | undefined;
  /** Africa's Talking: SMS API (username + key) and the secret in the USSD/SMS callback URLs. */
  africasTalking: {
    apiBase: string;
    username: string | undefined;
    apiKey: string | undefined;
    from: string | undefined;
    callbackSecret: string | undefined;
    /** The USSD code customers dial (`AT_USSD_CODE`, e.g. `*384*123#`), named in SMS replies. */
    ussdCode: string | undefined;
  };
  /** MTN MoMo Collection (RequestToPay); `configured` when the API user, key and product key are set. */
  momo: {
    apiBase: string;
    subscriptionKey: string | undefined;
    apiUser: string | undefined;
    apiKey: string | undefined;
    targetEnvironment: string;
    /** The currency the target environment takes (the sandbox takes EUR only); unset: the plan's. */
    currency: string | undefined;
    callbackSecret: string | undefined;
  };
  /** Airtel Money Collection (USSD push) for one country. */
  airtel: {
    apiBase: string;
    clientId: string | undefined;
    clientSecret: string | undefined;
    country: string;
    currency: string;
    callbackSecret: string | undefined;
  };
  /** How often a pending one-off payment's provider is asked for its status. */
  paymentStatusPollMs: number;
  /** A failed background job's first retry delay; it doubles with each failure (up to 5 min). */
  jobRetryBaseMs: number;
  /** How often each process looks for due background jobs it was not woken for (another process's, a retry's). */
  jobPollMs: number;
  /** How long a one-off intent (MoMo request, bank transfer, checkout) stays payable. */
  paymentIntentTtlMs: number;
  /** How long a card refund may wait for its payment to become known before it raises an alert. */
  cardRefundParkedAlertMs: number;
  /** The first status check of a provider refund answered pending; later ones wait 3×, 6×, then 36× this. */
  refundStatusPollMs: number;
  /** How long a provider refund answered pending is checked before a REFUND_STILL_PENDING alert. */
  refundStatusPollForMs: number;
  /** How long a cafe table order may stay unpaid before it is cancelled (UNPAID_EXPIRED). */
  cafeOrderTtlMs: number;
  /** A kiosk cash session without money this long after opening is cancelled (0: never). */
  cashSessionIdleMs: number;
  razorpay: {
    keyId: string | undefined;
    keySecret: string | undefined;
    webhookSecrets: string[];
    apiBase: string;
  };
  upi: { vpa: string | undefined; payeeName: string | undefined };
  /** Verifies POST /webhooks/bank; several (comma-separated) while a secret rotates. */
  bankWebhookSecrets: string[];
  /** Card payments through Stripe Checkout: both secrets, or neither. */
  stripe: { secretKey: string | undefined; webhookSecret: string | undefined; apiBase: string };
  dispatchAckTimeoutMs: number;
  dispatchResultTimeoutMs: number;
  dispatchIdleRecheckMs: number;
  dispatchSweepMs: number;
  /** A paid order's command not executed this long after its payment is never sent again (MQTT: expiresAt). */
  commandExpiryMs: number;
  mqtt: MqttConfig;
  databasePoolSize: number;
  /** PostgreSQL: repeated statements become named prepared statements (off behind old poolers). */
  databasePreparedStatements: boolean;
  machineHeartbeatTimeoutMs: number;
  printJobLeaseMs: number;
  /** How long an approved, unsettled water dispense holds the customer's credit and daily limit. */
  waterHoldMs: number;
  printJobRetentionDays: number;
  /** How often the dashboard samples machines online and raises its alerts. */
  dashboardSweepMs: number;
  /** `GET /v1/orders/export.csv` stops here: a filter matching more rows gets a broken download. */
  exportMaxRows: number;
  /** A machine OFFLINE longer than this raises one alert per outage. */
  machineOfflineAlertMs: number;
  /** How often water kiosks, stuck payments and water credit are checked for alerts. */
  waterAlertSweepMs: number;
  /** A payment still PENDING this long past its expiry (or creation, without one) raises an alert. */
  paymentStuckGraceMs: number;
  rateLimitPerMinute: number;
  /** Which proxies may set X-Forwarded-For (`TRUST_PROXY`): none, a hop count, or addresses/CIDRs. */
  trustProxy: false | number | string[];
  /** Whole-request and idle-connection limits for HTTP (slow bodies, silent connections). */
  requestTimeoutMs: number;
  connectionTimeoutMs: number;
  /** Password logins per minute: per address (any email) and per email (any address). */
  loginMaxPerAddress: number;
  loginMaxPerEmail: number;
  /** Key-less cash-reader cancels of orders a site has no session for, per address in 10 minutes. */
  keylessCancelMaxMisses: number;
  /** Password verifications running at once, and how many more may wait for a turn. */
  loginConcurrency: number;
  loginQueue: number;
  /** argon2id cost of new staff password hashes (a hash keeps the cost it was made with). */
  passwordHash: PasswordHashCost;
  /** A Socket.IO connection that has not authenticated after this long is dropped. */
  socketAuthTimeoutMs: number;
  socketMaxPerAddress: number;
  /** Events one machine socket may send per second (bursts of twice that; more wait, then are refused). */
  socketEventsPerSecond: number;
  /** A machine's reported status is written at most once per this interval (the last one wins). */
  statusWriteIntervalMs: number;
  /** How long a staff user's revocation state is cached per process. */
  tokenCheckCacheMs: number;
  /** Browser origins allowed to open Socket.IO connections; empty: the server's own origin only. */
  corsOrigins: string[];
  /** Bearer token for /metrics; unset: only an admin credential may read it. */
  metricsToken: string | undefined;
  logLevel: string;
  publicUrl: string | undefined;
  /** Firmware over the air (FIRMWARE_*). */
  firmware: FirmwareConfig;
}

export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    message: string,
  ) {
    super(`${variable}: ${message}`);
  }
}

type Env = Record<string, string | undefined>;

export interface PasswordHashCost {
  /** KiB of memory per hash (argon2's memoryCost). */
  memoryKib: number;
  /** Passes over that memory (argon2's timeCost). */
  timeCost: number;
}

export interface MqttConfig {
  /** Embedded broker (aedes) on HOST:port; undefined: none. */
  port: number | undefined;
  tlsCert: string | undefined;
  tlsKey: string | undefined;
  /** External Mosquitto 2.x with dynamic security; credentials may be in the URL or MQTT_USERNAME/MQTT_PASSWORD. */
  url: string | undefined;
  username: string | undefined;
  password: string | undefined;
}

function mqttConfig(env: Env): MqttConfig {
  const port = text(env, 'MQTT_PORT') === undefined ? undefined : integer(env, 'MQTT_PORT', 0, 0, 65535);
  const url_ = url(env, 'MQTT_URL', undefined, ['mqtt:', 'mqtts:', 'tcp:', 'ssl:', 'tls:']);
  if (port !== undefined && url_ !== undefined)
    throw new ConfigError(
      'MQTT_URL',
      'set either MQTT_PORT (embedded broker) or MQTT_URL (Mosquitto), not both',
    );
  together(env, ['MQTT_TLS_CERT', 'MQTT_TLS_KEY']);
  const tlsCert = text(env, 'MQTT_TLS_CERT');
  if (tlsCert !== undefined && port === undefined)
    throw new ConfigError('MQTT_TLS_CERT', 'is for the embedded broker: set MQTT_PORT too');
  const [cert, key] = [pemFile(env, 'MQTT_TLS_CERT'), pemFile(env, 'MQTT_TLS_KEY')];
  if (cert !== undefined && key !== undefined) {
    // A renewed certificate kept with its old key, the two files swapped, a damaged file: the
    // broker would fail as it starts listening, naming no setting.
    try {
      createSecureContext({ cert: cert.content, key: key.content });
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      throw new ConfigError(
        'MQTT_TLS_CERT',
        `and MQTT_TLS_KEY are not a certificate and its own key (${why})`,
      );
    }
  }
  return {
    port,
    tlsCert: cert?.path,
    tlsKey: key?.path,
    url: url_,
    username: text(env, 'MQTT_USERNAME'),
    password: secretText(env, 'MQTT_PASSWORD'),
  };
}

/**
 * A PEM file the server will read when it starts listening: read now, so a bad path is named.
 * Its path and content, or undefined when unset.
 */
function pemFile(env: Env, name: string): { path: string; content: string } | undefined {
  const path = text(env, name);
  if (path === undefined) return undefined;
  let content: string;
  try {
    content = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    throw new ConfigError(name, `cannot read "${path}" (${code})`);
  }
  if (!content.includes('-----BEGIN ')) throw new ConfigError(name, `"${path}" is not a PEM file`);
  return { path, content };
}

/** DATA_DIR is created at start-up when missing; a path that exists must be a folder. */
function dataDirectory(env: Env): string {
  const path = text(env, 'DATA_DIR') ?? './data';
  let kind;
  try {
    kind = statSync(path, { throwIfNoEntry: false });
  } catch (err) {
    // Below a file (ENOTDIR), or a folder the service user cannot reach (EACCES).
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    throw new ConfigError('DATA_DIR', `"${path}" cannot be used (${code})`);
  }
  if (kind !== undefined && !kind.isDirectory())
    throw new ConfigError('DATA_DIR', `"${path}" exists and is not a folder`);
  return path;
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

function text(env: Env, name: string): string | undefined {
  const value = env[name];
  return value === undefined || value.trim() === '' ? undefined : value.trim();
}

function integer(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = text(env, name);
  if (raw === undefined) return fallback;
  if (!/^\d+$/.test(raw)) throw new ConfigError(name, `must be a whole number, got "${raw}"`);
  const value = Number(raw);
  if (value < min || value > max)
    throw new ConfigError(name, `must be between ${min} and ${max}, got ${value}`);
  return value;
}

function onOff(env: Env, name: string, fallback: boolean): boolean {
  const raw = text(env, name)?.toLowerCase();
  if (raw === undefined) return fallback;
  if (raw === 'on') return true;
  if (raw === 'off') return false;
  throw new ConfigError(name, `must be "on" or "off", got "${raw}"`);
}

function url(env: Env, name: string, fallback: string | undefined, protocols: string[]): string | undefined {
  const raw = text(env, name) ?? fallback;
  if (raw === undefined) return undefined;
  let parsed: URL;
  try {
    parsed = new URL(raw);
  } catch {
    // Never the password: the text may sit in a journal. One holding `#`, `/`, `?` or `@` is the
    // usual cause, so say how to write it.
    const shown = raw.replace(
      /^([a-z][a-z0-9+.-]*:\/\/)(.*)@/i,
      (_all, scheme: string, login: string) =>
        `${scheme}${login.includes(':') ? `${login.slice(0, login.indexOf(':'))}:***` : '***'}@`,
    );
    throw new ConfigError(
      name,
      `is not a valid URL: "${shown}" (a password holding # / ? @ % or a space must be percent-encoded: # is %23, / is %2F)`,
    );
  }
  if (!protocols.includes(parsed.protocol)) {
    throw new ConfigError(name, `must use ${protocols.join(' or ')}, got "${parsed.protocol}"`);
  }
  return raw.replace(/\/+$/, '');
}

function database(env: Env, dataDir: string): DatabaseTarget {
  const raw = text(env, 'DATABASE_URL');
  if (raw === undefined) return { kind: 'sqlite-file', file: `${dataDir}/kioskhub.db` };
  if (raw === 'memory://') return { kind: 'sqlite-memory' };
  if (/^postgres(ql)?:\/\//.test(raw)) {
    url(env, 'DATABASE_URL', undefined, ['postgres:', 'postgresql:']);
    return { kind: 'postgres', url: raw };
  }
  throw new ConfigError('DATABASE_URL', 'must be unset, "memory://" or a postgres:// URL');
}

function databaseSchema(env: Env): string | undefined {
  const raw = text(env, 'DATABASE_SCHEMA');
  if (raw !== undefined && !/^[a-z_][a-z0-9_]*$/.test(raw)) {
    throw new ConfigError('DATABASE_SCHEMA', `must match ^[a-z_][a-z0-9_]*$, got "${raw}"`);
  }
  return raw;
}

function trustProxy(env: Env): false | number | string[] {
  const raw = text(env, 'TRUST_PROXY');
  if (raw === undefined || raw === 'false') return false;
  if (/^\d+$/.test(raw)) {
    const hops = Number(raw);
    if (hops < 1 || hops > 10) {
      throw new ConfigError('TRUST_PROXY', `a hop count must be between 1 and 10, got ${hops}`);
    }
    return hops;
  }
  const list = raw
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  const bad = list.find((a) => !trustedProxyEntry(a));
  if (bad !== undefined || list.length === 0) {
    const got = `got "${bad ?? raw}"`;
    throw new ConfigError('TRUST_PROXY', `must be false, a hop count or a list of addresses/CIDRs, ${got}`);
  }
  return list;
}

/** A keyword, an address, or a network whose prefix fits its family (10.0.0.0/8, fd00::/8). */
function trustedProxyEntry(entry: string): boolean {
  if (['loopback', 'linklocal', 'uniquelocal'].includes(entry)) return true;
  const [address, prefix, ...rest] = entry.split('/');
  const family = isIP(address!);
  if (family === 0 || rest.length > 0) return false;
  if (prefix === undefined) return true;
  return /^\d{1,3}$/.test(prefix) && Number(prefix) <= (family === 4 ? 32 : 128);
}

function origins(env: Env): string[] {
  const raw = text(env, 'CORS_ORIGINS');
  if (raw === undefined) return [];
  return raw
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
    .map((origin) => {
      let parsed: URL;
      try {
        parsed = new URL(origin);
      } catch {
        throw new ConfigError('CORS_ORIGINS', `"${origin}" is not an origin such as https://ops.example.com`);
      }
      if (!['http:', 'https:'].includes(parsed.protocol) || parsed.origin !== origin.replace(/\/+$/, '')) {
        const example = 'such as https://ops.example.com (scheme, host, port; no path)';
        throw new ConfigError('CORS_ORIGINS', `"${origin}" is not an origin ${example}`);
      }
      return parsed.origin;
    });
}

// Values copied from a documentation example instead of a real secret.
const PLACEHOLDER =
  /change[-_ ]?me|replace[-_ ]?me|placeholder|your[-_ ]?(admin[-_ ]?)?(token|secret)|^(x+|0+)$/i;
// Prefixes of example values, which a real random value may follow ("secret_<64 hex>").
const PLACEHOLDER_PREFIX = /^(1234|secret|password)/i;

const isPlaceholder = (value: string): boolean =>
  PLACEHOLDER.test(value) || PLACEHOLDER_PREFIX.test(value) || new Set(value).size < 4;

/**
 * A refused value as an error may show it: an obvious placeholder whole, one refused for its
 * prefix only by that prefix (what follows may be a real secret, and errors reach the logs).
 */
function placeholderShown(value: string): string {
  const prefix = PLACEHOLDER.test(value) || new Set(value).size < 4 ? null : PLACEHOLDER_PREFIX.exec(value);
  return prefix ? `a value starting with "${prefix[1]}"` : `"${value}"`;
}

function refusePlaceholder(name: string, value: string | undefined): void {
  if (value === undefined || !isPlaceholder(value)) return;
  throw new ConfigError(
    name,
    `${placeholderShown(value)} is a placeholder, not a secret; ` +
      `set a random value (e.g. openssl rand -hex 24) or leave ${name} unset`,
  );
}

// What an operator who set a bad ADMIN_TOKEN reads: the rule, and how to get a good one.
const ADMIN_TOKEN_RULE =
  'it must be at least 16 characters and not a placeholder. Make one with openssl rand -hex 32 ' +
  '(export ADMIN_TOKEN=$(openssl rand -hex 32)), or leave ADMIN_TOKEN unset: the first start on a ' +
  'new database then generates one and prints it once';

function adminTokenText(env: Env): string | undefined {
  const value = text(env, 'ADMIN_TOKEN');
  if (value === undefined) return undefined;
  // A short value is not repeated: it may be a real (if weak) secret.
  if (value.length < 16) {
    throw new ConfigError('ADMIN_TOKEN', `too short (${value.length} characters); ${ADMIN_TOKEN_RULE}`);
  }
  if (isPlaceholder(value)) {
    throw new ConfigError(
      'ADMIN_TOKEN',
      `${placeholderShown(value)} is a placeholder, not a secret; ${ADMIN_TOKEN_RULE}`,
    );
  }
  return value;
}

/** A callback secret: long enough not to be guessed, and not a documentation placeholder. */
function secretText(env: Env, name: string): string | undefined {
  const value = text(env, name);
  if (value !== undefined && value.length < 16) throw new ConfigError(name, 'must be at least 16 characters');
  refusePlaceholder(name, value);
  return value;
}

function together(env: Env, names: string[]): void {
  const set = names.filter((n) => text(env, n) !== undefined);
  if (set.length > 0 && set.length < names.length) {
    const missing = names.find((n) => text(env, n) === undefined)!;
    throw new ConfigError(missing, `${names.join(', ')} must be set together`);
  }
}

function momoConfig(env: Env): Config['momo'] {
  together(env, ['MOMO_SUBSCRIPTION_KEY', 'MOMO_API_USER', 'MOMO_API_KEY']);
  const currency = text(env, 'MOMO_CURRENCY');
  if (currency !== undefined && !/^[A-Z]{3}$/.test(currency)) {
    throw new ConfigError('MOMO_CURRENCY', `must be an ISO 4217 code such as UGX, got "${currency}"`);
  }
  return {
    apiBase: url(env, 'MOMO_API_BASE', 'https://sandbox.momodeveloper.mtn.com', ['http:', 'https:'])!,
    subscriptionKey: text(env, 'MOMO_SUBSCRIPTION_KEY'),
    apiUser: text(env, 'MOMO_API_USER'),
    apiKey: text(env, 'MOMO_API_KEY'),
    targetEnvironment: text(env, 'MOMO_TARGET_ENVIRONMENT') ?? 'sandbox',
    currency,
    callbackSecret: secretText(env, 'MOMO_CALLBACK_KEY'),
  };
}

function airtelConfig(env: Env): Config['airtel'] {
  together(env, ['AIRTEL_CLIENT_ID', 'AIRTEL_CLIENT_SECRET']);
  const country = text(env, 'AIRTEL_COUNTRY') ?? 'UG';
  if (!/^[A-Z]{2}$/.test(country)) {
    throw new ConfigError('AIRTEL_COUNTRY', `must be an ISO 3166 alpha-2 code such as UG, got "${country}"`);
  }
  const currency = text(env, 'AIRTEL_CURRENCY') ?? 'UGX';
  if (!/^[A-Z]{3}$/.test(currency)) {
    throw new ConfigError('AIRTEL_CURRENCY', `must be an ISO 4217 code such as UGX, got "${currency}"`);
  }
  return {
    apiBase: url(env, 'AIRTEL_API_BASE', 'https://openapiuat.airtel.africa', ['http:', 'https:'])!,
    clientId: text(env, 'AIRTEL_CLIENT_ID'),
    clientSecret: text(env, 'AIRTEL_CLIENT_SECRET'),
    country,
    currency,
    callbackSecret: secretText(env, 'AIRTEL_CALLBACK_KEY'),
  };
}

function bankSecrets(env: Env): string[] {
  const list = (text(env, 'BANK_WEBHOOK_SECRET') ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  for (const secret of list) {
    if (secret.length < 16) throw new ConfigError('BANK_WEBHOOK_SECRET', 'must be at least 16 characters');
    refusePlaceholder('BANK_WEBHOOK_SECRET', secret);
  }
  return list;
}

function stripeConfig(env: Env): Config['stripe'] {
  together(env, ['STRIPE_SECRET_KEY', 'STRIPE_WEBHOOK_SECRET']);
  return {
    secretKey: text(env, 'STRIPE_SECRET_KEY'),
    webhookSecret: text(env, 'STRIPE_WEBHOOK_SECRET'),
    apiBase: url(env, 'STRIPE_API_BASE', 'https://api.stripe.com', ['http:', 'https:'])!,
  };
}

export function loadConfig(env: Env = process.env): Config {
  const dataDir = dataDirectory(env);
  const host = text(env, 'HOST') ?? '127.0.0.1';
  const logLevel = text(env, 'LOG_LEVEL') ?? 'info';
  if (!LOG_LEVELS.includes(logLevel)) {
    throw new ConfigError('LOG_LEVEL', `must be one of ${LOG_LEVELS.join(', ')}, got "${logLevel}"`);
  }
  const adminToken = adminTokenText(env);
  const jwtSecret = text(env, 'JWT_SECRET');
  if (jwtSecret !== undefined && jwtSecret.length < 32) {
    throw new ConfigError('JWT_SECRET', 'must be at least 32 characters');
  }
  refusePlaceholder('JWT_SECRET', jwtSecret);
  const pinSecret = text(env, 'PIN_SECRET');
  if (pinSecret !== undefined && pinSecret.length < 32) {
    throw new ConfigError('PIN_SECRET', 'must be at least 32 characters');
  }
  refusePlaceholder('PIN_SECRET', pinSecret);
  const keyId = text(env, 'RAZORPAY_KEY_ID');
  const keySecret = text(env, 'RAZORPAY_KEY_SECRET');
  if ((keyId === undefined) !== (keySecret === undefined)) {
    throw new ConfigError(
      keyId === undefined ? 'RAZORPAY_KEY_ID' : 'RAZORPAY_KEY_SECRET',
      'RAZORPAY_KEY_ID and RAZORPAY_KEY_SECRET must be set together',
    );
  }
  const webhookSecrets = (text(env, 'RAZORPAY_WEBHOOK_SECRET') ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  return Object.freeze({
    host,
    port: integer(env, 'PORT', 8080, 0, 65535),
    dataDir,
    database: database(env, dataDir),
    databaseSchema: databaseSchema(env),
    redisUrl: url(env, 'REDIS_URL', undefined, ['redis:', 'rediss:']),
    adminToken,
    jwtSecret,
    pinSecret,
    africasTalking: {
      apiBase: url(env, 'AT_API_BASE', 'https://api.africastalking.com', ['http:', 'https:'])!,
      username: text(env, 'AT_USERNAME'),
      apiKey: text(env, 'AT_API_KEY'),
      from: text(env, 'AT_SENDER_ID'),
      // AT_CALLBACK_KEY is the documented name; AT_CALLBACK_SECRET is accepted too.
      callbackSecret: secretText(env, 'AT_CALLBACK_KEY') ?? secretText(env, 'AT_CALLBACK_SECRET'),
      ussdCode: text(env, 'AT_USSD_CODE'),
    },
    momo: momoConfig(env),
    airtel: airtelConfig(env),
    paymentStatusPollMs: integer(env, 'PAYMENT_STATUS_POLL_MS', 30_000, 50, 3_600_000),
    jobRetryBaseMs: integer(env, 'JOB_RETRY_BASE_MS', 1_000, 10, 300_000),
    jobPollMs: integer(env, 'JOB_POLL_MS', 1_000, 50, 60_000),
    paymentIntentTtlMs: integer(env, 'PAYMENT_INTENT_TTL_MS', 900_000, 1_000, 7 * 86_400_000),
    cardRefundParkedAlertMs: integer(env, 'CARD_REFUND_PARKED_ALERT_MS', 3_600_000, 1_000, 7 * 86_400_000),
    refundStatusPollMs: integer(env, 'REFUND_STATUS_POLL_MS', 600_000, 50, 86_400_000),
    // Razorpay's normal refunds take 5–7 working days: up to 11 calendar days across two weekends,
    // more with bank holidays; two weeks covers that before anyone is alerted.
    refundStatusPollForMs: integer(env, 'REFUND_STATUS_POLL_FOR_MS', 14 * 86_400_000, 1_000, 60 * 86_400_000),
    cafeOrderTtlMs: integer(env, 'CAFE_ORDER_TTL_MS', 3 * 3_600_000, 1_000, 7 * 86_400_000),
    cashSessionIdleMs: integer(env, 'CASH_SESSION_IDLE_MS', 15 * 60_000, 0, 7 * 86_400_000),
    razorpay: {
      keyId,
      keySecret,
      webhookSecrets,
      apiBase: url(env, 'RAZORPAY_API_BASE', 'https://api.razorpay.com', ['http:', 'https:'])!,
    },
    upi: { vpa: text(env, 'UPI_VPA'), payeeName: text(env, 'UPI_PAYEE_NAME') },
    bankWebhookSecrets: bankSecrets(env),
    stripe: stripeConfig(env),
    dispatchAckTimeoutMs: integer(env, 'DISPATCH_ACK_TIMEOUT_MS', 10_000, 50, 3_600_000),
    dispatchResultTimeoutMs: integer(env, 'DISPATCH_RESULT_TIMEOUT_MS', 120_000, 100, 86_400_000),
    dispatchIdleRecheckMs: integer(env, 'DISPATCH_IDLE_RECHECK_MS', 300_000, 0, 86_400_000),
    dispatchSweepMs: integer(env, 'DISPATCH_SWEEP_MS', 30_000, 0, 86_400_000),
    commandExpiryMs: integer(env, 'COMMAND_EXPIRY_MS', 600_000, 1_000, 7 * 86_400_000),
    mqtt: mqttConfig(env),
    databasePoolSize: integer(env, 'DATABASE_POOL_SIZE', 10, 1, 1_000),
    databasePreparedStatements: onOff(env, 'DATABASE_PREPARED_STATEMENTS', true),
    machineHeartbeatTimeoutMs: integer(env, 'MACHINE_HEARTBEAT_TIMEOUT_MS', 30_000, 100, 86_400_000),
    printJobLeaseMs: integer(env, 'PRINT_JOB_LEASE_MS', 60_000, 100, 86_400_000),
    waterHoldMs: integer(env, 'WATER_HOLD_MS', 600_000, 100, 86_400_000),
    printJobRetentionDays: integer(env, 'PRINT_JOB_RETENTION_DAYS', 7, 1, 3650),
    dashboardSweepMs: integer(env, 'DASHBOARD_SWEEP_MS', 60_000, 100, 86_400_000),
    exportMaxRows: integer(env, 'EXPORT_MAX_ROWS', 1_000_000, 1, 100_000_000),
    machineOfflineAlertMs: integer(env, 'MACHINE_OFFLINE_ALERT_MS', 300_000, 100, 604_800_000),
    waterAlertSweepMs: integer(env, 'WATER_ALERT_SWEEP_MS', 60_000, 100, 86_400_000),
    paymentStuckGraceMs: integer(env, 'PAYMENT_STUCK_GRACE_MS', 1_800_000, 1_000, 30 * 86_400_000),
    rateLimitPerMinute: integer(env, 'RATE_LIMIT_PER_MINUTE', 6000, 1, 10_000_000),
    trustProxy: trustProxy(env),
    requestTimeoutMs: integer(env, 'REQUEST_TIMEOUT_MS', 60_000, 1_000, 3_600_000),
    connectionTimeoutMs: integer(env, 'CONNECTION_TIMEOUT_MS', 75_000, 1_000, 3_600_000),
    loginMaxPerAddress: integer(env, 'LOGIN_MAX_PER_ADDRESS', 20, 1, 100_000),
    loginMaxPerEmail: integer(env, 'LOGIN_MAX_PER_EMAIL', 10, 1, 100_000),
    keylessCancelMaxMisses: integer(env, 'KEYLESS_CANCEL_MAX_MISSES', 20, 1, 100_000),
    loginConcurrency: integer(env, 'LOGIN_CONCURRENCY', 2, 1, 64),
    loginQueue: integer(env, 'LOGIN_QUEUE', 16, 0, 10_000),
    // The floors are OWASP's least for argon2id (19 MiB, 2 passes); the defaults are argon2's own.
    passwordHash: {
      memoryKib: integer(env, 'PASSWORD_HASH_MEMORY_KIB', 65_536, 19_456, 4_194_304),
      timeCost: integer(env, 'PASSWORD_HASH_TIME_COST', 3, 2, 20),
    },
    socketAuthTimeoutMs: integer(env, 'SOCKET_AUTH_TIMEOUT_MS', 10_000, 100, 600_000),
    socketMaxPerAddress: integer(env, 'SOCKET_MAX_PER_ADDRESS', 200, 1, 1_000_000),
    socketEventsPerSecond: integer(env, 'SOCKET_EVENTS_PER_SECOND', 50, 1, 100_000),
    statusWriteIntervalMs: integer(env, 'STATUS_WRITE_INTERVAL_MS', 1_000, 0, 600_000),
    tokenCheckCacheMs: integer(env, 'TOKEN_CHECK_CACHE_MS', 5_000, 0, 300_000),
    corsOrigins: origins(env),
    metricsToken: secretText(env, 'METRICS_TOKEN'),
    logLevel,
    publicUrl: url(env, 'PUBLIC_URL', undefined, ['http:', 'https:']),
    firmware: firmwareConfig(env, dataDir, (n, f, lo, hi) => integer(env, n, f, lo, hi), ConfigError),
  });
}
