// The print client assembled from its parts: state, output, reporter and a job source.
import type { PrintClientConfig } from './config.js';
import { connectPrinterSocket, runPolling } from './job-sources.js';
import { createPrintQueueClient } from './kioskhub-client.js';
import { usableDirectory, type Logger } from '@kioskhub/agent-kit';
import { createPrintAgent } from './print-agent.js';
import { openPrintState } from './print-state.js';
import { createPrinterOutput } from './printer-output.js';

export interface PrintClient {
  pendingReports(): number;
  stop(): Promise<void>;
}

export async function startPrintClient(
  config: PrintClientConfig,
  deps: { log: Logger },
): Promise<PrintClient> {
  const { log } = deps;
  const stopping = new AbortController();
  const retry = { baseMs: config.retryBaseMs, maxMs: config.retryMaxMs };
  const client = createPrintQueueClient({
    baseUrl: config.url,
    key: config.key,
    timeoutMs: config.requestTimeoutMs,
  });
  await usableDirectory(config.stateDir, 'STATE_DIR');
  const state = await openPrintState(config.stateDir);
  if (state.reports().length > 0)
    log.info('reporting print results saved before a restart', { count: state.reports().length });
  const output = createPrinterOutput({
    kind: config.outputKind,
    path: config.output,
    baudRate: config.baudRate,
    timeoutMs: config.writeTimeoutMs,
  });
  const layout = {
    columns: config.columns,
    currencyLabel: config.currencyLabel,
    ...(config.timeZone ? { timeZone: config.timeZone } : {}),
  };
  const agent = createPrintAgent({ client, state, output, layout, log, retry });
  const reporting = agent.runReporter(stopping.signal);

  let source: Promise<void> | undefined;
  let socket: ReturnType<typeof connectPrinterSocket> | undefined;
  if (config.mode === 'socket') {
    socket = connectPrinterSocket({
      agent,
      log,
      retry,
      failurePauseMs: config.failurePauseMs,
      url: config.url,
      machineId: config.printerId ?? '',
      key: config.key,
      heartbeatMs: config.heartbeatMs,
    });
  } else {
    source = runPolling(
      {
        agent,
        log,
        retry,
        failurePauseMs: config.failurePauseMs,
        client,
        waitSeconds: config.pollWaitSeconds,
        url: config.url,
      },
      stopping.signal,
    );
  }
  log.info('print client started', {
    server: config.url,
    mode: config.mode,
    output: output.description,
    stateDir: config.stateDir,
  });

  return {
    pendingReports: () => agent.pendingReports(),
    async stop() {
      stopping.abort();
      await socket?.close();
      await source;
      await reporting;
      client.close();
      log.info('print client stopped', { unreported: agent.pendingReports() });
    },
  };
}
