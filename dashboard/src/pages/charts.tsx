// Charts for a chosen range, per site or machine: revenue by hour or day, orders by status,
// dispense success rate and machines online over time, and water (water-charts.tsx). Loaded on
// demand (Chart.js).
import { minorToMajor, ORDER_STATUSES, type StatsBucket, type StatsView } from '@kioskhub/protocol';
import { useQuery } from '@tanstack/react-query';
import type { ChartConfiguration } from 'chart.js';
import { useMemo } from 'react';
import { api, qs } from '../api.ts';
import { useAllMachines, useFilters, useSites } from '../data.ts';
import { money, titleCase } from '../format.ts';
import { ErrorNote, Loading, PeriodFields, Section, SelectField } from '../ui.tsx';
import { ChartCanvas, DataTable } from './chart-parts.tsx';
import { WaterCharts } from './water-charts.tsx';

/** The browser's time zone: the server buckets the charts by its days and hours. */
const localZone = (): string => Intl.DateTimeFormat().resolvedOptions().timeZone;

/**
 * Every bucket from `from` to `to` (local hours or days, as the server makes them with the
 * browser's zone), so quiet hours show as zero instead of vanishing.
 */
function buckets(from: string, to: string, bucket: StatsBucket): string[] {
  const d = new Date(from);
  if (bucket === 'hour') d.setMinutes(0, 0, 0);
  else d.setHours(0, 0, 0, 0);
  const out: string[] = [];
  while (d.getTime() < Date.parse(to) && out.length < 2000) {
    out.push(d.toISOString());
    // A local day is 23 or 25 hours across a DST change: step by the calendar, back to midnight
    // each time (after a day whose midnight does not exist, as in Cairo or Santiago, the date
    // alone would keep its 01:00 and miss every later day the server starts at 00:00).
    if (bucket === 'hour') d.setTime(d.getTime() + 3_600_000);
    else {
      d.setDate(d.getDate() + 1);
      d.setHours(0, 0, 0, 0);
    }
  }
  return out;
}

/** A bucket's start, in the browser's zone. */
const label = (iso: string, bucket: StatsBucket): string => {
  const d = new Date(iso);
  return bucket === 'hour'
    ? d.toLocaleString(undefined, { month: 'short', day: 'numeric', hour: '2-digit' })
    : d.toLocaleDateString(undefined, { month: 'short', day: 'numeric' });
};

/** A report's answer with the zone its days and hours are in (the server echoes the one sent). */
type Zoned<T> = T & { timeZone?: string };

function chartConfigs(stats: Zoned<StatsView>) {
  const axis = buckets(stats.from, stats.to, stats.bucket);
  const currencies = [...new Set(stats.revenue.map((r) => r.currency))];
  const currency = currencies[0] ?? 'INR';
  const revenueOf = (start: string) =>
    stats.revenue
      .filter((r) => r.start === start && r.currency === currency)
      .reduce((n, r) => n + r.amountMinor, 0);
  const online = stats.machinesOnline;
  const revenueConfig: ChartConfiguration = {
    type: 'bar',
    data: {
      labels: axis.map((a) => label(a, stats.bucket)),
      datasets: [
        {
          label: `Revenue (${currency})`,
          data: axis.map((a) => minorToMajor(revenueOf(a), currency)),
          backgroundColor: '#1f6feb',
        },
      ],
    },
    options: { maintainAspectRatio: false, animation: false, plugins: { legend: { display: false } } },
  };
  const statusConfig: ChartConfiguration = {
    type: 'bar',
    data: {
      labels: ORDER_STATUSES.map(titleCase),
      datasets: [
        {
          label: 'Orders',
          data: ORDER_STATUSES.map((s) => stats.ordersByStatus.find((x) => x.status === s)?.count ?? 0),
          backgroundColor: '#8250df',
        },
      ],
    },
    options: {
      maintainAspectRatio: false,
      animation: false,
      plugins: { legend: { display: false } },
      scales: { y: { ticks: { precision: 0 } } },
    },
  };
  const onlineConfig: ChartConfiguration = {
    type: 'line',
    data: {
      labels: online.map((p) =>
        new Date(p.at).toLocaleString(undefined, {
          month: 'short',
          day: 'numeric',
          hour: '2-digit',
          minute: '2-digit',
        }),
      ),
      datasets: [
        {
          label: 'Online',
          data: online.map((p) => p.online),
          borderColor: '#1a7f37',
          backgroundColor: 'rgba(26,127,55,.15)',
          fill: true,
          stepped: true,
          pointRadius: 0,
        },
        {
          label: 'Total',
          data: online.map((p) => p.total),
          borderColor: '#8c959f',
          borderDash: [4, 4],
          pointRadius: 0,
        },
      ],
    },
    options: {
      maintainAspectRatio: false,
      animation: false,
      scales: { y: { beginAtZero: true, ticks: { precision: 0 } } },
    },
  };
  return { revenueConfig, statusConfig, onlineConfig, currency, currencies };
}

