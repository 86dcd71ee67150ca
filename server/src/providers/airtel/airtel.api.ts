// Airtel Money Collection (USSD push): an OAuth2 client-credentials token (cached until shortly
// before it expires), the collection request with our payment id as `transaction.id`, and the
// status enquiry that alone decides whether money arrived. The base URL and `fetch` are
// injectable so tests talk to a local fake of the documented API.
import { createBearerApi } from '../bearer-api.js';

export interface AirtelClientOptions {
  baseUrl: string;
  clientId: string;
  clientSecret: string;
  /** ISO 3166 alpha-2 (`UG`), sent as `X-Country`. */
  country: string;
  currency: string;
  fetch?: typeof fetch;
  timeoutMs?: number;
}

export interface AirtelCollect {
  /** Our payment id. */
  transactionId: string;
  /** Major units (Airtel takes a number). */
  amount: number;
  /** The national number, without the country code. */
  msisdn: string;
  reference: string;
}

/** The status enquiry's `data.transaction.status`, normalised (`NOT_FOUND`: Airtel knows no such id). */
export type AirtelStatus =
  | { status: 'NOT_FOUND' }
  | {
      status: 'TS' | 'TF' | 'TA' | 'TIP' | 'TE' | 'TR';
      airtelMoneyId: string | null;
      message: string | null;
    };

/** Airtel refused the collection for a reason a retry cannot fix. */
export class AirtelRefusedError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** A repeated `transaction.id`: an earlier attempt reached Airtel. */
const DUPLICATE_TRANSACTION = 'ESB000041';
const STATUSES = new Set(['TS', 'TF', 'TA', 'TIP', 'TE', 'TR']);

interface AirtelEnvelope {
  data?: { transaction?: { id?: unknown; status?: unknown; airtel_money_id?: unknown; message?: unknown } };
  status?: {
    code?: unknown;
    message?: unknown;
    result_code?: unknown;
    response_code?: unknown;
    success?: unknown;
  };
}

const str = (v: unknown): string | null =>
  typeof v === 'string' ? v : typeof v === 'number' && Number.isFinite(v) ? String(v) : null;

export function createAirtelClient(opts: AirtelClientOptions) {
  const api = createBearerApi({
    name: 'Airtel',
    baseUrl: opts.baseUrl,
    ...(opts.fetch ? { fetch: opts.fetch } : {}),
    ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}),
    token: {
      path: '/auth/oauth2/token',
      headers: { 'Content-Type': 'application/json', Accept: '*/*' },
      body: JSON.stringify({
        client_id: opts.clientId,
        client_secret: opts.clientSecret,
        grant_type: 'client_credentials',
      }),
    },
    defaultLifetimeSec: 180,
    renewEarlyMs: 30_000,
    headers: {
      'X-Country': opts.country,
      'X-Currency': opts.currency,
      'Content-Type': 'application/json',
      Accept: '*/*',
    },
  });

  /** An authorised call with its answer parsed as Airtel's envelope when it is JSON. */
  async function call(path: string, init: { method: string; body?: string }) {
    const { status, text } = await api.call(path, init);
    let body: AirtelEnvelope | undefined;
    try {
      body = JSON.parse(text) as AirtelEnvelope;
    } catch {
      body = undefined;
    }
    return { status, text, body };
  }

  return {
    country: opts.country,
    currency: opts.currency,

    /**
     * Sends the USSD push. Resolves when Airtel accepted it (or had this id already); throws
     * AirtelRefusedError for a definite refusal and an Error for anything worth retrying.
     */
    async collect(c: AirtelCollect): Promise<{ alreadyRequested: boolean }> {
      const { status, text, body } = await call('/merchant/v1/payments/', {
        method: 'POST',
        body: JSON.stringify({
          reference: c.reference,
          subscriber: { country: opts.country, currency: opts.currency, msisdn: c.msisdn },
          transaction: {
            amount: c.amount,
            country: opts.country,
            currency: opts.currency,
            id: c.transactionId,
          },
        }),
      });
      const resultCode = str(body?.status?.result_code) ?? str(body?.status?.code) ?? `HTTP_${status}`;
      if (resultCode === DUPLICATE_TRANSACTION) return { alreadyRequested: true };
      if (status >= 500 || status === 429 || !body) {
        throw new Error(`Airtel collection: HTTP ${status} ${text.slice(0, 200)}`);
      }
      // Only `status.success` says the push went out; HTTP 200 alone does not.
      if (status >= 200 && status < 300 && body.status?.success === true) return { alreadyRequested: false };
      throw new AirtelRefusedError(resultCode, `Airtel refused the collection: ${status} ${resultCode}`);
    },

    async status(transactionId: string): Promise<AirtelStatus> {
      const { status, text, body } = await call(
        `/standard/v1/payments/${encodeURIComponent(transactionId)}`,
        {
          method: 'GET',
        },
      );
      if (status === 404) return { status: 'NOT_FOUND' };
      if (status !== 200 || !body) throw new Error(`Airtel status: HTTP ${status} ${text.slice(0, 200)}`);
      const t = body.data?.transaction;
      const code = typeof t?.status === 'string' ? t.status.toUpperCase() : '';
      if (!STATUSES.has(code)) {
        // An envelope that says it failed, with no transaction: Airtel does not know the id (yet).
        if (body.status?.success === false) return { status: 'NOT_FOUND' };
        throw new Error(`Airtel status: an answer without a known status: ${text.slice(0, 200)}`);
      }
      return {
        status: code as 'TS' | 'TF' | 'TA' | 'TIP' | 'TE' | 'TR',
        airtelMoneyId: str(t?.airtel_money_id),
        message: str(t?.message),
      };
    },
  };
}

export type AirtelClient = ReturnType<typeof createAirtelClient>;
