// The dispatch rules one by one (command-rules.ts): the command transition table against the
// contract's, written out here independently, and the send, ack and result decisions.
import { describe, expect, it } from 'vitest';
import {
  ackEffect,
  canMoveCommand,
  resultEffect,
  sendDecision,
  type CommandStatus,
} from './command-rules.js';

const EXPECTED_MOVES: Record<CommandStatus, CommandStatus[]> = {
  QUEUED: ['SENT', 'NEEDS_REVIEW', 'DONE'],
  SENT: ['ACCEPTED', 'QUEUED', 'DONE', 'NEEDS_REVIEW'],
  ACCEPTED: ['DONE', 'NEEDS_REVIEW'],
  NEEDS_REVIEW: ['DONE'],
  DONE: [],
};
const STATUSES = Object.keys(EXPECTED_MOVES) as CommandStatus[];

describe('command rules', () => {
  it.each(STATUSES.flatMap((from) => STATUSES.map((to) => [from, to] as const)))('%s → %s', (from, to) => {
    expect(canMoveCommand(from, to)).toBe(EXPECTED_MOVES[from].includes(to));
  });
  it('a result is recorded once; one before its ack implies the machine took the command', () => {
    expect(resultEffect({ status: 'DONE', sent: true })).toEqual({ kind: 'repeat' });
    expect(resultEffect({ status: 'SENT', sent: true })).toEqual({ kind: 'record', impliesAccepted: true });
    expect(resultEffect({ status: 'ACCEPTED', sent: true })).toEqual({
      kind: 'record',
      impliesAccepted: false,
    });
    // Sent, then no result in time: a late result settles the review.
    expect(resultEffect({ status: 'NEEDS_REVIEW', sent: true })).toEqual({
      kind: 'record',
      impliesAccepted: false,
    });
  });
  it('a result for a command never sent to the machine is refused', () => {
    expect(resultEffect({ status: 'QUEUED', sent: false })).toEqual({ kind: 'not-sent' });
    // Expired, or cancelled by a refund, while still queued.
    expect(resultEffect({ status: 'NEEDS_REVIEW', sent: false })).toEqual({ kind: 'not-sent' });
    expect(resultEffect({ status: 'DONE', sent: false })).toEqual({ kind: 'not-sent' });
  });
  it('re-sends the command in flight once per connection, never to v1, never past expiry', () => {
    const base = {
      claim: 'in-flight',
      commandProtocol: 'v2',
      connectionProtocol: 'v2',
      sentOnThisConnection: false,
      expired: false,
      ready: true,
      attempts: 1,
    } as const;
    expect(sendDecision(base)).toBe('send');
    expect(sendDecision({ ...base, sentOnThisConnection: true })).toBe('skip');
    expect(sendDecision({ ...base, commandProtocol: 'v1' })).toBe('skip');
    expect(sendDecision({ ...base, connectionProtocol: 'v1' })).toBe('skip');
    expect(sendDecision({ ...base, expired: true })).toBe('expire');
    expect(sendDecision({ ...base, claim: 'new', connectionProtocol: 'v1' })).toBe('send');
  });
  it('sends nothing new to a machine that said BUSY or ERROR; one it has seen goes out again', () => {
    const base = {
      claim: 'in-flight',
      commandProtocol: 'v2',
      connectionProtocol: 'v2',
      sentOnThisConnection: false,
      expired: false,
      ready: false,
      attempts: 0,
    } as const;
    // Claimed with its payment on a machine row that still said IDLE: it waits for the next IDLE.
    expect(sendDecision(base)).toBe('skip');
    expect(sendDecision({ ...base, ready: true })).toBe('send');
    // Sent before (on an earlier connection): the machine knows it and de-duplicates.
    expect(sendDecision({ ...base, attempts: 1 })).toBe('send');
    expect(sendDecision({ ...base, expired: true })).toBe('expire');
  });
  it('reads acks strictly', () => {
    expect(ackEffect({ accepted: true })).toEqual({ kind: 'accepted' });
    expect(ackEffect({ accepted: false, reason: 'BUSY' })).toEqual({ kind: 'declined', reason: 'BUSY' });
    expect(ackEffect({ accepted: 'yes' })).toEqual({ kind: 'declined', reason: 'INVALID_ACK' });
    expect(ackEffect(undefined)).toEqual({ kind: 'declined', reason: 'INVALID_ACK' });
  });
});
