// `Kioskhub-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">` over the raw bytes, the
// way Stripe signs its webhooks: the timestamp is inside the MAC, several v1 values may be sent
// while a secret rotates, comparison is constant-time, and a signature older (or further ahead)
// than the tolerance is refused. A replay inside the window is caught by the event id.
import { createHmac, timingSafeEqual } from 'node:crypto';

export const SIGNATURE_TOLERANCE_S = 300;

export type SignatureCheck = 'ok' | 'missing' | 'malformed' | 'expired' | 'mismatch';

export const signBody = (raw: string | Buffer, secret: string, t: number): string =>
  createHmac('sha256', secret).update(`${t}.`).update(raw).digest('hex');

/** The header value a sender puts on `raw`. */
export const signatureHeader = (raw: string | Buffer, secret: string, t = Math.floor(Date.now() / 1000)) =>
  `t=${t},v1=${signBody(raw, secret, t)}`;

export function checkSignature(
  raw: Buffer,
  header: string | undefined,
  secrets: readonly string[],
  nowSeconds = Math.floor(Date.now() / 1000),
  toleranceSeconds = SIGNATURE_TOLERANCE_S,
): SignatureCheck {
  if (!header) return 'missing';
  let t: number | undefined;
  const given: Buffer[] = [];
  for (const part of header.split(',')) {
    const at = part.indexOf('=');
    const key = part.slice(0, at).trim();
    const value = part.slice(at + 1).trim();
    if (key === 't' && /^\d{1,12}$/.test(value)) t = Number(value);
    else if (key === 'v1' && /^[0-9a-f]{64}$/i.test(value)) given.push(Buffer.from(value, 'hex'));
  }
  if (t === undefined || given.length === 0) return 'malformed';
  if (Math.abs(nowSeconds - t) > toleranceSeconds) return 'expired';
  let ok = false;
  // Every secret against every signature, so the time taken tells nothing.
  for (const secret of secrets) {
    const expected = Buffer.from(signBody(raw, secret, t), 'hex');
    for (const g of given) ok = timingSafeEqual(expected, g) || ok;
  }
  return ok ? 'ok' : 'mismatch';
}
