// kioskhub-cash-reader: reads the config, starts the agent, stops cleanly on SIGTERM/SIGINT.
import { runAgent } from '@kioskhub/agent-kit';
import { startCashReader } from './agent.js';
import { DEFAULT_CONFIG_PATH, USAGE, loadCashReaderConfig } from './config.js';

runAgent({
  usage: USAGE,
  defaultConfigPath: DEFAULT_CONFIG_PATH,
  loadConfig: loadCashReaderConfig,
  start: startCashReader,
});
