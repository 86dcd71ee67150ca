// HTTP calls of the soak's simulated devices, providers and staff. A device or a provider
// retries what did not get an answer (the server was killed, or answered 5xx) with the same
// body and the same idempotency key, as the real ones do; the soak counts those retries.
import { ADMIN_TOKEN } from '../lib/kioskhub.js';
import { sleep } from '../lib/wait.js';

export type Auth = { admin: true } | { key: string } | { bearer: string } | null;

export interface Answer {
  status: number;
  body: any;
}

export interface CallStats {
  requests: number;
  retries: number;
  /** Answers of 5xx that were not 503 during a restart (bugs), with their path. */
  serverErrors: string[];
}

export const callStats: CallStats = { requests: 0, retries: 0, serverErrors: [] };

function headersFor(auth: Auth, extra: Record<string, string>): Record<string, string> {
  const headers: Record<string, string> = { ...extra };
  if (auth && 'admin' in auth) headers['authorization'] = `Bearer ${ADMIN_TOKEN}`;
  else if (auth && 'key' in auth) headers['x-api-key'] = auth.key;
  else if (auth && 'bearer' in auth) headers['authorization'] = `Bearer ${auth.bearer}`;
  return headers;
}

/**
 * One request, retried with the same body while the server is unreachable or answers 5xx (a
 * restart in progress), for up to `patienceMs`. 4xx answers are returned to the caller.
 */
export async function call(
  base: string,
  method: string,
  path: string,
  auth: Auth,
  body?: unknown,
  options: { raw?: string; headers?: Record<string, string>; patienceMs?: number } = {},
): Promise<Answer> {
  const deadline = Date.now() + (options.patienceMs ?? 90_000);
  const payload = options.raw ?? (body === undefined ? undefined : JSON.stringify(body));
  const headers = headersFor(auth, {
    ...(payload !== undefined ? { 'content-type': 'application/json' } : {}),
    ...options.headers,
  });
  for (let attempt = 0; ; attempt++) {
    callStats.requests++;
    if (attempt > 0) callStats.retries++;
    try {
      const res = await fetch(base + path, {
        method,
        headers,
        ...(payload !== undefined ? { body: payload } : {}),
        signal: AbortSignal.timeout(30_000),
      });
      const text = await res.text();
      let parsed: unknown = text;
      try {
        parsed = text ? JSON.parse(text) : undefined;
      } catch {
        /* not JSON (a PNG, a text/plain USSD screen) */
      }
      if (res.status < 500) return { status: res.status, body: parsed };
      if (res.status !== 503 && callStats.serverErrors.length < 50)
        callStats.serverErrors.push(`${method} ${path} → ${res.status} ${text.slice(0, 200)}`);
    } catch {
      /* refused or reset: the server is restarting */
    }
    if (Date.now() > deadline)
      throw new Error(`${method} ${path}: no answer for ${options.patienceMs ?? 90_000} ms`);
    await sleep(Math.min(2_000, 100 * 2 ** Math.min(attempt, 4)));
  }
}

/** `call` that insists on a 2xx answer. */
export async function ok(
  base: string,
  method: string,
  path: string,
  auth: Auth,
  body?: unknown,
  options?: Parameters<typeof call>[5],
): Promise<any> {
  const res = await call(base, method, path, auth, body, options);
  if (res.status >= 300)
    throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(res.body).slice(0, 300)}`);
  return res.body;
}
