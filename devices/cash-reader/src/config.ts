// Settings from /etc/kioskhub/cash-reader.env (or --config FILE), overridden by the process
// environment. Every bad value stops start-up with a message naming the variable.
import {
  ConfigError,
  baseUrl,
  deviceKey,
  integer,
  isLogLevel,
  machineId,
  text,
  type LogLevel,
  type Vars,
} from '@kioskhub/agent-kit';

export const DEFAULT_CONFIG_PATH = '/etc/kioskhub/cash-reader.env';

export interface CashReaderConfig {
  url: string;
  key: string;
  kioskId: string;
  serialPort: string;
  baudRate: number;
  queueDir: string;
  pollIntervalMs: number;
  pingIntervalMs: number;
  pingTimeoutMs: number;
  requestTimeoutMs: number;
  retryBaseMs: number;
  retryMaxMs: number;
  logLevel: LogLevel;
}

export const USAGE = `Usage: kioskhub-cash-reader [--config FILE]

Reads FILE (default ${DEFAULT_CONFIG_PATH}, KEY=VALUE lines); environment variables win.
  KIOSKHUB_URL        server base URL, e.g. https://kiosk.example.com      (required)
  DEVICE_KEY          key of this kiosk, or of its cash unit (same site)  (required)
  KIOSK_ID            machine id of the kiosk whose sessions take this cash (required)
  SERIAL_PORT         acceptor serial device                   (default /dev/ttyUSB0)
  BAUD_RATE           serial speed                             (default 9600)
  QUEUE_DIR           where unsent inserts are kept            (default /var/lib/kioskhub-cash-reader)
  POLL_INTERVAL_MS    how often open sessions are fetched      (default 1000)
  PING_INTERVAL_MS    how often the acceptor is PINGed         (default 30000)
  PING_TIMEOUT_MS     PONG wait before a warning               (default 5000)
  REQUEST_TIMEOUT_MS  one HTTP request at most                 (default 10000)
  RETRY_BASE_MS, RETRY_MAX_MS  backoff for failed reports      (default 500, 30000)
  LOG_LEVEL           debug | info | warn | error              (default info)`;

export function loadCashReaderConfig(vars: Vars): CashReaderConfig {
  const logLevel = text(vars, 'LOG_LEVEL', 'info');
  if (!isLogLevel(logLevel))
    throw new ConfigError(`LOG_LEVEL must be debug, info, warn or error (got "${logLevel}")`);
  const retryBaseMs = integer(vars, 'RETRY_BASE_MS', 500, 10, 60_000);
  return {
    url: baseUrl('KIOSKHUB_URL', text(vars, 'KIOSKHUB_URL')),
    key: deviceKey(vars, 'DEVICE_KEY'),
    kioskId: machineId('KIOSK_ID', text(vars, 'KIOSK_ID')),
    serialPort: text(vars, 'SERIAL_PORT', '/dev/ttyUSB0'),
    baudRate: integer(vars, 'BAUD_RATE', 9600, 300, 4_000_000),
    queueDir: text(vars, 'QUEUE_DIR', '/var/lib/kioskhub-cash-reader'),
    pollIntervalMs: integer(vars, 'POLL_INTERVAL_MS', 1000, 50, 600_000),
    pingIntervalMs: integer(vars, 'PING_INTERVAL_MS', 30_000, 100, 3_600_000),
    pingTimeoutMs: integer(vars, 'PING_TIMEOUT_MS', 5000, 50, 600_000),
    requestTimeoutMs: integer(vars, 'REQUEST_TIMEOUT_MS', 10_000, 100, 600_000),
    retryBaseMs,
    retryMaxMs: integer(vars, 'RETRY_MAX_MS', 30_000, retryBaseMs, 3_600_000),
    logLevel,
  };
}
