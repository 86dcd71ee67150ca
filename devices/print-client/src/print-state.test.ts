// A failure report's text is cut to what the server takes, never inside a character.
import { describe, expect, it } from 'vitest';
import { cutText } from './print-state.js';

describe('cutText', () => {
  it('keeps short text, cuts long text at the limit', () => {
    expect(cutText('paper out', 1900)).toBe('paper out');
    expect(cutText('x'.repeat(2000), 1900)).toHaveLength(1900);
  });

  it('never keeps half of a surrogate pair (the server refuses it and the report was dropped)', () => {
    const text = `${'x'.repeat(1899)}🖨️ jammed`;
    const cut = cutText(text, 1900);
    expect(cut).toBe('x'.repeat(1899));
    expect(/\p{Cs}/u.test(cut)).toBe(false);
  });
});
