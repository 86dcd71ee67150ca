// Resident memory of a process, read from /proc (Linux).
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { median } from './stats.js';

export function rssKb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  if (!match) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(match[1]);
}

const sleep = (msDelay: number) => new Promise((r) => setTimeout(r, msDelay));

export interface MemoryReading {
  /** Median RSS, KB. */
  median: number;
  readings: number[];
  /** Median V8 heap used + external memory after GC, KB (when the child reports it). */
  heapMedian: number;
}

/**
 * Median of the last few RSS readings once they agree. With `gc`, the child is first asked to
 * collect garbage (SIGUSR2, see child-preload.ts) before each reading; with `memoryFile` it
 * also reports its heap there. V8 gives freed pages back to the OS some seconds after a burst
 * of allocation, so readings continue (up to `maxReadings`) until the last `readings` of them
 * are within 1% of each other.
 */
export async function settledRssKb(
  pid: number,
  options: {
    readings?: number;
    maxReadings?: number;
    intervalMs?: number;
    gc?: boolean;
    memoryFile?: string;
  } = {},
): Promise<MemoryReading> {
  const window = options.readings ?? 5;
  const readings: number[] = [];
  const heaps: number[] = [];
  for (let i = 0; i < (options.maxReadings ?? 30); i++) {
    if (options.gc) {
      if (options.memoryFile) rmSync(options.memoryFile, { force: true });
      process.kill(pid, 'SIGUSR2');
      await sleep(500);
      // A full GC of a big heap on a busy box can take longer than that: wait for its report.
      const deadline = Date.now() + 10_000;
      while (options.memoryFile && !existsSync(options.memoryFile) && Date.now() < deadline) await sleep(100);
      if (options.memoryFile && existsSync(options.memoryFile)) {
        const usage = JSON.parse(readFileSync(options.memoryFile, 'utf8')) as NodeJS.MemoryUsage;
        heaps.push((usage.heapUsed + usage.external) / 1024);
      }
    }
    readings.push(rssKb(pid));
    const last = readings.slice(-window);
    if (last.length === window && Math.max(...last) - Math.min(...last) <= 0.01 * median(last)) break;
    await sleep(options.intervalMs ?? 500);
  }
  const last = readings.slice(-window);
  return { median: median(last), readings: last, heapMedian: median(heaps.slice(-window)) };
}

/** User and system CPU time a process has used so far, in milliseconds (/proc/<pid>/stat). */
export function cpuTimes(pid: number): { user: number; sys: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may contain spaces) start after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { user: (Number(fields[11]) * 1000) / CLOCK_TICKS, sys: (Number(fields[12]) * 1000) / CLOCK_TICKS };
}

export function cpuMs(pid: number): number {
  const t = cpuTimes(pid);
  return t.user + t.sys;
}

// USER_HZ is 100 on every mainstream Linux build.
const CLOCK_TICKS = 100;
