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

/** The length of the references `rfReferenceForPayment` gives ("RF", 2 check digits, 12). */
const PAYMENT_REFERENCE_LENGTH = 16;

/**
 * The RF reference a remittance text carries: the whole text, or one written inside it ("Order 12
 * RF18 5390 0754 7034 thanks", as a payer who typed it by hand may send). Of the valid references
 * starting at a word `RF…`, one as long as ours wins (a shorter or longer run of words can pass
 * the check digits by chance), else the longest; null when there is none.
 */
export function findRfReference(text: string): string | null {
  const whole = normaliseRfReference(text);
  if (whole) return whole;
  const words = text
    .toUpperCase()
    .split(/[\s,;:/]+/)
    .filter(Boolean);
  let found: string | null = null;
  for (let i = 0; i < words.length; i += 1) {
    if (!/^RF\d{2}/.test(words[i]!)) continue;
    let joined = '';
    for (let j = i; j < words.length && joined.length + words[j]!.length <= 25; j += 1) {
      joined += words[j];
      const ref = normaliseRfReference(joined);
      if (!ref || found?.length === PAYMENT_REFERENCE_LENGTH) continue;
      if (found === null || ref.length === PAYMENT_REFERENCE_LENGTH || ref.length > found.length) found = ref;
    }
  }
  return found;
}
