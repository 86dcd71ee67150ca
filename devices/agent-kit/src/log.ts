// One line per event on stdout, which systemd hands to the journal. Under systemd the line
// starts with a syslog priority (<3>…<7>) so `journalctl -p warning` finds problems.

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
}

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };
const PRIORITY: Record<LogLevel, number> = { debug: 7, info: 6, warn: 4, error: 3 };

export const isLogLevel = (value: string): value is LogLevel => value in RANK;

function fieldText(fields: LogFields | undefined): string {
  if (!fields) return '';
  const plain = Object.fromEntries(
    Object.entries(fields).map(([k, v]) => [k, v instanceof Error ? v.message : v]),
  );
  return ` ${JSON.stringify(plain)}`;
}

export function createLogger(
  options: { level?: LogLevel; write?: (line: string) => void; journal?: boolean } = {},
): Logger {
  const min = RANK[options.level ?? 'info'];
  const write = options.write ?? ((line: string) => process.stdout.write(`${line}\n`));
  const journal = options.journal ?? process.env['JOURNAL_STREAM'] !== undefined;
  const emit = (level: LogLevel) => (message: string, fields?: LogFields) => {
    if (RANK[level] < min) return;
    const prefix = journal ? `<${PRIORITY[level]}>` : `${new Date().toISOString()} `;
    write(`${prefix}${level.toUpperCase()} ${message}${fieldText(fields)}`);
  };
  return { debug: emit('debug'), info: emit('info'), warn: emit('warn'), error: emit('error') };
}

/** A logger that keeps lines in memory (tests). */
export function memoryLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  return { lines, ...createLogger({ level: 'debug', journal: false, write: (line) => lines.push(line) }) };
}
