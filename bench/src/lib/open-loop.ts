// Open-loop load: requests start on a fixed schedule (rate per second) whether or not earlier
// ones have finished, so a slow server shows up as latency, not as a lower send rate.
import http from 'node:http';

export interface OpenLoopResult {
  sent: number;
  seconds: number;
  /** How far behind schedule the sender fell at worst (ms): large values mean the bench itself was starved. */
  maxLagMs: number;
}

export async function openLoop(options: {
  rate: number;
  seconds: number;
  fire: (index: number) => Promise<void>;
  drainTimeoutMs?: number;
}): Promise<OpenLoopResult> {
  const total = Math.round(options.rate * options.seconds);
  const interval = 1000 / options.rate;
  const inFlight = new Set<Promise<void>>();
  const started = performance.now();
  let index = 0;
  let maxLagMs = 0;
  while (index < total) {
    const now = performance.now();
    while (index < total && started + index * interval <= now) {
      maxLagMs = Math.max(maxLagMs, now - (started + index * interval));
      const p = options.fire(index++).catch(() => undefined);
      inFlight.add(p);
      void p.finally(() => inFlight.delete(p));
    }
    await new Promise((r) => setTimeout(r, 1));
  }
  const seconds = (performance.now() - started) / 1000;
  // Wait for the stragglers, but no longer than the drain timeout (and never keep the process alive).
  let drainTimer: NodeJS.Timeout | undefined;
  await Promise.race([
    Promise.all(inFlight),
    new Promise((r) => {
      drainTimer = setTimeout(r, options.drainTimeoutMs ?? 30_000);
    }),
  ]);
  clearTimeout(drainTimer);
  return { sent: index, seconds, maxLagMs };
}

/** A keep-alive JSON POST; resolves with status and text body (never rejects on HTTP errors). */
export function postJson(
  agent: http.Agent,
  url: string,
  path: string,
  body: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string }> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: u.hostname,
        port: u.port,
        path,
        method: 'POST',
        agent,
        headers: {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
          ...headers,
        },
        timeout: 150_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }),
        );
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(body);
  });
}
