// Rows about money that reached the deployment's own provider accounts and matches no tenant (a
// bank credit whose reference is no payment's, a card refund on a PaymentIntent that is no payment
// here). Nobody can say which tenant's customer sent it, so it belongs to whoever runs the
// deployment: its alerts and audit entries carry the tenant `*` (no tenant id can be `*`).
// ADMIN_TOKEN sees them; a tenant's staff see them only while theirs is the deployment's only
// tenant (a single operator's install), never beside other tenants.

export const OPERATOR_TENANT = '*';

/** True while the tenant is the deployment's only one (the tenants service's `isSole`). */
export type SoleTenant = (tenantId: string) => Promise<boolean>;

/**
 * The tenants whose alerts and audit entries a reader sees: null is every tenant (ADMIN_TOKEN);
 * staff see their own, and the operator's while their tenant is the only one.
 */
export async function readableTenants(
  reader: { tenantId: string | null },
  isSole: SoleTenant,
): Promise<readonly string[] | null> {
  if (reader.tenantId === null) return null;
  return (await isSole(reader.tenantId)) ? [reader.tenantId, OPERATOR_TENANT] : [reader.tenantId];
}
