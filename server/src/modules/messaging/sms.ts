// Outbound SMS (replies, notices, PIN resets) go through the job table: queued in the transaction
// that caused them, sent after it commits, retried with backoff when the SMS API fails, and an
// operator alert when one fails for good. The text is never logged (it may carry a new PIN).
import type { Logger } from 'pino';
import type { Executor } from '../../platform/db/database.js';
import { enqueueOutbox } from '../../platform/outbox.js';
import { AtPermanentError, type AtSmsClient } from '../../providers/africastalking/at.api.js';

declare module '../../platform/outbox.js' {
  interface OutboxTopics {
    /** One SMS to one E.164 number; `kind` names it in logs and metrics (never the text). */
    sms: { tenantId: string; to: string; text: string; kind: string };
  }
}

/** What a failed SMS job keeps instead of its text (which may hold a PIN or a sign-in code). */
export const WITHHELD_SMS_TEXT = '[withheld: not sent; it may have held a PIN or a code]';

/** Longest SMS we send: three concatenated GSM-7 parts. */
export const SMS_MAX_CHARS = 459;

export function createSms(deps: { client?: AtSmsClient; logger: Logger }) {
  return {
    /** False when no SMS API is configured (AT_USERNAME / AT_API_KEY unset). */
    configured: deps.client !== undefined,

    /** Queues one SMS in the caller's transaction; sent once it commits. */
    async queue(
      ex: Executor,
      sms: { tenantId: string; to: string; text: string; kind: string },
    ): Promise<void> {
      if (!deps.client) {
        deps.logger.warn(
          { kind: sms.kind, tenantId: sms.tenantId },
          'SMS not sent: no SMS API is configured',
        );
        return;
      }
      await enqueueOutbox(ex, 'sms', { ...sms, text: sms.text.slice(0, SMS_MAX_CHARS) });
    },

    /** The job `sms`: one send; a permanent refusal is logged and dropped, anything else retried. */
    async run(job: { tenantId: string; to: string; text: string; kind: string }): Promise<void> {
      if (!deps.client) throw new Error('no SMS API is configured (AT_USERNAME, AT_API_KEY)');
      try {
        const { messageId } = await deps.client.send(job.to, job.text);
        deps.logger.info({ kind: job.kind, tenantId: job.tenantId, messageId }, 'SMS sent');
      } catch (err) {
        if (err instanceof AtPermanentError) {
          deps.logger.warn(
            { kind: job.kind, tenantId: job.tenantId, err: err.message },
            'SMS refused for good',
          );
          return;
        }
        throw err;
      }
    },
  };
}

export type Sms = ReturnType<typeof createSms>;
