// autocannon against a webhook URL: every request is a fresh signed qr_code.credited with a
// unique payment id (setupRequest), and every answer is matched to its payment id through
// the per-connection context, so committed-but-unanswered requests can be accounted for.
import autocannon from 'autocannon';
import { AMOUNT_PAISE } from './kioskhub.js';
import { signedDelivery } from './webhook-body.js';

export interface WebhookLoadResult {
  requestsPerSec: number;
  p50: number;
  p99: number;
  ok2xx: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  durationSec: number;
  /** Payment ids answered 2xx with a new orderId. */
  created: Set<string>;
  /** Payment ids answered 2xx as duplicates or ignored (should be none). */
  unexpected: Set<string>;
  /** Every payment id that was sent. */
  sent: Set<string>;
  statusCodes: Record<string, number>;
}

interface Ctx {
  paymentId?: string;
}

export async function runWebhookLoad(options: {
  url: string;
  path?: string;
  qrCodeIds: string[];
  secret: string;
  connections: number;
  durationSec?: number;
  amount?: number;
}): Promise<WebhookLoadResult> {
  const sent = new Set<string>();
  const created = new Set<string>();
  const unexpected = new Set<string>();
  let next = 0;
  const started = performance.now();
  const result = await autocannon({
    url: options.url,
    connections: options.connections,
    pipelining: 1,
    timeout: 30,
    ...(options.amount ? { amount: options.amount } : { duration: options.durationSec ?? 10 }),
    requests: [
      {
        method: 'POST',
        path: options.path ?? '/webhooks/razorpay',
        setupRequest: (req, context) => {
          const qr = options.qrCodeIds[next++ % options.qrCodeIds.length]!;
          const delivery = signedDelivery(qr, AMOUNT_PAISE, options.secret);
          (context as Ctx).paymentId = delivery.paymentId;
          sent.add(delivery.paymentId);
          return { ...req, body: delivery.body, headers: { ...req.headers, ...delivery.headers } };
        },
        onResponse: (status, body, context) => {
          const id = (context as Ctx).paymentId;
          if (!id || status < 200 || status >= 300) return;
          if (body.includes('"orderId"') && !body.includes('"duplicate"')) created.add(id);
          else unexpected.add(id);
        },
      },
    ],
  });
  const durationSec = options.amount ? (performance.now() - started) / 1000 : result.duration;
  const statusCodes: Record<string, number> = {};
  for (const [code, v] of Object.entries(result.statusCodeStats ?? {})) statusCodes[code] = v.count ?? 0;
  return {
    requestsPerSec: result['2xx'] / durationSec,
    p50: result.latency.p50,
    p99: result.latency.p99,
    ok2xx: result['2xx'],
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    durationSec,
    created,
    unexpected,
    sent,
    statusCodes,
  };
}
