// A simulated vending machine speaking the MQTT device transport (CONTRACTS.md §14): retained
// birth and last will on up/status, commands on down/cmd/<id> answered `received` then `done`,
// repeats answered with the stored result, telemetry on up/tel. With `ota` set it also updates
// its firmware (§15) from an `ota.install` command: reports on up/ota, answers on down/ota, a
// "reboot" is a new connection whose birth names the new version.
import { EventEmitter } from 'node:events';
import { randomUUID } from 'node:crypto';
import {
  mqttTopics,
  type MqttCommand,
  type MqttCommandReport,
  type MqttOtaAnswer,
  type OtaNext,
} from '@kioskhub/protocol';
import { connect, type MqttClient } from 'mqtt';
import { MqttOtaReporter } from './mqtt-ota-reporter.js';
import { createOtaDevice, type OtaFault, type OtaRunOutcome } from './ota-device.js';
import type { DispenseRecord, SimulatedMachineEvents } from './types.js';

export interface MqttOtaOptions {
  /** The server's HTTP address: images are downloaded from there (with Range). */
  url: string;
  hw: string;
  /** Trusted signing keys, as FIRMWARE_SIGNING_KEYS. */
  trustedKeys: string;
  fault?: OtaFault;
  cutAfterBytes?: number;
  chunkBytes?: number;
  rebootMs?: number;
  /** Without an answer on down/ota within this, the same report (same seq) is sent again. */
  reportTimeoutMs?: number;
  /**
   * The first this many `ota.install` commands are dropped unanswered, as if lost inside the
   * device (its MQTT client has still acknowledged them to the broker).
   */
  dropOffers?: number;
}

export interface MqttMachineOptions {
  /** Broker URL, e.g. mqtt://127.0.0.1:1883. */
  mqttUrl: string;
  machineId: string;
  key: string;
  heartbeatMs?: number;
  dispenseDelayMs?: number;
  /** A dispense runs until `releaseDispense()` is called rather than for dispenseDelayMs. */
  holdDispense?: boolean;
  failureRate?: number;
  firmware?: string;
  random?: () => number;
  logger?: (line: string) => void;
  /** Firmware updates over the air; without it an `ota.install` is rejected (`OTA_UNSUPPORTED`). */
  ota?: MqttOtaOptions;
}

type Report = Exclude<MqttCommandReport, { phase: 'received' }>;

export interface MqttMachineEvents extends SimulatedMachineEvents {
  /** An OTA deployment ended on this device (or it went quiet: `silent`). */
  ota: [info: { deploymentId: string; outcome: OtaRunOutcome; version: string }];
}

export class MqttSimulatedMachine extends EventEmitter<MqttMachineEvents> {
  readonly machineId: string;
  readonly dispensed: DispenseRecord[] = [];
  /** Every ota.install that arrived (repeats included). */
  readonly otaCommands: MqttCommand[] = [];
  /** Every dispense command that arrived (repeats included). */
  readonly commands: MqttCommand[] = [];
  private client: MqttClient | null = null;
  private telemetryTimer: NodeJS.Timeout | null = null;
  private readonly finished = new Map<string, Report>();
  private readonly running = new Set<string>();
  /** How each dispense in progress ends, by commandId. */
  private readonly ending = new Map<string, () => void>();
  /** Named in the will of the connection being opened and in its birth: new for every connection. */
  private bootId = randomUUID().slice(0, 12);
  /** The bootId of the connection now open. */
  private liveBootId = '';
  private firmwareVersion: string;
  private readonly ota;
  /** The deployment being installed, so a repeated offer does not start it twice. */
  private otaDeployment: string | undefined;
  private readonly otaReports: MqttOtaReporter;
  private offersDropped = 0;

  constructor(private readonly options: MqttMachineOptions) {
    super();
    this.machineId = options.machineId;
    this.firmwareVersion = options.firmware ?? 'sim-mqtt-1.0';
    this.otaReports = new MqttOtaReporter(
      (topic, body) => this.client?.publishAsync(topic, body, { qos: 1 }),
      options.ota?.reportTimeoutMs,
    );
    const o = options.ota;
    this.ota = o
      ? createOtaDevice({
          url: o.url,
          machineId: options.machineId,
          key: options.key,
          version: this.firmwareVersion,
          hw: o.hw,
          trustedKeys: o.trustedKeys,
          ...(o.fault ? { fault: o.fault } : {}),
          ...(o.cutAfterBytes !== undefined ? { cutAfterBytes: o.cutAfterBytes } : {}),
          ...(o.chunkBytes !== undefined ? { chunkBytes: o.chunkBytes } : {}),
          reporter: (deploymentId, body) => this.otaReports.send(this.machineId, deploymentId, body),
          reboot: (version) => this.reboot(version),
          log: (line) => this.options.logger?.(`[ota] ${line}`),
        })
      : undefined;
  }

