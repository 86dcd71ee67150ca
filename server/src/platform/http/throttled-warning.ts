// A warning that repeats at most once per interval, saying how many were held back meanwhile:
// a misconfigured device, a wrong secret or a service that went away must show in the log
// without flooding it.
import type { Logger } from 'pino';

/**
 * `heldAs` names the field that carries how many warnings were held back since the last one
 * (present only when some were).
 */
export function throttledWarning(
  logger: Logger,
  message: string,
  intervalMs = 60_000,
  heldAs = 'alsoRefusedSinceLastWarning',
) {
  let last = -Infinity;
  let held = 0;
  return (fields: Record<string, unknown>): void => {
    const now = Date.now();
    if (now - last < intervalMs) {
      held += 1;
      return;
    }
    last = now;
    logger.warn({ ...fields, ...(held > 0 ? { [heldAs]: held } : {}) }, message);
    held = 0;
  };
}
