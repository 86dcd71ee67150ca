// Composition root: read config, build the app, listen, and stop cleanly on signals.
import { ConfigError, loadConfig } from './platform/config.js';

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`kioskhub: bad configuration: ${err.message}`);
      process.exit(2);
    }
    throw err;
  }
  if (config.databaseSchema && config.database.kind !== 'postgres') {
    console.log('DATABASE_SCHEMA is ignored: it applies to PostgreSQL only, and this server uses SQLite.');
  }
  // Loaded only after the configuration is known to be good, so a bad variable fails at once.
  const { buildApp } = await import('./app.js');
  const { DataDirLockedError } = await import('./platform/db/data-dir-lock.js');
  const { DatabaseNewerError, DatabaseUnreachableError, redactUrl } =
    await import('./platform/db/database.js');
  let kioskhub;
  try {
    kioskhub = await buildApp(config);
  } catch (err) {
    if (
      err instanceof DataDirLockedError ||
      err instanceof DatabaseUnreachableError ||
      err instanceof DatabaseNewerError
    ) {
      console.error(`kioskhub: ${err.message}`);
      process.exit(2);
    }
    throw err;
  }
  // Before listening: a stop asked for while the server comes up is a graceful one too.
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    kioskhub.app.log.info({ signal }, 'shutting down');
    const force = setTimeout(() => process.exit(1), 10_000);
    force.unref();
    kioskhub.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  let address: string;
  try {
    address = await kioskhub.listen();
  } catch (err) {
    await kioskhub.close();
    // The token is stored already: shown now or never (the next start does not print it again).
    if (kioskhub.generatedAdminToken) {
      console.log(
        [
          '',
          'First start: an admin token was generated. It is shown this once; keep it safe.',
          `  ADMIN_TOKEN=${kioskhub.generatedAdminToken}`,
          'The server did not start (see below); the token is stored and works once it does.',
          '',
        ].join('\n'),
      );
    }
    const refusal = listenRefusal(err as NodeJS.ErrnoException & { port?: number }, config);
    if (refusal === undefined) throw err;
    console.error(`kioskhub: ${refusal}`);
    process.exit(2);
  }
  const storage =
    config.database.kind === 'sqlite-file'
      ? `SQLite file ${config.database.file}`
      : config.database.kind === 'sqlite-memory'
        ? 'in-memory SQLite (nothing is kept)'
        : 'PostgreSQL';
  console.log(`Kioskhub listening on ${address} (${storage}). API docs: ${address}/docs`);
  if (kioskhub.adminTokenSource === 'environment') {
    console.log(
      kioskhub.storedAdminTokenUnused
        ? 'Admin token: ADMIN_TOKEN from the environment. ' +
            'The token generated at first start is not accepted while it is set.'
        : 'Admin token: ADMIN_TOKEN from the environment.',
    );
  } else if (!kioskhub.generatedAdminToken) {
    console.log('Admin token: the one generated at first start (stored as a hash; ADMIN_TOKEN is not set).');
  }
  if (kioskhub.generatedAdminToken) {
    console.log(
      [
        '',
        'First start: an admin token was generated. It is shown this once; keep it safe.',
        `  ADMIN_TOKEN=${kioskhub.generatedAdminToken}`,
        'Use it as "Authorization: Bearer <token>", e.g.',
        `  curl -H "Authorization: Bearer ${kioskhub.generatedAdminToken}" ${address}/v1/machines`,
        'Create staff users with POST /v1/users and log in with POST /v1/auth/login.',
        '',
      ].join('\n'),
    );
  }
  if (config.razorpay.webhookSecrets.length === 0) {
    console.log('RAZORPAY_WEBHOOK_SECRET is not set: /webhooks/razorpay answers 503 until it is.');
  }
  if (config.redisUrl) {
    // The server keeps serving without Redis (its clients retry), so a mistyped REDIS_URL would
    // otherwise show only as a stream of connection warnings and sign-ins answering 503.
    const problem = await redisProblem(config.redisUrl);
    if (problem !== undefined) {
      console.error(
        `kioskhub: REDIS_URL=${redactUrl(config.redisUrl)} does not answer (${problem}). This process ` +
          'serves on without it, but password sign-ins answer 503 UNAVAILABLE and other processes get ' +
          'no notices until it does; check REDIS_URL and that Redis is running (it keeps retrying).',
      );
    }
  }
}

/** What to tell an operator whose server could not listen; undefined: not a listening problem. */
function listenRefusal(
  err: NodeJS.ErrnoException & { port?: number },
  config: { host: string; port: number; mqtt: { port: number | undefined } },
): string | undefined {
  const { host, port } = config;
  // The embedded MQTT broker (MQTT_PORT) starts first and may be the one refused.
  const mqtt = err.port !== undefined && err.port === config.mqtt.port && err.port !== port;
  const where = `${host}:${err.port ?? port}`;
  const variable = mqtt ? 'MQTT_PORT' : 'PORT';
  switch (err.code) {
    case 'EADDRINUSE':
      return `${where} is already in use; stop what listens there or set ${variable}`;
    case 'EACCES':
      return `${where} may not be listened on by this user (ports below 1024 need privileges); set ${variable}`;
    case 'EADDRNOTAVAIL':
      return `HOST=${host} is not an address of this machine; set HOST (127.0.0.1, or 0.0.0.0 for every interface)`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `HOST=${host} does not resolve to an address; set HOST (127.0.0.1, or 0.0.0.0 for every interface)`;
    default:
      return undefined;
  }
}

/** Why Redis does not answer a PING within a few seconds; undefined when it does. */
async function redisProblem(url: string): Promise<string | undefined> {
  const { Redis } = await import('ioredis');
  const probe = new Redis(url, {
    lazyConnect: true,
    connectTimeout: 3_000,
    commandTimeout: 3_000,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    retryStrategy: () => null,
  });
  // The socket's own error (ECONNREFUSED, ENOTFOUND, WRONGPASS…) says more than "Connection is closed".
  let cause: Error | undefined;
  probe.on('error', (err: Error) => (cause ??= err));
  try {
    await probe.connect();
    await probe.ping();
    return undefined;
  } catch (err) {
    return (cause ?? (err instanceof Error ? err : new Error(String(err)))).message;
  } finally {
    probe.disconnect();
  }
}

main().catch((err: unknown) => {
  console.error('kioskhub: failed to start:', err instanceof Error ? err.message : err);
  process.exit(1);
});
