// The secret in an unsigned provider's callback URL (`?key=`), compared in constant time: both
// sides are hashed first, so neither the length nor any prefix of the secret leaks through timing.
import { createHash, timingSafeEqual } from 'node:crypto';

const digest = (value: string): Buffer => createHash('sha256').update(value, 'utf8').digest();

export function callbackKeyMatches(given: unknown, expected: string): boolean {
  if (typeof given !== 'string') return false;
  return timingSafeEqual(digest(given), digest(expected));
}
