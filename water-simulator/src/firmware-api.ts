// The kiosk's HTTP client for the firmware API: one function per route, the kiosk key as
// `X-API-Key`. A network failure (modem down, server unreachable) is a `KioskOfflineError`, so
// the kiosk can tell "no answer" (serve from the cache) from "the server said no".
import type {
  BatchResult,
  CredentialCacheResponse,
  HeartbeatRequest,
  OfflineTransaction,
  SettlementRequest,
  SettlementResponse,
  VerificationRequest,
  VerificationResponse,
} from './wire.js';

/** The server could not be reached, or answered 5xx: nothing was decided. */
export class KioskOfflineError extends Error {}

/** The server answered with an error it means (4xx other than the verification's own). */
export class FirmwareApiError extends Error {
  constructor(
    readonly status: number,
    readonly body: unknown,
  ) {
    super(`HTTP ${status}: ${JSON.stringify(body).slice(0, 300)}`);
  }
}

export interface FirmwareApiOptions {
  url: string;
  key: string;
  /** Per request; the 4G modem is slow, but a customer will not wait forever. */
  timeoutMs?: number;
}

export function createFirmwareApi(options: FirmwareApiOptions) {
  const timeoutMs = options.timeoutMs ?? 15_000;

  async function call<T>(method: string, path: string, body?: unknown, okStatuses = [200]): Promise<T> {
    let res: Response;
    try {
      res = await fetch(options.url + path, {
        method,
        headers: {
          'x-api-key': options.key,
          ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (err) {
      throw new KioskOfflineError(`${path}: ${(err as Error).message}`);
    }
    const text = await res.text();
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = text;
    }
    if (res.status >= 500) throw new KioskOfflineError(`${path}: HTTP ${res.status}`);
    if (!okStatuses.includes(res.status)) throw new FirmwareApiError(res.status, parsed);
    return parsed as T;
  }

  return {
    /** 200 approved or not; 400/403 also carry `approved: false` and are answers, not errors. */
    verify: (body: VerificationRequest) =>
      call<VerificationResponse>('POST', '/dispense-verification', body, [200, 400, 403]),
    settle: (body: SettlementRequest) => call<SettlementResponse>('POST', '/v1/water/dispenses', body),
    uploadBatch: (transactions: OfflineTransaction[]) =>
      call<{ results: BatchResult[] }>('POST', '/v1/water/transactions:batch', { transactions }),
    credentialCache: (since?: number) =>
      call<CredentialCacheResponse>(
        'GET',
        `/v1/water/credential-cache${since === undefined ? '' : `?since=${encodeURIComponent(String(since))}`}`,
      ),
    heartbeat: (body: HeartbeatRequest) => call<unknown>('POST', '/v1/water/heartbeat', body),
  };
}

export type FirmwareApi = ReturnType<typeof createFirmwareApi>;
