// Water kiosks: the list (status from heartbeats, taps, firmware, cache, today's litres and
// verifications) and one kiosk's page with its taps and a live feed of verifications.
import type { Page, WaterKioskOverview, WaterTapView, WaterVerificationView } from '@kioskhub/protocol';
import { useInfiniteQuery, useQuery } from '@tanstack/react-query';
import { Link } from 'wouter';
import { api, qs } from '../api.ts';
import { useAuth } from '../auth.tsx';
import { useNow, useSites } from '../data.ts';
import { ago, dateTime, sameDay, time } from '../format.ts';
import {
  Columns,
  Empty,
  ErrorNote,
  Listing,
  Loading,
  LoadMore,
  Section,
  StatusBadge,
  TableWrap,
} from '../ui.tsx';

/** Litres with one decimal, from millilitres. */
export const litres = (ml: number | null | undefined): string =>
  ml === null || ml === undefined
    ? '—'
    : `${(ml / 1000).toLocaleString(undefined, { maximumFractionDigits: 1 })} L`;

/** The browser's time zone: water reports count days (and "today") in it. */
export const localZone = (): string => Intl.DateTimeFormat().resolvedOptions().timeZone;

export function useWaterOverview() {
  return useQuery({
    queryKey: ['water', 'overview'],
    queryFn: () =>
      api<{ items: WaterKioskOverview[] }>(`/v1/water/kiosks/overview${qs({ timeZone: localZone() })}`),
    refetchInterval: 30_000,
  });
}

function tapsText(taps: WaterTapView[]): string {
  if (taps.length === 0) return '—';
  const faults = taps.filter((t) => t.fault).length;
  return `${taps.length} tap${taps.length === 1 ? '' : 's'}${faults ? `, ${faults} in fault` : ', all ok'}`;
}

export function WaterKiosksPage() {
  const overview = useWaterOverview();
  const sites = useSites();
  const now = useNow();
  const kiosks = overview.data?.items ?? [];
  const siteName = (id: string) => sites.data?.items.find((s) => s.id === id)?.name ?? id;
  const online = kiosks.filter((k) => k.status === 'ONLINE').length;
  const totalMl = kiosks.reduce((n, k) => n + k.dispensedTodayMl, 0);
  return (
    <>
      <h1>Water kiosks</h1>
      <p className="summary" aria-live="polite">
        <strong>{online}</strong> of {kiosks.length} kiosks online · <strong>{litres(totalMl)}</strong>{' '}
        dispensed today
      </p>
      <Listing
        query={overview}
        count={kiosks.length}
        loading="Loading water kiosks"
        empty="No water kiosks yet: create a machine of kind Water."
      >
        {() => (
          <TableWrap label="Water kiosks">
            <Columns
              names={[
                'Kiosk',
                'Status',
                { name: 'Site', hideSm: true },
                'Last heartbeat',
                'Taps',
                { name: 'Firmware', hideSm: true },
                { name: 'Cache', num: true, hideSm: true },
                { name: 'Today', num: true },
                { name: 'Approved', num: true },
                { name: 'Denied', num: true },
              ]}
            />
            <tbody>
              {kiosks.map((k) => (
                <tr key={k.kioskId} data-kiosk-id={k.kioskId}>
                  <th scope="row">
                    <Link href={`/water/${encodeURIComponent(k.kioskId)}`}>
                      {k.name === k.kioskId ? k.kioskId : `${k.name} (${k.kioskId})`}
                    </Link>
                  </th>
                  <td>
                    <StatusBadge status={k.status} />
                  </td>
                  <td className="hide-sm">{siteName(k.siteId)}</td>
                  <td title={k.lastHeartbeatAt ?? undefined}>{ago(k.lastHeartbeatAt, now)}</td>
                  <td className={k.taps.some((t) => t.fault) ? 'error' : undefined}>{tapsText(k.taps)}</td>
                  <td className="hide-sm">{k.firmware ?? '—'}</td>
                  <td className="num hide-sm">{k.cacheVersion ?? '—'}</td>
                  <td className="num">{litres(k.dispensedTodayMl)}</td>
                  <td className="num">{k.approvalsToday}</td>
                  <td className="num">{k.denialsToday}</td>
                </tr>
              ))}
            </tbody>
          </TableWrap>
        )}
      </Listing>
    </>
  );
}

