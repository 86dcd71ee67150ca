// kioskhub-cash-reader: reads the config, starts the agent, stops cleanly on SIGTERM/SIGINT.
import { ConfigError, createLogger, parseArgs, readSettings } from '@kioskhub/agent-kit';
import { startCashReader } from './agent.js';
import { DEFAULT_CONFIG_PATH, USAGE, loadCashReaderConfig } from './config.js';

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  if (args.help) {
    console.log(USAGE);
    return 0;
  }
  const config = loadCashReaderConfig(readSettings(args.configPath, DEFAULT_CONFIG_PATH, process.env));
  const log = createLogger({ level: config.logLevel });
  const reader = await startCashReader(config, { log });
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  log.info('stopping');
  await reader.stop();
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err instanceof ConfigError ? `config: ${err.message}` : err);
    process.exit(err instanceof ConfigError ? 78 : 1);
  },
);
