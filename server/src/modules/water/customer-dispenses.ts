// A customer's water taken from kiosks, newest first, for staff (the customer page of the
// dashboard). Reads the water_dispenses table owned by the water module.
import type { DispenseView } from '@kioskhub/protocol';
import type { Executor } from '../../platform/db/database.js';

export type { DispenseView };

export async function listCustomerDispenses(
  ex: Executor,
  tenantId: string,
  customerId: string,
  page: { cursor?: string; limit: number },
): Promise<{ items: DispenseView[]; nextCursor: string | null }> {
  let q = ex
    .selectFrom('water_dispenses')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .where('customer_id', '=', customerId)
    .orderBy('at', 'desc')
    .orderBy('id', 'desc')
    .limit(page.limit + 1);
  // The cursor is the `at|id` of the last row shown: ids of offline uploads are not time-ordered.
  if (page.cursor !== undefined) {
    const [at = '', id = ''] = page.cursor.split('|');
    q = q.where((eb) => eb.or([eb('at', '<', at), eb.and([eb('at', '=', at), eb('id', '<', id)])]));
  }
  const rows = await q.execute();
  const items = rows.slice(0, page.limit).map((r) => ({
    id: r.id,
    kioskId: r.kiosk_id,
    tap: r.tap === null ? null : Number(r.tap),
    heldMl: Number(r.held_ml),
    dispensedMl: r.dispensed_ml === null ? null : Number(r.dispensed_ml),
    status: r.status,
    flagged: r.flagged === 1,
    at: r.at,
    settledAt: r.settled_at,
  }));
  const last = items.at(-1);
  return { items, nextCursor: rows.length > page.limit && last ? `${last.at}|${last.id}` : null };
}