  /** The firmware version this device runs (and names in its birth). */
  get firmware(): string {
    return this.firmwareVersion;
  }

  private log(line: string): void {
    this.options.logger?.(`[${this.machineId}] ${line}`);
  }

  /** Resolves once connected, subscribed and born; rejects when the broker refuses the login. */
  start(): Promise<void> {
    this.telemetryTimer = setInterval(() => {
      if (this.client?.connected)
        void this.client
          .publishAsync(
            mqttTopics.telemetry(this.machineId),
            JSON.stringify({ status: this.running.size ? 'BUSY' : 'IDLE' }),
            { qos: 0 },
          )
          .catch((err: Error) => this.log(`telemetry not sent: ${err.message}`));
    }, this.options.heartbeatMs ?? 10_000);
    this.telemetryTimer.unref();
    return this.open();
  }

  private open(): Promise<void> {
    const id = this.machineId;
    const client = connect(this.options.mqttUrl, {
      clientId: id,
      username: id,
      password: this.options.key,
      clean: true,
      reconnectPeriod: 2_000,
      will: {
        topic: mqttTopics.status(id),
        payload: Buffer.from(JSON.stringify({ online: false, bootId: this.bootId })),
        qos: 1,
        retain: true,
      },
    });
    this.client = client;
    client.on('message', (topic, payload) => this.onMessage(topic, payload));
    client.on('close', () => this.emit('disconnect', 'closed'));
    return new Promise((resolve, reject) => {
      let first = true;
      client.on('connect', () => {
        void (async () => {
          const bootId = this.bootId;
          this.liveBootId = bootId;
          // The next connection's will names a new session, so this one's will never ends it.
          this.bootId = randomUUID().slice(0, 12);
          if (client.options.will)
            client.options.will.payload = Buffer.from(JSON.stringify({ online: false, bootId: this.bootId }));
          await client.subscribeAsync(`${mqttTopics.downPrefix(id)}#`, { qos: 1 });
          await client.publishAsync(
            mqttTopics.status(id),
            // Its hardware model too, when it can take updates: the server's skip rules check it.
            JSON.stringify({
              online: true,
              firmware: this.firmwareVersion,
              bootId,
              ...(this.options.ota ? { hw: this.options.ota.hw } : {}),
            }),
            { qos: 1, retain: true },
          );
          this.log(`connected over MQTT (firmware ${this.firmwareVersion})`);
          this.emit('connect');
          if (first) {
            first = false;
            resolve();
          }
        })().catch((err: unknown) => this.log(`could not subscribe: ${String(err)}`));
      });
      client.on('error', (err) => {
        if (first) {
          first = false;
          client.end(true);
          reject(new Error(`MQTT login refused for ${id}: ${err.message}`));
        } else this.log(`MQTT error: ${err.message}`);
      });
    });
  }

  stop(): void {
    if (this.telemetryTimer) clearInterval(this.telemetryTimer);
    this.client?.end();
  }

  private report(commandId: string, body: MqttCommandReport): void {
    // A report the connection cannot take (it is closing) is not lost for the server: the command
    // stays in flight and comes again after the reconnect, and this machine answers it again then.
    void this.client
      ?.publishAsync(mqttTopics.commandReport(this.machineId, commandId), JSON.stringify(body), { qos: 1 })
      .catch((err: Error) => this.log(`report of ${commandId} not sent: ${err.message}`));
  }

