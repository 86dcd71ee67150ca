// A fake of Razorpay's refund API (`POST /v1/payments/{id}/refund`) on a local port, for the
// refund tests: it honours `X-Refund-Idempotency` as Razorpay does (the same key again is the same
// refund, never a second one), and can refuse, fail, lose answers or hold them.
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** An error answer Razorpay gives instead of making the refund. */
export interface RazorpayAnswer {
  status: number;
  code?: string;
  description?: string;
}

export interface FakeRazorpayOptions {
  /** The refund's `status` in a successful answer (Razorpay: `processed`, or `pending` for later). */
  refundStatus?: 'processed' | 'pending';
  /** The first N requests are answered 502 and make no refund. */
  failFirst?: number;
  /** The first N refunds are made but their answers lost (504): a retry must be the same refund. */
  loseFirst?: number;
}

export type FakeRazorpay = Awaited<ReturnType<typeof fakeRazorpay>>;

export async function fakeRazorpay(options: FakeRazorpayOptions = {}) {
  const refunds: { id: string; paymentId: string; amount: number; key: string | undefined }[] = [];
  const calls: {
    path: string;
    paymentId: string;
    key: string | undefined;
    body: any;
    auth: string | undefined;
  }[] = [];
  const scripts = new Map<string, RazorpayAnswer[]>();
  const held = new Map<string, Promise<void>>();
  let failFirst = options.failFirst ?? 0;
  let loseFirst = options.loseFirst ?? 0;
  const error = (res: ServerResponse, a: RazorpayAnswer) =>
    res.writeHead(a.status, { 'content-type': 'application/json' }).end(
      JSON.stringify({
        error: { code: a.code ?? 'SERVER_ERROR', description: a.description ?? 'try again' },
      }),
    );

  const server: Server = createServer((req: IncomingMessage, res) => {
    let raw = '';
    req.on('data', (c: Buffer) => (raw += c.toString()));
    req.on('end', () => {
      const key = req.headers['x-refund-idempotency'] as string | undefined;
      const paymentId = /\/v1\/payments\/([^/]+)\/refund/.exec(req.url ?? '')?.[1] ?? '';
      const body = raw ? JSON.parse(raw) : null;
      calls.push({ path: req.url ?? '', paymentId, key, body, auth: req.headers.authorization });
      if (failFirst > 0) {
        failFirst -= 1;
        return error(res, { status: 502 });
      }
      let refund = key ? refunds.find((r) => r.key === key) : undefined;
      const scripted = refund ? undefined : scripts.get(paymentId)?.shift();
      if (scripted) return error(res, scripted);
      if (!refund) {
        refund = { id: `rfnd_${randomBytes(5).toString('hex')}`, paymentId, amount: body.amount, key };
        refunds.push(refund);
      }
      if (loseFirst > 0) {
        loseFirst -= 1;
        return error(res, { status: 504, code: 'GATEWAY_ERROR' });
      }
      const made = refund;
      void (held.get(paymentId) ?? Promise.resolve()).then(() => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify({
            id: made.id,
            entity: 'refund',
            amount: made.amount,
            currency: 'INR',
            payment_id: paymentId,
            notes: {},
            status: options.refundStatus ?? 'processed',
            speed_requested: 'normal',
          }),
        );
      });
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    refunds,
    calls,
    /** What Razorpay answers the next refund requests of this payment (then it refunds). */
    script: (paymentId: string, answers: RazorpayAnswer[]) => void scripts.set(paymentId, answers),
    /** Holds the answers for this payment's refunds until the returned function is called. */
    hold(paymentId: string): () => void {
      let release!: () => void;
      held.set(paymentId, new Promise<void>((r) => (release = r)));
      return () => {
        held.delete(paymentId);
        release();
      };
    },
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

/** The server settings that send refunds to this fake (test API keys and its URL). */
export const razorpayEnv = (fake: { url: string }): Record<string, string> => ({
  RAZORPAY_KEY_ID: 'rzp_test_key',
  RAZORPAY_KEY_SECRET: 'rzp_test_secret',
  RAZORPAY_API_BASE: fake.url,
});
