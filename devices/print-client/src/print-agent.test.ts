import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ReportAnswer } from './kioskhub-client.js';
import { createLogger } from '@kioskhub/agent-kit';
import { createPrintAgent } from './print-agent.js';
import { openPrintState } from './print-state.js';
import type { PrinterOutput } from './printer-output.js';

const receipt = {
  restaurantName: 'Burger Manila',
  orderNumber: 'A-7',
  orderDate: '2026-03-01T04:05:00Z',
  items: [{ productName: 'Burger', quantity: 1, lineTotal: 150 }],
  subTotal: 150,
  tax: 0,
  totalAmount: 150,
  paymentMethod: 'Cash',
};
const quiet = createLogger({ write: () => undefined });

describe('print agent', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'print-agent-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  function setup(answers: ReportAnswer[]) {
    const reports: string[] = [];
    const client = {
      report: async (r: { jobId: string; outcome: string }) => {
        reports.push(`${r.outcome}:${r.jobId}`);
        return answers.shift() ?? { kind: 'ok' as const };
      },
    };
    return { reports, client };
  }

  it('prints, keeps the result through network failures and a restart, and never prints a job twice', async () => {
    const written: Buffer[] = [];
    const output: PrinterOutput = { description: 'memory', write: async (b) => void written.push(b) };
    const { reports, client } = setup([
      { kind: 'retry', reason: 'ECONNREFUSED' },
      { kind: 'retry', reason: 'HTTP 502' },
    ]);
    const state = await openPrintState(dir);
    const agent = createPrintAgent({
      client,
      state,
      output,
      layout: { columns: 32, currencyLabel: 'PHP' },
      log: quiet,
      retry: { baseMs: 5, maxMs: 10 },
    });
    expect(await agent.printJob({ jobId: 'J1', receipt, queuedAt: '' })).toBe('printed');
    expect(written).toHaveLength(1);
    expect(JSON.parse(readFileSync(state.path, 'utf8')).reports).toMatchObject([
      { jobId: 'J1', outcome: 'complete' },
    ]);

    // A restart before the report went through: the new state still holds it.
    const reopened = await openPrintState(dir);
    const again = createPrintAgent({
      client,
      state: reopened,
      output,
      layout: { columns: 32, currencyLabel: 'PHP' },
      log: quiet,
      retry: { baseMs: 5, maxMs: 10 },
    });
    expect(await again.printJob({ jobId: 'J1', receipt, queuedAt: '' })).toBe('duplicate');
    expect(written).toHaveLength(1);

    const stop = new AbortController();
    const running = again.runReporter(stop.signal);
    const deadline = Date.now() + 5000;
    while (again.pendingReports() > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    stop.abort();
    await running;
    expect(reports).toEqual(['complete:J1', 'complete:J1', 'complete:J1']);
    expect((await openPrintState(dir)).reports()).toEqual([]);
  });

  it('reports a failed job with the output error, and an unreadable receipt as failed', async () => {
    const output: PrinterOutput = {
      description: 'device /dev/usb/lp0',
      write: async () => Promise.reject(new Error('EIO: i/o error')),
    };
    const { client } = setup([]);
    const state = await openPrintState(dir);
    const agent = createPrintAgent({
      client,
      state,
      output,
      layout: { columns: 32, currencyLabel: 'PHP' },
      log: quiet,
      retry: { baseMs: 5, maxMs: 10 },
    });
    expect(await agent.printJob({ jobId: 'J2', receipt, queuedAt: '' })).toBe('failed');
    expect(await agent.printJob({ jobId: 'J3', receipt: { nope: true }, queuedAt: '' })).toBe('failed');
    expect(state.reports()).toMatchObject([
      { jobId: 'J2', outcome: 'failed', error: 'device /dev/usb/lp0: EIO: i/o error' },
      { jobId: 'J3', outcome: 'failed', error: expect.stringContaining('unreadable receipt') },
    ]);
    expect(state.wasPrinted('J2')).toBe(false);
  });
});
