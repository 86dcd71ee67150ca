// What the print client must not forget across restarts: results not yet reported to the
// server, and the jobs it already printed (so a job handed out again after a lost report is
// reported, not printed twice). One small JSON file, replaced atomically on every change.
import { mkdir, open, readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';

export type JobReport =
  | { jobId: string; outcome: 'complete'; at: string }
  | { jobId: string; outcome: 'failed'; error: string; at: string };

interface StateFile {
  reports: JobReport[];
  printed: { jobId: string; at: string }[];
}

export const STATE_FILE = 'print-client-state.json';
const PRINTED_KEPT = 500;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;

function parseState(text: string): StateFile {
  const v: unknown = JSON.parse(text);
  if (!isObject(v) || !Array.isArray(v['reports']) || !Array.isArray(v['printed']))
    throw new Error('not a print-client state file');
  const reports = v['reports'].filter(
    (r): r is JobReport =>
      isObject(r) &&
      typeof r['jobId'] === 'string' &&
      (r['outcome'] === 'complete' || (r['outcome'] === 'failed' && typeof r['error'] === 'string')),
  );
  const printed = v['printed'].filter(
    (p): p is { jobId: string; at: string } =>
      isObject(p) && typeof p['jobId'] === 'string' && typeof p['at'] === 'string',
  );
  return { reports, printed };
}

export type PrintState = Awaited<ReturnType<typeof openPrintState>>;

export async function openPrintState(dir: string) {
  await mkdir(dir, { recursive: true });
  const path = join(dir, STATE_FILE);
  let state: StateFile = { reports: [], printed: [] };
  try {
    state = parseState(await readFile(path, 'utf8'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      // A damaged file: keep it for inspection and start afresh (at worst a receipt prints twice).
      await rename(path, `${path}.damaged-${Date.now()}`).catch(() => undefined);
    }
  }

  let chain: Promise<unknown> = Promise.resolve();
  const save = (change: () => void): Promise<void> => {
    const run = chain.then(async () => {
      change();
      const tmp = `${path}.tmp`;
      const handle = await open(tmp, 'w');
      try {
        await handle.writeFile(JSON.stringify(state));
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(tmp, path);
    });
    chain = run.catch(() => undefined);
    return run;
  };

  return {
    path,
    reports: (): JobReport[] => [...state.reports],
    wasPrinted: (jobId: string): boolean => state.printed.some((p) => p.jobId === jobId),
    /** The job printed: remember it and that the server must hear so. */
    printed: (jobId: string): Promise<void> =>
      save(() => {
        const at = new Date().toISOString();
        state.printed = [...state.printed.filter((p) => p.jobId !== jobId), { jobId, at }].slice(
          -PRINTED_KEPT,
        );
        state.reports = [
          ...state.reports.filter((r) => r.jobId !== jobId),
          { jobId, outcome: 'complete', at },
        ];
      }),
    /** The job did not print. */
    failed: (jobId: string, error: string): Promise<void> =>
      save(() => {
        state.reports = [
          ...state.reports.filter((r) => r.jobId !== jobId),
          { jobId, outcome: 'failed', error: cutText(error, 1900), at: new Date().toISOString() },
        ];
      }),
    /** The server has the report. */
    reported: (jobId: string): Promise<void> =>
      save(() => {
        state.reports = state.reports.filter((r) => r.jobId !== jobId);
      }),
  };
}

/**
 * At most `max` UTF-16 units, never half of a surrogate pair: the server refuses text holding one
 * (400), and the report would be dropped.
 */
export function cutText(text: string, max: number): string {
  if (text.length <= max) return text;
  const last = text.charCodeAt(max - 1);
  return text.slice(0, last >= 0xd800 && last <= 0xdbff ? max - 1 : max);
}
