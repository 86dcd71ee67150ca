// Two ways receipts arrive: long-polling GET /api/receipt/queue/next?wait= (works through
// any proxy), or `print_job` pushes on the /machines socket of a printer machine, which also
// heartbeats per CONTRACTS.md §5 v2 so the printer shows online.
import { PRINT_JOB_EVENT } from '@kioskhub/protocol';
import { backoffDelay, sleep, type Logger, type BackoffOptions } from '@kioskhub/agent-kit';
import { MACHINES_NAMESPACE, V2_EVENTS, type HeartbeatPayload } from '@kioskhub/protocol';
import { io } from 'socket.io-client';
import { parseLeasedJob, RefusedError, type LeasedJob, type PrintQueueClient } from './kioskhub-client.js';
import type { PrintAgent } from './print-agent.js';

/** The server's push event for printers (server/src/modules/printing/print-push.ts). */
export { PRINT_JOB_EVENT };
const FIRMWARE = 'kioskhub-print-client/0.1.0';

export interface SourceDeps {
  agent: Pick<PrintAgent, 'printJob'>;
  log: Logger;
  retry: BackoffOptions;
  /** Pause after a job failed to print, so a printer out of paper is not hammered. */
  failurePauseMs: number;
}

export async function runPolling(
  deps: SourceDeps & { client: Pick<PrintQueueClient, 'nextJob'>; waitSeconds: number; url?: string },
  signal: AbortSignal,
): Promise<void> {
  const { log } = deps;
  let failures = 0;
  let lastProblem = '';
  while (!signal.aborted) {
    const started = Date.now();
    let job: LeasedJob | null;
    try {
      job = await deps.client.nextJob(deps.waitSeconds, signal);
      if (failures > 0) log.info('print queue reachable again');
      failures = 0;
    } catch (err) {
      if (signal.aborted) break;
      // A refusal (wrong key) and an unreachable server need different fixes: say which, once per streak.
      const problem = err instanceof RefusedError ? `refused:${err.status}` : 'unreachable';
      if (failures === 0 || problem !== lastProblem) {
        if (err instanceof RefusedError) log.error(err.message, { status: err.status, code: err.code });
        else log.warn(`cannot reach the server${deps.url ? ` at ${deps.url}` : ''}; retrying`, { err });
      }
      lastProblem = problem;
      await sleep(backoffDelay(failures++, deps.retry), signal);
      continue;
    }
    if (job) {
      if ((await deps.agent.printJob(job)) === 'failed') await sleep(deps.failurePauseMs, signal);
    } else if (Date.now() - started < 1000) {
      await sleep(2000, signal); // a server that does not hold the request: poll like the earlier client
    }
  }
}

export interface PrinterSocket {
  close(): Promise<void>;
  connected(): boolean;
}

export function connectPrinterSocket(
  deps: SourceDeps & { url: string; machineId: string; key: string; heartbeatMs: number },
): PrinterSocket {
  const { log } = deps;
  const stopping = new AbortController();
  const socket = io(`${deps.url}${MACHINES_NAMESPACE}`, {
    auth: { machineId: deps.machineId, key: deps.key },
    transports: ['websocket'],
    reconnectionDelay: 1000,
    reconnectionDelayMax: 10_000,
  });
  const jobs: LeasedJob[] = [];
  let working: Promise<void> | undefined;
  let busy = false;
  let refusals = 0;
  let unreachable = false;

  const heartbeat = () => {
    if (!socket.connected) return;
    const payload: HeartbeatPayload = { status: busy ? 'BUSY' : 'IDLE', firmware: FIRMWARE };
    socket.timeout(5000).emit(V2_EVENTS.heartbeat, payload, (err: Error | null, ack: unknown) => {
      if (err) log.warn('heartbeat not acknowledged', { err });
      else if (typeof ack !== 'object' || ack === null || (ack as { ok?: unknown }).ok !== true)
        log.warn('heartbeat refused', { ack });
    });
  };
  const ticker = setInterval(heartbeat, deps.heartbeatMs);

  const work = async () => {
    heartbeat();
    for (let job = jobs.shift(); job && !stopping.signal.aborted; job = jobs.shift()) {
      if ((await deps.agent.printJob(job)) === 'failed') await sleep(deps.failurePauseMs, stopping.signal);
    }
  };
  const startWork = () => {
    if (busy) return;
    busy = true;
    working = work()
      .catch((err: unknown) => log.error('print worker failed', { err }))
      .finally(() => {
        busy = false;
        working = undefined;
        heartbeat();
        if (jobs.length > 0 && !stopping.signal.aborted) startWork();
      });
  };

  socket.on('connect', () => {
    refusals = 0;
    unreachable = false;
    log.info('connected to the server as a printer', { machineId: deps.machineId });
    heartbeat();
  });
  const reconnectLater = (delay: number) =>
    void sleep(delay, stopping.signal).then(() => {
      if (!stopping.signal.aborted && !socket.connected) socket.connect();
    });
  socket.on('disconnect', (reason) => {
    if (reason === 'io client disconnect') return log.info('disconnected from the server');
    log.warn('disconnected from the server; reconnecting', { reason });
    // socket.io reconnects by itself except when the server closed the socket (e.g. missed heartbeats).
    if (reason === 'io server disconnect') reconnectLater(backoffDelay(0, deps.retry));
  });
  socket.on('connect_error', (err) => {
    if (socket.active) {
      // Server unreachable: socket.io retries by itself; say so once per outage.
      if (!unreachable) log.warn('cannot reach the server; socket.io keeps retrying', { err });
      unreachable = true;
      return;
    }
    // Refused by the server (wrong key, server busy): socket.io gives up, so try again later ourselves.
    const delay = backoffDelay(refusals++, deps.retry);
    const hint =
      err.message === 'unauthorized'
        ? 'refused (unauthorized): check PRINTER_ID and DEVICE_KEY'
        : 'server refused the printer connection';
    log.error(`${hint}; retrying`, { err, delayMs: delay });
    reconnectLater(delay);
  });
  socket.on(PRINT_JOB_EVENT, (payload: unknown) => {
    const job = parseLeasedJob(payload);
    if (!job)
      return log.error('unreadable print_job push', { payload: JSON.stringify(payload).slice(0, 200) });
    if (jobs.some((j) => j.jobId === job.jobId)) return;
    jobs.push(job);
    startWork();
  });

  return {
    connected: () => socket.connected,
    async close() {
      stopping.abort();
      clearInterval(ticker);
      await working;
      socket.close();
    },
  };
}
