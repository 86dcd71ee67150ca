// Validates socket event payloads with the same JSON-schema engine as HTTP bodies.
import { Ajv } from 'ajv';
import type { Static, TSchema } from '@sinclair/typebox';
import { NUL_MESSAGE, nulPath } from './nul.js';

const ajv = new Ajv({ allErrors: false, removeAdditional: false, coerceTypes: false, strict: false });

export type Parsed<T> = { ok: true; value: T } | { ok: false; message: string };

export function socketValidator<S extends TSchema>(schema: S): (input: unknown) => Parsed<Static<S>> {
  const check = ajv.compile(schema);
  return (input) => {
    if (check(input)) {
      const at = nulPath(input);
      if (at === undefined) return { ok: true, value: input as Static<S> };
      return { ok: false, message: `${at ? at.slice(1).replaceAll('/', '.') : 'payload'} ${NUL_MESSAGE}` };
    }
    const first = check.errors?.[0];
    const where = first?.instancePath ? first.instancePath.slice(1).replaceAll('/', '.') : 'payload';
    const what =
      first?.keyword === 'additionalProperties'
        ? `unknown field "${(first.params as { additionalProperty?: string }).additionalProperty}"`
        : (first?.message ?? 'is invalid');
    return { ok: false, message: `${where} ${what}` };
  };
}

export const socketError = (code: string, message: string) => ({
  ok: false as const,
  error: { code, message },
});

/** Socket.IO passes the ack as the last argument; a client may omit it. */
export function ackOf(args: unknown[]): (answer: unknown) => void {
  const last = args.at(-1);
  return typeof last === 'function' ? (last as (answer: unknown) => void) : () => undefined;
}

/**
 * Answers an event no handler of the namespace takes, when the client asked for an answer (an
 * ack): `UNKNOWN_EVENT` naming the events it takes, instead of leaving the client waiting for an
 * answer that never comes. Nothing else happens.
 */
export function answerUnknownEvents(
  socket: { onAny(listener: (event: string, ...args: unknown[]) => void): unknown },
  known: readonly string[],
): void {
  socket.onAny(unknownEventListener(known));
}

/** One listener per list of known events, shared by every socket that takes that list. */
const unknownEventListeners = new Map<string, (event: string, ...args: unknown[]) => void>();

function unknownEventListener(known: readonly string[]): (event: string, ...args: unknown[]) => void {
  const list = known.join(', ');
  let listener = unknownEventListeners.get(list);
  if (!listener) {
    const names = new Set(known);
    listener = (event, ...args) => {
      if (names.has(event)) return;
      const shown = String(event)
        .replace(/[\u0000-\u001f\u007f]/g, '?')
        .slice(0, 64);
      ackOf(args)(
        socketError('UNKNOWN_EVENT', `"${shown}" is not an event here; this namespace takes ${list}`),
      );
    };
    unknownEventListeners.set(list, listener);
  }
  return listener;
}
