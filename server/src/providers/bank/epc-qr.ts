// The EPC069-12 ("GiroCode") payload for a SEPA credit transfer: version 002, UTF-8, the payee,
// the exact amount in euros and our RF reference in the structured-remittance line, so a banking
// app fills in everything from one scan. QR error correction M, at most 331 bytes.
import QRCode from 'qrcode';
import { formatMinor } from '../../platform/money.js';

export interface EpcTransfer {
  name: string;
  iban: string;
  bic?: string | undefined;
  amountMinor: number;
  currency: string;
  /** An ISO 11649 RF reference (line 10, structured remittance). */
  reference: string;
}

export const EPC_MAX_BYTES = 331;
/** EPC069-12: from 0.01 to 999999999.99 euros. */
const MAX_EUR_MINOR = 99_999_999_999;

export class EpcError extends Error {}

export function epcPayload(t: EpcTransfer): string {
  if (t.currency !== 'EUR') throw new EpcError(`an EPC QR code pays euros only, not ${t.currency}`);
  if (!Number.isSafeInteger(t.amountMinor) || t.amountMinor < 1 || t.amountMinor > MAX_EUR_MINOR)
    throw new EpcError(`an EPC QR code pays 0.01 to 999999999.99 EUR, not ${t.amountMinor} cents`);
  // 70 characters, counted as characters: a cut never splits a character in two.
  const name = Array.from(t.name.replace(/[\r\n]+/g, ' ').trim())
    .slice(0, 70)
    .join('')
    .trim();
  if (!name) throw new EpcError('the beneficiary name is empty');
  const lines = [
    'BCD',
    '002',
    '1', // UTF-8
    'SCT',
    (t.bic ?? '').replace(/\s/g, '').toUpperCase(),
    name,
    t.iban.replace(/\s/g, '').toUpperCase(),
    `EUR${formatMinor(t.amountMinor, 'EUR')}`,
    '', // purpose code
    t.reference, // structured remittance; the unstructured line after it stays out
  ];
  const payload = lines.join('\n');
  if (Buffer.byteLength(payload, 'utf8') > EPC_MAX_BYTES)
    throw new EpcError(`the EPC payload is longer than ${EPC_MAX_BYTES} bytes`);
  return payload;
}

/** The payload as a PNG QR code (error correction M), as a data: URL an <img> shows directly. */
export const epcQrPngUrl = (payload: string): Promise<string> =>
  QRCode.toDataURL(payload, { errorCorrectionLevel: 'M', type: 'image/png', margin: 2, scale: 6 });
