// MTN MoMo Collection API: an access token (cached until shortly before it expires), RequestToPay
// with our payment id as `X-Reference-Id`, and the status check that alone decides whether money
// arrived (the callback is unsigned). The base URL and `fetch` are injectable so tests talk to a
// local fake of the documented API.
import { createBearerApi } from '../bearer-api.js';

export interface MomoClientOptions {
  baseUrl: string;
  subscriptionKey: string;
  apiUser: string;
  apiKey: string;
  targetEnvironment: string;
  fetch?: typeof fetch;
  timeoutMs?: number;
}

export interface RequestToPay {
  /** Our payment id (a UUID v4, as MoMo requires). */
  referenceId: string;
  /** Major units as a string ("5000" for UGX 5000). */
  amount: string;
  currency: string;
  /** E.164 without the `+`. */
  msisdn: string;
  externalId: string;
  payerMessage: string;
  payeeNote: string;
  callbackUrl?: string;
}

/** What the status API says (`GET /collection/v1_0/requesttopay/{id}`), normalised. */
export type MomoStatus =
  | { status: 'NOT_FOUND' }
  | {
      status: 'PENDING' | 'SUCCESSFUL' | 'FAILED';
      amount: string | null;
      currency: string | null;
      financialTransactionId: string | null;
      reason: string | null;
    };

/** MoMo refused the request for a reason a retry cannot change (a bad number, a bad amount). */
export class MomoRefusedError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** `reason` is a string today and was `{code, message}` in older answers. */
function reasonCode(reason: unknown): string | null {
  if (typeof reason === 'string') return reason;
  if (reason && typeof reason === 'object' && typeof (reason as { code?: unknown }).code === 'string') {
    return (reason as { code: string }).code;
  }
  return null;
}

/** Strings in the schema arrive as numbers in the doc's example: accept both. */
const stringOf = (v: unknown): string | null =>
  typeof v === 'string' ? v : typeof v === 'number' && Number.isFinite(v) ? String(v) : null;

export function parseMomoStatus(body: unknown): MomoStatus | undefined {
  if (!body || typeof body !== 'object') return undefined;
  const b = body as Record<string, unknown>;
  const status = typeof b['status'] === 'string' ? b['status'].toUpperCase() : '';
  if (status !== 'PENDING' && status !== 'SUCCESSFUL' && status !== 'FAILED') return undefined;
  return {
    status,
    amount: stringOf(b['amount']),
    currency: typeof b['currency'] === 'string' ? b['currency'] : null,
    financialTransactionId: stringOf(b['financialTransactionId']),
    reason: reasonCode(b['reason']),
  };
}

export function createMomoClient(opts: MomoClientOptions) {
  const basic = Buffer.from(`${opts.apiUser}:${opts.apiKey}`).toString('base64');
  const { call } = createBearerApi({
    name: 'MoMo',
    baseUrl: opts.baseUrl,
    ...(opts.fetch ? { fetch: opts.fetch } : {}),
    ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}),
    token: {
      path: '/collection/token/',
      headers: { Authorization: `Basic ${basic}`, 'Ocp-Apim-Subscription-Key': opts.subscriptionKey },
    },
    defaultLifetimeSec: 3600,
    renewEarlyMs: 60_000,
    headers: {
      'X-Target-Environment': opts.targetEnvironment,
      'Ocp-Apim-Subscription-Key': opts.subscriptionKey,
    },
  });

  return {
    /**
     * Asks the payer to approve. Resolves when MoMo accepted the request (202), or had it already
     * (409 RESOURCE_ALREADY_EXIST: an earlier attempt reached it); throws MomoRefusedError for a
     * refusal a retry cannot fix, and an Error for anything worth retrying.
     */
    async requestToPay(r: RequestToPay): Promise<{ alreadyRequested: boolean }> {
      const { status, text } = await call('/collection/v1_0/requesttopay', {
        method: 'POST',
        headers: {
          'X-Reference-Id': r.referenceId,
          'Content-Type': 'application/json',
          ...(r.callbackUrl ? { 'X-Callback-Url': r.callbackUrl } : {}),
        },
        body: JSON.stringify({
          amount: r.amount,
          currency: r.currency,
          externalId: r.externalId,
          payer: { partyIdType: 'MSISDN', partyId: r.msisdn },
          payerMessage: r.payerMessage.slice(0, 160),
          payeeNote: r.payeeNote.slice(0, 160),
        }),
      });
      if (status === 202 || status === 200 || status === 201) return { alreadyRequested: false };
      if (status === 409) return { alreadyRequested: true };
      const code = (() => {
        try {
          return reasonCode((JSON.parse(text) as { code?: unknown }).code) ?? `HTTP_${status}`;
        } catch {
          return `HTTP_${status}`;
        }
      })();
      // 400 (a malformed number or amount) and 403/404 of the payer will not change on a retry.
      if (status === 400 || status === 403 || status === 404) {
        throw new MomoRefusedError(code, `MoMo refused the request to pay: ${status} ${code}`);
      }
      throw new Error(`MoMo request to pay: HTTP ${status} ${text.slice(0, 200)}`);
    },

    async status(referenceId: string): Promise<MomoStatus> {
      const { status, text } = await call(
        `/collection/v1_0/requesttopay/${encodeURIComponent(referenceId)}`,
        {
          method: 'GET',
        },
      );
      if (status === 404) return { status: 'NOT_FOUND' };
      if (status !== 200) throw new Error(`MoMo status: HTTP ${status} ${text.slice(0, 200)}`);
      const parsed = parseMomoStatus(JSON.parse(text));
      if (!parsed) throw new Error(`MoMo status: an answer without a known status: ${text.slice(0, 200)}`);
      return parsed;
    },
  };
}

export type MomoClient = ReturnType<typeof createMomoClient>;
