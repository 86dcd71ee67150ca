// The live order feed with filters (machine, site, status, date range) and CSV export of the
// filtered list: a one-time link the browser follows, so the file streams to disk, never into the
// page's memory.
import { ORDER_STATUSES, type OrderView, type Page } from '@kioskhub/protocol';
import { useInfiniteQuery } from '@tanstack/react-query';
import { useState } from 'react';
import { Link } from 'wouter';
import { api, followDownload, qs } from '../api.ts';
import { useAllMachines, useFilters, useSites } from '../data.ts';
import { dateTime, money, sameDay, time, titleCase } from '../format.ts';
import {
  Columns,
  Empty,
  ErrorNote,
  Loading,
  LoadMore,
  PeriodFields,
  SelectField,
  StatusBadge,
  TableWrap,
} from '../ui.tsx';

export function OrdersTable({ orders, label }: { orders: OrderView[]; label: string }) {
  const sites = useSites();
  const siteName = (o: OrderView) =>
    sites.data?.items.find((s) => s.id === o.siteId && s.tenantId === o.tenantId)?.name ?? o.siteId ?? '—';
  return (
    <TableWrap label={label}>
      <Columns
        names={[
          'Time',
          'Order',
          'Status',
          { name: 'Amount', num: true },
          'Machine',
          { name: 'Site', hideSm: true },
          { name: 'Source', hideSm: true },
        ]}
      />
      <tbody data-testid="order-rows">
        {orders.map((o) => (
          <tr key={o.id} data-order-id={o.id} data-status={o.status}>
            <td title={o.createdAt}>{sameDay(o.createdAt) ? time(o.createdAt) : dateTime(o.createdAt)}</td>
            <th scope="row">
              <Link href={`/orders/${o.id}`}>{o.orderNumber ?? `…${o.id.slice(-8)}`}</Link>
            </th>
            <td>
              <StatusBadge status={o.status} />
              {o.failureCode && <span className="muted small"> {o.failureCode}</span>}
            </td>
            <td className="num">{money(o.amount, o.currency)}</td>
            <td>
              {o.machineId ? (
                <Link href={`/machines/${encodeURIComponent(o.machineId)}`}>{o.machineId}</Link>
              ) : (
                '—'
              )}
            </td>
            <td className="hide-sm">{siteName(o)}</td>
            <td className="hide-sm">{o.source}</td>
          </tr>
        ))}
      </tbody>
    </TableWrap>
  );
}

export function OrdersPage() {
  const [filters, setFilters] = useFilters();
  const f = {
    machineId: filters.get('machine') ?? '',
    siteId: filters.get('site') ?? '',
    status: filters.get('status') ?? '',
    from: filters.get('from') ?? '',
    to: filters.get('to') ?? '',
  };
  const machines = useAllMachines();
  const sites = useSites();
  const [exporting, setExporting] = useState(false);
  const [exportError, setExportError] = useState<unknown>(null);
  const list = useInfiniteQuery({
    queryKey: ['orders', 'feed', f],
    queryFn: ({ pageParam }) =>
      api<Page<OrderView>>(`/v1/orders${qs({ ...f, limit: 50, cursor: pageParam })}`),
    initialPageParam: undefined as string | undefined,
    getNextPageParam: (last) => last.nextCursor ?? undefined,
  });
  const orders = list.data?.pages.flatMap((p) => p.items) ?? [];

  async function exportCsv() {
    setExporting(true);
    setExportError(null);
    try {
      // The export needs the bearer header a link cannot send: ask for a one-time link (60 s)
      // with the filters, then let the browser download it.
      const filters = Object.fromEntries(Object.entries(f).filter(([, v]) => v !== ''));
      const { url } = await api<{ url: string; expiresAt: string }>('/v1/orders/export-links', {
        method: 'POST',
        body: filters,
      });
      followDownload(url);
    } catch (err) {
      setExportError(err);
    } finally {
      setExporting(false);
    }
  }

  return (
    <>
      <div className="page-head">
        <h1>Orders</h1>
        <button
          type="button"
          className="secondary"
          onClick={() => void exportCsv()}
          disabled={exporting}
          aria-busy={exporting}
        >
          {exporting ? 'Preparing export…' : 'Export CSV'}
        </button>
      </div>
      <form className="filters" aria-label="Filter orders" onSubmit={(e) => e.preventDefault()}>
        <SelectField
          label="Machine"
          value={f.machineId}
          onChange={(e) => setFilters({ machine: e.target.value })}
          options={[
            { value: '', label: 'All machines' },
            ...(machines.data ?? []).map((m) => ({
              value: m.id,
              label: m.name === m.id ? m.id : `${m.name} (${m.id})`,
            })),
          ]}
        />
        <SelectField
          label="Site"
          value={f.siteId}
          onChange={(e) => setFilters({ site: e.target.value })}
          options={[
            { value: '', label: 'All sites' },
            ...(sites.data?.items ?? []).map((s) => ({ value: s.id, label: s.name })),
          ]}
        />
        <SelectField
          label="Status"
          value={f.status}
          onChange={(e) => setFilters({ status: e.target.value })}
          options={[
            { value: '', label: 'Any status' },
            ...ORDER_STATUSES.map((s) => ({ value: s, label: titleCase(s) })),
          ]}
        />
        <PeriodFields from={f.from} to={f.to} onChange={setFilters} />
      </form>
      <ErrorNote error={list.error ?? exportError} />
      {list.isPending ? (
        <Loading what="Loading orders" />
      ) : orders.length === 0 ? (
        <Empty>No orders match.</Empty>
      ) : (
        <OrdersTable orders={orders} label="Orders, newest first" />
      )}
      <LoadMore query={list} label="Load more orders" />
    </>
  );
}
