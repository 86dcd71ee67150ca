// Every `everyMs` (10 s): the server's RSS, V8 heap, event-loop delay and open handles, read from
// its own Prometheus metrics (prom-client's default collectors), plus each flow's progress.
import { ADMIN_TOKEN } from '../lib/kioskhub.js';

export interface Sample {
  /** Seconds since the soak started. */
  t: number;
  /** Which life of the server (1, then 2 after the kill -9): told apart by the process's start time. */
  life: number;
  rssMb: number;
  heapMb: number;
  loopP99Ms: number;
  handles: number;
  /** Operations per second of each flow since the previous sample. */
  rates: Record<string, number>;
}

function metric(text: string, name: string): number | undefined {
  const match = new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.eE+-]+)$`, 'm').exec(text);
  return match ? Number(match[1]) : undefined;
}

export function startSampler(options: {
  url: string;
  everyMs: number;
  counts: () => Record<string, number>;
}): { samples: Sample[]; stop(): void } {
  const samples: Sample[] = [];
  const started = Date.now();
  let last = { at: started, counts: options.counts() };
  // The server's own process_start_time_seconds: a new value is a new process (the restart).
  const lives: number[] = [];
  const lifeOf = (startTime: number) => {
    if (!lives.includes(startTime)) lives.push(startTime);
    return lives.indexOf(startTime) + 1;
  };
  const take = async () => {
    try {
      const res = await fetch(`${options.url}/metrics`, {
        headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
        signal: AbortSignal.timeout(5_000),
      });
      if (!res.ok) return;
      const text = await res.text();
      const now = Date.now();
      const counts = options.counts();
      const rates: Record<string, number> = {};
      for (const [k, v] of Object.entries(counts))
        rates[k] = ((v - (last.counts[k] ?? 0)) * 1000) / Math.max(1, now - last.at);
      last = { at: now, counts };
      samples.push({
        t: Math.round((now - started) / 1000),
        life: lifeOf(metric(text, 'process_start_time_seconds') ?? 0),
        rssMb: (metric(text, 'process_resident_memory_bytes') ?? 0) / 2 ** 20,
        heapMb: (metric(text, 'nodejs_heap_size_used_bytes') ?? 0) / 2 ** 20,
        loopP99Ms: (metric(text, 'nodejs_eventloop_lag_p99_seconds') ?? 0) * 1000,
        handles: metric(text, 'nodejs_active_handles_total') ?? 0,
        rates,
      });
    } catch {
      /* the server is restarting: no sample this time */
    }
  };
  const timer = setInterval(() => void take(), options.everyMs);
  return {
    samples,
    stop: () => clearInterval(timer),
  };
}

export interface Flatness {
  series: string;
  /** False when too few samples followed the warm-up to say anything. */
  judged: boolean;
  ok: boolean;
  detail: string;
}

/** PASS / FAIL / NOT JUDGED for one row or, over all rows, for the run. */
export function flatVerdict(rows: Flatness[]): 'PASS' | 'FAIL' | 'NOT JUDGED' {
  if (rows.some((r) => r.judged && !r.ok)) return 'FAIL';
  return rows.some((r) => r.judged) ? 'PASS' : 'NOT JUDGED';
}

/** How the flatness verdict is computed, in words (printed and shown in the report). */
export const FLATNESS_METHOD =
  'Per life of the server (the kill -9 starts a new process), the first 30% of its samples (at most 120 s) ' +
  'are warm-up and ignored. A least-squares line is fitted through the remaining samples of each series; ' +
  'its slope times the length of that window is the growth. PASS when the growth stays within the ' +
  'allowance for the series at its median level: RSS 15% + 8 MB, V8 heap used 25% + 4 MB, open handles ' +
  '20% + 10, event-loop delay p99 50% + 50 ms (it swings with the load of the machine). A leak grows ' +
  'steadily and fails; a flat series wanders around one level and passes. At least 5 samples after ' +
  'warm-up are needed (a life shorter than about 70 s is not judged, and says so).';

/** Warm-up of each life: its first 30% of the samples' time span, at most `maxS`. */
export function warmupEnds(
  samples: Sample[],
  maxS = 120,
): Map<number, { start: number; end: number; last: number }> {
  const out = new Map<number, { start: number; end: number; last: number }>();
  for (const life of new Set(samples.map((s) => s.life))) {
    const mine = samples.filter((s) => s.life === life);
    const start = mine[0]!.t;
    const last = mine.at(-1)!.t;
    out.set(life, { start, end: start + Math.min(maxS, (last - start) * 0.3), last });
  }
  return out;
}

/** Least-squares slope of y over t. */
function slope(points: { t: number; y: number }[]): number {
  const n = points.length;
  const mt = points.reduce((a, p) => a + p.t, 0) / n;
  const my = points.reduce((a, p) => a + p.y, 0) / n;
  let num = 0;
  let den = 0;
  for (const p of points) {
    num += (p.t - mt) * (p.y - my);
    den += (p.t - mt) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

/** Fewer samples than this after warm-up say nothing about a trend (3 points fit any line). */
const MIN_SAMPLES = 5;

/** The flatness verdict per life and series (see FLATNESS_METHOD). */
export function checkFlat(samples: Sample[], maxWarmupS = 120): Flatness[] {
  const median = (xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b);
    return s.length ? s[Math.floor(s.length / 2)]! : 0;
  };
  const out: Flatness[] = [];
  const series: {
    key: 'rssMb' | 'heapMb' | 'handles' | 'loopP99Ms';
    label: string;
    unit: string;
    allow: (level: number) => number;
  }[] = [
    { key: 'rssMb', label: 'RSS', unit: 'MB', allow: (a) => a * 0.15 + 8 },
    { key: 'heapMb', label: 'heap used', unit: 'MB', allow: (a) => a * 0.25 + 4 },
    { key: 'handles', label: 'open handles', unit: '', allow: (a) => a * 0.2 + 10 },
    { key: 'loopP99Ms', label: 'event-loop delay p99', unit: 'ms', allow: (a) => a * 0.5 + 50 },
  ];
  for (const [life, w] of warmupEnds(samples, maxWarmupS)) {
    const warm = samples.filter((s) => s.life === life && s.t >= w.end);
    if (warm.length < MIN_SAMPLES) {
      out.push({
        series: `life ${life}`,
        judged: false,
        ok: true,
        detail: `not judged: ${warm.length} samples after warm-up (${Math.round(w.end - w.start)} s), ${MIN_SAMPLES} needed`,
      });
      continue;
    }
    const window = warm.at(-1)!.t - warm[0]!.t;
    for (const s of series) {
      const points = warm.map((x) => ({ t: x.t, y: x[s.key] }));
      const growth = slope(points) * window;
      const level = median(points.map((p) => p.y));
      const allowance = s.allow(level);
      out.push({
        series: `life ${life}: ${s.label}`,
        judged: true,
        ok: growth <= allowance,
        detail: `${warm.length} samples over ${window} s at ${level.toFixed(1)} ${s.unit}: growth ${growth >= 0 ? '+' : ''}${growth.toFixed(1)} ${s.unit} (allowed ${allowance.toFixed(1)})`,
      });
    }
  }
  return out;
}
