// Settings from /etc/kioskhub/print-client.env (or --config FILE), overridden by the process
// environment. Every bad value stops start-up with a message naming the variable.
import {
  ConfigError,
  baseUrl,
  deviceKey,
  integer,
  isLogLevel,
  machineId,
  oneOf,
  text,
  type LogLevel,
  type Vars,
} from '@kioskhub/agent-kit';
import { guessOutputKind, type OutputKind } from './printer-output.js';

export const DEFAULT_CONFIG_PATH = '/etc/kioskhub/print-client.env';

export interface PrintClientConfig {
  url: string;
  key: string;
  mode: 'poll' | 'socket';
  printerId: string | undefined;
  output: string;
  outputKind: OutputKind;
  baudRate: number;
  stateDir: string;
  pollWaitSeconds: number;
  heartbeatMs: number;
  columns: number;
  currencyLabel: string;
  timeZone: string | undefined;
  failurePauseMs: number;
  writeTimeoutMs: number;
  requestTimeoutMs: number;
  retryBaseMs: number;
  retryMaxMs: number;
  logLevel: LogLevel;
}

export const USAGE = `Usage: kioskhub-print-client [--config FILE]

Reads FILE (default ${DEFAULT_CONFIG_PATH}, KEY=VALUE lines); environment variables win.
  KIOSKHUB_URL           server base URL, e.g. https://kiosk.example.com        (required)
  DEVICE_KEY             key of a machine of the site (a printer machine for socket mode) (required)
  MODE                   poll (long-poll the queue) | socket (pushes on /machines)   (default poll)
  PRINTER_ID             machine id of the printer (kind printer); required for socket
  OUTPUT                 serial port, USB printer device or file      (default /dev/usb/lp0)
  OUTPUT_KIND            auto | file | serial (auto: serial for /dev/tty*)   (default auto)
  PRINTER_BAUD_RATE      serial speed                                 (default 9600)
  STATE_DIR              unsent results and printed-job memory        (default /var/lib/kioskhub-print-client)
  POLL_WAIT_S            long-poll hold, 1-30 s                       (default 25)
  HEARTBEAT_INTERVAL_MS  socket heartbeat                             (default 10000)
  COLUMNS                characters per line: 32 (58 mm), 42/48 (80 mm) (default 32)
  CURRENCY_LABEL         printed before amounts                       (default PHP)
  TIME_ZONE              zone for the order date, e.g. Asia/Manila    (default the system's)
  FAILURE_PAUSE_MS       wait after a receipt failed to print         (default 5000)
  WRITE_TIMEOUT_MS       longest a write to the printer may take      (default 30000)
  REQUEST_TIMEOUT_MS     one HTTP request at most (plus the poll hold) (default 10000)
  RETRY_BASE_MS, RETRY_MAX_MS  backoff for the network                (default 500, 30000)
  LOG_LEVEL              debug | info | warn | error                  (default info)`;

export function loadPrintClientConfig(vars: Vars): PrintClientConfig {
  const mode = oneOf(vars, 'MODE', ['poll', 'socket'] as const, 'poll');
  const printerId = vars['PRINTER_ID']?.trim() || undefined;
  if (mode === 'socket' && !printerId) throw new ConfigError('PRINTER_ID is required when MODE=socket');
  if (printerId !== undefined) machineId('PRINTER_ID', printerId);
  const output = text(vars, 'OUTPUT', '/dev/usb/lp0');
  const kind = oneOf(vars, 'OUTPUT_KIND', ['auto', 'file', 'serial'] as const, 'auto');
  const timeZone = vars['TIME_ZONE']?.trim() || undefined;
  if (timeZone !== undefined) {
    try {
      new Intl.DateTimeFormat('en', { timeZone });
    } catch {
      throw new ConfigError(`TIME_ZONE must be an IANA zone like Asia/Manila (got "${timeZone}")`);
    }
  }
  const logLevel = text(vars, 'LOG_LEVEL', 'info');
  if (!isLogLevel(logLevel))
    throw new ConfigError(`LOG_LEVEL must be debug, info, warn or error (got "${logLevel}")`);
  const retryBaseMs = integer(vars, 'RETRY_BASE_MS', 500, 10, 60_000);
  return {
    url: baseUrl('KIOSKHUB_URL', text(vars, 'KIOSKHUB_URL')),
    key: deviceKey(vars, 'DEVICE_KEY'),
    mode,
    printerId,
    output,
    outputKind: kind === 'auto' ? guessOutputKind(output) : kind,
    baudRate: integer(vars, 'PRINTER_BAUD_RATE', 9600, 300, 4_000_000),
    stateDir: text(vars, 'STATE_DIR', '/var/lib/kioskhub-print-client'),
    pollWaitSeconds: integer(vars, 'POLL_WAIT_S', 25, 1, 30),
    heartbeatMs: integer(vars, 'HEARTBEAT_INTERVAL_MS', 10_000, 100, 600_000),
    columns: integer(vars, 'COLUMNS', 32, 16, 96),
    currencyLabel: vars['CURRENCY_LABEL']?.trim() ?? 'PHP',
    timeZone,
    failurePauseMs: integer(vars, 'FAILURE_PAUSE_MS', 5000, 0, 600_000),
    writeTimeoutMs: integer(vars, 'WRITE_TIMEOUT_MS', 30_000, 100, 600_000),
    requestTimeoutMs: integer(vars, 'REQUEST_TIMEOUT_MS', 10_000, 100, 600_000),
    retryBaseMs,
    retryMaxMs: integer(vars, 'RETRY_MAX_MS', 30_000, retryBaseMs, 3_600_000),
    logLevel,
  };
}
