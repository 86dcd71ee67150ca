// Where the CPU goes: (1) V8 CPU profiles (.cpuprofile from node --cpu-prof) summarized as the
// top self-time functions and self time per package/area; (2) CPU time of every process on the
// box by command name (/proc/<pid>/stat), to split a run between the Kioskhub nodes, PostgreSQL,
// Redis and the load generator. Linux only.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fmt } from '../table.js';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples?: number[];
  timeDeltas?: number[];
  startTime: number;
  endTime: number;
}

export interface ProfileSummary {
  file: string;
  totalMs: number;
  /** Excluding (idle): the time the process actually ran JS, GC or native code. */
  busyMs: number;
  /** `via`: the nearest caller outside Node internals (package or Kioskhub file), with its share of this function's self time. */
  top: { name: string; where: string; selfMs: number; pctBusy: number; via: string }[];
  areas: { area: string; selfMs: number; pctBusy: number }[];
}

/** Which part of the stack a script belongs to: a package, Kioskhub's own code, or Node internals. */
export function areaOf(url: string, functionName: string): string {
  if (!url) return functionName.startsWith('(') ? functionName : '(native)';
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm) return nm[1]!;
  if (url.startsWith('node:')) return 'node: internals';
  const own = /\/(server|protocol|bench|machine-simulator)\/src\/(?:([^/]+)\/)?/.exec(url);
  if (own) return `kioskhub ${own[1]}/${own[2] ?? ''}`;
  return url.replace(/^file:\/\//, '').slice(-50);
}

/** Now on the clock V8 stamps CPU profiles with (CLOCK_MONOTONIC, µs on Linux), same in every process. */
export const monotonicUs = (): number => Number(process.hrtime.bigint() / 1000n);

/**
 * Summarizes a .cpuprofile; with `window` (monotonicUs() readings taken in the bench), only the
 * samples inside it count — e.g. the measured load, not start-up (tsx compiling the server).
 */
export function summarizeProfile(
  file: string,
  topN = 15,
  window?: { startUs: number; endUs: number },
): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const callerOf = (id: number): string => {
    for (let p = parent.get(id); p !== undefined; p = parent.get(p)) {
      const f = byId.get(p)!.callFrame;
      if (f.url && !f.url.startsWith('node:'))
        return `${f.functionName || '(anonymous)'} (${areaOf(f.url, f.functionName)})`;
    }
    return '';
  };
  const self = new Map<number, number>();
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  // timeDeltas[i] is the time before sample i; attribute the gap after a sample to it.
  let t = profile.startTime;
  for (let i = 0; i < samples.length; i++) {
    t += deltas[i] ?? 0;
    if (window && (t < window.startUs || t > window.endUs)) continue;
    const dt = deltas[i + 1] ?? 0;
    self.set(samples[i]!, (self.get(samples[i]!) ?? 0) + dt);
  }
  const fnTotals = new Map<
    string,
    { name: string; where: string; us: number; callers: Map<string, number> }
  >();
  const areaTotals = new Map<string, number>();
  let totalUs = 0;
  let idleUs = 0;
  for (const [id, us] of self) {
    const node = byId.get(id);
    if (!node) continue;
    totalUs += us;
    const { functionName, url, lineNumber } = node.callFrame;
    if (functionName === '(idle)') {
      idleUs += us;
      continue;
    }
    const name = functionName || '(anonymous)';
    const short = url
      .replace(/^file:\/\//, '')
      .replace(/^.*\/node_modules\//, '')
      .replace(/^.*\/(server|protocol|bench)\/src\//, '$1/src/');
    const where = url ? `${short}:${lineNumber + 1}` : '';
    const key = `${name}@${where}`;
    const entry = fnTotals.get(key) ?? { name, where, us: 0, callers: new Map<string, number>() };
    entry.us += us;
    const caller = callerOf(id);
    entry.callers.set(caller, (entry.callers.get(caller) ?? 0) + us);
    fnTotals.set(key, entry);
    const area = areaOf(url, functionName);
    areaTotals.set(area, (areaTotals.get(area) ?? 0) + us);
  }
  const busyUs = Math.max(1, totalUs - idleUs);
  return {
    file,
    totalMs: totalUs / 1000,
    busyMs: busyUs / 1000,
    top: [...fnTotals.values()]
      .sort((a, b) => b.us - a.us)
      .slice(0, topN)
      .map((f) => {
        const [via, viaUs] = [...f.callers.entries()].sort((a, b) => b[1] - a[1])[0] ?? ['', 0];
        return {
          name: f.name,
          where: f.where,
          selfMs: f.us / 1000,
          pctBusy: (100 * f.us) / busyUs,
          via: via ? `${via} ${Math.round((100 * viaUs) / f.us)}%` : '',
        };
      }),
    areas: [...areaTotals.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, topN)
      .map(([area, us]) => ({ area, selfMs: us / 1000, pctBusy: (100 * us) / busyUs })),
  };
}

/** The .cpuprofile files in a folder (one per process that exited with --cpu-prof). */
export function profilesIn(dir: string): string[] {
  try {
    return readdirSync(dir)
      .filter((f) => f.endsWith('.cpuprofile'))
      .map((f) => join(dir, f));
  } catch {
    return [];
  }
}

export function printProfile(title: string, summary: ProfileSummary): void {
  console.log(`\n${title}`);
  console.log(
    `  profile ${summary.file}: ${fmt(summary.totalMs / 1000, 1)} s sampled, ${fmt(summary.busyMs / 1000, 1)} s not idle`,
  );
  console.log('  self time by area (% of non-idle):');
  for (const a of summary.areas.slice(0, 10))
    console.log(`    ${fmt(a.pctBusy, 1).padStart(5)}%  ${fmt(a.selfMs, 0).padStart(7)} ms  ${a.area}`);
  console.log('  top self-time functions (% of non-idle):');
  for (const f of summary.top)
    console.log(
      `    ${fmt(f.pctBusy, 1).padStart(5)}%  ${fmt(f.selfMs, 0).padStart(7)} ms  ${f.name}  ${f.where}${f.via ? `  ← via ${f.via}` : ''}`,
    );
}

// ---- CPU of processes by command name ---------------------------------------------------

const CLOCK_TICKS = 100;

/** CPU ms (user + system) used so far by every live process, keyed by its command name (comm). */
export function cpuByCommand(): Map<string, number> {
  const totals = new Map<string, number>();
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return totals;
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const ms = ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS;
      totals.set(comm, (totals.get(comm) ?? 0) + ms);
    } catch {
      /* exited meanwhile */
    }
  }
  return totals;
}

/** CPU seconds per command between two cpuByCommand() snapshots (processes alive at both ends). */
export function cpuDelta(
  before: Map<string, number>,
  after: Map<string, number>,
  commands: string[],
): Record<string, number> {
  const out: Record<string, number> = {};
  for (const c of commands) out[c] = Math.max(0, ((after.get(c) ?? 0) - (before.get(c) ?? 0)) / 1000);
  return out;
}

/** Total busy CPU seconds of the whole box between two /proc/stat readings, and the wall time. */
export function systemCpu(): { busyMs: number; totalMs: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const idle = (v[3] ?? 0) + (v[4] ?? 0);
  const total = v.reduce((a, b) => a + b, 0);
  return { busyMs: ((total - idle) * 1000) / CLOCK_TICKS, totalMs: (total * 1000) / CLOCK_TICKS };
}
