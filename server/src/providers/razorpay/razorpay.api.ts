// Razorpay API client: create and close fixed-amount UPI QR codes (PROVIDERS.md §1.1), refund a
// payment and read a refund's status. The HTTP client and base URL are injectable so tests run
// against a local fake.
import { REFUND_ID_NOTE, refundIdOfNotes } from '../../modules/payments/refunds.js';

export type FetchLike = (input: string, init?: RequestInit) => Promise<Response>;

export interface RazorpayClientOptions {
  /** e.g. https://api.razorpay.com (config RAZORPAY_API_BASE); no trailing slash needed. */
  baseUrl: string;
  keyId: string;
  keySecret: string;
  fetch?: FetchLike;
  /** Per request, including image downloads (default 15 s). */
  timeoutMs?: number;
}

/** Exactly the fields we send: Razorpay rejects unknown ones. */
export interface CreateQrCodeRequest {
  name: string;
  description: string;
  paymentAmountPaise: number;
  notes: { machine_id: string };
}

/** The parts of the qr_code entity we use. */
export interface RazorpayQrCode {
  id: string;
  status: string;
  imageUrl: string;
  /** Not documented on this entity; some accounts return it, so it is optional. */
  shortUrl: string | null;
  paymentAmountPaise: number | null;
  /** The raw UPI string (the "image content" variant); absent on most accounts. */
  imageContent: string | null;
}

/** The parts of the refund entity we read (GET /v1/refunds/{id}). */
export interface RazorpayRefund {
  id: string;
  paymentId: string;
  amountPaise: number;
  currency: string | null;
  /** `pending` (not made yet), `processed` (made: final) or `failed`. */
  status: string;
  /** `normal` or `instant`, once Razorpay chose. */
  speedProcessed: string | null;
  /** Unix seconds. */
  createdAt: number | null;
  /** Our refund id from its `notes` (`kioskhub_refund_id`), when it was made by us. */
  refundId: string | null;
}

export type RazorpayErrorKind = 'api' | 'network' | 'timeout' | 'bad_response';

export class RazorpayApiError extends Error {
  constructor(
    readonly kind: RazorpayErrorKind,
    message: string,
    /** HTTP status for `api` errors. */
    readonly httpStatus?: number,
    /** Razorpay's `error.code`, e.g. BAD_REQUEST_ERROR. */
    readonly providerCode?: string,
  ) {
    super(message);
    this.name = 'RazorpayApiError';
  }
}

/**
 * Razorpay's answer on the request itself, final: a 4xx (a payment fully refunded already, an
 * amount more than remains, an unknown payment, keys it does not take), which asking again gets
 * again. Not a 408 or 429 (too slow, too many requests), a 5xx or no answer: those are retried.
 */
export const isRazorpayRefusal = (err: unknown): err is RazorpayApiError =>
  err instanceof RazorpayApiError &&
  err.kind === 'api' &&
  err.httpStatus !== undefined &&
  err.httpStatus >= 400 &&
  err.httpStatus < 500 &&
  err.httpStatus !== 408 &&
  err.httpStatus !== 429;

type Json = Record<string, unknown>;
const obj = (v: unknown): Json | undefined =>
  v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Json) : undefined;
const str = (v: unknown): string | undefined => (typeof v === 'string' && v.length > 0 ? v : undefined);

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const JPEG_SIGNATURE = Buffer.from([0xff, 0xd8, 0xff]);
const MAX_IMAGE_BYTES = 5 * 1024 * 1024;

