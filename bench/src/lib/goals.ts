// The performance issue's seven goals and the closing summary of a bench run: every target
// checked in the run (MET / NOT MET with its same-run figure), then each goal with the targets
// that reported on it, or the command that measures it when this run did not.
import net from 'node:net';
import { printTable, recordedVerdicts } from './table.js';

interface Goal {
  id: string;
  title: string;
  /** How to measure it when this run did not. */
  command: string;
}

export const GOALS: readonly Goal[] = [
  {
    id: '1',
    title: 'SQLite group commit: webhooks/s ≥ 2× the raw transaction rate, p99 ≤ 50 ms',
    command: 'npm run bench -- webhook',
  },
  { id: '2', title: 'CPU per webhook ≤ 0.3 ms and ≤ 4× the bare route', command: 'npm run bench -- webhook' },
  {
    id: '3',
    title: 'PostgreSQL: ≤ 4 round trips per webhook, ≥ the raw ×10 rate',
    command: 'BENCH_DATABASE_URL=postgres://… npm run bench -- webhook',
  },
  {
    id: '4',
    title: 'cross-process dispense p99 ≤ 25 ms at 40/s, 3 processes',
    command: 'npm run bench -- cluster-dispatch (PostgreSQL + Redis)',
  },
  {
    id: '5',
    title: 'heartbeats: CPU ≤ 1.5× bare Socket.IO, 20,000 machines, ≤ 20 KB each',
    command: 'npm run bench -- cluster-machines (PostgreSQL + Redis)',
  },
  {
    id: '6',
    title: 'whole-product soak with an exactly-once audit, flat memory',
    command: 'npm run soak -- --minutes 30 (not part of npm run bench)',
  },
  {
    id: '7',
    title: 'model property test (npm test) and 100,000 fuzz inputs without a 5xx',
    command: 'npm test; npm run soak -- --fuzz 100000 (not part of npm run bench)',
  },
];

/** Prints every target of the run, then the goals: each with its targets, or how to measure it. */
export function printRunSummary(notRun: ReadonlyMap<string, string>, quick: boolean): void {
  const verdicts = recordedVerdicts();
  if (verdicts.length === 0) return;
  const met = verdicts.filter((v) => v.ok).length;
  printTable(
    `Targets checked in this run: ${met} met, ${verdicts.length - met} not met`,
    ['result', 'goal', 'target', 'figure (same run)'],
    verdicts.map((v) => [v.ok ? 'MET' : 'NOT MET', v.goal ?? '', v.label, v.detail]),
  );
  const rows = GOALS.map((goal) => {
    const mine = verdicts.filter((v) => v.goal === goal.id);
    if (mine.length === 0) return [goal.id, goal.title, 'not measured', notRun.get(goal.id) ?? goal.command];
    const ok = mine.every((v) => v.ok);
    const missed = mine.filter((v) => !v.ok).map((v) => v.label);
    return [
      goal.id,
      goal.title,
      ok ? 'MET' : 'NOT MET',
      ok ? 'every target met' : `missed: ${missed.join('; ')}`,
    ];
  });
  printTable(
    quick
      ? 'Performance goals (--quick: shorter runs and smaller fleets than the goals name; the full run is the record)'
      : 'Performance goals',
    ['goal', 'what', 'result', 'detail'],
    rows,
  );
}

/** Whether something answers TCP at the URL's host and port within a second. */
export function answers(url: string, defaultPort: number): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const host = hostname.replace(/^\[(.*)\]$/, '$1') || '127.0.0.1';
    const socket = net.connect({ host, port: Number(port) || defaultPort });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1_000, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}
