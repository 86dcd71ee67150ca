// NUL characters (U+0000) in text: PostgreSQL cannot store them in a text column and refuses the
// whole statement, so every request and socket payload is checked for them where it is validated.

/** The JSON pointer of the first string (or key) holding a NUL character, or undefined. */
export function nulPath(value: unknown, path = ''): string | undefined {
  if (typeof value === 'string') return value.includes('\u0000') ? path : undefined;
  if (value === null || typeof value !== 'object' || ArrayBuffer.isView(value)) return undefined;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const found = nulPath(value[i], `${path}/${i}`);
      if (found !== undefined) return found;
    }
    return undefined;
  }
  for (const [key, item] of Object.entries(value)) {
    if (key.includes('\u0000')) return `${path}/${key}`;
    const found = nulPath(item, `${path}/${key}`);
    if (found !== undefined) return found;
  }
  return undefined;
}

export const NUL_MESSAGE = 'must not contain NUL characters (\\u0000)';

/** PostgreSQL refused a NUL in text (22021 "invalid byte sequence … 0x00"): bad input, not a fault. */
export function isNulInText(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown } | null;
  return e?.code === '22021' && typeof e.message === 'string' && e.message.includes('0x00');
}
