// Paces the events one machine socket may send: a token bucket (a burst of twice the rate)
// in front of the handlers. Events beyond it wait their turn in a short queue, so a machine
// answering quickly is only slowed, never refused; events beyond the queue are answered
// RATE_LIMITED and not processed, and a socket that keeps flooding is dropped.
//
// Every connected machine holds one of these for as long as it is connected, so its state is
// one small object and the bucket's steps are shared functions (tens of thousands of sockets).
import type { Socket } from 'socket.io';
import { socketError } from '../../platform/socket-validation.js';

interface Bucket {
  readonly socket: Socket;
  readonly perSecond: number;
  readonly capacity: number;
  tokens: number;
  refilledAt: number;
  refused: number;
  /** Events waiting their turn; made on the first one that has to wait. */
  waiting: (() => void)[] | undefined;
  timer: NodeJS.Timeout | undefined;
}

function refill(bucket: Bucket): void {
  const now = Date.now();
  bucket.tokens = Math.min(
    bucket.capacity,
    bucket.tokens + ((now - bucket.refilledAt) / 1000) * bucket.perSecond,
  );
  bucket.refilledAt = now;
}

function schedule(bucket: Bucket): void {
  const wait = Math.max(1, Math.ceil(((1 - bucket.tokens) * 1000) / bucket.perSecond));
  bucket.timer ??= setTimeout(drain, wait, bucket);
}

function drain(bucket: Bucket): void {
  bucket.timer = undefined;
  const waiting = bucket.waiting!;
  // Gone meanwhile: what waited is dropped (there is nobody to answer).
  if (!bucket.socket.connected) {
    waiting.length = 0;
    return;
  }
  refill(bucket);
  while (bucket.tokens >= 1 && waiting.length > 0) {
    bucket.tokens -= 1;
    waiting.shift()!();
  }
  if (waiting.length > 0) schedule(bucket);
}

export function limitSocketEvents(socket: Socket, perSecond: number): void {
  const capacity = perSecond * 2;
  const bucket: Bucket = {
    socket,
    perSecond,
    capacity,
    tokens: capacity,
    refilledAt: Date.now(),
    refused: 0,
    waiting: undefined,
    timer: undefined,
  };
  socket.use((packet, next) => {
    refill(bucket);
    const waiting = bucket.waiting;
    if ((waiting === undefined || waiting.length === 0) && bucket.tokens >= 1) {
      bucket.tokens -= 1;
      bucket.refused = 0;
      return next();
    }
    if ((waiting?.length ?? 0) < capacity) {
      (bucket.waiting ??= []).push(() => next());
      return schedule(bucket);
    }
    bucket.refused += 1;
    const ack = packet.at(-1) as unknown;
    const refusal = socketError('RATE_LIMITED', `at most ${perSecond} events per second`);
    if (typeof ack === 'function') (ack as (answer: unknown) => void)(refusal);
    if (bucket.refused > capacity * 10) socket.disconnect(true);
  });
}
