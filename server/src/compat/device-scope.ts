// Who a restaurant-kiosk device request acts for (CONTRACTS.md §9–§10): a machine key of the
// site, a staff token where allowed, or, under /sites/:siteId/ only, a key-less legacy device:
// a printer on the print routes of a site with printQueueOpen, or the cash reader on the cancel
// route of a site with keylessCashCancel.
import type { FastifyRequest } from 'fastify';
import { AppError, forbidden } from '../platform/errors.js';
import { requireStaff, type Authenticator } from '../platform/http/auth.js';
import type { CatalogService } from '../modules/catalog/catalog.service.js';

export interface DeviceScope {
  tenantId: string;
  /** null: a staff caller without a site in the URL (any site of the tenant). */
  siteId: string | null;
  machineId: string | null;
  /** The calling machine's kind (`kiosk`, `cash`, `printer`…); null for staff and key-less devices. */
  machineKind: string | null;
  actor: string;
  /** A key-less legacy device (printer or cash reader) let in by its site's opt-in. */
  keyless: boolean;
  /** Lease holder name for print jobs. */
  printer: string;
}

/** The actor of a key-less cash-reader cancel (audit rows, order timeline). */
export const LEGACY_CASH_READER = 'legacy-cash-reader';

export async function deviceScope(
  deps: {
    auth: Authenticator;
    catalog: Pick<CatalogService, 'findOpenSite' | 'findKeylessCashSite'>;
  },
  request: FastifyRequest,
  allow: {
    staff?: boolean;
    keylessPrinter?: boolean;
    /** The cash reader's key-less cancel, for a site with keylessCashCancel. */
    keylessCashCancel?: boolean;
    /** The machine kinds whose keys may call; any machine of the site when absent. */
    machineKinds?: readonly string[];
  },
): Promise<DeviceScope> {
  const urlSite = (request.params as { siteId?: string }).siteId;
  const hasCredentials =
    request.headers['x-api-key'] !== undefined || request.headers['authorization'] !== undefined;
  if (!hasCredentials) {
    const keyless = (
      site: { tenantId: string; id: string },
      actor: string,
      printer: string,
    ): DeviceScope => ({
      tenantId: site.tenantId,
      siteId: site.id,
      machineId: null,
      machineKind: null,
      actor,
      keyless: true,
      printer,
    });
    if (allow.keylessPrinter && urlSite) {
      const site = await deps.catalog.findOpenSite(urlSite);
      if (site) return keyless(site, 'legacy-printer', `legacy:${request.ip}`);
    }
    if (allow.keylessCashCancel && urlSite) {
      const site = await deps.catalog.findKeylessCashSite(urlSite);
      if (site) return keyless(site, LEGACY_CASH_READER, LEGACY_CASH_READER);
    }
    // Where the route can go without a key, say which site setting allows it (the operator's).
    const allows = urlSite
      ? allow.keylessPrinter
        ? ' (or, for a printer that cannot send one, the site’s printQueueOpen)'
        : allow.keylessCashCancel
          ? ' (or, for a cash reader that cannot send one, the site’s keylessCashCancel)'
          : ''
      : '';
    throw new AppError('UNAUTHORIZED', `send X-API-Key with the key of a machine of this site${allows}`);
  }
  const principal = await deps.auth.fromHeaders(request.headers);
  if (principal.kind === 'machine') {
    if (urlSite !== undefined && urlSite !== principal.siteId)
      throw forbidden(`this key belongs to site ${principal.siteId}, not ${urlSite}`);
    if (allow.machineKinds && !allow.machineKinds.includes(principal.machineKind))
      throw forbidden(
        `machine ${principal.machineId} is a ${principal.machineKind}: this route takes the key of a ${allow.machineKinds.join(' or ')}`,
      );
    return {
      tenantId: principal.tenantId,
      siteId: principal.siteId,
      machineId: principal.machineId,
      machineKind: principal.machineKind,
      actor: principal.actor,
      keyless: false,
      printer: principal.machineId,
    };
  }
  if (!allow.staff) throw forbidden('this route is for devices: use a machine key');
  requireStaff(principal);
  return {
    tenantId: principal.tenantId ?? 'default',
    siteId: urlSite ?? null,
    machineId: null,
    machineKind: null,
    actor: principal.actor,
    keyless: false,
    printer: principal.actor,
  };
}

/** The site a device call is about; staff without a site in the URL get the default site. */
export const siteOf = (scope: DeviceScope): string => scope.siteId ?? 'default';
