// Unit tests for loadConfig (CONTRACTS.md §1): defaults, and a bad value names its variable.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from './config.js';

function configError(env: Record<string, string>): ConfigError {
  try {
    loadConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error(`loadConfig accepted ${JSON.stringify(env)}`);
}

describe('loadConfig defaults (CONTRACTS §1 table)', () => {
  const config = loadConfig({});

  it('listens on 127.0.0.1:8080', () => {
    expect(config.host).toBe('127.0.0.1');
    expect(config.port).toBe(8080);
  });

  it('uses the embedded SQLite file in ./data', () => {
    expect(config.dataDir).toBe('./data');
    expect(config.database).toEqual({ kind: 'sqlite-file', file: './data/kioskhub.db' });
  });

  it('has no Redis, no admin token and no Razorpay credentials', () => {
    expect(config.redisUrl).toBeUndefined();
    expect(config.adminToken).toBeUndefined();
    expect(config.razorpay.keyId).toBeUndefined();
    expect(config.razorpay.keySecret).toBeUndefined();
    expect(config.razorpay.webhookSecrets).toEqual([]);
    expect(config.razorpay.apiBase).toBe('https://api.razorpay.com');
    expect(config.upi).toEqual({ vpa: undefined, payeeName: undefined });
  });

  it('has the documented timeouts and log level', () => {
    expect(config.jobRetryBaseMs).toBe(1_000);
    expect(config.jobPollMs).toBe(1_000);
    expect(config.cardRefundParkedAlertMs).toBe(3_600_000);
    expect(config.dispatchAckTimeoutMs).toBe(10_000);
    expect(config.dispatchResultTimeoutMs).toBe(120_000);
    expect(config.machineHeartbeatTimeoutMs).toBe(30_000);
    expect(config.dispatchIdleRecheckMs).toBe(300_000);
    expect(config.dispatchSweepMs).toBe(30_000);
    expect(config.databasePoolSize).toBe(10);
    expect(config.databasePreparedStatements).toBe(true);
    expect(loadConfig({ DATABASE_PREPARED_STATEMENTS: 'OFF' }).databasePreparedStatements).toBe(false);
    expect(config.printJobLeaseMs).toBe(60_000);
    expect(config.logLevel).toBe('info');
  });

  it('treats empty and blank values as unset', () => {
    const blank = loadConfig({
      PORT: '',
      HOST: '  ',
      ADMIN_TOKEN: '',
      DATABASE_URL: '',
      LOG_LEVEL: ' ',
      RAZORPAY_WEBHOOK_SECRET: '',
    });
    expect(blank.port).toBe(8080);
    expect(blank.host).toBe('127.0.0.1');
    expect(blank.adminToken).toBeUndefined();
    expect(blank.database.kind).toBe('sqlite-file');
    expect(blank.logLevel).toBe('info');
    expect(blank.razorpay.webhookSecrets).toEqual([]);
  });

  it('is frozen', () => {
    expect(Object.isFrozen(config)).toBe(true);
  });
});

describe('loadConfig accepted values', () => {
  it('reads the storage choices', () => {
    expect(loadConfig({ DATABASE_URL: 'memory://' }).database).toEqual({ kind: 'sqlite-memory' });
    expect(loadConfig({ DATA_DIR: '/var/lib/kh' }).database).toEqual({
      kind: 'sqlite-file',
      file: '/var/lib/kh/kioskhub.db',
    });
    expect(loadConfig({ DATABASE_URL: 'postgres://u:p@db:5432/kh' }).database).toEqual({
      kind: 'postgres',
      url: 'postgres://u:p@db:5432/kh',
    });
    expect(loadConfig({ DATABASE_URL: 'postgresql://db/kh' }).database.kind).toBe('postgres');
  });

  it('reads the listen address, Redis and the timeouts', () => {
    const config = loadConfig({
      PORT: '0',
      HOST: '0.0.0.0',
      REDIS_URL: 'redis://cache:6379',
      DISPATCH_ACK_TIMEOUT_MS: '2500',
      LOG_LEVEL: 'debug',
    });
    expect(config.port).toBe(0);
    expect(config.host).toBe('0.0.0.0');
    expect(config.redisUrl).toBe('redis://cache:6379');
    expect(config.dispatchAckTimeoutMs).toBe(2500);
    expect(config.logLevel).toBe('debug');
    expect(loadConfig({ REDIS_URL: 'rediss://cache:6380' }).redisUrl).toBe('rediss://cache:6380');
  });

  it('reads Razorpay credentials set together', () => {
    const config = loadConfig({
      RAZORPAY_KEY_ID: 'rzp_test_1',
      RAZORPAY_KEY_SECRET: 'sekret',
      RAZORPAY_API_BASE: 'http://127.0.0.1:9999/',
    });
    expect(config.razorpay.keyId).toBe('rzp_test_1');
    expect(config.razorpay.keySecret).toBe('sekret');
    expect(config.razorpay.apiBase).toBe('http://127.0.0.1:9999');
  });

  it('turns a comma-separated RAZORPAY_WEBHOOK_SECRET into a list (rotation)', () => {
    expect(loadConfig({ RAZORPAY_WEBHOOK_SECRET: 'only' }).razorpay.webhookSecrets).toEqual(['only']);
    expect(loadConfig({ RAZORPAY_WEBHOOK_SECRET: 'new_secret,old_secret' }).razorpay.webhookSecrets).toEqual([
      'new_secret',
      'old_secret',
    ]);
    expect(
      loadConfig({ RAZORPAY_WEBHOOK_SECRET: ' new_secret , old_secret ,, ' }).razorpay.webhookSecrets,
    ).toEqual(['new_secret', 'old_secret']);
  });
});

describe('loadConfig security settings', () => {
  it('trusts no proxy and sets the documented limits by default', () => {
    const config = loadConfig({});
    expect(config.trustProxy).toBe(false);
    expect(config.requestTimeoutMs).toBe(60_000);
    expect(config.connectionTimeoutMs).toBe(75_000);
    const { loginMaxPerAddress, loginMaxPerEmail, loginConcurrency, loginQueue } = config;
    expect([loginMaxPerAddress, loginMaxPerEmail, loginConcurrency, loginQueue]).toEqual([20, 10, 2, 16]);
    expect(config.passwordHash).toEqual({ memoryKib: 65_536, timeCost: 3 });
    const { socketAuthTimeoutMs, socketMaxPerAddress, socketEventsPerSecond } = config;
    expect([socketAuthTimeoutMs, socketMaxPerAddress, socketEventsPerSecond]).toEqual([10_000, 200, 50]);
    expect(config.statusWriteIntervalMs).toBe(1_000);
    expect(config.tokenCheckCacheMs).toBe(5_000);
    expect(config.corsOrigins).toEqual([]);
    expect(config.metricsToken).toBeUndefined();
  });

  it('reads TRUST_PROXY as a hop count or a list of addresses, and CORS_ORIGINS as origins', () => {
    expect(loadConfig({ TRUST_PROXY: '1' }).trustProxy).toBe(1);
    expect(loadConfig({ TRUST_PROXY: 'false' }).trustProxy).toBe(false);
    const proxies = loadConfig({ TRUST_PROXY: 'loopback, 10.0.0.0/8,::1' }).trustProxy;
    expect(proxies).toEqual(['loopback', '10.0.0.0/8', '::1']);
    expect(loadConfig({ TRUST_PROXY: 'fd00::/8,192.168.1.0/24' }).trustProxy).toEqual([
      'fd00::/8',
      '192.168.1.0/24',
    ]);
    const CORS_ORIGINS = 'https://ops.example.com, http://localhost:5173/';
    const origins = loadConfig({ CORS_ORIGINS }).corsOrigins;
    expect(origins).toEqual(['https://ops.example.com', 'http://localhost:5173']);
    const token = 'metrics-token-0123456789';
    expect(loadConfig({ METRICS_TOKEN: token }).metricsToken).toBe(token);
  });
});

describe('loadConfig rejects bad values, naming the variable', () => {
  const cases: Array<[string, Record<string, string>, string]> = [
    ['PORT not a number', { PORT: 'abc' }, 'PORT'],
    ['PORT out of range', { PORT: '70000' }, 'PORT'],
    ['PORT negative', { PORT: '-1' }, 'PORT'],
    ['PORT fractional', { PORT: '80.5' }, 'PORT'],
    ['DATABASE_URL of another engine', { DATABASE_URL: 'mysql://x' }, 'DATABASE_URL'],
    ['DATABASE_URL a file path', { DATABASE_URL: './kioskhub.db' }, 'DATABASE_URL'],
    ['LOG_LEVEL unknown', { LOG_LEVEL: 'loud' }, 'LOG_LEVEL'],
    ['REDIS_URL not redis', { REDIS_URL: 'http://x' }, 'REDIS_URL'],
    ['REDIS_URL not a URL', { REDIS_URL: 'not a url' }, 'REDIS_URL'],
    ['RAZORPAY_KEY_ID without its secret', { RAZORPAY_KEY_ID: 'rzp_test_1' }, 'RAZORPAY_KEY'],
    ['RAZORPAY_KEY_SECRET without its id', { RAZORPAY_KEY_SECRET: 'sekret' }, 'RAZORPAY_KEY'],
    ['RAZORPAY_API_BASE not http', { RAZORPAY_API_BASE: 'ftp://x' }, 'RAZORPAY_API_BASE'],
    ['DISPATCH_ACK_TIMEOUT_MS negative', { DISPATCH_ACK_TIMEOUT_MS: '-5' }, 'DISPATCH_ACK_TIMEOUT_MS'],
    ['DISPATCH_ACK_TIMEOUT_MS not a number', { DISPATCH_ACK_TIMEOUT_MS: '10s' }, 'DISPATCH_ACK_TIMEOUT_MS'],
    ['DISPATCH_RESULT_TIMEOUT_MS zero', { DISPATCH_RESULT_TIMEOUT_MS: '0' }, 'DISPATCH_RESULT_TIMEOUT_MS'],
    ['DISPATCH_IDLE_RECHECK_MS negative', { DISPATCH_IDLE_RECHECK_MS: '-1' }, 'DISPATCH_IDLE_RECHECK_MS'],
    ['JOB_RETRY_BASE_MS below 10 ms', { JOB_RETRY_BASE_MS: '5' }, 'JOB_RETRY_BASE_MS'],
    ['JOB_POLL_MS below 50 ms', { JOB_POLL_MS: '10' }, 'JOB_POLL_MS'],
    ['JOB_POLL_MS above a minute', { JOB_POLL_MS: '60001' }, 'JOB_POLL_MS'],
    [
      'CARD_REFUND_PARKED_ALERT_MS below 1 s',
      { CARD_REFUND_PARKED_ALERT_MS: '10' },
      'CARD_REFUND_PARKED_ALERT_MS',
    ],
    ['DISPATCH_SWEEP_MS not a number', { DISPATCH_SWEEP_MS: '30s' }, 'DISPATCH_SWEEP_MS'],
    ['DATABASE_POOL_SIZE zero', { DATABASE_POOL_SIZE: '0' }, 'DATABASE_POOL_SIZE'],
    ['DATABASE_POOL_SIZE not a number', { DATABASE_POOL_SIZE: 'big' }, 'DATABASE_POOL_SIZE'],
    [
      'MACHINE_HEARTBEAT_TIMEOUT_MS not a number',
      { MACHINE_HEARTBEAT_TIMEOUT_MS: 'soon' },
      'MACHINE_HEARTBEAT_TIMEOUT_MS',
    ],
    ['PRINT_JOB_LEASE_MS not a number', { PRINT_JOB_LEASE_MS: '1e3' }, 'PRINT_JOB_LEASE_MS'],
    ['ADMIN_TOKEN too short', { ADMIN_TOKEN: 'short' }, 'ADMIN_TOKEN'],
    ['TRUST_PROXY a word', { TRUST_PROXY: 'yes' }, 'TRUST_PROXY'],
    ['TRUST_PROXY zero hops', { TRUST_PROXY: '0' }, 'TRUST_PROXY'],
    ['TRUST_PROXY a bad address', { TRUST_PROXY: '10.0.0.1,nginx.local' }, 'TRUST_PROXY'],
    // Each of these reached the proxy list and threw when the server built it (exit 1, no variable).
    ['TRUST_PROXY a prefix past 32', { TRUST_PROXY: '10.0.0.0/33' }, 'TRUST_PROXY'],
    ['TRUST_PROXY an IPv6 prefix past 128', { TRUST_PROXY: 'fd00::/129' }, 'TRUST_PROXY'],
    ['TRUST_PROXY three octets', { TRUST_PROXY: '10.0.0' }, 'TRUST_PROXY'],
    ['TRUST_PROXY hex that is no address', { TRUST_PROXY: 'cafe' }, 'TRUST_PROXY'],
    ['TRUST_PROXY two prefixes', { TRUST_PROXY: '10.0.0.0/8/8' }, 'TRUST_PROXY'],
    ['REQUEST_TIMEOUT_MS too short', { REQUEST_TIMEOUT_MS: '10' }, 'REQUEST_TIMEOUT_MS'],
    ['CONNECTION_TIMEOUT_MS not a number', { CONNECTION_TIMEOUT_MS: '1m' }, 'CONNECTION_TIMEOUT_MS'],
    ['LOGIN_MAX_PER_ADDRESS zero', { LOGIN_MAX_PER_ADDRESS: '0' }, 'LOGIN_MAX_PER_ADDRESS'],
    ['LOGIN_MAX_PER_EMAIL zero', { LOGIN_MAX_PER_EMAIL: '0' }, 'LOGIN_MAX_PER_EMAIL'],
    ['LOGIN_CONCURRENCY too high', { LOGIN_CONCURRENCY: '65' }, 'LOGIN_CONCURRENCY'],
    ['LOGIN_QUEUE negative', { LOGIN_QUEUE: '-1' }, 'LOGIN_QUEUE'],
    [
      'PASSWORD_HASH_MEMORY_KIB below 19 MiB',
      { PASSWORD_HASH_MEMORY_KIB: '8192' },
      'PASSWORD_HASH_MEMORY_KIB',
    ],
    ['PASSWORD_HASH_TIME_COST one pass', { PASSWORD_HASH_TIME_COST: '1' }, 'PASSWORD_HASH_TIME_COST'],
    ['SOCKET_AUTH_TIMEOUT_MS too short', { SOCKET_AUTH_TIMEOUT_MS: '5' }, 'SOCKET_AUTH_TIMEOUT_MS'],
    ['SOCKET_MAX_PER_ADDRESS zero', { SOCKET_MAX_PER_ADDRESS: '0' }, 'SOCKET_MAX_PER_ADDRESS'],
    ['SOCKET_EVENTS_PER_SECOND zero', { SOCKET_EVENTS_PER_SECOND: '0' }, 'SOCKET_EVENTS_PER_SECOND'],
    ['STATUS_WRITE_INTERVAL_MS a word', { STATUS_WRITE_INTERVAL_MS: 'often' }, 'STATUS_WRITE_INTERVAL_MS'],
    ['TOKEN_CHECK_CACHE_MS too long', { TOKEN_CHECK_CACHE_MS: '3600000' }, 'TOKEN_CHECK_CACHE_MS'],
    ['CORS_ORIGINS with a path', { CORS_ORIGINS: 'https://ops.example.com/app' }, 'CORS_ORIGINS'],
    ['CORS_ORIGINS not a URL', { CORS_ORIGINS: 'ops.example.com' }, 'CORS_ORIGINS'],
    ['METRICS_TOKEN too short', { METRICS_TOKEN: 'short' }, 'METRICS_TOKEN'],
    ['METRICS_TOKEN a placeholder', { METRICS_TOKEN: 'change-me-metrics-token' }, 'METRICS_TOKEN'],
    ['METRICS_TOKEN one repeated letter', { METRICS_TOKEN: 'xxxxxxxxxxxxxxxxxxxx' }, 'METRICS_TOKEN'],
    [
      'DATABASE_PREPARED_STATEMENTS a guess',
      { DATABASE_PREPARED_STATEMENTS: 'maybe' },
      'DATABASE_PREPARED_STATEMENTS',
    ],
  ];

  it.each(cases)('%s', (_label, env, variable) => {
    const err = configError(env);
    expect(err.message).toContain(variable);
    expect(err.variable).toContain(variable);
  });

  it('names both Razorpay variables when only one is set', () => {
    const err = configError({ RAZORPAY_KEY_ID: 'rzp_test_1' });
    expect(err.message).toContain('RAZORPAY_KEY_ID');
    expect(err.message).toContain('RAZORPAY_KEY_SECRET');
  });

  it.each([
    'change-me-to-a-long-secret',
    'changeme-changeme-changeme',
    'your-admin-token-here',
    'xxxxxxxxxxxxxxxxxxxx',
    'aaaaaaaaaaaaaaaaaaaa',
  ])('refuses the placeholder ADMIN_TOKEN %s, and a JWT_SECRET copied from an example', (value) => {
    expect(configError({ ADMIN_TOKEN: value }).message).toBe(
      `ADMIN_TOKEN: "${value}" is a placeholder, not a secret; it must be at least 16 characters and not a placeholder. ` +
        'Make one with openssl rand -hex 32 (export ADMIN_TOKEN=$(openssl rand -hex 32)), or leave ADMIN_TOKEN unset: ' +
        'the first start on a new database then generates one and prints it once',
    );
    expect(configError({ JWT_SECRET: `${value}-${value}` }).variable).toBe('JWT_SECRET');
  });

  it.each(['change-me', 'short', 'a1b2c3d4e5f6a7b'])(
    'a short ADMIN_TOKEN (%s) is refused with the rule and how to make a good one, without repeating it',
    (value) => {
      const err = configError({ ADMIN_TOKEN: value });
      expect(err.variable).toBe('ADMIN_TOKEN');
      expect(err.message).toBe(
        `ADMIN_TOKEN: too short (${value.length} characters); it must be at least 16 characters and not a placeholder. ` +
          'Make one with openssl rand -hex 32 (export ADMIN_TOKEN=$(openssl rand -hex 32)), or leave ADMIN_TOKEN unset: ' +
          'the first start on a new database then generates one and prints it once',
      );
      expect(err.message).not.toContain(`"${value}"`);
    },
  );

  it('accepts real random tokens', () => {
    expect(loadConfig({ ADMIN_TOKEN: '3f9a1c0d2b7e44aa91c0d2b7e44aa9' }).adminToken).toBe(
      '3f9a1c0d2b7e44aa91c0d2b7e44aa9',
    );
    expect(loadConfig({ ADMIN_TOKEN: 'kh_admin_CU56B_uWOlQroXlADSiZwCG34ih8E-ew' }).adminToken).toBeDefined();
  });

  it('quotes the bad value so the operator can see it', () => {
    expect(configError({ PORT: 'abc' }).message).toContain('abc');
    expect(configError({ LOG_LEVEL: 'loud' }).message).toContain('loud');
  });
});

describe('a connection URL that cannot be parsed', () => {
  it.each([
    ['DATABASE_URL', 'postgres://kioskhub:s3#cr/t@db.internal:5432/kioskhub'],
    ['REDIS_URL', 'redis://:pa/ss#word@cache:6379'],
    ['MQTT_URL', 'mqtt://kh:x?y#z@broker:1883'],
  ])('%s is refused by name without its password, saying how to write one', (name, value) => {
    let message = '';
    try {
      loadConfig({ [name]: value });
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(new RegExp(`^${name}: is not a valid URL`));
    expect(message).not.toMatch(/s3#cr|pa\/ss|x\?y#z/);
    expect(message).toContain('***@');
    expect(message).toContain('percent-encoded');
  });
});

describe('DATA_DIR', () => {
  it('is created at start-up when missing, but a path that is a file is refused by name', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kh-config-'));
    try {
      expect(loadConfig({ DATA_DIR: join(dir, 'not-yet') }).dataDir).toBe(join(dir, 'not-yet'));
      expect(loadConfig({ DATA_DIR: dir }).dataDir).toBe(dir);
      const file = join(dir, 'a-file');
      writeFileSync(file, 'x');
      // Before: accepted, and start-up died in mkdir with EEXIST (exit 1, no variable named).
      const err = (() => {
        try {
          loadConfig({ DATA_DIR: file });
        } catch (e) {
          return e;
        }
        return undefined;
      })();
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).message).toBe(`DATA_DIR: "${file}" exists and is not a folder`);
      // Below a file: stat fails with ENOTDIR (it crashed start-up with exit 1).
      expect(() => loadConfig({ DATA_DIR: join(file, 'data') })).toThrow(
        `DATA_DIR: "${join(file, 'data')}" cannot be used (ENOTDIR)`,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
