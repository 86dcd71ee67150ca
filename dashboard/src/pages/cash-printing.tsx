// Cash and printing: open cash sessions per site, unallocated cash, print queue counts and
// failed print jobs with retry.
import type { CashSessionView, Page, PrintJobView, PrintSummaryView, SiteView } from '@kioskhub/protocol';
import { useQueries, useQuery, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { api, qs } from '../api.ts';
import { useAuth } from '../auth.tsx';
import { useSites } from '../data.ts';
import { dateTime, majorAmount } from '../format.ts';
import { Columns, Empty, ErrorNote, Loading, Section, TableWrap } from '../ui.tsx';
import { UnallocatedCash } from './unallocated-cash.tsx';

type Items<T> = { items: T[] };

function OpenSessions({ sites }: { sites: SiteView[] }) {
  const { allTenants } = useAuth();
  const results = useQueries({
    queries: sites.map((s) => ({
      queryKey: ['cash', 'sessions', s.tenantId, s.id],
      queryFn: () =>
        api<Items<CashSessionView>>(
          `/v1/cash/sessions${qs({ siteId: s.id, tenantId: allTenants ? s.tenantId : undefined })}`,
        ),
      refetchInterval: 15_000,
    })),
  });
  const rows = results.flatMap((r, i) =>
    (r.data?.items ?? []).map((session) => ({ session, site: sites[i]! })),
  );
  if (results.some((r) => r.isPending)) return <Loading what="Loading cash sessions" />;
  if (rows.length === 0) return <Empty>No open cash sessions.</Empty>;
  return (
    <TableWrap label="Open cash sessions">
      <Columns
        names={[
          'Started',
          'Order',
          'Site',
          { name: 'Required', num: true },
          { name: 'Inserted', num: true },
          { name: 'Remaining', num: true },
        ]}
      />
      <tbody>
        {rows.map(({ session: s, site }) => (
          <tr key={s.sessionId}>
            <td>{dateTime(s.startedAt)}</td>
            <th scope="row">{s.orderNumber}</th>
            <td>{site.name}</td>
            <td className="num">
              {majorAmount(s.totalRequired, s.currency)} {s.currency}
            </td>
            <td className="num">{majorAmount(s.amountInserted, s.currency)}</td>
            <td className="num">{majorAmount(s.remainingAmount, s.currency)}</td>
          </tr>
        ))}
      </tbody>
    </TableWrap>
  );
}

export function CashPrintingPage() {
  const { can } = useAuth();
  const client = useQueryClient();
  const sites = useSites();
  const summary = useQuery({
    queryKey: ['print', 'summary'],
    queryFn: () => api<Items<PrintSummaryView>>('/v1/print-jobs/summary'),
    refetchInterval: 15_000,
  });
  const failed = useQuery({
    queryKey: ['print', 'failed'],
    queryFn: () => api<Page<PrintJobView>>('/v1/print-jobs?status=FAILED&limit=100'),
    refetchInterval: 15_000,
  });
  const [retryError, setRetryError] = useState<unknown>(null);
  const siteName = (tenantId: string, id: string | null) =>
    sites.data?.items.find((s) => s.id === id && s.tenantId === tenantId)?.name ?? id ?? '—';

  return (
    <>
      <h1>Cash &amp; printing</h1>
      <Section title="Open cash sessions">
        {sites.data ? <OpenSessions sites={sites.data.items} /> : <ErrorNote error={sites.error} />}
      </Section>
      <Section title="Unallocated cash">
        <UnallocatedCash />
      </Section>
      <Section title="Print queues">
        <ErrorNote error={summary.error} />
        {summary.data &&
          (summary.data.items.length === 0 ? (
            <Empty>No print jobs yet.</Empty>
          ) : (
            <TableWrap label="Print queue counts per site">
              <Columns
                names={[
                  'Site',
                  { name: 'Pending', num: true },
                  { name: 'Printing', num: true },
                  { name: 'Printed', num: true },
                  { name: 'Failed', num: true },
                ]}
              />
              <tbody>
                {summary.data.items.map((s) => (
                  <tr key={`${s.tenantId}|${s.siteId}`}>
                    <th scope="row">{siteName(s.tenantId, s.siteId)}</th>
                    <td className="num">{s.pending}</td>
                    <td className="num">{s.leased}</td>
                    <td className="num">{s.printed}</td>
                    <td className="num">{s.failed}</td>
                  </tr>
                ))}
              </tbody>
            </TableWrap>
          ))}
      </Section>
      <Section title="Failed print jobs">
        <ErrorNote error={failed.error ?? retryError} />
        {failed.data &&
          (failed.data.items.length === 0 ? (
            <Empty>No failed print jobs.</Empty>
          ) : (
            <TableWrap label="Failed print jobs">
              <Columns names={['Queued', 'Site', { name: 'Attempts', num: true }, 'Error', 'Action']} />
              <tbody>
                {failed.data.items.map((j) => (
                  <tr key={j.jobId}>
                    <td>{dateTime(j.queuedAt)}</td>
                    <td>{siteName(j.tenantId, j.siteId)}</td>
                    <td className="num">{j.attempts}</td>
                    <td>{j.error ?? '—'}</td>
                    <td>
                      {can('retryPrint') && (
                        <button
                          type="button"
                          className="secondary"
                          aria-label={`Retry print job ${j.jobId}`}
                          onClick={async () => {
                            setRetryError(null);
                            try {
                              await api(`/v1/print-jobs/${j.jobId}/retry`, { method: 'POST', body: {} });
                              await client.invalidateQueries({ queryKey: ['print'] });
                            } catch (err) {
                              setRetryError(err);
                            }
                          }}
                        >
                          Retry
                        </button>
                      )}
                    </td>
                  </tr>
                ))}
              </tbody>
            </TableWrap>
          ))}
      </Section>
    </>
  );
}
