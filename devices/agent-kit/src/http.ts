// A small JSON-over-HTTP client with a connection pool of its own, so stopping an agent
// closes every socket it opened (an aborted request never leaves a connection behind).
import http from 'node:http';
import https from 'node:https';

export interface HttpAnswer {
  status: number;
  /** Parsed JSON, the text when it is not JSON, undefined when empty. */
  body: unknown;
}

export interface HttpRequestOptions {
  body?: unknown;
  timeoutMs?: number;
  signal?: AbortSignal;
}

const MAX_BODY_BYTES = 1024 * 1024;

export type HttpClient = ReturnType<typeof createHttpClient>;

export function createHttpClient(options: {
  baseUrl: string;
  headers: Record<string, string>;
  timeoutMs: number;
}) {
  const base = new URL(options.baseUrl.replace(/\/*$/, '/'));
  const secure = base.protocol === 'https:';
  const agent = secure
    ? new https.Agent({ keepAlive: true, maxSockets: 4 })
    : new http.Agent({ keepAlive: true, maxSockets: 4 });

  /** Resolves with any HTTP answer; rejects on network errors, timeouts and aborts. */
  function request(method: string, path: string, opts: HttpRequestOptions = {}): Promise<HttpAnswer> {
    const url = new URL(path.replace(/^\/+/, ''), base);
    const payload = opts.body === undefined ? undefined : Buffer.from(JSON.stringify(opts.body));
    const headers: Record<string, string> = { accept: 'application/json', ...options.headers };
    if (payload) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = String(payload.length);
    }
    return new Promise<HttpAnswer>((resolve, reject) => {
      if (opts.signal?.aborted) return reject(new Error('aborted'));
      const req = (secure ? https : http).request(url, { method, headers, agent }, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_BODY_BYTES) req.destroy(new Error(`answer larger than ${MAX_BODY_BYTES} bytes`));
          else chunks.push(chunk);
        });
        res.on('error', fail);
        res.on('end', () => {
          done();
          const text = Buffer.concat(chunks).toString('utf8');
          let body: unknown = text || undefined;
          try {
            if (text) body = JSON.parse(text) as unknown;
          } catch {
            /* not JSON: keep the text */
          }
          resolve({ status: res.statusCode ?? 0, body });
        });
      });
      const timer = setTimeout(
        () => req.destroy(new Error(`no answer within ${opts.timeoutMs ?? options.timeoutMs} ms`)),
        opts.timeoutMs ?? options.timeoutMs,
      );
      const onAbort = () => req.destroy(new Error('aborted'));
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      function done() {
        clearTimeout(timer);
        opts.signal?.removeEventListener('abort', onAbort);
      }
      function fail(err: Error) {
        done();
        reject(err);
      }
      req.on('error', fail);
      req.end(payload);
    });
  }

  return {
    request,
    /** Closes every connection of this client. */
    close: (): void => agent.destroy(),
  };
}

/** The `error.code` of a Kioskhub error answer (CONTRACTS.md §2), or UNKNOWN. */
export function errorCode(body: unknown): { code: string; message: string } {
  const error =
    typeof body === 'object' && body !== null && typeof (body as { error?: unknown }).error === 'object'
      ? ((body as { error: Record<string, unknown> }).error ?? {})
      : {};
  return {
    code: typeof error['code'] === 'string' ? error['code'] : 'UNKNOWN',
    message: typeof error['message'] === 'string' ? error['message'] : '',
  };
}
