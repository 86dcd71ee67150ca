// A fake of Razorpay's refund API (`POST /v1/payments/{id}/refund`, `GET /v1/refunds/{id}`) on a
// local port, for the refund tests: it honours `X-Refund-Idempotency` as Razorpay does (the same
// key again is the same refund, never a second one), and can refuse, fail, lose answers or hold
// them. A refund's `status` may be changed by the test (Razorpay making it later). A refund keeps
// the `notes` it was created with and its entity echoes them, as Razorpay's does.
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
  const refunds: {
    id: string;
    paymentId: string;
    amount: number;
    key: string | undefined;
    status: 'pending' | 'processed' | 'failed';
    createdAt: number;
    /** The create request's `notes`, as Razorpay keeps them. */
    notes: Record<string, string> | undefined;
  }[] = [];
  const calls: {
    path: string;
    paymentId: string;
    key: string | undefined;
    body: any;
    auth: string | undefined;
  }[] = [];
  const scripts = new Map<string, RazorpayAnswer[]>();
  /** Each `GET /v1/refunds/{id}`, in order. */
  const statusCalls: { refundId: string; auth: string | undefined }[] = [];
  /** Held answers: released with nothing (the answer as usual) or with an error to answer instead. */
  const held = new Map<string, Promise<RazorpayAnswer | void>>();
  /** Payments whose refunds are made but every answer to their refund requests is lost (504). */
  const losing = new Set<string>();
  let failFirst = options.failFirst ?? 0;
  let loseFirst = options.loseFirst ?? 0;
  const error = (res: ServerResponse, a: RazorpayAnswer) =>
    res.writeHead(a.status, { 'content-type': 'application/json' }).end(
      JSON.stringify({
        error: { code: a.code ?? 'SERVER_ERROR', description: a.description ?? 'try again' },
      }),
    );

  // The refund entity as Razorpay documents it (Refunds API, "Refunds Entity").
  const entity = (r: (typeof refunds)[number]) => ({
    id: r.id,
    entity: 'refund',
    amount: r.amount,
    currency: 'INR',
    payment_id: r.paymentId,
    // Razorpay answers an empty `notes` as `[]`.
    notes: r.notes && Object.keys(r.notes).length > 0 ? { ...r.notes } : [],
    receipt: null,
    acquirer_data: { arn: r.status === 'processed' ? '10000000000000' : null },
    created_at: r.createdAt,
    batch_id: null,
    status: r.status,
    speed_processed: 'normal',
    speed_requested: 'normal',
  });

  const server: Server = createServer((req: IncomingMessage, res) => {
    let raw = '';
    req.on('data', (c: Buffer) => (raw += c.toString()));
    req.on('end', () => {
      const fetched = req.method === 'GET' ? /^\/v1\/refunds\/([^/?]+)$/.exec(req.url ?? '')?.[1] : undefined;
      if (fetched !== undefined) {
        statusCalls.push({ refundId: fetched, auth: req.headers.authorization });
        // `hold(<refund id>)` holds its status answers as `hold(<payment id>)` holds refunds.
        return void (held.get(fetched) ?? Promise.resolve()).then((instead) => {
          if (instead) return error(res, instead);
          const scripted = scripts.get(fetched)?.shift();
          if (scripted) return error(res, scripted);
          const known = refunds.find((r) => r.id === fetched);
          if (!known)
            return error(res, {
              status: 400,
              code: 'BAD_REQUEST_ERROR',
              description: 'The id provided does not exist',
            });
          res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(entity(known)));
        });
      }
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
        refund = {
          id: `rfnd_${randomBytes(5).toString('hex')}`,
          paymentId,
          amount: body.amount,
          key,
          status: options.refundStatus ?? 'processed',
          createdAt: Math.floor(Date.now() / 1000),
          notes: body.notes && typeof body.notes === 'object' ? { ...body.notes } : undefined,
        };
        refunds.push(refund);
      }
      if (loseFirst > 0 || losing.has(paymentId)) {
        if (loseFirst > 0) loseFirst -= 1;
        return error(res, { status: 504, code: 'GATEWAY_ERROR' });
      }
      const made = refund;
      void (held.get(paymentId) ?? Promise.resolve()).then((instead) => {
        // Released with an error: the refund is made, its answer lost (a 5xx).
        if (instead) return error(res, instead);
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(entity(made)));
      });
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    refunds,
    calls,
    statusCalls,
    /**
     * What Razorpay answers the next refund requests of this payment (then it refunds), or, for a
     * refund id, its next status requests (then the refund entity).
     */
    script: (paymentId: string, answers: RazorpayAnswer[]) => void scripts.set(paymentId, answers),
    /**
     * Razorpay makes this payment's refunds (one per idempotency key) but every answer to their
     * refund requests is lost (504), until `false`: the refund job never hears of them.
     */
    loseAnswers(paymentId: string, lose = true): void {
      if (lose) losing.add(paymentId);
      else losing.delete(paymentId);
    },
    /** The refund entity Razorpay shows for one of its refunds (its webhooks carry it). */
    entityOf(refundId: string) {
      const r = refunds.find((x) => x.id === refundId);
      if (!r) throw new Error(`fake Razorpay: no refund ${refundId}`);
      return entity(r);
    },
    /**
     * Holds the answers for this payment's refunds (or, for a refund id, its status requests) until
     * the returned function is called; called with an error (a 5xx), that is answered instead.
     */
    hold(paymentId: string): (instead?: RazorpayAnswer) => void {
      let release!: (instead?: RazorpayAnswer) => void;
      held.set(paymentId, new Promise<RazorpayAnswer | void>((r) => (release = r)));
      return (instead) => {
        held.delete(paymentId);
        release(instead);
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
