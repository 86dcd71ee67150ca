// Alerts (machines offline too long, failed dispenses, failed print jobs, unallocated cash…),
// acknowledged with a click.
import type { AlertView, Page } from '@kioskhub/protocol';
import { useInfiniteQuery, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { Link } from 'wouter';
import { api } from '../api.ts';
import { useAuth } from '../auth.tsx';
import { dateTime, titleCase } from '../format.ts';
import { Columns, Empty, ErrorNote, Loading, LoadMore, TableWrap } from '../ui.tsx';

function Subject({ alert }: { alert: AlertView }) {
  if (alert.subjectType === 'machine' && alert.kind.startsWith('WATER_'))
    return <Link href={`/water/${encodeURIComponent(alert.subjectId)}`}>{alert.subjectId}</Link>;
  if (alert.subjectType === 'machine')
    return <Link href={`/machines/${encodeURIComponent(alert.subjectId)}`}>{alert.subjectId}</Link>;
  if (alert.subjectType === 'water_tap') {
    const [kiosk = '', tap = ''] = alert.subjectId.split('/');
    return (
      <Link href={`/water/${encodeURIComponent(kiosk)}`}>
        {kiosk} tap {tap}
      </Link>
    );
  }
  if (alert.subjectType === 'order')
    return <Link href={`/orders/${alert.subjectId}`}>order …{alert.subjectId.slice(-8)}</Link>;
  if (alert.subjectType === 'print_job') return <Link href="/cash">print job</Link>;
  return <>{alert.subjectId}</>;
}

export function AlertsPage() {
  const { can } = useAuth();
  const client = useQueryClient();
  const [showAll, setShowAll] = useState(false);
  // Newest first, 200 a page; "Load more" follows nextCursor to the older ones.
  const alerts = useInfiniteQuery({
    queryKey: ['alerts', 'pages', showAll ? 'all' : 'open'],
    queryFn: ({ pageParam }) =>
      api<Page<AlertView>>(
        `/v1/alerts?limit=200${showAll ? '' : '&open=true'}${pageParam ? `&cursor=${pageParam}` : ''}`,
      ),
    initialPageParam: undefined as string | undefined,
    getNextPageParam: (last) => last.nextCursor ?? undefined,
    refetchInterval: 20_000,
  });
  const items = alerts.data?.pages.flatMap((p) => p.items) ?? [];
  const [error, setError] = useState<unknown>(null);
  const ack = async (ids: string[]) => {
    setError(null);
    try {
      for (const id of ids) await api(`/v1/alerts/${id}/ack`, { method: 'POST', body: {} });
    } catch (err) {
      setError(err);
    }
    await client.invalidateQueries({ queryKey: ['alerts'] });
  };
  const open = items.filter((a) => a.acknowledgedAt === null && !a.resolvedAt);

  return (
    <>
      <div className="page-head">
        <h1>Alerts</h1>
        <label className="check">
          <input type="checkbox" checked={showAll} onChange={(e) => setShowAll(e.target.checked)} /> Show
          acknowledged and resolved
        </label>
        {can('ackAlerts') && open.length > 1 && (
          <button type="button" className="secondary" onClick={() => void ack(open.map((a) => a.id))}>
            Acknowledge all
          </button>
        )}
      </div>
      <ErrorNote error={alerts.error ?? error} />
      {alerts.isPending ? (
        <Loading what="Loading alerts" />
      ) : items.length === 0 ? (
        <Empty>No open alerts.</Empty>
      ) : (
        <TableWrap label="Alerts, newest first">
          <Columns names={['Raised', 'Kind', 'About', 'What happened', 'State']} />
          <tbody>
            {items.map((a) => (
              <tr key={a.id} data-alert-kind={a.kind}>
                <td>{dateTime(a.createdAt)}</td>
                <td>{titleCase(a.kind)}</td>
                <td>
                  <Subject alert={a} />
                </td>
                <td>{a.message}</td>
                <td>
                  {a.resolvedAt ? (
                    <span className="muted small">Resolved {dateTime(a.resolvedAt)}</span>
                  ) : a.acknowledgedAt ? (
                    <span className="muted small">
                      Acknowledged by {a.acknowledgedBy} {dateTime(a.acknowledgedAt)}
                    </span>
                  ) : can('ackAlerts') ? (
                    <button
                      type="button"
                      className="secondary"
                      aria-label={`Acknowledge: ${a.message}`}
                      onClick={() => void ack([a.id])}
                    >
                      Acknowledge
                    </button>
                  ) : (
                    'open'
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </TableWrap>
      )}
      <LoadMore query={alerts} label="Load older alerts" />
    </>
  );
}
