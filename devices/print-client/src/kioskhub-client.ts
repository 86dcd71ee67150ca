// The print queue routes (CONTRACTS.md §10) with answers parsed into types at this edge.
import { createHttpClient, errorCode, type HttpAnswer } from '@kioskhub/agent-kit';

export interface LeasedJob {
  jobId: string;
  /** Unparsed: the agent reads it with parseReceipt and reports a failure when it cannot. */
  receipt: unknown;
  queuedAt: string;
}

export type ReportAnswer =
  { kind: 'ok' } | { kind: 'gone'; httpStatus: number; code: string } | { kind: 'retry'; reason: string };

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;

/** A pushed or polled job payload, or undefined when it is not one. */
export function parseLeasedJob(v: unknown): LeasedJob | undefined {
  if (!isObject(v)) return undefined;
  const source =
    typeof v['jobId'] === 'string' ? v : isObject(v['receiptData']) ? v['receiptData'] : undefined;
  if (!source || typeof source['jobId'] !== 'string' || source['receipt'] === undefined) return undefined;
  return {
    jobId: source['jobId'],
    receipt: source['receipt'],
    queuedAt: typeof source['queuedAt'] === 'string' ? source['queuedAt'] : '',
  };
}

export type PrintQueueClient = ReturnType<typeof createPrintQueueClient>;

/** The server answered but would not serve this key (401/403): retrying will not help until it is fixed. */
export class RefusedError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
  ) {
    super(
      `refused (${status} ${code}): check the key (DEVICE_KEY); it must be the key of this site's printer or kiosk`,
    );
  }
}

export function createPrintQueueClient(options: { baseUrl: string; key: string; timeoutMs: number }) {
  const http = createHttpClient({
    baseUrl: options.baseUrl,
    headers: { 'x-api-key': options.key },
    timeoutMs: options.timeoutMs,
  });

  return {
    /** The next receipt (held up to `waitSeconds` for one), or null; throws when the server cannot be asked. */
    async nextJob(waitSeconds: number, signal?: AbortSignal): Promise<LeasedJob | null> {
      const res = await http.request(
        'GET',
        `/api/receipt/queue/next${waitSeconds > 0 ? `?wait=${waitSeconds}` : ''}`,
        { timeoutMs: options.timeoutMs + waitSeconds * 1000, ...(signal ? { signal } : {}) },
      );
      if (res.status === 204) return null;
      if (res.status === 401 || res.status === 403)
        throw new RefusedError(res.status, errorCode(res.body).code);
      if (res.status !== 200)
        throw new Error(`queue/next answered ${res.status} ${errorCode(res.body).code}`);
      const job = parseLeasedJob(res.body);
      if (!job) throw new Error('queue/next answered 200 without a job');
      return job;
    },

    async report(
      report: { jobId: string; outcome: 'complete' } | { jobId: string; outcome: 'failed'; error: string },
      signal?: AbortSignal,
    ): Promise<ReportAnswer> {
      const path = `/api/receipt/queue/${report.outcome}/${encodeURIComponent(report.jobId)}`;
      let res: HttpAnswer;
      try {
        res = await http.request('POST', path, {
          ...(report.outcome === 'failed' ? { body: { error: report.error } } : {}),
          ...(signal ? { signal } : {}),
        });
      } catch (err) {
        return { kind: 'retry', reason: err instanceof Error ? err.message : String(err) };
      }
      if (res.status >= 200 && res.status < 300) return { kind: 'ok' };
      const { code } = errorCode(res.body);
      // The job no longer exists here, or it is FAILED/PRINTED for good: nothing left to tell.
      if (res.status === 404 || res.status === 409 || res.status === 400)
        return { kind: 'gone', httpStatus: res.status, code };
      return { kind: 'retry', reason: `HTTP ${res.status} ${code}` };
    },

    close: (): void => http.close(),
  };
}
