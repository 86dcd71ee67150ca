// The cash reader: acceptor lines in, durable queue, session binding, delivery to the server.
// Every insert is on disk (fsynced) before anything else happens to it.
import { randomUUID } from 'node:crypto';
import { sleep, usableDirectory, type Logger } from '@kioskhub/agent-kit';
import { openSerialAcceptor, createPingMonitor, type AcceptorLink } from './acceptor.js';
import type { CashReaderConfig } from './config.js';
import { openInsertQueue, type CashInsert, type InsertQueue } from './insert-queue.js';
import { createInsertSender } from './insert-sender.js';
import { createKioskhubClient } from './kioskhub-client.js';
import { parseAcceptorLine } from './line-protocol.js';
import { formatMinor } from './money.js';
import { createSessionTracker } from './session-tracker.js';

export interface CashReaderDeps {
  log: Logger;
  random?: () => number;
  /** Defaults to the serial port of the config. */
  openAcceptor?: (onLine: (line: string) => void) => AcceptorLink;
}

export interface CashReader {
  queue: InsertQueue;
  /** Feeds one line as if the acceptor had sent it (tests, diagnostics). */
  handleLine(line: string): Promise<void>;
  /** Resolves when every line seen so far is queued and bound. */
  settled(): Promise<void>;
  stop(): Promise<void>;
}

export async function startCashReader(config: CashReaderConfig, deps: CashReaderDeps): Promise<CashReader> {
  const { log } = deps;
  const stopping = new AbortController();
  const client = createKioskhubClient({
    baseUrl: config.url,
    key: config.key,
    timeoutMs: config.requestTimeoutMs,
  });
  const tracker = createSessionTracker({
    client,
    kioskId: config.kioskId,
    log,
    refreshTimeoutMs: Math.min(config.requestTimeoutMs, 3000),
  });
  await usableDirectory(config.queueDir, 'QUEUE_DIR');
  const queue = await openInsertQueue({ dir: config.queueDir });
  if (queue.unreadableAtStart > 0)
    log.error('unreadable records in the insert queue were moved to the dead-letter file', {
      count: queue.unreadableAtStart,
      file: queue.deadLetterPath,
    });

  // An insert detected before a crash, with no decision yet: its session can no longer be known.
  for (const insert of queue.pending().filter((i) => i.orderNumber === null)) {
    const orderNumber = tracker.noSessionOrderNumber();
    await queue.bind(insert.eventId, orderNumber);
    log.warn('insert from before a restart had no session yet; it will be reported as unallocated', {
      eventId: insert.eventId,
      amount: formatMinor(insert.amountMinor, insert.scale),
      orderNumber,
    });
  }
  if (queue.size() > 0)
    log.info('replaying inserts the server has not acknowledged', { count: queue.size() });

  const sender = createInsertSender({
    queue,
    client,
    tracker,
    log,
    retry: { baseMs: config.retryBaseMs, maxMs: config.retryMaxMs },
    ...(deps.random ? { random: deps.random } : {}),
  });
  const sending = sender.run(stopping.signal);

  // Decisions for inserts seen while no session was known, one at a time and in order.
  let binding: Promise<void> = Promise.resolve();
  const bindLater = (insert: CashInsert) => {
    binding = binding
      .then(async () => {
        const decided = await tracker.bindingForNewInsert();
        await queue.bind(insert.eventId, decided.orderNumber);
        if (decided.basis === 'no-session')
          log.warn('cash inserted while this kiosk has no open session; reporting it as unallocated', {
            eventId: insert.eventId,
            amount: formatMinor(insert.amountMinor, insert.scale),
            orderNumber: decided.orderNumber,
          });
        sender.wake();
      })
      .catch((err: unknown) =>
        log.error('could not record the session of an insert; it stays queued', {
          eventId: insert.eventId,
          err,
        }),
      );
  };

  const ping = createPingMonitor({
    send: () => acceptor.send('PING'),
    intervalMs: config.pingIntervalMs,
    timeoutMs: config.pingTimeoutMs,
    log,
  });

  async function handleLineNow(raw: string): Promise<void> {
    const line = parseAcceptorLine(raw);
    switch (line.type) {
      case 'insert': {
        const insert: CashInsert = {
          eventId: randomUUID(),
          kind: line.kind,
          amountMinor: line.amountMinor,
          ...(line.scale ? { scale: line.scale } : {}),
          orderNumber: tracker.cachedOrderNumber() ?? null,
          detectedAt: new Date().toISOString(),
        };
        await queue.append(insert);
        log.info(`${line.kind} ${formatMinor(line.amountMinor, line.scale)} inserted`, {
          eventId: insert.eventId,
          orderNumber: insert.orderNumber,
        });
        if (insert.orderNumber === null) bindLater(insert);
        else sender.wake();
        return;
      }
      case 'ready':
        log.info('acceptor ready');
        return;
      case 'pong':
        ping.pong();
        return;
      case 'comment':
        log.debug('acceptor says', { text: line.text });
        return;
      case 'malformed':
        log.error('acceptor reported money with an unreadable amount; kept in the dead-letter file', {
          line: line.line,
          reason: line.reason,
        });
        await queue.recordUnusable('UNREADABLE_ACCEPTOR_LINE', line.line);
        return;
      case 'other':
        log.warn('unexpected line from the acceptor', { line: line.line });
        return;
      case 'blank':
        return;
    }
  }

  // Lines are handled strictly in arrival order.
  let lines: Promise<void> = Promise.resolve();
  const handleLine = (raw: string): Promise<void> => {
    lines = lines
      .then(() => handleLineNow(raw))
      // The queue directory cannot be written (disk full, read-only): this log line is the only record left.
      .catch((err: unknown) =>
        log.error('COULD NOT WRITE AN ACCEPTOR LINE TO THE QUEUE; this log is its only record', {
          line: raw.trim(),
          err,
        }),
      );
    return lines;
  };

  const acceptor = (
    deps.openAcceptor ??
    ((onLine) => openSerialAcceptor({ path: config.serialPort, baudRate: config.baudRate, log, onLine }))
  )((raw) => void handleLine(raw));
  ping.start();

  const polling = (async () => {
    while (!stopping.signal.aborted) {
      await tracker.refresh();
      await sleep(config.pollIntervalMs, stopping.signal);
    }
  })();

  log.info('cash reader started', {
    server: config.url,
    kioskId: config.kioskId,
    serialPort: config.serialPort,
    queueDir: config.queueDir,
    queued: queue.size(),
  });
  return {
    queue,
    handleLine,
    async settled() {
      await lines;
      await binding;
    },
    async stop() {
      ping.stop();
      await acceptor.close();
      await lines;
      await binding;
      stopping.abort();
      await Promise.all([sending, polling]);
      client.close();
      await queue.close();
      log.info('cash reader stopped', { unsent: queue.size() });
    },
  };
}
