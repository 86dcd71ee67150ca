// The water kiosk's MQTT link (CONTRACTS §14) when it runs with `--transport mqtt`: login as
// the kiosk (client id = username = kiosk id, password = its key), retained birth and last will
// on up/status, the §11 heartbeat as telemetry on up/tel, and commands on down/cmd/<id>
// answered by the §14 rules. Verification, settlement, the SD-card batch and the credential
// cache stay HTTP: they are questions that need an answer.
import { randomUUID } from 'node:crypto';
import { mqttTopics, type MqttCommand, type MqttCommandReport } from '@kioskhub/protocol';
import { connect, type MqttClient } from 'mqtt';
import type { HeartbeatRequest } from './wire.js';

export interface WaterMqttOptions {
  /** Broker URL, e.g. mqtt://127.0.0.1:1883. */
  url: string;
  kioskId: string;
  key: string;
  firmware: string;
  log?(line: string): void;
}

type FinalReport = Exclude<MqttCommandReport, { phase: 'received' }>;

export class WaterMqttLink {
  private client: MqttClient | null = null;
  private bootId = randomUUID().slice(0, 12);
  /** Commands answered, by id: a repeat gets the same answer. */
  readonly answered = new Map<string, FinalReport>();

  constructor(private readonly options: WaterMqttOptions) {}

  get connected(): boolean {
    return this.client?.connected === true;
  }

  /**
   * Connects, subscribes to down/ and publishes the birth (again after every reconnect, with a
   * new bootId); rejects when the broker refuses the login.
   */
  async connect(): Promise<void> {
    const id = this.options.kioskId;
    const will = () => Buffer.from(JSON.stringify({ online: false, bootId: this.bootId }));
    const client = connect(this.options.url, {
      clientId: id,
      username: id,
      password: this.options.key,
      clean: true,
      keepalive: 60,
      reconnectPeriod: 5_000,
      connectTimeout: 10_000,
      will: { topic: mqttTopics.status(id), payload: will(), qos: 1, retain: true },
    });
    this.client = client;
    client.on('message', (topic, payload) => this.onMessage(topic, payload));
    const born = async () => {
      const bootId = this.bootId;
      // The next connection's will names a new session, so this one's will never ends it.
      this.bootId = randomUUID().slice(0, 12);
      if (client.options.will) client.options.will.payload = will();
      await client.subscribeAsync(`${mqttTopics.downPrefix(id)}#`, { qos: 1 });
      await client.publishAsync(
        mqttTopics.status(id),
        JSON.stringify({ online: true, firmware: this.options.firmware, bootId }),
        { qos: 1, retain: true },
      );
      this.options.log?.(`${id}  MQTT connected to ${this.options.url}`);
    };
    await new Promise<void>((resolve, reject) => {
      let first = true;
      client.on('connect', () => {
        born().then(
          () => {
            if (!first) return;
            first = false;
            resolve();
          },
          (err: unknown) => this.options.log?.(`${id}  MQTT birth failed: ${String(err)}`),
        );
      });
      client.on('error', (err) => {
        if (!first) return this.options.log?.(`${id}  MQTT error: ${err.message}`);
        first = false;
        client.end(true);
        reject(new Error(`MQTT login refused for ${id}: ${err.message}`));
      });
    });
  }

  /** The modem dropped: the connection ends without a goodbye (the broker publishes the will). */
  drop(): void {
    const client = this.client;
    this.client = null;
    client?.stream.destroy();
    client?.end(true);
  }

  /** A clean stop: the retained status says offline first (a clean disconnect fires no will). */
  async close(): Promise<void> {
    const client = this.client;
    this.client = null;
    if (!client) return;
    if (client.connected)
      await client
        .publishAsync(mqttTopics.status(this.options.kioskId), JSON.stringify({ online: false }), {
          qos: 1,
          retain: true,
        })
        .catch(() => undefined);
    await client.endAsync().catch(() => undefined);
  }

  /** The §11 heartbeat as telemetry (QoS 0, no answer); false when not connected. */
  async heartbeat(body: HeartbeatRequest, busy: boolean): Promise<boolean> {
    const client = this.client;
    if (!client?.connected) return false;
    await client.publishAsync(
      mqttTopics.telemetry(this.options.kioskId),
      JSON.stringify({ status: busy ? 'BUSY' : 'IDLE', ...body }),
      { qos: 0 },
    );
    return true;
  }

  /**
   * The server sends water kiosks no commands of their own today (water is approved per customer
   * over HTTP); whatever arrives is refused for good, so it is never sent again.
   */
  private onMessage(topic: string, payload: Buffer): void {
    const prefix = `${mqttTopics.downPrefix(this.options.kioskId)}cmd/`;
    if (!topic.startsWith(prefix)) return;
    let command: MqttCommand;
    try {
      command = JSON.parse(payload.toString('utf8')) as MqttCommand;
    } catch {
      return this.options.log?.(`${this.options.kioskId}  ignored a command that is not JSON`);
    }
    const answer: FinalReport = this.answered.get(command.commandId) ?? {
      phase: 'rejected',
      reason:
        command.expiresAt && Date.parse(command.expiresAt) < Date.now()
          ? 'EXPIRED'
          : command.kind === 'ota.install'
            ? 'OTA_UNSUPPORTED'
            : 'UNSUPPORTED',
    };
    this.answered.set(command.commandId, answer);
    this.options.log?.(
      `${this.options.kioskId}  command ${command.kind} ${command.commandId}: ${answer.phase}`,
    );
    void this.client
      ?.publishAsync(
        mqttTopics.commandReport(this.options.kioskId, command.commandId),
        JSON.stringify(answer),
        { qos: 1 },
      )
      .catch(() => undefined);
  }
}