function Charts({ stats }: { stats: Zoned<StatsView> }) {
  const { revenueConfig, statusConfig, onlineConfig, currency, currencies } = useMemo(
    () => chartConfigs(stats),
    [stats],
  );
  const totalRevenue = stats.revenue
    .filter((r) => r.currency === currency)
    .reduce((n, r) => n + r.amountMinor, 0);
  const rate = stats.dispense.rate;
  const statuses = stats.ordersByStatus.filter((s) => s.count > 0);
  const online = stats.machinesOnline;
  return (
    <div className="charts">
      <Section title={`Revenue by ${stats.bucket}`}>
        <p className="big">
          {money(totalRevenue, currency)}
          {currencies.length > 1 && (
            <span className="muted small"> (also {currencies.slice(1).join(', ')}: see the table)</span>
          )}
        </p>
        <ChartCanvas
          config={revenueConfig}
          summary={`Revenue by ${stats.bucket}: ${money(totalRevenue, currency)} in total`}
        />
        <DataTable
          caption={`Revenue by ${stats.bucket}`}
          head={[`Start (${stats.timeZone ?? 'UTC'})`, 'Currency', 'Paid', 'Refunded', 'Kept', 'Orders']}
          rows={stats.revenue.map((r) => [
            label(r.start, stats.bucket),
            r.currency,
            money(r.paidMinor, r.currency),
            money(r.refundedMinor, r.currency),
            money(r.amountMinor, r.currency),
            r.orders,
          ])}
        />
      </Section>
      <Section title="Orders by status">
        <ChartCanvas
          config={statusConfig}
          summary={`Orders by status: ${statuses.map((s) => `${s.count} ${titleCase(s.status)}`).join(', ') || 'none'}`}
        />
        <DataTable
          caption="Orders by status"
          head={['Status', 'Orders']}
          rows={stats.ordersByStatus.map((s) => [titleCase(s.status), s.count])}
        />
      </Section>
      <Section title="Dispense success rate">
        <p className="big" data-testid="success-rate">
          {rate === null ? 'No dispenses' : `${(rate * 100).toFixed(1)} %`}
        </p>
        <div
          className="meter"
          role="meter"
          aria-label="Dispense success rate"
          aria-valuemin={0}
          aria-valuemax={100}
          aria-valuenow={rate === null ? 0 : Math.round(rate * 100)}
        >
          <span style={{ width: `${(rate ?? 0) * 100}%` }} />
        </div>
        <p className="muted">
          {stats.dispense.success} succeeded · {stats.dispense.failed} failed · {stats.dispense.noResult}{' '}
          without a result
        </p>
      </Section>
      <Section title="Machines online">
        <ChartCanvas
          config={onlineConfig}
          summary={`Machines online over time; now ${online.at(-1)?.online ?? 0} of ${online.at(-1)?.total ?? 0}`}
        />
        <DataTable
          caption="Machines online (averages per bucket)"
          head={['At', 'Online', 'Total']}
          rows={online.map((p) => [p.at, p.online, p.total])}
        />
      </Section>
    </div>
  );
}

export default function ChartsPage() {
  const [filters, setFilters] = useFilters();
  const bucket = (filters.get('bucket') === 'day' ? 'day' : 'hour') satisfies StatsBucket;
  const f = {
    from: filters.get('from') ?? '',
    to: filters.get('to') ?? '',
    siteId: filters.get('site') ?? '',
    machineId: filters.get('machine') ?? '',
  };
  const sites = useSites();
  const machines = useAllMachines();
  const stats = useQuery({
    queryKey: ['stats', bucket, f],
    queryFn: () => api<Zoned<StatsView>>(`/v1/stats${qs({ ...f, bucket, timeZone: localZone() })}`),
    refetchInterval: 60_000,
  });
  return (
    <>
      <h1>Charts</h1>
      <form className="filters" aria-label="Chart range" onSubmit={(e) => e.preventDefault()}>
        <SelectField
          label="Group by"
          value={bucket}
          onChange={(e) => setFilters({ bucket: e.target.value })}
          options={[
            { value: 'hour', label: 'Hour (last 24 h)' },
            { value: 'day', label: 'Day (last 30 days)' },
          ]}
        />
        <PeriodFields from={f.from} to={f.to} onChange={setFilters} />
        <SelectField
          label="Site"
          value={f.siteId}
          onChange={(e) => setFilters({ site: e.target.value, machine: undefined })}
          options={[
            { value: '', label: 'All sites' },
            ...(sites.data?.items ?? []).map((s) => ({ value: s.id, label: s.name })),
          ]}
        />
        <SelectField
          label="Machine"
          value={f.machineId}
          onChange={(e) => setFilters({ machine: e.target.value })}
          options={[
            { value: '', label: 'All machines' },
            ...(machines.data ?? [])
              .filter((m) => !f.siteId || m.siteId === f.siteId)
              .map((m) => ({ value: m.id, label: m.id })),
          ]}
        />
      </form>
      <p className="muted small">Hours and days are those of this browser’s time zone ({localZone()}).</p>
      <ErrorNote error={stats.error} />
      {stats.data ? <Charts stats={stats.data} /> : stats.isPending && <Loading what="Loading charts" />}
      <WaterCharts from={f.from} to={f.to} days={bucket === 'day'} />
    </>
  );
}
