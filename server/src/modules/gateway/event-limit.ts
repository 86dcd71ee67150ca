// Paces the events one machine socket may send: a token bucket (a burst of twice the rate)
// in front of the handlers. Events beyond it wait their turn in a short queue, so a machine
// answering quickly is only slowed, never refused; events beyond the queue are answered
// RATE_LIMITED and not processed, and a socket that keeps flooding is dropped.
import type { Socket } from 'socket.io';
import { socketError } from '../../platform/socket-validation.js';

export function limitSocketEvents(socket: Socket, perSecond: number): void {
  const capacity = perSecond * 2;
  let tokens = capacity;
  let refilledAt = Date.now();
  let refused = 0;
  const waiting: (() => void)[] = [];
  let timer: NodeJS.Timeout | undefined;

  const refill = () => {
    const now = Date.now();
    tokens = Math.min(capacity, tokens + ((now - refilledAt) / 1000) * perSecond);
    refilledAt = now;
  };
  const schedule = () => {
    timer ??= setTimeout(drain, Math.max(1, Math.ceil(((1 - tokens) * 1000) / perSecond)));
  };
  function drain(): void {
    timer = undefined;
    refill();
    while (tokens >= 1 && waiting.length > 0) {
      tokens -= 1;
      waiting.shift()!();
    }
    if (waiting.length > 0) schedule();
  }
  socket.once('disconnect', () => {
    clearTimeout(timer);
    waiting.length = 0;
  });

  socket.use((packet, next) => {
    refill();
    if (waiting.length === 0 && tokens >= 1) {
      tokens -= 1;
      refused = 0;
      return next();
    }
    if (waiting.length < capacity) {
      waiting.push(() => next());
      return schedule();
    }
    refused += 1;
    const ack = packet.at(-1) as unknown;
    const refusal = socketError('RATE_LIMITED', `at most ${perSecond} events per second`);
    if (typeof ack === 'function') (ack as (answer: unknown) => void)(refusal);
    if (refused > capacity * 10) socket.disconnect(true);
  });
}
