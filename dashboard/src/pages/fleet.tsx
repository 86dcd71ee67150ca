// Every machine with its status, site, last seen, queued orders and firmware; live.
import { MACHINE_KINDS, type FleetMachineView, type FleetSummaryView, type Page } from '@kioskhub/protocol';
import { useInfiniteQuery, useQuery } from '@tanstack/react-query';
import { Link } from 'wouter';
import { api, qs } from '../api.ts';
import { useFilters, useNow, useSites } from '../data.ts';
import { ago, titleCase } from '../format.ts';
import { Columns, Listing, LoadMore, SelectField, StatusBadge, TableWrap, TextField } from '../ui.tsx';

const STATUSES = ['IDLE', 'BUSY', 'OFFLINE', 'ERROR'];

export function FleetPage() {
  const [filters, setFilters] = useFilters();
  const siteId = filters.get('site') ?? '';
  const status = filters.get('status') ?? '';
  const kind = filters.get('kind') ?? '';
  const q = filters.get('q') ?? '';
  const sites = useSites();
  const now = useNow();
  const fleet = useInfiniteQuery({
    queryKey: ['fleet', 'list', { siteId, status, kind, q }],
    queryFn: ({ pageParam }) =>
      api<Page<FleetMachineView>>(
        `/v1/fleet${qs({ siteId, status, kind, q, limit: 100, cursor: pageParam })}`,
      ),
    initialPageParam: undefined as string | undefined,
    getNextPageParam: (last) => last.nextCursor ?? undefined,
  });
  // The summary counts every machine the filters match, not the pages loaded so far.
  const summary = useQuery({
    queryKey: ['fleet', 'summary', { siteId, status, kind, q }],
    queryFn: () => api<FleetSummaryView>(`/v1/fleet/summary${qs({ siteId, status, kind, q })}`),
  });
  const machines = fleet.data?.pages.flatMap((p) => p.items) ?? [];
  const siteName = (id: string) => sites.data?.items.find((s) => s.id === id)?.name ?? id;

  return (
    <>
      <h1>Fleet</h1>
      <p className="summary" aria-live="polite">
        {summary.data ? (
          <>
            <strong>{summary.data.online}</strong> of {summary.data.machines} machines online ·{' '}
            <strong>{summary.data.queuedOrders}</strong> orders queued
          </>
        ) : (
          '\u00a0'
        )}
      </p>
      <form
        className="filters"
        role="search"
        aria-label="Filter machines"
        onSubmit={(e) => e.preventDefault()}
      >
        <TextField
          label="Search by id or name"
          type="search"
          value={q}
          onChange={(e) => setFilters({ q: e.target.value })}
        />
        <SelectField
          label="Site"
          value={siteId}
          onChange={(e) => setFilters({ site: e.target.value })}
          options={[
            { value: '', label: 'All sites' },
            ...(sites.data?.items ?? []).map((s) => ({ value: s.id, label: s.name })),
          ]}
        />
        <SelectField
          label="Status"
          value={status}
          onChange={(e) => setFilters({ status: e.target.value })}
          options={[
            { value: '', label: 'Any status' },
            ...STATUSES.map((s) => ({ value: s, label: titleCase(s) })),
          ]}
        />
        <SelectField
          label="Kind"
          value={kind}
          onChange={(e) => setFilters({ kind: e.target.value })}
          options={[
            { value: '', label: 'Any kind' },
            ...MACHINE_KINDS.map((k) => ({ value: k, label: titleCase(k) })),
          ]}
        />
      </form>
      <Listing query={fleet} count={machines.length} loading="Loading machines" empty="No machines match.">
        {() => (
          <TableWrap label="Machines">
            <Columns
              names={[
                'Machine',
                'Status',
                'Site',
                'Last seen',
                { name: 'Queued', num: true },
                'Firmware',
                'Kind',
              ]}
            />
            <tbody>
              {machines.map((m) => (
                <tr key={m.id} data-machine-id={m.id}>
                  <th scope="row">
                    <Link href={`/machines/${encodeURIComponent(m.id)}`}>
                      {m.name === m.id ? m.id : `${m.name} (${m.id})`}
                    </Link>
                  </th>
                  <td>
                    <StatusBadge status={m.status} />
                  </td>
                  <td>{siteName(m.siteId)}</td>
                  <td title={m.lastSeenAt ?? undefined}>{ago(m.lastSeenAt, now)}</td>
                  <td className="num">{m.queuedOrders}</td>
                  <td>{m.firmware ?? '—'}</td>
                  <td>{titleCase(m.kind)}</td>
                </tr>
              ))}
            </tbody>
          </TableWrap>
        )}
      </Listing>
      <LoadMore query={fleet} label="Load more machines" />
    </>
  );
}
