// Queries several screens share (sites, tenants, every machine for pickers) and small hooks.
import type { FleetMachineView, Page, SiteView, TenantView } from '@kioskhub/protocol';
import { useQuery } from '@tanstack/react-query';
import { useEffect, useState } from 'react';
import { useSearchParams } from 'wouter';
import { api } from './api.ts';
import { useAuth } from './auth.tsx';

export function useSites() {
  return useQuery({
    queryKey: ['sites'],
    queryFn: () => api<Page<SiteView>>('/v1/sites'),
    staleTime: 60_000,
  });
}

/** Tenants, for ADMIN_TOKEN only (an empty list for staff). */
export function useTenants() {
  const { allTenants } = useAuth();
  return useQuery({
    queryKey: ['tenants'],
    queryFn: () => api<Page<TenantView>>('/v1/tenants'),
    enabled: allTenants,
    staleTime: 60_000,
  });
}

/** Every item of a list (`path` without a query), following its cursors, up to `max`. */
export async function fetchAllPages<T>(path: string, max = 2000): Promise<T[]> {
  const items: T[] = [];
  let cursor: string | null = null;
  do {
    const page: Page<T> = await api<Page<T>>(
      `${path}?limit=200${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
    );
    items.push(...page.items);
    cursor = page.nextCursor;
  } while (cursor && items.length < max);
  return items;
}

/** Every machine (ids and names) for filter pickers; follows cursors up to 2,000. */
export function useAllMachines() {
  return useQuery({
    queryKey: ['fleet', 'all'],
    queryFn: () => fetchAllPages<FleetMachineView>('/v1/fleet'),
    staleTime: 30_000,
  });
}

/** Re-renders every `ms` so relative times ("2 min ago") stay true. */
export function useNow(ms = 15_000): number {
  const [now, setNow] = useState(Date.now);
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(t);
  }, [ms]);
  return now;
}

/** Filters kept in the URL's query string, so they survive a reload and can be shared. */
export function useFilters(): [URLSearchParams, (changes: Record<string, string | undefined>) => void] {
  const [params, setParams] = useSearchParams();
  const update = (changes: Record<string, string | undefined>) =>
    setParams(
      (prev) => {
        const next = new URLSearchParams(prev);
        for (const [k, v] of Object.entries(changes)) {
          if (v === undefined || v === '') next.delete(k);
          else next.set(k, v);
        }
        return next;
      },
      { replace: true },
    );
  return [params, update];
}
