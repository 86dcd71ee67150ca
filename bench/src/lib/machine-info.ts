// The header every run prints: where and when the numbers were taken.
import { readFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';

export function cpuModel(): string {
  try {
    const match = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (match?.[1]) return match[1].trim();
  } catch {
    /* not Linux */
  }
  return cpus()[0]?.model ?? 'unknown';
}

export function printHeader(engines: string[], quick: boolean): void {
  const lines = [
    ['node', process.version],
    ['cpu', `${cpuModel()} × ${cpus().length} cores`],
    ['memory', `${Math.round(totalmem() / 2 ** 30)} GiB`],
    [
      'load average',
      loadavg()
        .map((l) => l.toFixed(2))
        .join(' ') + ' (other work on this machine skews the numbers)',
    ],
    ['date', new Date().toISOString()],
    ['db engines', engines.join(', ')],
    ['mode', quick ? 'quick (--quick: short runs, smaller fleets)' : 'full'],
  ];
  console.log('Kioskhub benchmarks');
  for (const [k, v] of lines) console.log(`  ${k!.padEnd(13)} ${v}`);
}