export function createRazorpayClient(options: RazorpayClientOptions) {
  const base = options.baseUrl.replace(/\/+$/, '');
  const doFetch: FetchLike = options.fetch ?? ((input, init) => fetch(input, init));
  const timeoutMs = options.timeoutMs ?? 15_000;
  const authorization = `Basic ${Buffer.from(`${options.keyId}:${options.keySecret}`).toString('base64')}`;

  async function send(what: string, url: string, init: RequestInit): Promise<Response> {
    try {
      return await doFetch(url, { ...init, signal: AbortSignal.timeout(timeoutMs) });
    } catch (err) {
      const e = err as Error;
      if (e.name === 'TimeoutError' || e.name === 'AbortError') {
        throw new RazorpayApiError(
          'timeout',
          `${what}: no answer from ${new URL(url).origin} within ${timeoutMs / 1000} s`,
        );
      }
      const cause = (e.cause as Error | undefined)?.message;
      throw new RazorpayApiError(
        'network',
        `${what}: cannot reach ${new URL(url).origin} (${cause ?? e.message})`,
      );
    }
  }

  async function callApi(
    what: string,
    method: 'GET' | 'POST',
    path: string,
    body?: Json,
    extraHeaders: Record<string, string> = {},
  ): Promise<Json> {
    const res = await send(what, `${base}${path}`, {
      method,
      headers: {
        authorization,
        accept: 'application/json',
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        ...extraHeaders,
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    let parsed: Json | undefined;
    try {
      parsed = obj(JSON.parse(text));
    } catch {
      parsed = undefined;
    }
    if (!res.ok) {
      const error = obj(parsed?.['error']);
      const code = str(error?.['code']);
      const description = str(error?.['description']) ?? (text.slice(0, 200) || res.statusText);
      const hint = res.status === 401 ? ' (check RAZORPAY_KEY_ID and RAZORPAY_KEY_SECRET)' : '';
      throw new RazorpayApiError(
        'api',
        `${what}: Razorpay answered ${res.status}${code ? ` ${code}` : ''}: ${description}${hint}`,
        res.status,
        code,
      );
    }
    if (!parsed)
      throw new RazorpayApiError(
        'bad_response',
        `${what}: Razorpay answered ${res.status} with a body that is not a JSON object`,
      );
    return parsed;
  }

  function parseQrCode(what: string, entity: Json): RazorpayQrCode {
    const id = str(entity['id']);
    const imageUrl = str(entity['image_url']);
    if (!id || !imageUrl)
      throw new RazorpayApiError(
        'bad_response',
        `${what}: the qr_code entity has no ${id ? 'image_url' : 'id'}`,
      );
    const amount = entity['payment_amount'];
    return {
      id,
      status: str(entity['status']) ?? 'unknown',
      imageUrl,
      shortUrl: str(entity['short_url']) ?? null,
      paymentAmountPaise: typeof amount === 'number' && Number.isSafeInteger(amount) ? amount : null,
      imageContent: str(entity['image_content']) ?? null,
    };
  }

  return {
    /** POST /v1/payments/qr_codes: a multiple-use, fixed-amount UPI QR code. */
    async createQrCode(request: CreateQrCodeRequest): Promise<RazorpayQrCode> {
      const what = `creating a Razorpay QR code for ${request.notes.machine_id}`;
      const entity = await callApi(what, 'POST', '/v1/payments/qr_codes', {
        type: 'upi_qr',
        name: request.name,
        usage: 'multiple_use',
        fixed_amount: true,
        payment_amount: request.paymentAmountPaise,
        description: request.description,
        notes: { machine_id: request.notes.machine_id },
      });
      const qr = parseQrCode(what, entity);
      if (qr.paymentAmountPaise !== null && qr.paymentAmountPaise !== request.paymentAmountPaise) {
        throw new RazorpayApiError(
          'bad_response',
          `${what}: Razorpay created ${qr.id} for ${qr.paymentAmountPaise} paise, not ${request.paymentAmountPaise}`,
        );
      }
      return qr;
    },

    /**
     * POST /v1/payments/{id}/refund: a refund of `amountPaise` (partial or full) of a captured
     * payment. `refundId`, our refund's id, is its idempotency key (X-Refund-Idempotency: 10+ of
     * `A–Z a–z 0–9 _ -`: a retry of the same refund, after an answer that was lost, returns that
     * refund instead of making another) and goes in its `notes` (`kioskhub_refund_id`), which
     * Razorpay echoes on the refund entity of its webhooks and status answers.
     */
    async refundPayment(
      paymentId: string,
      amountPaise: number,
      refundId: string,
    ): Promise<{ id: string; status: string }> {
      const what = `refunding Razorpay payment ${paymentId}`;
      const entity = await callApi(
        what,
        'POST',
        `/v1/payments/${encodeURIComponent(paymentId)}/refund`,
        { amount: amountPaise, notes: { [REFUND_ID_NOTE]: refundId } },
        { 'x-refund-idempotency': refundId },
      );
      const id = str(entity['id']);
      if (!id) throw new RazorpayApiError('bad_response', `${what}: the refund entity has no id`);
      return { id, status: str(entity['status']) ?? 'unknown' };
    },

    /**
     * GET /v1/refunds/{id}: where a refund stands (`pending`, `processed`, `failed`). A refund
     * entity without an id, payment id, amount or status is a `bad_response`.
     */
    async fetchRefund(refundId: string): Promise<RazorpayRefund> {
      const what = `fetching Razorpay refund ${refundId}`;
      const entity = await callApi(what, 'GET', `/v1/refunds/${encodeURIComponent(refundId)}`);
      const id = str(entity['id']);
      const paymentId = str(entity['payment_id']);
      const amount = entity['amount'];
      const status = str(entity['status']);
      if (!id || !paymentId || !status || typeof amount !== 'number' || !Number.isSafeInteger(amount))
        throw new RazorpayApiError(
          'bad_response',
          `${what}: the refund entity has no ${!id ? 'id' : !paymentId ? 'payment_id' : !status ? 'status' : 'integer amount'}`,
        );
      const createdAt = entity['created_at'];
      return {
        id,
        paymentId,
        amountPaise: amount,
        currency: str(entity['currency']) ?? null,
        status,
        speedProcessed: str(entity['speed_processed']) ?? null,
        createdAt: typeof createdAt === 'number' ? createdAt : null,
        refundId: refundIdOfNotes(entity['notes']) ?? null,
      };
    },

    /** POST /v1/payments/qr_codes/{id}/close: the code stops accepting payments. */
    async closeQrCode(qrCodeId: string): Promise<RazorpayQrCode> {
      const what = `closing Razorpay QR code ${qrCodeId}`;
      return parseQrCode(
        what,
        await callApi(what, 'POST', `/v1/payments/qr_codes/${encodeURIComponent(qrCodeId)}/close`),
      );
    },

    /**
     * Downloads the QR image Razorpay renders (image_url is a public short link that redirects
     * to it). No credentials are sent: the link may live on another host.
     */
    async downloadQrImage(imageUrl: string): Promise<{ bytes: Buffer; format: 'png' | 'jpeg' }> {
      const what = `downloading the QR image ${imageUrl}`;
      const res = await send(what, imageUrl, {
        method: 'GET',
        redirect: 'follow',
        headers: { accept: 'image/png,image/*' },
      });
      if (!res.ok) throw new RazorpayApiError('api', `${what}: answered ${res.status}`, res.status);
      const bytes = Buffer.from(await res.arrayBuffer());
      if (bytes.length > MAX_IMAGE_BYTES)
        throw new RazorpayApiError('bad_response', `${what}: image larger than ${MAX_IMAGE_BYTES} bytes`);
      if (bytes.subarray(0, 8).equals(PNG_SIGNATURE)) return { bytes, format: 'png' };
      if (bytes.subarray(0, 3).equals(JPEG_SIGNATURE)) return { bytes, format: 'jpeg' };
      throw new RazorpayApiError(
        'bad_response',
        `${what}: not a PNG or JPEG image (content-type ${res.headers.get('content-type') ?? 'none'})`,
      );
    },
  };
}

export type RazorpayClient = ReturnType<typeof createRazorpayClient>;
