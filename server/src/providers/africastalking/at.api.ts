// Africa's Talking SMS API (POST {AT_API_BASE}/version1/messaging, form-encoded, `apiKey` header;
// success is HTTP 201 with a per-recipient statusCode). Only what Kioskhub sends: one message to
// one number. The base URL is configurable so tests talk to a local fake of the documented API;
// the sandbox app (username `sandbox`) goes to the sandbox host unless another base is given.

export interface AtSmsClient {
  send(to: string, message: string): Promise<{ messageId: string | null }>;
}

/** An answer from Africa's Talking that will not get better by retrying (a bad number, a blacklist). */
export class AtPermanentError extends Error {}

/** Recipient status codes that mean the message was accepted (Processed, Sent, Queued). */
const ACCEPTED = new Set([100, 101, 102]);
/** Codes a retry cannot fix: invalid sender or number, unsupported number, blacklisted, DND. */
const PERMANENT = new Set([402, 403, 404, 406, 409]);

const LIVE_HOST = 'api.africastalking.com';
const SANDBOX_BASE = 'https://api.sandbox.africastalking.com';

/**
 * The API base to use: a sandbox app (username `sandbox`, as the official SDK decides) left on the
 * live default is sent to the sandbox host, where its key is valid; any other base is kept.
 */
export function atApiBase(baseUrl: string, username: string): string {
  const sandbox = username.trim().toLowerCase() === 'sandbox';
  return sandbox && new URL(baseUrl).hostname === LIVE_HOST ? SANDBOX_BASE : baseUrl;
}

export function createAtSmsClient(opts: {
  baseUrl: string;
  username: string;
  apiKey: string;
  from?: string;
  timeoutMs?: number;
  fetch?: typeof fetch;
}): AtSmsClient {
  const doFetch = opts.fetch ?? fetch;
  const endpoint = new URL('/version1/messaging', atApiBase(opts.baseUrl, opts.username));
  return {
    async send(to, message) {
      const body = new URLSearchParams({ username: opts.username, to, message });
      if (opts.from) body.set('from', opts.from);
      const response = await doFetch(endpoint, {
        method: 'POST',
        headers: {
          apiKey: opts.apiKey,
          Accept: 'application/json',
          'Content-Type': 'application/x-www-form-urlencoded',
        },
        body,
        signal: AbortSignal.timeout(opts.timeoutMs ?? 10_000),
      });
      const text = await response.text();
      if (response.status !== 201) {
        throw new Error(`Africa's Talking answered ${response.status}: ${text.slice(0, 200)}`);
      }
      const parsed = JSON.parse(text) as {
        SMSMessageData?: { Recipients?: { statusCode?: number; status?: string; messageId?: string }[] };
      };
      const recipient = parsed.SMSMessageData?.Recipients?.[0];
      if (!recipient || typeof recipient.statusCode !== 'number') {
        throw new Error(`Africa's Talking accepted no recipient: ${text.slice(0, 200)}`);
      }
      if (!ACCEPTED.has(recipient.statusCode)) {
        const what = `Africa's Talking refused the message: ${recipient.statusCode} ${recipient.status ?? ''}`;
        throw PERMANENT.has(recipient.statusCode) ? new AtPermanentError(what) : new Error(what);
      }
      return { messageId: recipient.messageId ?? null };
    },
  };
}