function VerificationFeed({ kioskId }: { kioskId: string }) {
  const canSeeCustomers = useAuth().can('manageCustomers');
  const feed = useInfiniteQuery({
    queryKey: ['water', 'verifications', kioskId],
    queryFn: ({ pageParam }) =>
      api<Page<WaterVerificationView>>(
        `/v1/water/verifications${qs({ kioskId, limit: 50, cursor: pageParam })}`,
      ),
    initialPageParam: undefined as string | undefined,
    getNextPageParam: (last) => last.nextCursor ?? undefined,
  });
  const rows = feed.data?.pages.flatMap((p) => p.items) ?? [];
  return (
    <Section title="Verifications (live)">
      <Listing query={feed} count={rows.length} loading="Loading verifications" empty="No verifications yet.">
        {() => (
          <TableWrap label={`Verifications at ${kioskId}, newest first`}>
            <Columns
              names={[
                'Time',
                'Result',
                'Reason',
                { name: 'Volume', num: true },
                { name: 'Customer', hideSm: true },
              ]}
            />
            <tbody aria-live="polite" data-testid="verification-feed">
              {rows.map((v) => (
                <tr key={v.id} data-code={v.code}>
                  <td title={v.at}>{sameDay(v.at) ? time(v.at) : dateTime(v.at)}</td>
                  <td>
                    <StatusBadge status={v.approved ? 'VERIFIED' : 'DENIED'} />
                  </td>
                  <td>
                    {v.reason}
                    {!v.approved && <span className="muted small"> ({v.code})</span>}
                  </td>
                  <td className="num">{litres(v.volumeMl)}</td>
                  <td className="hide-sm">
                    {v.customerAccountId && v.customerId ? (
                      <>
                        {canSeeCustomers ? (
                          <Link href={`/customers/${encodeURIComponent(v.customerId)}`}>
                            {v.customerName ?? 'No name'}
                          </Link>
                        ) : (
                          (v.customerName ?? 'No name')
                        )}{' '}
                        <span className="muted small">{v.customerAccountId}</span>
                      </>
                    ) : (
                      <span className="muted">unknown phone</span>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </TableWrap>
        )}
      </Listing>
      <LoadMore query={feed} label="Load older verifications" />
    </Section>
  );
}

export function WaterKioskPage({ id }: { id: string }) {
  const overview = useWaterOverview();
  const sites = useSites();
  const now = useNow();
  const back = (
    <p>
      <Link href="/water">← Water kiosks</Link>
    </p>
  );
  if (overview.isPending) return <Loading what="Loading water kiosk" />;
  const k = overview.data?.items.find((x) => x.kioskId === id);
  if (!k) {
    return (
      <>
        {back}
        <h1>Water kiosk {id}</h1>
        <ErrorNote error={overview.error} />
        {!overview.error && <Empty>There is no water kiosk {id}.</Empty>}
      </>
    );
  }
  return (
    <>
      {back}
      <h1>
        {k.name === k.kioskId ? k.kioskId : `${k.name} (${k.kioskId})`} <StatusBadge status={k.status} />
      </h1>
      <dl className="facts">
        <dt>Site</dt>
        <dd>{sites.data?.items.find((s) => s.id === k.siteId)?.name ?? k.siteId}</dd>
        <dt>Last heartbeat</dt>
        <dd title={k.lastHeartbeatAt ?? undefined}>{ago(k.lastHeartbeatAt, now)}</dd>
        <dt>Firmware</dt>
        <dd>{k.firmware ?? '—'}</dd>
        <dt>Credential cache</dt>
        <dd>{k.cacheVersion === null ? '—' : `version ${k.cacheVersion}`}</dd>
        <dt>Signal</dt>
        <dd>{k.signalDbm === null ? '—' : `${k.signalDbm} dBm`}</dd>
        <dt>SD card free</dt>
        <dd>{k.sdFreeMb === null ? '—' : `${k.sdFreeMb} MB`}</dd>
        <dt>Dispensed today</dt>
        <dd data-testid="litres-today">{litres(k.dispensedTodayMl)}</dd>
        <dt>Verifications today</dt>
        <dd data-testid="verifications-today">
          {k.approvalsToday} approved · {k.denialsToday} denied
        </dd>
        <dt>Machine</dt>
        <dd>
          <Link href={`/machines/${encodeURIComponent(k.kioskId)}`}>Machine page (key, name, site)</Link>
        </dd>
      </dl>
      <Section title="Taps">
        {k.taps.length === 0 ? (
          <Empty>No heartbeat has reported taps yet.</Empty>
        ) : (
          <TableWrap label={`Taps of ${k.kioskId}`}>
            <Columns names={['Tap', 'Status', { name: 'Total dispensed', num: true }]} />
            <tbody>
              {k.taps.map((t) => (
                <tr key={t.tap} data-tap={t.tap}>
                  <th scope="row">Tap {t.tap}</th>
                  <td>
                    <span className={`badge badge-${t.fault ? 'bad' : 'ok'}`} data-status={t.status}>
                      {t.fault ? `Fault: ${t.status}` : t.status}
                    </span>
                  </td>
                  <td className="num">{litres(t.totalMl)}</td>
                </tr>
              ))}
            </tbody>
          </TableWrap>
        )}
      </Section>
      <VerificationFeed kioskId={k.kioskId} />
    </>
  );
}
