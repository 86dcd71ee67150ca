// Phone numbers in E.164 (`+254712345678`), whatever form a customer, a USSD gateway or a staff
// search typed them in: `0712 345 678` and `254712345678` name the same customer once the
// tenant's calling code is known. Pure rules, no I/O.

/** E.164: a `+`, a calling code not starting with 0, at most 15 digits in all. */
const E164 = /^\+[1-9]\d{6,14}$/;

export const isE164 = (phone: string): boolean => E164.test(phone);

/**
 * The E.164 form of `input`, or null when it cannot be one. `defaultCountryCode` ("254", digits
 * only) turns a local number (`0712…`, or a bare national number) into an international one; a
 * number that already starts with the calling code is taken as international.
 */
export function normalisePhone(input: string, defaultCountryCode: string | null): string | null {
  const trimmed = input.trim();
  if (trimmed.length === 0 || trimmed.length > 32) return null;
  // Spaces, dots, dashes and brackets are how people write numbers; anything else is not one.
  if (!/^\+?[\d\s().-]+$/.test(trimmed)) return null;
  const digits = trimmed.replace(/\D/g, '');
  let international: string;
  if (trimmed.startsWith('+')) international = digits;
  else if (digits.startsWith('00')) international = digits.slice(2);
  else if (defaultCountryCode && digits.startsWith('0')) international = defaultCountryCode + digits.slice(1);
  else if (defaultCountryCode && digits.startsWith(defaultCountryCode) && digits.length > 10)
    international = digits;
  else if (defaultCountryCode && digits.length <= 10) international = defaultCountryCode + digits;
  else international = digits;
  const phone = `+${international}`;
  return isE164(phone) ? phone : null;
}

/**
 * False when `input` is written internationally (`+…` or `00…`): then `normalisePhone` gives the
 * same answer whatever the tenant's calling code, and the caller need not look it up.
 */
export function needsCountryCode(input: string): boolean {
  const trimmed = input.trim();
  return !(trimmed.startsWith('+') || trimmed.replace(/\D/g, '').startsWith('00'));
}

/** The digits a mobile-money API wants: E.164 without the `+` (MTN MoMo's MSISDN). */
export const msisdn = (e164: string): string => e164.replace(/^\+/, '');

/** The national number without the calling code (Airtel's `subscriber.msisdn`). */
export function nationalNumber(e164: string, countryCode: string): string {
  const digits = msisdn(e164);
  return digits.startsWith(countryCode) ? digits.slice(countryCode.length) : digits;
}

/** Shown to staff and in SMS: the number with its last digits only (`+2547•••••678`). */
export const maskPhone = (e164: string): string =>
  e164.length <= 7 ? e164 : `${e164.slice(0, 5)}${'•'.repeat(e164.length - 8)}${e164.slice(-3)}`;
