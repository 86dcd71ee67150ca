// One MQTT session of a machine as a MachineLink: a command is published to
// kh/v1/<id>/down/cmd/<commandId>, and is accepted only when the device reports `received`
// (the broker's PUBACK says nothing about the device).
import { mqttTopics, type DispenseCommand, type MqttCommand } from '@kioskhub/protocol';
import type { MachineLink, SendOptions } from '../gateway/machine-link.js';

export interface MqttPublisher {
  publish(topic: string, body: unknown, options: { qos: 0 | 1; retain?: boolean }): Promise<void>;
}

export interface MqttLink extends MachineLink {
  /** The device reported `received` (or a result) for this command. */
  accepted(commandId: string): void;
  /** The session ended: pending waits end too. */
  closed(): void;
}

export function createMqttLink(options: {
  machineId: string;
  sessionId: string;
  publisher: MqttPublisher;
  /** Ends the device's session at the broker (embedded: close the client; external: dynsec kick). */
  disconnect(): void;
  onPublishError(err: unknown, commandId: string): void;
}): MqttLink {
  const waiting = new Map<
    string,
    { resolve(ack: unknown): void; reject(err: Error): void; timer: NodeJS.Timeout }
  >();
  let open = true;

  function settle(commandId: string): ((ack: unknown) => void) | undefined {
    const w = waiting.get(commandId);
    if (!w) return undefined;
    waiting.delete(commandId);
    clearTimeout(w.timer);
    return w.resolve;
  }

  return {
    transport: 'mqtt',
    id: options.sessionId,
    get connected() {
      return open;
    },
    livenessByBroker: true,
    honoursExpiry: true,
    disconnect() {
      options.disconnect();
    },
    sendCommand(payload: DispenseCommand, send: SendOptions): Promise<unknown> {
      const message: MqttCommand = {
        commandId: payload.commandId,
        orderId: payload.orderId,
        kind: 'dispense',
        amountMinor: payload.amountMinor,
        currency: payload.currency,
        ...(payload.items ? { items: payload.items } : {}),
        expiresAt: send.expiresAt,
        attempt: send.attempt,
      };
      // A newer send of the same command replaces the older wait (which then times out quietly).
      const earlier = waiting.get(payload.commandId);
      if (earlier) {
        clearTimeout(earlier.timer);
        waiting.delete(payload.commandId);
        earlier.reject(new Error('superseded'));
      }
      const result = new Promise<unknown>((resolve, reject) => {
        const timer = setTimeout(() => {
          if (waiting.get(payload.commandId)?.timer === timer) waiting.delete(payload.commandId);
          reject(new Error('no received report in time'));
        }, send.timeoutMs);
        timer.unref();
        waiting.set(payload.commandId, { resolve, reject, timer });
      });
      options.publisher
        .publish(mqttTopics.command(options.machineId, payload.commandId), message, { qos: 1 })
        .catch((err: unknown) => options.onPublishError(err, payload.commandId));
      return result;
    },
    accepted(commandId: string) {
      settle(commandId)?.({ accepted: true });
    },
    closed() {
      open = false;
      for (const [id, w] of waiting) {
        clearTimeout(w.timer);
        waiting.delete(id);
        w.reject(new Error('session closed'));
      }
    },
  };
}
