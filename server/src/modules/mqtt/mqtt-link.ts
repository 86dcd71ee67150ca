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

interface MqttLinkOptions {
  machineId: string;
  sessionId: string;
  publisher: MqttPublisher;
  /** Ends the device's session at the broker (embedded: close the client; external: dynsec kick). */
  disconnect(): void;
  onPublishError(err: unknown, commandId: string): void;
}

interface AcceptanceWait {
  resolve(ack: unknown): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

export function createMqttLink(options: MqttLinkOptions): MqttLink {
  return new MqttSessionLink(options);
}

/**
 * A class, not an object literal with a getter (which stayed in dictionary mode): one small
 * object per connected machine, its methods shared, its waits made on the first send.
 */
class MqttSessionLink implements MqttLink {
  readonly transport = 'mqtt';
  readonly livenessByBroker = true;
  readonly honoursExpiry = true;
  readonly id: string;
  private open = true;
  private waiting: Map<string, AcceptanceWait> | undefined;

  constructor(private readonly options: MqttLinkOptions) {
    this.id = options.sessionId;
  }

  get connected(): boolean {
    return this.open;
  }

  disconnect(): void {
    this.options.disconnect();
  }

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
    const waiting = (this.waiting ??= new Map());
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
    this.options.publisher
      .publish(mqttTopics.command(this.options.machineId, payload.commandId), message, { qos: 1 })
      .catch((err: unknown) => this.options.onPublishError(err, payload.commandId));
    return result;
  }

  accepted(commandId: string): void {
    const w = this.waiting?.get(commandId);
    if (!w) return;
    this.waiting!.delete(commandId);
    clearTimeout(w.timer);
    w.resolve({ accepted: true });
  }

  closed(): void {
    this.open = false;
    if (!this.waiting) return;
    for (const [id, w] of this.waiting) {
      clearTimeout(w.timer);
      this.waiting.delete(id);
      w.reject(new Error('session closed'));
    }
  }
}
