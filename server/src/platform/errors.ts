// Typed domain errors with stable codes (CONTRACTS.md §2); one HTTP mapper turns them into
// `{error: {code, message, details?}}`.

export const ERROR_STATUS = {
  VALIDATION_FAILED: 400,
  UNAUTHORIZED: 401,
  BAD_SIGNATURE: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  CONFLICT: 409,
  INVALID_STATE: 409,
  OUT_OF_STOCK: 409,
  INSUFFICIENT_CREDIT: 409,
  /** A download's Range lies outside the file (firmware images). */
  RANGE_NOT_SATISFIABLE: 416,
  PIN_LOCKED: 423,
  RATE_LIMITED: 429,
  INTERNAL: 500,
  PROVIDER_NOT_CONFIGURED: 503,
  UNAVAILABLE: 503,
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;

export class AppError extends Error {
  /** Seconds after which trying again may succeed: the answer's `Retry-After` header. */
  retryAfterSec?: number;

  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
    this.name = 'AppError';
  }
  get status(): number {
    return ERROR_STATUS[this.code];
  }
}

export const notFound = (what: string, id: string): AppError =>
  new AppError('NOT_FOUND', `${what} "${id}" does not exist`);
export const forbidden = (message = 'this credential may not do that'): AppError =>
  new AppError('FORBIDDEN', message);
export const validation = (message: string, details?: unknown): AppError =>
  new AppError('VALIDATION_FAILED', message, details);

/**
 * A `429 RATE_LIMITED` that may be tried again after `waitMs`: whole seconds (at least 1), told
 * in `Retry-After` and by `message`, so the two always agree.
 */
export function rateLimited(waitMs: number, message: (seconds: number) => string): AppError {
  const seconds = Math.max(1, Math.ceil(waitMs / 1000));
  const err = new AppError('RATE_LIMITED', message(seconds));
  err.retryAfterSec = seconds;
  return err;
}
