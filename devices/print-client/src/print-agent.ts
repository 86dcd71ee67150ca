// Prints one leased job and remembers the result until the server has heard it. Reports
// are delivered in order by a loop that retries with backoff while the network is down.
import { backoffDelay, createWakeup, sleep, type Logger, type BackoffOptions } from '@kioskhub/agent-kit';
import type { PrintQueueClient, LeasedJob } from './kioskhub-client.js';
import type { PrintState } from './print-state.js';
import type { PrinterOutput } from './printer-output.js';
import { parseReceipt } from './receipt.js';
import { renderReceipt, type LayoutOptions } from './receipt-layout.js';

export type PrintOutcome = 'printed' | 'failed' | 'duplicate';

export interface PrintAgentDeps {
  client: Pick<PrintQueueClient, 'report'>;
  state: PrintState;
  output: PrinterOutput;
  layout: LayoutOptions;
  log: Logger;
  retry: BackoffOptions;
}

export type PrintAgent = ReturnType<typeof createPrintAgent>;

const messageOf = (err: unknown) => (err instanceof Error ? err.message : String(err));

export function createPrintAgent(deps: PrintAgentDeps) {
  const { state, log } = deps;
  const wakeup = createWakeup();

  async function printJob(job: LeasedJob): Promise<PrintOutcome> {
    if (state.wasPrinted(job.jobId)) {
      // Printed before, but the server did not hear it in time and handed it out again.
      log.warn('job was already printed; reporting it instead of printing it twice', { jobId: job.jobId });
      await state.printed(job.jobId);
      wakeup.wake();
      return 'duplicate';
    }
    let bytes: Buffer;
    let orderNumber: string;
    try {
      const receipt = parseReceipt(job.receipt);
      orderNumber = receipt.orderNumber;
      bytes = renderReceipt(receipt, deps.layout);
    } catch (err) {
      log.error('unreadable receipt; reporting the job failed', { jobId: job.jobId, err });
      await state.failed(job.jobId, `unreadable receipt: ${messageOf(err)}`);
      wakeup.wake();
      return 'failed';
    }
    try {
      await deps.output.write(bytes);
    } catch (err) {
      log.error('receipt did not print; reporting the job failed', {
        jobId: job.jobId,
        orderNumber,
        output: deps.output.description,
        err,
      });
      await state.failed(job.jobId, `${deps.output.description}: ${messageOf(err)}`);
      wakeup.wake();
      return 'failed';
    }
    await state.printed(job.jobId);
    log.info('receipt printed', { jobId: job.jobId, orderNumber, bytes: bytes.length });
    wakeup.wake();
    return 'printed';
  }

  /** Delivers pending reports until `signal` aborts. */
  async function runReporter(signal: AbortSignal): Promise<void> {
    let failures = 0;
    while (!signal.aborted) {
      const [report] = state.reports();
      if (!report) {
        await wakeup.wait(60_000, signal);
        continue;
      }
      const answer = await deps.client.report(
        report.outcome === 'complete'
          ? { jobId: report.jobId, outcome: 'complete' }
          : { jobId: report.jobId, outcome: 'failed', error: report.error },
        signal,
      );
      if (signal.aborted) break;
      if (answer.kind === 'retry') {
        log.warn('could not report a print result; will retry', {
          jobId: report.jobId,
          outcome: report.outcome,
          reason: answer.reason,
        });
        await sleep(backoffDelay(failures++, deps.retry), signal);
        continue;
      }
      failures = 0;
      if (answer.kind === 'gone')
        log.warn('server no longer tracks this job; report dropped', {
          jobId: report.jobId,
          outcome: report.outcome,
          httpStatus: answer.httpStatus,
          code: answer.code,
        });
      else log.debug('print result reported', { jobId: report.jobId, outcome: report.outcome });
      await state
        .reported(report.jobId)
        .catch((err: unknown) => log.error('could not save the print state', { err }));
    }
  }

  return { printJob, runReporter, pendingReports: () => state.reports().length };
}
