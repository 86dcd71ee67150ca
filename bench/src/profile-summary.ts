// Sums up V8 CPU profiles (`BENCH_CPU_PROF=<dir> npm run bench -- …` writes one per server child):
// self and inclusive time per function and per package or source file, optionally within a time
// window, plus a per-second histogram of busy time so the window of a phase can be picked.
//
//   npx tsx bench/src/profile-summary.ts <file.cpuprofile> [--from S] [--to S] [--top N] [--match TEXT]
//                                        [--long-tasks MS]
//
// `--from`/`--to` are seconds since the profile started. `--match` also lists the callers (one
// level up, by self+children time) of every function whose name or file contains TEXT.
// `--long-tasks MS` lists the stretches of MS or more in which the thread never went idle (what
// holds up every request that arrives meanwhile: a latency tail), each with the project's own
// functions that took most of it.
import { readFileSync } from 'node:fs';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : undefined;
}

const file = process.argv[2];
if (!file || file.startsWith('--')) {
  console.error(
    'usage: tsx bench/src/profile-summary.ts <file.cpuprofile> [--from S] [--to S] [--top N] [--match TEXT] [--long-tasks MS]',
  );
  process.exit(2);
}
const from = Number(arg('--from') ?? 0) * 1e6;
const to = Number(arg('--to') ?? Infinity) * 1e6;
const top = Number(arg('--top') ?? 40);
const match = arg('--match');
/** Per second, the busy ms whose stack holds a function whose name or file contains this. */
const timeline = arg('--timeline');
const longTaskMs = arg('--long-tasks') === undefined ? undefined : Number(arg('--long-tasks'));

const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map<number, number>();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

const shortUrl = (url: string): string => {
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + 'node_modules/'.length).split('/');
    return rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]!;
  }
  const src = url.indexOf('/src/');
  if (src >= 0) return url.slice(url.lastIndexOf('/', src - 1) + 1);
  return url.startsWith('node:') ? url : url || '(native)';
};
const fnKey = (f: CallFrame) =>
  `${f.functionName || '(anonymous)'}  ${shortUrl(f.url)}${f.url ? `:${f.lineNumber + 1}` : ''}`;
const IDLE = new Set(['(idle)', '(program)', '(garbage collector)']);

const self = new Map<string, number>();
const inclusive = new Map<string, number>();
const fileSelf = new Map<string, number>();
const callers = new Map<string, Map<string, number>>();
const perSecond: number[] = [];
const perSecondMatching: number[] = [];
let t = profile.startTime;
let total = 0;
let idle = 0;
/** Busy stretches with no idle sample in between: start (µs since start), length, time per own function. */
const tasks: { start: number; us: number; own: Map<string, number> }[] = [];
let task: (typeof tasks)[number] | undefined;
for (let i = 0; i < profile.samples.length; i += 1) {
  const dt = profile.timeDeltas[i] ?? 0;
  t += dt;
  const rel = t - profile.startTime;
  const node = byId.get(profile.samples[i]!)!;
  const name = node.callFrame.functionName;
  const busy = name !== '(idle)' && name !== '(program)';
  if (longTaskMs !== undefined && rel >= from && rel <= to) {
    if (!busy) task = undefined;
    else {
      if (!task) tasks.push((task = { start: rel, us: 0, own: new Map() }));
      task.us += dt;
      // The project's own functions on the stack (server/, bench/), each counted once per sample.
      const seen = new Set<string>();
      for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
        const f = byId.get(id)!.callFrame;
        if (!f.url.includes('/server/src/') && !f.url.includes('/packages/')) continue;
        const k = fnKey(f);
        if (seen.has(k)) continue;
        seen.add(k);
        task.own.set(k, (task.own.get(k) ?? 0) + dt);
      }
    }
  }
  const second = Math.floor(rel / 1e6);
  perSecond[second] = (perSecond[second] ?? 0) + (busy ? dt : 0);
  if (timeline && busy) {
    for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
      if (fnKey(byId.get(id)!.callFrame).includes(timeline)) {
        perSecondMatching[second] = (perSecondMatching[second] ?? 0) + dt;
        break;
      }
    }
  }
  if (rel < from || rel > to) continue;
  total += dt;
  if (IDLE.has(name) && name !== '(garbage collector)') {
    idle += dt;
    continue;
  }
  const key = fnKey(node.callFrame);
  self.set(key, (self.get(key) ?? 0) + dt);
  const fk = name === '(garbage collector)' ? '(gc)' : shortUrl(node.callFrame.url);
  fileSelf.set(fk, (fileSelf.get(fk) ?? 0) + dt);
  const seen = new Set<string>();
  let prevKey: string | undefined;
  for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
    const k = fnKey(byId.get(id)!.callFrame);
    if (prevKey !== undefined && match && prevKey.includes(match)) {
      const m = callers.get(prevKey) ?? new Map<string, number>();
      m.set(k, (m.get(k) ?? 0) + dt);
      callers.set(prevKey, m);
    }
    prevKey = k;
    if (seen.has(k)) continue;
    seen.add(k);
    inclusive.set(k, (inclusive.get(k) ?? 0) + dt);
  }
}

const busy = total - idle;
const msOf = (us: number) =>
  `${(us / 1000).toFixed(0).padStart(7)} ms ${((100 * us) / busy).toFixed(1).padStart(5)}%`;
const list = (title: string, m: Map<string, number>, n = top) => {
  console.log(`\n${title}`);
  for (const [k, v] of [...m].sort((a, b) => b[1] - a[1]).slice(0, n)) console.log(`${msOf(v)}  ${k}`);
};
console.log(
  `${file}: ${(total / 1e6).toFixed(1)} s in the window, busy ${(busy / 1e6).toFixed(2)} s (percentages are of busy time)`,
);
console.log(
  'busy ms per second since start: ' +
    perSecond.map((v, i) => `${i}:${Math.round((v ?? 0) / 1000)}`).join(' '),
);
if (timeline)
  console.log(
    `busy ms per second under ${timeline}: ` +
      perSecond.map((_, i) => `${i}:${Math.round((perSecondMatching[i] ?? 0) / 1000)}`).join(' '),
  );
list('self time by package / source file', fileSelf, 25);
list('self time by function', self);
list('inclusive time by function', inclusive);
if (match) for (const [k, m] of callers) list(`callers of ${k}`, m, 12);
if (longTaskMs !== undefined) {
  const long = tasks.filter((x) => x.us >= longTaskMs * 1000);
  const sumUs = long.reduce((a, x) => a + x.us, 0);
  console.log(
    `\nbusy stretches of ${longTaskMs} ms or more: ${long.length} (${(sumUs / 1000).toFixed(0)} ms in all; ${tasks.length} stretches in the window)`,
  );
  for (const x of long.sort((a, b) => b.us - a.us).slice(0, top)) {
    const own = [...x.own]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 4)
      .map(([k, us]) => `${k} ${(us / 1000).toFixed(1)}`)
      .join(' · ');
    console.log(
      `${(x.us / 1000).toFixed(1).padStart(7)} ms at ${(x.start / 1e6).toFixed(2).padStart(7)} s  ${own || '(no project code: runtime, GC or a package alone)'}`,
    );
  }
}
