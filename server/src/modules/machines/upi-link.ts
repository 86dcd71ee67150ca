// Static fixed-amount UPI deep link (PROVIDERS.md §5), for machines provisioned without a
// PSP. Only INR; the amount is rendered from integer paise without floating point.

export interface UpiLinkInput {
  /** Payee VPA, e.g. shop@okaxis. */
  vpa: string;
  payeeName: string;
  amountPaise: number;
  /** `tr`: the transaction reference; here the machine id. */
  reference: string;
  /** `tn`: a short note the payer sees. */
  note?: string;
}

const VPA = /^[A-Za-z0-9._-]{2,256}@[A-Za-z0-9.-]{2,64}$/;

export const isValidVpa = (vpa: string): boolean => VPA.test(vpa);

/** 2050 → "20.50". */
export function formatRupees(paise: number): string {
  if (!Number.isSafeInteger(paise) || paise < 0)
    throw new RangeError(`amount must be a non-negative whole number of paise, got ${paise}`);
  return `${Math.floor(paise / 100)}.${String(paise % 100).padStart(2, '0')}`;
}

// Values are percent-encoded, spaces as %20 (some apps show "+" literally); "@" is legal in a
// query and is kept readable, as UPI apps and PSPs print it.
const encodeValue = (value: string): string => encodeURIComponent(value).replace(/%40/g, '@');

export function buildUpiLink(input: UpiLinkInput): string {
  if (!isValidVpa(input.vpa)) throw new RangeError(`"${input.vpa}" is not a UPI VPA (expected name@handle)`);
  if (input.payeeName.trim() === '') throw new RangeError('the payee name must not be empty');
  if (!Number.isSafeInteger(input.amountPaise) || input.amountPaise < 1)
    throw new RangeError(`amount must be at least 1 paisa, got ${input.amountPaise}`);
  if (input.reference === '') throw new RangeError('the transaction reference must not be empty');
  const params: [string, string][] = [
    ['pa', input.vpa],
    ['pn', input.payeeName.trim()],
    ['am', formatRupees(input.amountPaise)],
    ['cu', 'INR'],
    ['tr', input.reference],
  ];
  if (input.note) params.push(['tn', input.note]);
  return `upi://pay?${params.map(([k, v]) => `${k}=${encodeValue(v)}`).join('&')}`;
}
