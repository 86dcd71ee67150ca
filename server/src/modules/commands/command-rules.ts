// The dispatch rules, pure: which command status may follow which, what the machine must see
// now, what an ack or a result does, and when a command goes out (again). The commands service
// applies them with conditional updates (`where status in commandSourcesOf(to)`), the dispatcher
// asks them what to send; the model-level property test runs them over generated histories.

export type CommandStatus = 'QUEUED' | 'SENT' | 'ACCEPTED' | 'DONE' | 'NEEDS_REVIEW';
export type Protocol = 'v1' | 'v2' | 'mqtt';

/** Sent and not yet answered with a result: at most one per machine (a partial unique index). */
export const IN_FLIGHT = ['SENT', 'ACCEPTED'] as const satisfies readonly CommandStatus[];

const NEXT: Record<CommandStatus, readonly CommandStatus[]> = {
  // Claimed for sending; or expired before it ever went out.
  QUEUED: ['SENT', 'NEEDS_REVIEW', 'DONE'],
  // Accepted; declined (back to the queue); a result before its ack; expired or a silent v1.
  SENT: ['ACCEPTED', 'QUEUED', 'DONE', 'NEEDS_REVIEW'],
  ACCEPTED: ['DONE', 'NEEDS_REVIEW'],
  // A late result from the machine settles a review: the machine is the truth of what it did.
  NEEDS_REVIEW: ['DONE'],
  DONE: [],
};

export const canMoveCommand = (from: CommandStatus, to: CommandStatus): boolean => NEXT[from].includes(to);

/** Statuses from which `to` may be reached (the `where status in (…)` of a conditional update). */
export const commandSourcesOf = (to: CommandStatus): CommandStatus[] =>
  (Object.keys(NEXT) as CommandStatus[]).filter((from) => NEXT[from].includes(to));

export const isInFlight = (status: CommandStatus): boolean =>
  (IN_FLIGHT as readonly string[]).includes(status);

/**
 * What a machine's result does to its command. Only a command the machine was sent takes a result:
 * one still queued (never claimed, or declined back into the queue), or cancelled or expired
 * before it went out (`sent` false: no `sent_at`), is not the machine's to report. A command
 * already DONE answers the repeat and changes nothing (results are idempotent); otherwise it is
 * recorded, and a result that came before its ack (`SENT`) means the machine took the command:
 * its order passes DISPATCHED first.
 */
export function resultEffect(command: {
  status: CommandStatus;
  sent: boolean;
}): { kind: 'not-sent' } | { kind: 'repeat' } | { kind: 'record'; impliesAccepted: boolean } {
  if (command.status === 'QUEUED' || !command.sent) return { kind: 'not-sent' };
  if (command.status === 'DONE') return { kind: 'repeat' };
  return { kind: 'record', impliesAccepted: command.status === 'SENT' };
}

/**
 * What a claim finds, from the machine's first pending command in dispatch order (in flight
 * first, then the oldest queued): nothing, the command in flight (shown again, never a second
 * one), or a queued command to claim.
 */
export function claimDecision(head: { status: CommandStatus } | undefined): 'none' | 'in-flight' | 'claim' {
  if (!head) return 'none';
  return head.status === 'QUEUED' ? 'claim' : 'in-flight';
}

/**
 * Whether the dispatcher sends the command its claim found on this connection. A new claim is
 * always sent. The one in flight goes out again (same commandId) once per connection: never to a
 * v1 machine, which cannot de-duplicate, and never twice on the same connection (the ack timeout
 * re-sends there). A command past its expiry on a link that honours expiry is never sent again.
 * A command never sent yet (`attempts` 0: claimed with its payment, on a machine row that can lag
 * behind what the machine last reported) is new to the machine: it waits while the machine is not
 * ready (its last report was BUSY or ERROR) and goes out at its next IDLE.
 */
export function sendDecision(input: {
  claim: 'new' | 'in-flight';
  commandProtocol: Protocol | null;
  connectionProtocol: Protocol;
  sentOnThisConnection: boolean;
  expired: boolean;
  /** The machine's last report was IDLE (or it has not reported yet). */
  ready: boolean;
  /** Sends of the command so far, on any connection. */
  attempts: number;
}): 'send' | 'skip' | 'expire' {
  if (input.expired) return 'expire';
  if (!input.ready && input.attempts === 0) return 'skip';
  if (input.claim === 'new') return 'send';
  if (input.commandProtocol === 'v1' || input.connectionProtocol === 'v1') return 'skip';
  return input.sentOnThisConnection ? 'skip' : 'send';
}

/** A machine's answer to a dispense: accepted (DISPATCHED) or declined (back to the queue, with why). */
export function ackEffect(ack: unknown): { kind: 'accepted' } | { kind: 'declined'; reason: string } {
  if (
    typeof ack === 'object' &&
    ack !== null &&
    typeof (ack as { accepted?: unknown }).accepted === 'boolean'
  ) {
    const a = ack as { accepted: boolean; reason?: unknown };
    return a.accepted ? { kind: 'accepted' } : { kind: 'declined', reason: String(a.reason ?? 'DECLINED') };
  }
  return { kind: 'declined', reason: 'INVALID_ACK' };
}

/**
 * No ack in time: the same command goes out again on the same connection only while it is
 * still the machine's command in flight, merely SENT (not accepted, not finished), and not
 * superseded by a newer send of it.
 */
export function resendOnAckTimeout(input: {
  current: { id: string; status: CommandStatus } | undefined;
  commandId: string;
  stillThisConnection: boolean;
  newestSend: boolean;
}): boolean {
  return (
    input.stillThisConnection &&
    input.newestSend &&
    input.current?.id === input.commandId &&
    input.current.status === 'SENT'
  );
}
