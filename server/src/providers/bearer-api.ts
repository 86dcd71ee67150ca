// What the mobile-money APIs (MTN MoMo, Airtel Money) share: an OAuth2 access token kept until
// shortly before it expires, and authorised calls that fetch a new token once on a 401.

export interface BearerApiOptions {
  /** The provider's name in error messages ("MoMo token: HTTP 500 …"). */
  name: string;
  baseUrl: string;
  fetch?: typeof fetch;
  timeoutMs?: number;
  /** The token request, relative to the base URL. */
  token: { path: string; headers: Record<string, string>; body?: string };
  /** Lifetime assumed when the answer has no usable `expires_in`. */
  defaultLifetimeSec: number;
  /** Renew this long before expiry (or at half-life for short tokens) so no call carries an expired one. */
  renewEarlyMs: number;
  /** Headers of every authorised call. */
  headers: Record<string, string>;
}

export function createBearerApi(opts: BearerApiOptions) {
  const doFetch = opts.fetch ?? fetch;
  const base = opts.baseUrl.replace(/\/+$/, '');
  const timeout = () => AbortSignal.timeout(opts.timeoutMs ?? 15_000);
  let token: { value: string; renewAt: number } | undefined;

  async function accessToken(): Promise<string> {
    if (token && Date.now() < token.renewAt) return token.value;
    const response = await doFetch(`${base}${opts.token.path}`, {
      method: 'POST',
      headers: opts.token.headers,
      ...(opts.token.body !== undefined ? { body: opts.token.body } : {}),
      signal: timeout(),
    });
    const text = await response.text();
    if (!response.ok) throw new Error(`${opts.name} token: HTTP ${response.status} ${text.slice(0, 200)}`);
    const parsed = JSON.parse(text) as { access_token?: unknown; expires_in?: unknown };
    if (typeof parsed.access_token !== 'string')
      throw new Error(`${opts.name} token: no access_token in the answer`);
    // `expires_in` is a string ("180") on some portals.
    const seconds = Number(parsed.expires_in);
    const lifetimeMs = (Number.isFinite(seconds) && seconds > 0 ? seconds : opts.defaultLifetimeSec) * 1000;
    token = {
      value: parsed.access_token,
      renewAt: Date.now() + Math.max(lifetimeMs - opts.renewEarlyMs, lifetimeMs / 2),
    };
    return token.value;
  }

  /** One authorised call; a 401 drops the cached token and tries once more with a new one. */
  async function call(
    path: string,
    init: { method: string; headers?: Record<string, string>; body?: string },
  ): Promise<{ status: number; text: string }> {
    for (let attempt = 0; ; attempt += 1) {
      const response = await doFetch(`${base}${path}`, {
        method: init.method,
        headers: { Authorization: `Bearer ${await accessToken()}`, ...opts.headers, ...init.headers },
        ...(init.body !== undefined ? { body: init.body } : {}),
        signal: timeout(),
      });
      if (response.status === 401 && attempt === 0) {
        token = undefined;
        await response.body?.cancel();
        continue;
      }
      return { status: response.status, text: await response.text() };
    }
  }

  return { call };
}
