// Keyset pages, newest id first: a list reads `limit + 1` rows, so the extra row tells whether
// there is a next page without counting.
import { validation, type AppError } from '../errors.js';

/** `limit + 1` rows (ids descending) → the first `limit`, mapped, and the cursor of the next page. */
export function pageOf<R extends { id: string }, T>(
  rows: readonly R[],
  limit: number,
  map: (row: R) => T,
): { items: T[]; nextCursor: string | null } {
  const page = rows.slice(0, limit);
  return { items: page.map(map), nextCursor: rows.length > limit ? (page.at(-1)?.id ?? null) : null };
}

/**
 * A cursor is the id of a row of the list it pages, visible to the caller. A list whose rows are
 * never deleted checks it (`found`: that row, looked up by id and tenant), because a made-up text
 * or another tenant's id would otherwise page from wherever it sorts and look like a first page.
 */
export async function knownCursor(
  cursor: string | undefined,
  found: (id: string) => Promise<unknown>,
): Promise<void> {
  if (cursor !== undefined && (await found(cursor)) === undefined) throw unknownCursor(cursor);
}

const unknownCursor = (cursor: string): AppError =>
  validation(`cursor "${cursor}" is not a nextCursor of this list`, { cursor });
