// The whole life of a field agent's process: read settings, start, stop cleanly on
// SIGTERM/SIGINT; a configuration error exits 78 (EX_CONFIG) so systemd does not hammer it.
import { createLogger, type LogLevel, type Logger } from './log.js';
import { ConfigError, parseArgs, readSettings } from './settings.js';

export interface AgentDefinition<C extends { logLevel: LogLevel }> {
  usage: string;
  defaultConfigPath: string;
  loadConfig(settings: ReturnType<typeof readSettings>): C;
  start(config: C, deps: { log: Logger }): Promise<{ stop(): Promise<void> }>;
}

export function runAgent<C extends { logLevel: LogLevel }>(agent: AgentDefinition<C>): void {
  const main = async (): Promise<number> => {
    const args = parseArgs(process.argv.slice(2));
    if (args.help) {
      console.log(agent.usage);
      return 0;
    }
    const config = agent.loadConfig(readSettings(args.configPath, agent.defaultConfigPath, process.env));
    const log = createLogger({ level: config.logLevel });
    const running = await agent.start(config, { log });
    await new Promise<void>((resolve) => {
      process.once('SIGTERM', resolve);
      process.once('SIGINT', resolve);
    });
    log.info('stopping');
    await running.stop();
    return 0;
  };
  main().then(
    (code) => process.exit(code),
    (err: unknown) => {
      console.error(err instanceof ConfigError ? `config: ${err.message}` : err);
      process.exit(err instanceof ConfigError ? 78 : 1);
    },
  );
}
