// Delivers queued inserts to the server strictly in detection order, one at a time. Only an
// answer that says the server holds the money (counted, or recorded as unallocated) removes
// an insert; a refusal moves it to the dead-letter file; anything else is retried with backoff.
import type { InsertQueue } from './insert-queue.js';
import type { KioskhubClient } from './kioskhub-client.js';
import type { Logger } from '@kioskhub/agent-kit';
import { formatMinor } from './money.js';
import type { SessionTracker } from './session-tracker.js';
import { backoffDelay, createWakeup, sleep, type BackoffOptions } from '@kioskhub/agent-kit';

export interface InsertSenderDeps {
  queue: Pick<InsertQueue, 'head' | 'ack' | 'deadLetter'>;
  client: Pick<KioskhubClient, 'postInsert'>;
  tracker: Pick<SessionTracker, 'closed' | 'refresh'>;
  log: Logger;
  retry: BackoffOptions;
  random?: () => number;
  /** How long an idle sender sleeps before looking at the queue again anyway. */
  idleMs?: number;
}

export type InsertSender = ReturnType<typeof createInsertSender>;

export function createInsertSender(deps: InsertSenderDeps) {
  const { queue, client, tracker, log } = deps;
  const wakeup = createWakeup();

  /** Sends the head of the queue once: done (it left the queue), retry, or idle (nothing sendable). */
  async function deliverHead(signal: AbortSignal): Promise<'idle' | 'done' | 'retry'> {
    const head = queue.head();
    if (!head || head.orderNumber === null) return 'idle';
    const insert = { ...head, orderNumber: head.orderNumber };
    const fields = {
      eventId: insert.eventId,
      kind: insert.kind,
      amount: formatMinor(insert.amountMinor, insert.scale),
      orderNumber: insert.orderNumber,
    };
    const answer = await client.postInsert(insert, signal);
    if (signal.aborted) return 'retry';
    switch (answer.kind) {
      case 'applied':
        await queue.ack(insert.eventId);
        log.info('insert recorded', {
          ...fields,
          status: answer.status,
          amountInserted: answer.amountInserted,
          remainingAmount: answer.remainingAmount,
        });
        if (answer.isComplete || answer.status !== 'PENDING') tracker.closed(insert.orderNumber);
        return 'done';
      case 'unallocated':
        await queue.ack(insert.eventId);
        log.error(
          'SERVER RECORDED THIS CASH AS UNALLOCATED: an operator must give it back or apply it (GET /v1/cash/unallocated)',
          { ...fields, httpStatus: answer.httpStatus, code: answer.code, message: answer.message },
        );
        tracker.closed(insert.orderNumber);
        void tracker.refresh();
        return 'done';
      case 'rejected':
        await queue.deadLetter(insert, answer.code, {
          httpStatus: answer.httpStatus,
          message: answer.message,
        });
        log.error('server refused this insert; kept in the dead-letter file for an operator', {
          ...fields,
          httpStatus: answer.httpStatus,
          code: answer.code,
          message: answer.message,
        });
        return 'done';
      case 'retry':
        log.warn('could not report insert; will retry', { ...fields, reason: answer.reason });
        return 'retry';
    }
  }

  return {
    /** Something was queued or bound: look at the queue now. */
    wake: (): void => wakeup.wake(),
    /** Runs until `signal` aborts. */
    async run(signal: AbortSignal): Promise<void> {
      let failures = 0;
      while (!signal.aborted) {
        let outcome: 'idle' | 'done' | 'retry';
        try {
          outcome = await deliverHead(signal);
        } catch (err) {
          // The queue file could not be written: the insert stays queued and is sent again (same eventId).
          log.error('queue write failed; retrying', { err });
          outcome = 'retry';
        }
        if (outcome === 'done') failures = 0;
        else if (outcome === 'idle') await wakeup.wait(deps.idleMs ?? 60_000, signal);
        else await sleep(backoffDelay(failures++, deps.retry, deps.random), signal);
      }
    },
  };
}
