// What the cafe screens share: the chosen cafe (a site, kept in the URL), the sub-navigation,
// and the staff overview of that cafe (GET /v1/cafe/sites/:id/overview, docs/cafe.md §10).
import type { SiteView } from '@kioskhub/protocol';
import { useQuery } from '@tanstack/react-query';
import { useEffect } from 'react';
import { Link, useLocation } from 'wouter';
import { api, qs } from '../api.ts';
import { useAuth } from '../auth.tsx';
import { useFilters, useSites } from '../data.ts';
import { SelectField } from '../ui.tsx';

export interface CafeSettings {
  tipPresetsPercent: number[];
  tipSplit: 'pool' | 'server';
  bankAccount: { name: string; iban: string; bic?: string } | null;
  cardGateway: string | null;
  payLater: boolean;
}

export interface CafeOrderView {
  id: string;
  orderNumber: string | null;
  status: string;
  tableId: string;
  items?: { sku: string; qty: number; name?: string; unitPriceMinor?: number; notes?: string }[];
  subtotalMinor: number;
  tipMinor: number;
  totalMinor: number;
  currency: string;
  paid: boolean;
  paidAt: string | null;
  createdAt: string;
}

export interface PendingPaymentView {
  paymentId: string;
  status: string;
  method: string;
  amountMinor: number;
  receivedMinor: number;
  currency: string;
  orderId: string | null;
  tableId: string | null;
  reference: string | null;
  createdAt: string;
  mismatched?: boolean;
}

export interface RefundRow {
  id: string;
  paymentId: string;
  orderId: string | null;
  method: string;
  amountMinor: number;
  currency: string;
  reason: string;
  destination: string;
  status: string;
  createdAt: string;
}

export interface CafeOverview {
  siteId: string;
  settings: CafeSettings;
  tables: { id: string; name: string; serverUserId: string | null; openOrders: CafeOrderView[] }[];
  cashToCollect: PendingPaymentView[];
  transfersToConfirm: PendingPaymentView[];
  refundsDue: RefundRow[];
  recentRefunds: RefundRow[];
}

/** The cafe being looked at (`?site=`), defaulting to the first site that is not `default`. */
export function useCafeSite(): { site: SiteView | undefined; sites: SiteView[]; tenantQs: string } {
  const { allTenants } = useAuth();
  const sites = useSites().data?.items ?? [];
  const [params, setParams] = useFilters();
  const chosen = params.get('site');
  const site = sites.find((s) => s.id === chosen) ?? sites.find((s) => s.id !== 'default') ?? sites[0];
  useEffect(() => {
    if (site && site.id !== chosen) setParams({ site: site.id });
  }, [site, chosen, setParams]);
  return { site, sites, tenantQs: qs({ tenantId: allTenants ? site?.tenantId : undefined }) };
}

export function useCafeOverview(site: SiteView | undefined, tenantQs: string) {
  return useQuery({
    queryKey: ['cafe', 'overview', site?.id, tenantQs],
    queryFn: () => api<CafeOverview>(`/v1/cafe/sites/${encodeURIComponent(site!.id)}/overview${tenantQs}`),
    enabled: site !== undefined,
    // Live events refresh it at once (live.tsx); this is the safety net.
    refetchInterval: 30_000,
  });
}

const TABS = [
  { href: '/staff', label: 'Tables & payments' },
  { href: '/staff/kitchen', label: 'Kitchen' },
  { href: '/staff/settings', label: 'Settings & QR codes' },
];

/** The cafe header: page title, cafe picker and the three cafe screens. */
export function CafeHeader({
  title,
  site,
  sites,
}: {
  title: string;
  site: SiteView | undefined;
  sites: SiteView[];
}) {
  const [location] = useLocation();
  const [, setParams] = useFilters();
  return (
    <>
      <div className="page-head">
        <h1>{title}</h1>
        {sites.length > 1 && (
          <SelectField
            label="Cafe"
            value={site?.id ?? ''}
            onChange={(e) => setParams({ site: e.target.value })}
            options={sites.map((s) => ({ value: s.id, label: `${s.name} (${s.id})` }))}
          />
        )}
      </div>
      <nav aria-label="Cafe" className="subnav">
        {TABS.map((t) => (
          <Link
            key={t.href}
            href={`${t.href}${site ? `?site=${encodeURIComponent(site.id)}` : ''}`}
            aria-current={location === t.href ? 'page' : undefined}
          >
            {t.label}
          </Link>
        ))}
      </nav>
    </>
  );
}

export const itemsText = (items: CafeOrderView['items']): string =>
  (items ?? []).map((i) => `${i.qty} × ${i.name ?? i.sku}`).join(', ');