  private onMessage(topic: string, payload: Buffer): void {
    let body: unknown;
    try {
      body = JSON.parse(payload.toString('utf8'));
    } catch {
      return this.log(`ignored a message on ${topic} that is not JSON`);
    }
    if (topic === mqttTopics.otaAnswer(this.machineId))
      return this.otaReports.answered(body as MqttOtaAnswer);
    if (!topic.startsWith(`${mqttTopics.downPrefix(this.machineId)}cmd/`)) return;
    const command = body as MqttCommand;
    if (command.kind !== 'ota.install') this.commands.push(command);
    const done = this.finished.get(command.commandId);
    if (done) {
      // A repeat of a finished command: answer with the same result, never run it again.
      this.report(command.commandId, done);
      return;
    }
    if (this.running.has(command.commandId)) {
      this.report(command.commandId, { phase: 'received' });
      return;
    }
    if (command.expiresAt && Date.parse(command.expiresAt) < Date.now()) {
      this.finish(command.commandId, { phase: 'rejected', reason: 'EXPIRED' });
      return;
    }
    if (command.kind === 'ota.install') return this.onOtaInstall(command);
    this.running.add(command.commandId);
    this.report(command.commandId, { phase: 'received' });
    this.log(
      `dispensing order ${command.orderId ?? '-'} (command ${command.commandId}, attempt ${command.attempt})`,
    );
    const end = () => {
      this.ending.delete(command.commandId);
      this.running.delete(command.commandId);
      const failed = (this.options.random ?? Math.random)() < (this.options.failureRate ?? 0);
      const result: Report = failed
        ? { phase: 'done', status: 'FAILED', failureCode: 'MOTOR_JAM' }
        : { phase: 'done', status: 'SUCCESS' };
      const status = failed ? 'FAILED' : 'SUCCESS';
      this.dispensed.push({
        commandId: command.commandId,
        orderId: command.orderId ?? '',
        status,
        at: Date.now(),
      });
      this.finish(command.commandId, result);
      this.log(`order ${command.orderId ?? '-'} ${status}`);
    };
    const timer = this.options.holdDispense
      ? undefined
      : setTimeout(end, this.options.dispenseDelayMs ?? 500).unref();
    this.ending.set(command.commandId, () => {
      if (timer) clearTimeout(timer);
      end();
    });
  }

  /** Ends every dispense in progress now (with `holdDispense`, the only way they end). */
  releaseDispense(): number {
    const ends = [...this.ending.values()];
    for (const end of ends) end();
    return ends.length;
  }

  private finish(commandId: string, result: Report): void {
    this.running.delete(commandId);
    this.finished.set(commandId, result);
    this.report(commandId, result);
  }

  private onOtaInstall(command: MqttCommand): void {
    this.otaCommands.push(command);
    if (this.offersDropped < (this.options.ota?.dropOffers ?? 0)) {
      this.offersDropped++;
      this.log(`ota.install ${command.commandId} (attempt ${command.attempt}) dropped`);
      return;
    }
    const next = command.ota as OtaNext | undefined;
    if (!this.ota || !next) {
      this.finish(command.commandId, { phase: 'rejected', reason: 'OTA_UNSUPPORTED' });
      return;
    }
    this.running.add(command.commandId);
    this.report(command.commandId, { phase: 'received' });
    // Offered again (a birth while it runs): this command is received, the install is not restarted.
    if (this.otaDeployment === next.deploymentId) return;
    this.otaDeployment = next.deploymentId;
    this.log(`ota.install ${next.deploymentId}: installing`);
    const ota = this.ota;
    void ota
      .install(next)
      .catch((err: unknown) => {
        this.log(`ota: ${(err as Error).message}`);
        return 'failed' as const;
      })
      .then((outcome) => {
        this.otaDeployment = undefined;
        this.emit('ota', { deploymentId: next.deploymentId, outcome, version: ota.version });
        this.log(`ota ${next.deploymentId}: ${outcome}; running ${ota.version}`);
        // A device that went quiet answers nothing more.
        if (outcome === 'silent') return;
        this.finish(
          command.commandId,
          outcome === 'succeeded'
            ? { phase: 'done', status: 'SUCCESS' }
            : { phase: 'done', status: 'FAILED', failureCode: outcome.toUpperCase().replace('-', '_') },
        );
      });
  }

  /** Restarts into `version`: says goodbye (retained offline status), disconnects, connects again. */
  private async reboot(version: string): Promise<void> {
    const old = this.client;
    if (old) {
      await old
        .publishAsync(
          mqttTopics.status(this.machineId),
          JSON.stringify({ online: false, bootId: this.liveBootId }),
          { qos: 1, retain: true },
        )
        .catch(() => undefined);
      await old.endAsync();
    }
    this.log(`rebooting into ${version}`);
    await new Promise((r) => setTimeout(r, this.options.ota?.rebootMs ?? 50));
    this.firmwareVersion = version;
    await this.open();
  }
}
