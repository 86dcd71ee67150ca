// Every command-line tool of the README, run as an operator runs it (`npm run <tool> -- --help`):
// the usage on stdout, naming the command, and exit code 0; an option the tool does not know:
// the usage on stderr and exit code 2 (that one runs the script of package.json directly, as npm
// would, without npm's own start-up: npm passes the exit code through).
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { spawnTs } from './operator-process.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

const TOOLS = [
  'simulator',
  'bench',
  'soak',
  'water-sim',
  'firmware:sign',
  'pay',
  'qr:provision',
  'cluster',
] as const;

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

const SCRIPTS = (
  JSON.parse(readFileSync(`${ROOT}/package.json`, 'utf8')) as { scripts: Record<string, string> }
).scripts;

/** The tool's entry file, from its package.json script (`tsx x.ts` or `node --import tsx x.ts`). */
function entryOf(tool: string): string {
  const file = SCRIPTS[tool]?.split(' ').find((word) => word.endsWith('.ts'));
  if (!file) throw new Error(`package.json has no TypeScript entry for ${tool}: ${SCRIPTS[tool]}`);
  return file;
}

const env = { ...process.env, NO_COLOR: '1' };

function npmRun(tool: string, args: string[]): Promise<Result> {
  return outcome(
    spawn('npm', ['run', '-s', tool, '--', ...args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] }),
  );
}

function scriptRun(tool: string, args: string[]): Promise<Result> {
  return outcome(spawnTs(entryOf(tool), args, { env }));
}

function outcome(child: ChildProcessByStdio<null, Readable, Readable>): Promise<Result> {
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code, stdout, stderr })));
}

/** Runs `jobs` at most `limit` at a time (each starts tsx: all sixteen at once would crawl). */
async function inBatches<T>(jobs: (() => Promise<T>)[], limit: number): Promise<T[]> {
  const results: T[] = new Array<T>(jobs.length);
  let next = 0;
  const worker = async () => {
    while (next < jobs.length) {
      const i = next++;
      results[i] = await jobs[i]!();
    }
  };
  await Promise.all(Array.from({ length: limit }, worker));
  return results;
}

describe('npm run <tool> -- --help', () => {
  it(
    'prints the usage naming the command on stdout and exits 0; an unknown option prints it on stderr and exits 2',
    { timeout: 300_000 },
    async () => {
      const jobs = TOOLS.flatMap((tool) => [
        () => npmRun(tool, ['--help']),
        () => scriptRun(tool, ['--no-such-option']),
      ]);
      const results = await inBatches(jobs, 6);
      const problems: string[] = [];
      TOOLS.forEach((tool, i) => {
        const help = results[2 * i]!;
        const unknown = results[2 * i + 1]!;
        const names = `npm run ${tool} --`;
        if (help.code !== 0) problems.push(`${tool} --help: exit ${help.code}\n${help.stderr}`);
        if (!help.stdout.includes(names))
          problems.push(`${tool} --help: no "${names}" on stdout:\n${help.stdout}`);
        if (unknown.code !== 2) problems.push(`${tool} --no-such-option: exit ${unknown.code}`);
        if (!unknown.stderr.includes('--no-such-option'))
          problems.push(`${tool} --no-such-option: the option is not named on stderr:\n${unknown.stderr}`);
        // The same usage as --help's, not only a pointer to it.
        if (help.stdout.trim() === '' || !unknown.stderr.includes(help.stdout.trim()))
          problems.push(`${tool} --no-such-option: not the usage on stderr:\n${unknown.stderr}`);
        if (unknown.stdout !== '') problems.push(`${tool} --no-such-option: stdout:\n${unknown.stdout}`);
      });
      expect(problems, problems.join('\n\n')).toEqual([]);
    },
  );
});
