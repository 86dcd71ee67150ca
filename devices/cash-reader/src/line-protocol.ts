// The acceptor's serial line protocol (the Arduino sketch of the earlier kiosk): it sends
// `BILL:<n>`, `COIN:<n>`, `READY`, `PONG` and `# …` comments; it takes PING, STATUS, RESET
// and TEST:BILL:<n> / TEST:COIN:<n>. Parsing is pure so every case is unit-tested.
import { parseAcceptorAmount } from './money.js';

export type InsertKind = 'BILL' | 'COIN';

export type AcceptorLine =
  /** `scale: 3`: `amountMinor` is in thousandths (a third decimal, e.g. a 5-fils coin `COIN:0.005`). */
  | { type: 'insert'; kind: InsertKind; amountMinor: number; scale?: 3 }
  | { type: 'ready' }
  | { type: 'pong' }
  | { type: 'comment'; text: string }
  | { type: 'blank' }
  /** A BILL/COIN line whose amount cannot be read: money may have gone in, so it is reported. */
  | { type: 'malformed'; line: string; reason: string }
  | { type: 'other'; line: string };

export function parseAcceptorLine(raw: string): AcceptorLine {
  const line = raw.trim();
  if (line === '') return { type: 'blank' };
  if (line.startsWith('#')) return { type: 'comment', text: line.slice(1).trim() };
  const upper = line.toUpperCase();
  if (upper === 'READY') return { type: 'ready' };
  if (upper === 'PONG') return { type: 'pong' };
  const insert = /^(BILL|COIN)\s*:\s*(.*)$/i.exec(line);
  if (insert) {
    const kind = (insert[1] ?? '').toUpperCase() as InsertKind;
    const text = (insert[2] ?? '').trim();
    const amount = parseAcceptorAmount(text);
    if (amount === undefined)
      return {
        type: 'malformed',
        line,
        reason: `"${text}" is not a positive amount with at most 3 decimals`,
      };
    return { type: 'insert', kind, ...amount };
  }
  return { type: 'other', line };
}

export type AcceptorCommand = 'PING' | 'STATUS' | 'RESET' | `TEST:${InsertKind}:${number}`;

/** The bytes of one command line. */
export const encodeCommand = (command: AcceptorCommand): string => `${command}\n`;
