// A soak flow: one kind of traffic the whole product carries at once (vending webhooks, cash
// kiosks, printers, water kiosks, cafe tables). Each flow sets itself up, runs until told to
// stop, drains, and then audits the database for its own exactly-once rules.
import type { Executor } from '../../../server/src/platform/db/database.js';

export interface FlowContext {
  url: string;
  /** Resolves when the soak's traffic phase is over. */
  stopped: Promise<void>;
  isStopped(): boolean;
  log(line: string): void;
}

export interface AuditLine {
  check: string;
  ok: boolean;
  detail: string;
}

export interface Flow {
  name: string;
  setup(ctx: FlowContext): Promise<void>;
  /** Runs the traffic until `ctx.stopped`. */
  run(ctx: FlowContext): Promise<void>;
  /** Operations done so far (for the rate in the report). */
  count(): number;
  /** Called after the traffic stopped: wait for in-flight work (dispenses, prints) to finish. */
  drain(ctx: FlowContext): Promise<void>;
  audit(db: Executor): Promise<AuditLine[]>;
  close(): Promise<void>;
}

/** Runs `step` again and again until the soak stops, `gapMs` apart (jittered). */
export async function loop(ctx: FlowContext, gapMs: number, step: () => Promise<void>): Promise<void> {
  while (!ctx.isStopped()) {
    await step();
    await Promise.race([ctx.stopped, new Promise((r) => setTimeout(r, gapMs * (0.5 + Math.random())))]);
  }
}
