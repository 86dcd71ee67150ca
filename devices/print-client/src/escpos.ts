// A small ESC/POS writer: the handful of commands a receipt needs, and text encoded for code
// page 437 (ASCII plus common accented letters; ₱ prints as "PHP", anything else as "?").

const ESC = 0x1b;
const GS = 0x1d;
const LF = 0x0a;

export type Align = 'left' | 'center' | 'right';

export const COMMANDS = {
  /** ESC @: reset the printer to its defaults. */
  init: [ESC, 0x40],
  /** ESC t 0: character table PC437. */
  codePage437: [ESC, 0x74, 0x00],
  /** GS V 66 0: feed to the cutter, then partial cut. */
  cut: [GS, 0x56, 0x42, 0x00],
  align: (a: Align) => [ESC, 0x61, a === 'left' ? 0 : a === 'center' ? 1 : 2],
  bold: (on: boolean) => [ESC, 0x45, on ? 1 : 0],
  /** GS ! n: character width and height multipliers (1 or 2). */
  size: (width: 1 | 2, height: 1 | 2) => [GS, 0x21, ((width - 1) << 4) | (height - 1)],
  /** ESC d n: print and feed n lines. */
  feed: (lines: number) => [ESC, 0x64, Math.max(0, Math.min(255, lines))],
} as const;

const WORDS: [RegExp, string][] = [
  [/₱/g, 'PHP'],
  [/₹/g, 'Rs'],
  [/€/g, 'EUR'],
  [/[‘’‚′]/g, "'"],
  [/[“”„″]/g, '"'],
  [/[‐‑‒–—―]/g, '-'],
  [/…/g, '...'],
  [/\t/g, ' '],
];

// Code page 437 positions of the letters and signs receipts meet most.
const CP437: Record<string, number> = {
  Ç: 0x80,
  ü: 0x81,
  é: 0x82,
  â: 0x83,
  ä: 0x84,
  à: 0x85,
  å: 0x86,
  ç: 0x87,
  ê: 0x88,
  ë: 0x89,
  è: 0x8a,
  ï: 0x8b,
  î: 0x8c,
  ì: 0x8d,
  Ä: 0x8e,
  Å: 0x8f,
  É: 0x90,
  æ: 0x91,
  Æ: 0x92,
  ô: 0x93,
  ö: 0x94,
  ò: 0x95,
  û: 0x96,
  ù: 0x97,
  ÿ: 0x98,
  Ö: 0x99,
  Ü: 0x9a,
  '¢': 0x9b,
  '£': 0x9c,
  '¥': 0x9d,
  á: 0xa0,
  í: 0xa1,
  ó: 0xa2,
  ú: 0xa3,
  ñ: 0xa4,
  Ñ: 0xa5,
  '¿': 0xa8,
  '¡': 0xad,
  '°': 0xf8,
};

/** Text as the printer will show it, one character per printed column. */
export function printable(text: string): string {
  let out = WORDS.reduce((s, [pattern, replacement]) => s.replace(pattern, replacement), text);
  out = [...out]
    .map((ch) => {
      if (ch >= ' ' && ch <= '~') return ch;
      if (ch in CP437) return ch;
      const base = ch.normalize('NFD').replace(/[\u0300-\u036f]/g, '');
      return base.length === 1 && base >= ' ' && base <= '~' ? base : /[\p{Cc}]/u.test(ch) ? '' : '?';
    })
    .join('');
  return out;
}

/** Bytes of `text` in code page 437 (after `printable`). */
export function encodeText(text: string): number[] {
  return [...printable(text)].map((ch) => CP437[ch] ?? ch.charCodeAt(0));
}

/** Collects commands and text into one buffer. */
export function escpos() {
  const bytes: number[] = [];
  const builder = {
    raw(command: readonly number[]) {
      bytes.push(...command);
      return builder;
    },
    text(text: string) {
      bytes.push(...encodeText(text));
      return builder;
    },
    line(text = '') {
      bytes.push(...encodeText(text), LF);
      return builder;
    },
    toBuffer: (): Buffer => Buffer.from(bytes),
  };
  return builder;
}
