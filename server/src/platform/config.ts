// Reads and validates the environment once (CONTRACTS.md §1). A bad value stops start-up
// with a message that names the variable.

export type DatabaseTarget =
  | { kind: 'sqlite-file'; file: string }
  | { kind: 'sqlite-memory' }
  | { kind: 'postgres'; url: string };

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
  razorpay: {
    keyId: string | undefined;
    keySecret: string | undefined;
    webhookSecrets: string[];
    apiBase: string;
  };
  upi: { vpa: string | undefined; payeeName: string | undefined };
  dispatchAckTimeoutMs: number;
  dispatchResultTimeoutMs: number;
  dispatchIdleRecheckMs: number;
  dispatchSweepMs: number;
  databasePoolSize: number;
  machineHeartbeatTimeoutMs: number;
  printJobLeaseMs: number;
  printJobRetentionDays: number;
  /** How often the dashboard samples machines online and raises its alerts. */
  dashboardSweepMs: number;
  /** A machine OFFLINE longer than this raises one alert per outage. */
  machineOfflineAlertMs: number;
  rateLimitPerMinute: number;
  logLevel: string;
  publicUrl: string | undefined;
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
  if (value < min || value > max) throw new ConfigError(name, `must be between ${min} and ${max}, got ${value}`);
  return value;
}

function url(env: Env, name: string, fallback: string | undefined, protocols: string[]): string | undefined {
  const raw = text(env, name) ?? fallback;
  if (raw === undefined) return undefined;
  let parsed: URL;
  try {
    parsed = new URL(raw);
  } catch {
    throw new ConfigError(name, `is not a valid URL: "${raw}"`);
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

// Values copied from a documentation example instead of a real secret.
const PLACEHOLDER =
  /change[-_ ]?me|replace[-_ ]?me|placeholder|your[-_ ]?(admin[-_ ]?)?(token|secret)|^(x+|0+|1234.*|secret.*|password.*)$/i;

function refusePlaceholder(name: string, value: string | undefined): void {
  if (value === undefined || !(PLACEHOLDER.test(value) || new Set(value).size < 4)) return;
  throw new ConfigError(
    name,
    `"${value}" is a placeholder, not a secret; `
      + `set a random value (e.g. openssl rand -hex 24) or leave ${name} unset`,
  );
}

export function loadConfig(env: Env = process.env): Config {
  const dataDir = text(env, 'DATA_DIR') ?? './data';
  const host = text(env, 'HOST') ?? '127.0.0.1';
  const logLevel = text(env, 'LOG_LEVEL') ?? 'info';
  if (!LOG_LEVELS.includes(logLevel)) {
    throw new ConfigError('LOG_LEVEL', `must be one of ${LOG_LEVELS.join(', ')}, got "${logLevel}"`);
  }
  const adminToken = text(env, 'ADMIN_TOKEN');
  if (adminToken !== undefined && adminToken.length < 16) {
    throw new ConfigError('ADMIN_TOKEN', 'must be at least 16 characters');
  }
  refusePlaceholder('ADMIN_TOKEN', adminToken);
  const jwtSecret = text(env, 'JWT_SECRET');
  if (jwtSecret !== undefined && jwtSecret.length < 32) {
    throw new ConfigError('JWT_SECRET', 'must be at least 32 characters');
  }
  refusePlaceholder('JWT_SECRET', jwtSecret);
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
    razorpay: {
      keyId,
      keySecret,
      webhookSecrets,
      apiBase: url(env, 'RAZORPAY_API_BASE', 'https://api.razorpay.com', ['http:', 'https:'])!,
    },
    upi: { vpa: text(env, 'UPI_VPA'), payeeName: text(env, 'UPI_PAYEE_NAME') },
    dispatchAckTimeoutMs: integer(env, 'DISPATCH_ACK_TIMEOUT_MS', 10_000, 50, 3_600_000),
    dispatchResultTimeoutMs: integer(env, 'DISPATCH_RESULT_TIMEOUT_MS', 120_000, 100, 86_400_000),
    dispatchIdleRecheckMs: integer(env, 'DISPATCH_IDLE_RECHECK_MS', 300_000, 0, 86_400_000),
    dispatchSweepMs: integer(env, 'DISPATCH_SWEEP_MS', 30_000, 0, 86_400_000),
    databasePoolSize: integer(env, 'DATABASE_POOL_SIZE', 10, 1, 1_000),
    machineHeartbeatTimeoutMs: integer(env, 'MACHINE_HEARTBEAT_TIMEOUT_MS', 30_000, 100, 86_400_000),
    printJobLeaseMs: integer(env, 'PRINT_JOB_LEASE_MS', 60_000, 100, 86_400_000),
    printJobRetentionDays: integer(env, 'PRINT_JOB_RETENTION_DAYS', 7, 1, 3650),
    dashboardSweepMs: integer(env, 'DASHBOARD_SWEEP_MS', 60_000, 100, 86_400_000),
    machineOfflineAlertMs: integer(env, 'MACHINE_OFFLINE_ALERT_MS', 300_000, 100, 604_800_000),
    rateLimitPerMinute: integer(env, 'RATE_LIMIT_PER_MINUTE', 6000, 1, 10_000_000),
    logLevel,
    publicUrl: url(env, 'PUBLIC_URL', undefined, ['http:', 'https:']),
  });
}
