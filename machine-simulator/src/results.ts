// Results of finished commands, kept so a repeated command is answered without dispensing again.
import type { DonePayload } from '@kioskhub/protocol';

export interface FinishedCommand {
  result: DonePayload;
  /** True once the server acknowledged a `machine:done` for it. */
  acked: boolean;
}

/** Bounded by count: the oldest results are forgotten first (a Map keeps insertion order). */
export class FinishedCommands {
  private readonly byCommandId = new Map<string, FinishedCommand>();

  constructor(private readonly limit = 1000) {}

  add(finished: FinishedCommand): void {
    this.byCommandId.set(finished.result.commandId, finished);
    while (this.byCommandId.size > this.limit) {
      const oldest = this.byCommandId.keys().next();
      if (oldest.done) break;
      this.byCommandId.delete(oldest.value);
    }
  }

  get(commandId: string): FinishedCommand | undefined {
    return this.byCommandId.get(commandId);
  }

  has(commandId: string): boolean {
    return this.byCommandId.has(commandId);
  }

  /** Results the server has not acknowledged yet (finished offline or the ack was lost). */
  unacked(): FinishedCommand[] {
    return [...this.byCommandId.values()].filter((finished) => !finished.acked);
  }
}
