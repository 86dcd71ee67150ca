// The serial link to the bill/coin acceptor (9600 baud, newline-terminated lines). The port
// is reopened after unplugging or errors; a PING every so often checks the acceptor answers.
import { ReadlineParser, SerialPort } from 'serialport';
import { encodeCommand, type AcceptorCommand } from './line-protocol.js';
import type { Logger } from '@kioskhub/agent-kit';

export interface AcceptorLink {
  /** Writes one command; false when the port is not open. */
  send(command: AcceptorCommand): boolean;
  close(): Promise<void>;
}

export interface SerialAcceptorOptions {
  path: string;
  baudRate: number;
  log: Logger;
  onLine(line: string): void;
  reopenMs?: number;
}

export function openSerialAcceptor(options: SerialAcceptorOptions): AcceptorLink {
  const { log } = options;
  let port: SerialPort | undefined;
  let stopped = false;
  let failing = false;
  let reopenTimer: NodeJS.Timeout | undefined;

  const scheduleReopen = () => {
    if (stopped || reopenTimer) return;
    reopenTimer = setTimeout(() => {
      reopenTimer = undefined;
      connect();
    }, options.reopenMs ?? 5000);
  };

  function connect(): void {
    const candidate = new SerialPort({ path: options.path, baudRate: options.baudRate, autoOpen: false });
    candidate
      .pipe(new ReadlineParser({ delimiter: '\n', encoding: 'latin1' }))
      .on('data', (line: string) => options.onLine(line));
    candidate.on('error', (err) => log.error('acceptor serial error', { port: options.path, err }));
    candidate.on('close', () => {
      if (port === candidate) port = undefined;
      if (!stopped) {
        log.warn('acceptor serial port closed; reopening', { port: options.path });
        scheduleReopen();
      }
    });
    candidate.open((err) => {
      if (err) {
        // Logged once per outage, then quietly retried.
        if (!failing)
          log.error('cannot open the acceptor serial port; retrying', { port: options.path, err });
        failing = true;
        scheduleReopen();
        return;
      }
      if (stopped) {
        candidate.close();
        return;
      }
      failing = false;
      port = candidate;
      log.info('acceptor serial port open', { port: options.path, baudRate: options.baudRate });
    });
  }

  connect();
  return {
    send(command) {
      if (!port?.isOpen) return false;
      port.write(encodeCommand(command));
      return true;
    },
    async close() {
      stopped = true;
      clearTimeout(reopenTimer);
      const open = port;
      port = undefined;
      if (open?.isOpen) await new Promise<void>((resolve) => open.close(() => resolve()));
    },
  };
}

/** Sends PING every `intervalMs` and logs when no PONG comes back within `timeoutMs`. */
export function createPingMonitor(options: {
  send: () => boolean;
  intervalMs: number;
  timeoutMs: number;
  log: Logger;
}) {
  const { log } = options;
  let missed = 0;
  let waiting: NodeJS.Timeout | undefined;
  let ticker: NodeJS.Timeout | undefined;

  const ping = () => {
    if (waiting) return; // the previous PING is still waiting for its answer
    if (!options.send()) return;
    waiting = setTimeout(() => {
      waiting = undefined;
      missed += 1;
      log.warn('acceptor did not answer PING', { missed, timeoutMs: options.timeoutMs });
    }, options.timeoutMs);
  };

  return {
    start(): void {
      ticker ??= setInterval(ping, options.intervalMs);
    },
    pong(): void {
      clearTimeout(waiting);
      waiting = undefined;
      if (missed > 0) log.info('acceptor answers PING again', { missedBefore: missed });
      missed = 0;
    },
    missed: (): number => missed,
    stop(): void {
      clearInterval(ticker);
      clearTimeout(waiting);
      ticker = undefined;
      waiting = undefined;
    },
  };
}
