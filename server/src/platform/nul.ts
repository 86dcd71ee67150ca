// Text neither database can store as sent, checked in every request and socket payload where it
// is validated:
// - NUL characters (U+0000): PostgreSQL refuses the whole statement;
// - lone UTF-16 surrogates (`"\ud800"` is valid JSON, not text): each engine stores its own
//   replacement (one U+FFFD on PostgreSQL, three on SQLite), so what was answered is not what is kept.

/** NUL, or half of a surrogate pair (a pair makes one astral code point, which \p{Cs} never matches). */
const UNSTORABLE = /\u0000|\p{Cs}/u;

/** The JSON pointer of the first string (or key) holding text no engine stores as sent, or undefined. */
export function nulPath(value: unknown, path = ''): string | undefined {
  if (typeof value === 'string') return UNSTORABLE.test(value) ? path : undefined;
  if (value === null || typeof value !== 'object' || ArrayBuffer.isView(value)) return undefined;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const found = nulPath(value[i], `${path}/${i}`);
      if (found !== undefined) return found;
    }
    return undefined;
  }
  for (const [key, item] of Object.entries(value)) {
    if (UNSTORABLE.test(key)) return `${path}/${key}`;
    const found = nulPath(item, `${path}/${key}`);
    if (found !== undefined) return found;
  }
  return undefined;
}

export const NUL_MESSAGE =
  'must not contain NUL characters (\\u0000) or unpaired surrogates (\\ud800–\\udfff)';

/** PostgreSQL refused a NUL in text (22021 "invalid byte sequence … 0x00"): bad input, not a fault. */
export function isNulInText(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown } | null;
  return e?.code === '22021' && typeof e.message === 'string' && e.message.includes('0x00');
}
