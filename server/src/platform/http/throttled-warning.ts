// A warning that repeats at most once per interval, saying how many were held back meanwhile:
// a misconfigured device or a wrong secret must show in the log without flooding it.
import type { Logger } from 'pino';

export function throttledWarning(logger: Logger, message: string, intervalMs = 60_000) {
  let last = -Infinity;
  let held = 0;
  return (fields: Record<string, unknown>): void => {
    const now = Date.now();
    if (now - last < intervalMs) {
      held += 1;
      return;
    }
    last = now;
    logger.warn({ ...fields, ...(held > 0 ? { alsoRefusedSinceLastWarning: held } : {}) }, message);
    held = 0;
  };
}
