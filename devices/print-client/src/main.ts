// kioskhub-print-client: reads the config, starts the client, stops cleanly on SIGTERM/SIGINT.
import { runAgent } from '@kioskhub/agent-kit';
import { startPrintClient } from './client.js';
import { DEFAULT_CONFIG_PATH, USAGE, loadPrintClientConfig } from './config.js';

runAgent({
  usage: USAGE,
  defaultConfigPath: DEFAULT_CONFIG_PATH,
  loadConfig: loadPrintClientConfig,
  start: startPrintClient,
});
