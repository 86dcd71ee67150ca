// Parses what MQTT devices publish (CONTRACTS §14) into typed messages; anything else is refused
// here, at the edge, with a reason for the log.
import type { MqttCommandReport, MqttDeviceEvent, MqttStatus, MqttTelemetry } from '@kioskhub/protocol';
import { Type } from '@sinclair/typebox';
import { socketValidator } from '../../platform/socket-validation.js';

const Code = Type.String({ minLength: 1, maxLength: 64 });
const parseReport = socketValidator(
  Type.Union([
    Type.Object({ phase: Type.Literal('received') }),
    Type.Object({
      phase: Type.Literal('done'),
      status: Type.Union([Type.Literal('SUCCESS'), Type.Literal('FAILED')]),
      failureCode: Type.Optional(Code),
    }),
    Type.Object({ phase: Type.Literal('rejected'), reason: Type.Optional(Code) }),
  ]),
);
const parseStatus = socketValidator(
  Type.Union([
    Type.Object({
      online: Type.Literal(true),
      firmware: Type.Optional(Type.String({ maxLength: 64 })),
      bootId: Type.Optional(Type.String({ maxLength: 64 })),
      hw: Type.Optional(Type.String({ maxLength: 64 })),
    }),
    Type.Object({ online: Type.Literal(false), bootId: Type.Optional(Type.String({ maxLength: 64 })) }),
  ]),
);
const parseEvent = socketValidator(
  Type.Object({
    eventId: Type.String({ minLength: 1, maxLength: 100 }),
    type: Type.String({ minLength: 1, maxLength: 64 }),
  }),
);
const parseTelemetry = socketValidator(
  Type.Object({
    status: Type.Optional(Type.Union([Type.Literal('IDLE'), Type.Literal('BUSY'), Type.Literal('ERROR')])),
  }),
);
const parseObject = socketValidator(Type.Object({}));

const COMMAND_ID = /^[A-Za-z0-9_-]{1,64}$/;
/** Device messages are small; a bigger one is refused before it is parsed. */
export const MAX_PAYLOAD_BYTES = 64 * 1024;

export type UpMessage =
  | { kind: 'report'; commandId: string; report: MqttCommandReport }
  | { kind: 'status'; status: MqttStatus & { bootId?: string; hw?: string } }
  | { kind: 'event'; event: MqttDeviceEvent }
  | { kind: 'telemetry'; telemetry: MqttTelemetry }
  | { kind: 'ota'; payload: Record<string, unknown> };

export type Parsed = { ok: true; message: UpMessage } | { ok: false; reason: string };

/** `rest` is the topic after `kh/v1/<id>/up/`. */
export function parseUpMessage(rest: string, payload: Buffer): Parsed {
  if (payload.length > MAX_PAYLOAD_BYTES) return { ok: false, reason: 'payload too large' };
  let body: unknown;
  try {
    body = JSON.parse(payload.toString('utf8'));
  } catch {
    return { ok: false, reason: 'payload is not JSON' };
  }
  const [head, second, ...more] = rest.split('/');
  if (head === 'cmd' && second !== undefined && more.length === 0) {
    if (!COMMAND_ID.test(second)) return { ok: false, reason: 'bad command id in topic' };
    const p = parseReport(body);
    return p.ok ? { ok: true, message: { kind: 'report', commandId: second, report: p.value } } : bad(p);
  }
  if (second !== undefined) return { ok: false, reason: `unknown topic up/${rest}` };
  switch (head) {
    case 'status': {
      const p = parseStatus(body);
      return p.ok ? { ok: true, message: { kind: 'status', status: p.value } } : bad(p);
    }
    case 'evt': {
      const p = parseEvent(body);
      return p.ok ? { ok: true, message: { kind: 'event', event: body as MqttDeviceEvent } } : bad(p);
    }
    case 'tel': {
      const p = parseTelemetry(body);
      return p.ok ? { ok: true, message: { kind: 'telemetry', telemetry: body as MqttTelemetry } } : bad(p);
    }
    case 'ota': {
      const p = parseObject(body);
      return p.ok ? { ok: true, message: { kind: 'ota', payload: body as Record<string, unknown> } } : bad(p);
    }
    default:
      return { ok: false, reason: `unknown topic up/${rest}` };
  }
}

const bad = (p: { message: string }): Parsed => ({ ok: false, reason: p.message });
