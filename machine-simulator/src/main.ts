// CLI: `npm run simulator -- --machines M01,M02` runs simulated machines until Ctrl-C.
import { fileURLToPath } from 'node:url';
import {
  ConfigError,
  UnknownArgumentError,
  USAGE,
  loadConfig,
  parseFlags,
  readEnvFile,
  type SimulatorConfig,
} from './config.js';
import { createFleet } from './fleet.js';

const ENV_FILE = fileURLToPath(new URL('../.env', import.meta.url));

function log(line: string): void {
  console.log(line);
}

async function main(): Promise<void> {
  let config: SimulatorConfig | null;
  try {
    const argv = process.argv.slice(2);
    // --help answers even with a broken .env file; real environment variables win over it.
    config =
      parseFlags(argv) === null ? null : loadConfig(argv, { ...readEnvFile(ENV_FILE), ...process.env });
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    console.error(
      error instanceof UnknownArgumentError
        ? `machine-simulator: ${error.message}\n\n${USAGE}`
        : `machine-simulator: ${error.message}`,
    );
    process.exitCode = 2;
    return;
  }
  if (config === null) {
    console.log(USAGE);
    return;
  }

  const { url, machines, ...shared } = config;
  const target = shared.transport === 'mqtt' ? `${shared.mqttUrl ?? ''} (MQTT)` : url;
  log(`machine-simulator: ${machines.length} machine(s) → ${target}`);
  const fleet = createFleet({
    url,
    machines,
    ...shared,
    logger: log,
    progress: machines.length >= 100 ? log : null,
  });

  let stopping = false;
  const shutdown = (signal: string): void => {
    if (stopping) process.exit(130); // a second Ctrl-C does not wait
    stopping = true;
    log(`machine-simulator: ${signal}, stopping`);
    fleet.stop();
    // Sockets close asynchronously; do not hang if one lingers.
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGTERM', () => shutdown('SIGTERM'));

  try {
    await fleet.start();
    if (!stopping) log(`machine-simulator: all ${machines.length} machine(s) connected; Ctrl-C to stop`);
  } catch (error) {
    if (!stopping) console.error(`machine-simulator: ${(error as Error).message}`);
  }
}

await main();
