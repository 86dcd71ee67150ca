// Water on the charts screen: litres per day, approvals and denials by reason, and plan revenue
// per plan in each currency (minor units shown with the currency's ISO 4217 decimals).
import type { WaterStatsView } from '@kioskhub/protocol';
import { useQuery } from '@tanstack/react-query';
import type { ChartConfiguration } from 'chart.js';
import { useMemo } from 'react';
import { api, qs } from '../api.ts';
import { money } from '../format.ts';
import { Empty, ErrorNote, Loading, Section } from '../ui.tsx';
import { ChartCanvas, DataTable } from './chart-parts.tsx';
import { localZone, useWaterOverview } from './water.tsx';

const DAY = 86_400_000;

/** The local date (`YYYY-MM-DD`) of a Date, in the browser's zone. */
const dateKey = (d: Date): string =>
  `${String(d.getFullYear()).padStart(4, '0')}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;

/**
 * Every local day of the range (the server counts litres per day of the browser's zone), so
 * days without water show as zero.
 */
function days(from: string, to: string): string[] {
  const d = new Date(from);
  d.setHours(0, 0, 0, 0);
  const out: string[] = [];
  for (; d.getTime() < Date.parse(to) && out.length < 400; d.setDate(d.getDate() + 1)) out.push(dateKey(d));
  return out;
}

/** A day key (a local date) as a label: the date itself, no zone to convert. */
const dayLabel = (day: string) =>
  new Date(`${day}T00:00:00Z`).toLocaleDateString(undefined, {
    month: 'short',
    day: 'numeric',
    timeZone: 'UTC',
  });

function configs(w: WaterStatsView) {
  const axis = days(w.from, w.to);
  const perDay = new Map(w.litresPerDay.map((d) => [d.day, d.litres]));
  const litresConfig: ChartConfiguration = {
    type: 'bar',
    data: {
      labels: axis.map(dayLabel),
      datasets: [{ label: 'Litres', data: axis.map((d) => perDay.get(d) ?? 0), backgroundColor: '#0969da' }],
    },
    options: { maintainAspectRatio: false, animation: false, plugins: { legend: { display: false } } },
  };
  const codes = [...w.verificationsByCode].sort(
    (a, b) => Number(b.approved) - Number(a.approved) || b.count - a.count,
  );
  const codesConfig: ChartConfiguration = {
    type: 'bar',
    data: {
      labels: codes.map((c) => c.reason),
      datasets: [
        {
          label: 'Verifications',
          data: codes.map((c) => c.count),
          backgroundColor: codes.map((c) => (c.approved ? '#1a7f37' : '#cf222e')),
        },
      ],
    },
    options: {
      indexAxis: 'y',
      maintainAspectRatio: false,
      animation: false,
      plugins: { legend: { display: false } },
      scales: { x: { beginAtZero: true, ticks: { precision: 0 } } },
    },
  };
  return { axis, litresConfig, codesConfig };
}

function RevenueByPlan({ w }: { w: WaterStatsView }) {
  const currencies = [...new Set(w.revenueByPlan.map((r) => r.currency))];
  if (currencies.length === 0) return <Empty>No plan payments in this range.</Empty>;
  return (
    <>
      {currencies.map((currency) => {
        const rows = w.revenueByPlan.filter((r) => r.currency === currency);
        const total = rows.reduce((n, r) => n + r.amountMinor, 0);
        const top = Math.max(1, ...rows.map((r) => r.amountMinor));
        return (
          <div key={currency} data-currency={currency}>
            <p className="big">{money(total, currency)}</p>
            <ul className="bars">
              {rows.map((r) => (
                <li key={r.planId}>
                  <span className="bar-label">{r.planName ?? r.planId}</span>
                  <span className="bar" aria-hidden="true">
                    <span style={{ width: `${(r.amountMinor / top) * 100}%` }} />
                  </span>
                  <span className="num">
                    {money(r.amountMinor, currency)} · {r.payments} paid
                  </span>
                </li>
              ))}
            </ul>
          </div>
        );
      })}
      <DataTable
        caption="Plan revenue"
        head={['Plan', 'Currency', 'Amount', 'Payments']}
        rows={w.revenueByPlan.map((r) => [
          r.planName ?? r.planId,
          r.currency,
          money(r.amountMinor, r.currency),
          r.payments,
        ])}
      />
    </>
  );
}

export function WaterCharts({ from, to, days: daily }: { from: string; to: string; days: boolean }) {
  // Water is counted per day: the hour view shows the last 7 days unless a range is chosen.
  const range =
    from || to || daily ? { from, to } : { from: new Date(Date.now() - 7 * DAY).toISOString(), to: '' };
  const water = useQuery({
    queryKey: ['stats', 'water', range.from.slice(0, 13), range.to],
    queryFn: () =>
      api<WaterStatsView & { timeZone?: string }>(
        `/v1/stats/water${qs({ ...range, timeZone: localZone() })}`,
      ),
    refetchInterval: 60_000,
  });
  const c = useMemo(() => (water.data ? configs(water.data) : null), [water.data]);
  const kiosks = useWaterOverview();
  const w = water.data;
  const approved = w?.verificationsByCode.filter((v) => v.approved).reduce((n, v) => n + v.count, 0) ?? 0;
  const denied = w?.verificationsByCode.filter((v) => !v.approved).reduce((n, v) => n + v.count, 0) ?? 0;
  const totalLitres = w?.litresPerDay.reduce((n, d) => n + d.litres, 0) ?? 0;
  // A tenant without water kiosks, and no water in the range, is not shown an empty section.
  const noWater = w && w.litresPerDay.length + w.verificationsByCode.length + w.revenueByPlan.length === 0;
  if (noWater && kiosks.data && kiosks.data.items.length === 0) return null;
  return (
    <>
      <h2 className="group-title">Water</h2>
      <p className="muted small">
        Water is counted per day of this browser’s time zone ({w?.timeZone ?? localZone()})
        {from || to || daily ? '' : ': the hour view shows the last 7 days'}.
      </p>
      <ErrorNote error={water.error} />
      {!w || !c ? (
        water.isPending && <Loading what="Loading water charts" />
      ) : (
        <div className="charts">
          <Section title="Litres per day">
            <p className="big" data-testid="water-litres">
              {totalLitres.toLocaleString(undefined, { maximumFractionDigits: 1 })} L
            </p>
            <ChartCanvas config={c.litresConfig} summary={`Litres per day: ${totalLitres} L in total`} />
            <DataTable
              caption="Litres per day"
              head={[`Day (${w.timeZone ?? 'UTC'})`, 'Litres', 'Dispenses']}
              rows={w.litresPerDay.map((d) => [d.day, d.litres, d.dispenses])}
            />
          </Section>
          <Section title="Approvals and denials by reason">
            <p className="big" data-testid="water-verifications">
              {approved} approved · {denied} denied
            </p>
            {w.verificationsByCode.length === 0 ? (
              <Empty>No verifications in this range.</Empty>
            ) : (
              <ChartCanvas
                config={c.codesConfig}
                summary={`Verifications: ${w.verificationsByCode.map((v) => `${v.count} ${v.reason}`).join(', ')}`}
              />
            )}
            <DataTable
              caption="Verifications by code"
              head={['Reason', 'Code', 'Approved', 'Count']}
              rows={w.verificationsByCode.map((v) => [v.reason, v.code, v.approved ? 'yes' : 'no', v.count])}
            />
          </Section>
          <Section title="Revenue by plan">
            <RevenueByPlan w={w} />
          </Section>
        </div>
      )}
    </>
  );
}
