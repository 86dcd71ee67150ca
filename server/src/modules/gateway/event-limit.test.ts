import type { Socket } from 'socket.io';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { limitSocketEvents } from './event-limit.js';

type Middleware = (packet: unknown[], next: () => void) => void;

/** The part of a Socket.IO socket the limiter uses: its middleware, whether it is connected. */
function fakeSocket() {
  let middleware: Middleware | undefined;
  const socket = {
    connected: true,
    disconnected: 0,
    use(fn: Middleware) {
      middleware = fn;
    },
    disconnect() {
      socket.disconnected += 1;
      socket.connected = false;
    },
  };
  const send = (ack?: (answer: unknown) => void) => {
    let passed = false;
    middleware!(['machine:heartbeat', {}, ...(ack ? [ack] : [])], () => (passed = true));
    return () => passed;
  };
  return { socket, send };
}

describe('socket event pacing', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('lets a burst of twice the rate through, then paces the next events instead of refusing them', () => {
    const { socket, send } = fakeSocket();
    limitSocketEvents(socket as unknown as Socket, 1);
    const burst = [send(), send()];
    expect(burst.map((passed) => passed())).toEqual([true, true]);
    const waiting = send();
    expect(waiting()).toBe(false);
    vi.advanceTimersByTime(1_000);
    expect(waiting()).toBe(true);
  });

  it('answers RATE_LIMITED beyond the queue, and drops a socket that keeps flooding', () => {
    const { socket, send } = fakeSocket();
    limitSocketEvents(socket as unknown as Socket, 1);
    for (let i = 0; i < 4; i++) send(); // two pass, two wait
    const answers: unknown[] = [];
    const refused = send((answer) => answers.push(answer));
    expect(refused()).toBe(false);
    expect(answers).toEqual([
      { ok: false, error: { code: 'RATE_LIMITED', message: 'at most 1 events per second' } },
    ]);
    for (let i = 0; i < 20; i++) send();
    expect(socket.disconnected).toBe(1);
  });

  it('drops the events still waiting when the socket has gone meanwhile', () => {
    const { socket, send } = fakeSocket();
    limitSocketEvents(socket as unknown as Socket, 1);
    send();
    send();
    const waiting = send();
    socket.connected = false;
    vi.advanceTimersByTime(5_000);
    expect(waiting()).toBe(false);
    expect(vi.getTimerCount()).toBe(0);
  });
});
