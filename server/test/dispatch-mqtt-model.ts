// The property test's model machine on the MQTT transport (CONTRACTS §14), driven action by
// action like the Socket.IO one in dispatch.property.test.ts: a real MQTT.js client on the
// embedded broker. It behaves as firmware must where the contract says so (de-duplicate by
// commandId; answer a repeat of a finished command with the same report, of the running one with
// `received`) and as the actions say everywhere else. It records violations of one command in
// flight, and which orders it reported `received` for, so the test can tell that the broker's
// PUBACK alone never made an order DISPATCHED.
import { mqttTopics, type MqttCommand, type MqttCommandReport } from '@kioskhub/protocol';
import type { MqttClient } from 'mqtt';
import { MqttDevice } from './mqtt-fixtures.js';

type Result = 'SUCCESS' | 'FAILED';
type Final = Exclude<MqttCommandReport, { phase: 'received' }>;

export class MqttModelMachine {
  readonly protocol = 'mqtt';
  client: MqttClient | undefined;
  readonly violations: string[] = [];
  /** Commands delivered and not answered yet (cleared when the connection ends). */
  pending: { commandId: string; orderId: string }[] = [];
  /** The command being executed (received, no result yet). */
  current: { commandId: string; orderId: string } | undefined;
  /** Every dispense actually performed: first `received` of a commandId. */
  readonly performed: { commandId: string; orderId: string }[] = [];
  /** The machine's decision per order: a result, or REJECTED for a declined command. */
  readonly decided = new Map<string, Result | 'REJECTED'>();
  /** Final report per command, sent again for every repeat. */
  readonly finished = new Map<string, Final>();
  /** Orders whose command this machine reported `received` (or a result) for. */
  readonly acknowledged = new Set<string>();
  /** Every delivery of a command on down/cmd, counting repeats. */
  deliveries = 0;
  lastFinished: string | undefined;
  /** Same surface as the Socket.IO model (v1 bookkeeping: always empty here). */
  readonly unreported: string[] = [];
  readonly v1Received: string[] = [];
  /** Commands delivered without a final report yet, answered or not. */
  private readonly unfinished = new Map<string, string>();
  private generation = 0;

  constructor(
    public url: string,
    readonly machineId: string,
    readonly key: string,
  ) {}

  get connected(): boolean {
    return this.client?.connected ?? false;
  }

  /** Connects, subscribes to down/#, publishes the retained birth. A refused or failed connection leaves it offline. */
  async connect(): Promise<void> {
    if (this.connected) return;
    this.close();
    const generation = ++this.generation;
    try {
      const device = await MqttDevice.connect(this.url, this.machineId, this.key, {
        firmware: 'prop-1.0',
        onCommand: (command) => {
          if (generation === this.generation) this.onCommand(command);
        },
      });
      if (generation !== this.generation) return void (await device.close());
      this.client = device.client;
      device.client.on('close', () => {
        if (generation === this.generation) this.pending = [];
      });
    } catch {
      /* the server is restarting, or the connection dropped mid-way: offline */
    }
  }

  disconnect(): void {
    this.client?.end(true);
    this.pending = [];
  }

  private onCommand(command: MqttCommand): void {
    const commandId = command.commandId;
    const orderId = String(command.orderId);
    this.deliveries += 1;
    // One command in flight: another command may come only once every earlier one has a final
    // report, whether the machine answered its delivery or stayed silent.
    for (const [other, otherOrder] of this.unfinished)
      if (other !== commandId && !this.finished.has(other))
        this.violations.push(
          `command ${commandId} (order ${orderId}) arrived while ${other} (order ${otherOrder}) had no result`,
        );
    if (!this.finished.has(commandId)) this.unfinished.set(commandId, orderId);
    this.pending.push({ commandId, orderId });
  }

  private publish(commandId: string, report: MqttCommandReport): void {
    if (!this.connected) return; // lost: the server sends the command again, and it is answered again
    this.client!.publish(
      mqttTopics.commandReport(this.machineId, commandId),
      JSON.stringify(report),
      { qos: 1 },
      () => undefined,
    );
  }

  /** Answers the oldest delivery: accept (`received`), decline (`rejected`) or none (silence). */
  answer(how: 'accept' | 'decline' | 'none'): void {
    const d = this.pending.shift();
    if (!d || how === 'none') return;
    const final = this.finished.get(d.commandId);
    if (final) return this.publish(d.commandId, final); // a repeat of a finished command
    if (this.current?.commandId === d.commandId) return this.publish(d.commandId, { phase: 'received' });
    if (this.current) return; // (already flagged as a violation on arrival)
    this.acknowledged.add(d.orderId);
    if (how === 'decline') {
      const rejected: Final = { phase: 'rejected', reason: 'OUT_OF_STOCK' };
      this.decided.set(d.orderId, 'REJECTED');
      this.finished.set(d.commandId, rejected);
      this.unfinished.delete(d.commandId);
      this.lastFinished = d.commandId;
      return this.publish(d.commandId, rejected);
    }
    if (this.performed.some((p) => p.orderId === d.orderId))
      this.violations.push(`order ${d.orderId} dispensed a second time (command ${d.commandId})`);
    this.performed.push(d);
    this.current = d;
    this.publish(d.commandId, { phase: 'received' });
  }

  /** Finishes the command being executed with this result. */
  finish(result: Result): void {
    if (!this.current) return;
    const { commandId, orderId } = this.current;
    this.current = undefined;
    const done: Final =
      result === 'FAILED'
        ? { phase: 'done', status: 'FAILED', failureCode: 'MOTOR_JAM' }
        : { phase: 'done', status: 'SUCCESS' };
    this.decided.set(orderId, result);
    this.finished.set(commandId, done);
    this.unfinished.delete(commandId);
    this.lastFinished = commandId;
    this.publish(commandId, done);
  }

  /** The last final report again: results are idempotent. */
  repeatDone(): void {
    const final = this.lastFinished && this.finished.get(this.lastFinished);
    if (final) this.publish(this.lastFinished!, final);
  }

  /** Nothing to do: the server's re-sends bring the device's answers again. */
  resendUnacked(): void {}

  /** Telemetry with a status counts as a heartbeat. */
  heartbeat(status: 'IDLE' | 'BUSY'): void {
    if (this.connected)
      this.client!.publish(mqttTopics.telemetry(this.machineId), JSON.stringify({ status }), { qos: 0 });
  }

  close(): void {
    this.generation++;
    this.client?.end(true);
    this.client = undefined;
  }
}
