// Keyset pages, newest id first: a list reads `limit + 1` rows, so the extra row tells whether
// there is a next page without counting.

/** `limit + 1` rows (ids descending) → the first `limit`, mapped, and the cursor of the next page. */
export function pageOf<R extends { id: string }, T>(
  rows: readonly R[],
  limit: number,
  map: (row: R) => T,
): { items: T[]; nextCursor: string | null } {
  const page = rows.slice(0, limit);
  return { items: page.map(map), nextCursor: rows.length > limit ? (page.at(-1)?.id ?? null) : null };
}
