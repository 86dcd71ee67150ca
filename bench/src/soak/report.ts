// The soak's report: one self-contained HTML page (inline SVG charts, no script) with the
// samples, the flatness verdicts and the exactly-once audit.
import type { AuditLine } from './flow.js';
import { FLATNESS_METHOD, flatVerdict, type Flatness, type Sample } from './sampler.js';

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function chart(
  title: string,
  unit: string,
  samples: Sample[],
  series: { label: string; value: (s: Sample) => number; color: string }[],
  marks: number[],
  warmups: { start: number; end: number }[] = [],
): string {
  const W = 720;
  const H = 220;
  const pad = { l: 56, r: 12, t: 28, b: 28 };
  const tMax = Math.max(1, ...samples.map((s) => s.t));
  const vMax = Math.max(1e-9, ...samples.flatMap((s) => series.map((x) => x.value(s)))) * 1.1;
  const x = (t: number) => pad.l + (t / tMax) * (W - pad.l - pad.r);
  const y = (v: number) => H - pad.b - (v / vMax) * (H - pad.t - pad.b);
  const lines = series
    .map((s) => {
      // One line per life of the server: nothing is drawn across the kill -9.
      return [...new Set(samples.map((p) => p.life))]
        .map((life) => {
          const pts = samples
            .filter((p) => p.life === life)
            .map((p) => `${x(p.t).toFixed(1)},${y(s.value(p)).toFixed(1)}`)
            .join(' ');
          return `<polyline fill="none" stroke="${s.color}" stroke-width="1.8" points="${pts}"/>`;
        })
        .join('');
    })
    .join('');
  const ticks = [0, 0.5, 1]
    .map(
      (f) =>
        `<text x="${pad.l - 6}" y="${y(vMax * f) + 4}" text-anchor="end">${(vMax * f).toFixed(vMax < 10 ? 1 : 0)}</text>`,
    )
    .join('');
  const restart = marks
    .map(
      (t) =>
        `<line x1="${x(t)}" x2="${x(t)}" y1="${pad.t}" y2="${H - pad.b}" stroke="#c00" stroke-dasharray="4 3"/><text x="${x(t) + 4}" y="${pad.t + 10}" fill="#c00">kill -9</text>`,
    )
    .join('');
  // Warm-up windows, which the flatness check ignores, are shaded.
  const shade = warmups
    .map(
      (w) =>
        `<rect x="${x(w.start).toFixed(1)}" y="${pad.t}" width="${Math.max(0, x(w.end) - x(w.start)).toFixed(1)}" height="${H - pad.t - pad.b}" fill="#eee"/>`,
    )
    .join('');
  const legend = series
    .map((s, i) => `<text x="${pad.l + 10 + i * 170}" y="16" fill="${s.color}">■ ${esc(s.label)}</text>`)
    .join('');
  return `<figure><svg viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="${esc(title)}">
<rect x="${pad.l}" y="${pad.t}" width="${W - pad.l - pad.r}" height="${H - pad.t - pad.b}" fill="#fafafa" stroke="#ddd"/>
${shade}${ticks}${restart}${lines}${legend}
<text x="${W - pad.r}" y="${H - 8}" text-anchor="end">${tMax} s</text><text x="${pad.l}" y="${H - 8}">0 s</text>
</svg><figcaption>${esc(title)} (${esc(unit)})</figcaption></figure>`;
}

export function renderReport(input: {
  minutes: number;
  startedAt: string;
  samples: Sample[];
  restarts: number[];
  warmups: { start: number; end: number }[];
  flat: Flatness[];
  audit: AuditLine[];
  totals: Record<string, number>;
  extra: string[];
}): string {
  const colors = ['#1565c0', '#2e7d32', '#ef6c00', '#6a1b9a', '#00838f', '#ad1457'];
  const flows = Object.keys(input.totals);
  const row = (cells: string[], ok?: boolean) =>
    `<tr${ok === false ? ' class="bad"' : ''}>${cells.map((c) => `<td>${esc(c)}</td>`).join('')}</tr>`;
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Kioskhub soak ${esc(input.startedAt)}</title>
<style>body{font:14px system-ui,sans-serif;margin:24px;color:#222}svg text{font:11px system-ui,sans-serif}
table{border-collapse:collapse;margin:8px 0 20px}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}
tr.bad td{background:#fde7e7}figure{margin:0 0 18px}figcaption{color:#555}</style></head><body>
<h1>Kioskhub soak — ${input.minutes} min, started ${esc(input.startedAt)}</h1>
<h2>Exactly-once audit</h2><table><tr><th>check</th><th>result</th><th>detail</th></tr>
${input.audit.map((a) => row([a.check, a.ok ? 'PASS' : 'FAIL', a.detail], a.ok)).join('')}</table>
<h2>Traffic</h2><table><tr><th>flow</th><th>operations</th></tr>
${flows.map((f) => row([f, String(input.totals[f])])).join('')}</table>
${input.extra.map((e) => `<p>${esc(e)}</p>`).join('')}
<h2>Resources (sampled every 10 s from the server's /metrics) — flat after warm-up: ${flatVerdict(input.flat)}</h2>
${chart(
  'Resident memory',
  'MB',
  input.samples,
  [
    { label: 'RSS', value: (s) => s.rssMb, color: colors[0]! },
    { label: 'V8 heap used', value: (s) => s.heapMb, color: colors[1]! },
  ],
  input.restarts,
  input.warmups,
)}
${chart('Event-loop delay p99', 'ms', input.samples, [{ label: 'p99', value: (s) => s.loopP99Ms, color: colors[2]! }], input.restarts, input.warmups)}
${chart('Open handles', 'count', input.samples, [{ label: 'handles', value: (s) => s.handles, color: colors[3]! }], input.restarts, input.warmups)}
${chart(
  'Throughput',
  'operations/s',
  input.samples,
  flows.map((f, i) => ({
    label: f,
    value: (s: Sample) => s.rates[f] ?? 0,
    color: colors[i % colors.length]!,
  })),
  input.restarts,
)}
<h2>Flat after warm-up: ${flatVerdict(input.flat)}</h2>
<p>${esc(FLATNESS_METHOD)} Warm-up is shaded grey in the charts; the red line is the kill -9.</p>
<table><tr><th>series</th><th>result</th><th>detail</th></tr>
${input.flat.map((f) => row([f.series, flatVerdict([f]), f.detail], f.ok)).join('')}</table>
<h2>Samples</h2><table><tr><th>t (s)</th><th>life</th><th>RSS MB</th><th>heap MB</th><th>loop p99 ms</th><th>handles</th>${flows.map((f) => `<th>${esc(f)} /s</th>`).join('')}</tr>
${input.samples.map((s) => row([String(s.t), String(s.life), s.rssMb.toFixed(1), s.heapMb.toFixed(1), s.loopP99Ms.toFixed(1), String(s.handles), ...flows.map((f) => (s.rates[f] ?? 0).toFixed(1))])).join('')}</table>
</body></html>`;
}
