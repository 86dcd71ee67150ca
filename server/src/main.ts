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
  const { DatabaseUnreachableError } = await import('./platform/db/database.js');
  let kioskhub;
  try {
    kioskhub = await buildApp(config);
  } catch (err) {
    if (err instanceof DataDirLockedError || err instanceof DatabaseUnreachableError) {
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
    if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
    // The embedded MQTT broker (MQTT_PORT) starts first and may be the one refused.
    const where = `${config.host}:${(err as NodeJS.ErrnoException & { port?: number }).port ?? config.port}`;
    console.error(`kioskhub: ${where} is already in use; stop what listens there or set PORT`);
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
}

main().catch((err: unknown) => {
  console.error('kioskhub: failed to start:', err instanceof Error ? err.message : err);
  process.exit(1);
});
