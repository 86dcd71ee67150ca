// The two cash routes the agent calls (CONTRACTS.md §9), with answers parsed into types at
// this edge. Reporting an insert never throws: every answer maps to what the sender does next.
import { createHttpClient, errorCode, type HttpAnswer } from '@kioskhub/agent-kit';
import { minorToMajor } from './money.js';
import type { CashInsert } from './insert-queue.js';

export interface ActiveSession {
  orderNumber: string;
  totalRequired: number;
  amountInserted: number;
  remainingAmount: number;
  startedAt: string;
  /** The machine that opened the session; absent on servers that do not say. */
  kioskId?: string;
}

export type InsertAnswer =
  /** The server counted it (or had already counted this eventId). */
  | {
      kind: 'applied';
      orderNumber: string;
      status: string;
      amountInserted?: number;
      remainingAmount?: number;
      isComplete: boolean;
    }
  /** 404/409: the server recorded the money as unallocated cash for this machine. */
  | { kind: 'unallocated'; httpStatus: number; code: string; message: string }
  /** 400 and friends: the server will never take this request as it is. */
  | { kind: 'rejected'; httpStatus: number; code: string; message: string }
  /** Network trouble, 5xx, auth or rate limits: try again later. */
  | { kind: 'retry'; reason: string };

export interface KioskhubClientOptions {
  baseUrl: string;
  key: string;
  timeoutMs: number;
}

const REJECTED = new Set([400, 413, 415, 422]);

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;
const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

function parseSession(v: unknown): ActiveSession | undefined {
  if (!isObject(v) || typeof v['orderNumber'] !== 'string' || typeof v['startedAt'] !== 'string')
    return undefined;
  const totalRequired = num(v['totalRequired']);
  const amountInserted = num(v['amountInserted']);
  const remainingAmount = num(v['remainingAmount']);
  if (totalRequired === undefined || amountInserted === undefined || remainingAmount === undefined)
    return undefined;
  return {
    orderNumber: v['orderNumber'],
    totalRequired,
    amountInserted,
    remainingAmount,
    startedAt: v['startedAt'],
    ...(typeof v['kioskId'] === 'string' ? { kioskId: v['kioskId'] } : {}),
  };
}

export type KioskhubClient = ReturnType<typeof createKioskhubClient>;

export function createKioskhubClient(options: KioskhubClientOptions) {
  const http = createHttpClient({
    baseUrl: options.baseUrl,
    headers: { 'x-api-key': options.key },
    timeoutMs: options.timeoutMs,
  });

  return {
    /** Open sessions of the key's site; throws when the server cannot be asked. */
    async activeSessions(signal?: AbortSignal): Promise<ActiveSession[]> {
      const res = await http.request('GET', '/api/cash-payment/active-sessions', signal ? { signal } : {});
      if (res.status !== 200)
        throw new Error(`active-sessions answered ${res.status} ${errorCode(res.body).code}`);
      const body = res.body;
      if (!isObject(body) || !Array.isArray(body['sessions']))
        throw new Error('active-sessions answered without a sessions list');
      return body['sessions'].map(parseSession).filter((s): s is ActiveSession => s !== undefined);
    },

    async postInsert(
      insert: CashInsert & { orderNumber: string },
      signal?: AbortSignal,
    ): Promise<InsertAnswer> {
      let res: HttpAnswer;
      try {
        const body = {
          orderNumber: insert.orderNumber,
          amountAdded: minorToMajor(insert.amountMinor, insert.scale),
          eventId: insert.eventId,
          kind: insert.kind,
        };
        res = await http.request('POST', '/api/cash-payment/update', { body, ...(signal ? { signal } : {}) });
      } catch (err) {
        return { kind: 'retry', reason: err instanceof Error ? err.message : String(err) };
      }
      if (res.status >= 200 && res.status < 300) {
        const b = isObject(res.body) ? res.body : {};
        const amountInserted = num(b['amountInserted']);
        const remainingAmount = num(b['remainingAmount']);
        return {
          kind: 'applied',
          orderNumber: insert.orderNumber,
          status: typeof b['status'] === 'string' ? b['status'] : 'UNKNOWN',
          isComplete: b['isComplete'] === true,
          ...(amountInserted === undefined ? {} : { amountInserted }),
          ...(remainingAmount === undefined ? {} : { remainingAmount }),
        };
      }
      const { code, message } = errorCode(res.body);
      // Only the server's own record of the money (its `details`) takes the insert off the queue:
      // a 404 from a wrong path prefix in KIOSKHUB_URL, or a proxy's, recorded nothing.
      if ((res.status === 404 || res.status === 409) && recordedAsUnallocated(res.body))
        return { kind: 'unallocated', httpStatus: res.status, code, message };
      if (res.status === 404 || res.status === 409) {
        const what = `HTTP ${res.status} ${code} ${message}`.trim();
        return { kind: 'retry', reason: `${what}, without a record of the money: is KIOSKHUB_URL right?` };
      }
      if (REJECTED.has(res.status)) return { kind: 'rejected', httpStatus: res.status, code, message };
      return { kind: 'retry', reason: `HTTP ${res.status} ${code} ${message}`.trim() };
    },

    /** Closes the client's connections. */
    close: (): void => http.close(),
  };
}

/** The server's answer to cash it kept as unallocated: `error.details` with its reason and amount. */
function recordedAsUnallocated(body: unknown): boolean {
  const error = isObject(body) ? body['error'] : undefined;
  const details = isObject(error) ? error['details'] : undefined;
  return (
    isObject(details) &&
    typeof details['reason'] === 'string' &&
    typeof details['recordedAmount'] === 'number'
  );
}
