// What every command-line tool of Kioskhub does the same way: parse its arguments (with
// `--help`), load the configuration, and say what is wrong in one line with exit code 2.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ConfigError, loadConfig, type Config } from '../platform/config.js';

/**
 * A mistake in the command line, exit code 2: printed with a pointer to `--help`, or with the
 * whole usage when `showUsage` (an option the tool does not know).
 */
export class UsageError extends Error {
  constructor(
    message: string,
    readonly showUsage = false,
  ) {
    super(message);
  }
}

/** What a tool prints on stderr for a UsageError. */
export function usageErrorText(name: string, usage: string, err: UsageError): string {
  return err.showUsage
    ? `${name}: ${err.message}\n\n${usage}`
    : `${name}: ${err.message}\n(npm run ${name} -- --help shows the usage)`;
}

type OptionsConfig = NonNullable<ParseArgsConfig['options']>;

/** `parseArgs` with positionals and `-h/--help`; its errors become UsageErrors. */
export function parseCliArgs<O extends OptionsConfig>(argv: string[], options: O) {
  try {
    return parseArgs({
      args: argv,
      allowPositionals: true,
      options: { ...options, help: { type: 'boolean', short: 'h' } } as O & {
        help: { type: 'boolean'; short: 'h' };
      },
    });
  } catch (err) {
    const { code, message } = err as NodeJS.ErrnoException;
    if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
      const option = /'([^']+)'/.exec(message)?.[1];
      throw new UsageError(option ? `unknown option ${option}` : message, true);
    }
    throw new UsageError(message);
  }
}

/**
 * Parses the command line and loads the configuration. Returns an exit code instead when the
 * tool is done already: 0 after printing the usage, 2 after a usage or configuration error.
 */
export function startCli<T>(
  name: string,
  usage: string,
  argv: string[],
  parse: (argv: string[]) => T | 'help',
): { options: T; config: Config } | number {
  try {
    const options = parse(argv);
    if (options === 'help') {
      console.log(usage);
      return 0;
    }
    return { options, config: loadConfig() };
  } catch (err) {
    if (err instanceof UsageError) console.error(usageErrorText(name, usage, err));
    else if (err instanceof ConfigError) console.error(`${name}: bad configuration: ${err.message}`);
    else throw err;
    return 2;
  }
}

/**
 * Where relative paths start: the directory the user ran `npm run` from (npm sets INIT_CWD to
 * it and runs the command in the repository root), else the current directory.
 */
export function userDirectory(env: NodeJS.ProcessEnv = process.env): string {
  return env['INIT_CWD'] || process.cwd();
}
