// The whole life of a field agent's process: read settings, start, stop cleanly on
// SIGTERM/SIGINT; a configuration error exits 78 (EX_CONFIG) so systemd does not hammer it.
import { createLogger, type LogLevel, type Logger } from './log.js';
import { existsSync } from 'node:fs';
import { ConfigError, OperatorError, parseArgs, readSettings, requiredVariables } from './settings.js';

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
    const path = args.configPath ?? agent.defaultConfigPath;
    let config: C;
    try {
      config = agent.loadConfig(readSettings(args.configPath, agent.defaultConfigPath, process.env));
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      // Say where the settings were looked for: a missing file is the usual cause.
      const where = `settings are read from ${path}${existsSync(path) ? '' : ' (no such file)'} and the environment`;
      const required = `required: ${requiredVariables(agent.usage).join(', ')}`;
      throw new ConfigError(`${err.message}\n  ${where}; ${required}; --config FILE reads another file`);
    }
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
      // A problem the operator fixes gets its message alone; anything else its stack too.
      if (err instanceof ConfigError) console.error(`config: ${err.message}`);
      else if (err instanceof OperatorError) console.error(err.message);
      else console.error(err);
      process.exit(err instanceof ConfigError ? 78 : 1);
    },
  );
}
