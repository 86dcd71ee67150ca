// ISO 11649 creditor references ("RF" + two check digits + up to 21 letters or digits): the
// structured remittance a payer's bank carries to ours unchanged, so an incoming credit names
// the payment it is for. The check digits make a mistyped reference detectable.
import { mod97 } from '../../modules/cafe/iban.js';

const BODY = /^[A-Z0-9]{1,21}$/;

/** The RF reference for `body` (1–21 letters or digits). */
export function rfReference(body: string): string {
  const b = body.toUpperCase();
  if (!BODY.test(b)) throw new Error(`an RF reference body is 1–21 letters or digits, got "${body}"`);
  const check = 98 - mod97(`${b}RF00`);
  return `RF${String(check).padStart(2, '0')}${b}`;
}

/**
 * A payment's own reference: the last 12 characters of its ULID id (60 random bits, and distinct
 * between ids made in the same millisecond, which count up from there).
 */
export const rfReferenceForPayment = (paymentId: string): string =>
  rfReference(paymentId.replace(/[^0-9A-Za-z]/g, '').slice(-12));

/** The reference in its electronic form (no spaces, upper case), or null when it is not valid. */
export function normaliseRfReference(input: string): string | null {
  const ref = input.replace(/\s/g, '').toUpperCase();
  if (!/^RF\d{2}[A-Z0-9]{1,21}$/.test(ref)) return null;
  return mod97(ref.slice(4) + ref.slice(0, 4)) === 1 ? ref : null;
}
