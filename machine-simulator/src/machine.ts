// A simulated vending machine speaking the v2 gateway protocol (CONTRACTS.md §5).
import { EventEmitter } from 'node:events';
import { io, type Socket } from 'socket.io-client';
import { MACHINES_NAMESPACE, V2_EVENTS } from '@kioskhub/protocol';
import type {
  DispenseAck,
  DispenseCommand,
  DonePayload,
  HeartbeatPayload,
  MachineHandshakeAuth,
  ReportedMachineStatus,
} from '@kioskhub/protocol';
import { FinishedCommands, type FinishedCommand } from './results.js';
import type {
  CommandHandling,
  DispenseRecord,
  SimulatedMachineEvents,
  SimulatedMachineOptions,
} from './types.js';
import { parseDispenseCommand, describeAck, isOkAck } from './wire.js';

export type { CommandHandling, DispenseRecord, SimulatedMachineEvents, SimulatedMachineOptions };

const FAILURE_CODE = 'MOTOR_JAM';
// Delay before re-opening a socket the server closed or refused; jittered so a fleet spreads out.
const MANUAL_RETRY_BASE_MS = 2000;
const MANUAL_RETRY_MAX_MS = 30_000;

// Acks are typed unknown: the server's answer is checked, not trusted.
interface MachineToServerEvents {
  [V2_EVENTS.heartbeat]: (payload: HeartbeatPayload, ack: (answer: unknown) => void) => void;
  [V2_EVENTS.done]: (payload: DonePayload, ack: (answer: unknown) => void) => void;
}
interface ServerToMachineEvents {
  // Typed as unknown on purpose: the payload is validated before use.
  [V2_EVENTS.dispense]: (command: unknown, ack?: unknown) => void;
}
type MachineSocket = Socket<ServerToMachineEvents, MachineToServerEvents>;

export class SimulatedMachine extends EventEmitter<SimulatedMachineEvents> {
  readonly machineId: string;
  /** Connection failures already explained in full (the retries get one short line each). */
  private readonly explained = new Set<string>();
  /** One entry per real dispense, never for repeats (proves exactly-once). */
  readonly dispensed: DispenseRecord[] = [];
  /** The last connection failure's message, until the next successful connection. */
  lastConnectError: string | undefined;

  private readonly options: Required<Omit<SimulatedMachineOptions, 'logger'>> & {
    logger: (line: string) => void;
  };
  private socket: MachineSocket | null = null;
  private heartbeatTimer: NodeJS.Timeout | null = null;
  private dispenseTimer: NodeJS.Timeout | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  private manualRetries = 0;
  private current: DispenseCommand | null = null;
  private readonly finished = new FinishedCommands();
  private stopped = false;
  /** Settles the promise returned by start() (null once settled). */
  private settleStart: ((error?: Error) => void) | null = null;

  constructor(options: SimulatedMachineOptions) {
    super();
    this.machineId = options.machineId;
    // `??` rather than spreading, so an option passed as undefined still gets its default.
    this.options = {
      url: options.url,
      machineId: options.machineId,
      key: options.key,
      heartbeatMs: options.heartbeatMs ?? 10_000,
      dispenseDelayMs: options.dispenseDelayMs ?? 500,
      holdDispense: options.holdDispense ?? false,
      failureRate: options.failureRate ?? 0,
      disconnectRate: options.disconnectRate ?? 0,
      firmware: options.firmware ?? 'sim-1.0',
      autoReconnect: options.autoReconnect ?? true,
      ackTimeoutMs: options.ackTimeoutMs ?? 10_000,
      random: options.random ?? Math.random,
      logger: options.logger ?? (() => {}),
    };
  }

  get connected(): boolean {
    return this.socket?.connected ?? false;
  }

  get status(): ReportedMachineStatus {
    return this.current ? 'BUSY' : 'IDLE';
  }

  /** Connects; resolves once connected and the first heartbeat was answered (or timed out). */
  start(): Promise<void> {
    if (this.socket) return Promise.reject(new Error(`machine ${this.machineId} already started`));
    this.stopped = false;
    const { url, machineId, key, autoReconnect } = this.options;
    const auth: MachineHandshakeAuth = { machineId, key };
    const socket: MachineSocket = io(`${url.replace(/\/+$/, '')}${MACHINES_NAMESPACE}`, {
      transports: ['websocket'],
      auth,
      forceNew: true, // one connection per machine, never multiplexed
      reconnection: autoReconnect,
      reconnectionDelay: 250,
      reconnectionDelayMax: 5000,
      randomizationFactor: 0.5,
    });
    this.socket = socket;
    socket.on(V2_EVENTS.dispense, (command, ack) => this.handleDispense(command, ack));

    return new Promise<void>((resolve, reject) => {
      const settle = (error?: Error): void => {
        if (this.settleStart !== settle) return;
        this.settleStart = null;
        if (error) reject(error);
        else resolve();
      };
      this.settleStart = settle;
      socket.on('connect', () => {
        this.manualRetries = 0;
        this.lastConnectError = undefined;
        this.log('connected');
        this.emit('connect');
        this.flushUnackedResults();
        this.startHeartbeats();
        void this.sendHeartbeat().then(() => settle());
      });
      socket.on('disconnect', (reason) => {
        this.stopHeartbeats();
        this.log(`disconnected (${reason})`);
        this.emit('disconnect', reason);
        // The client does not reconnect by itself after a server-side disconnect.
        if (reason === 'io server disconnect') this.scheduleManualReconnect();
      });
      socket.on('connect_error', (error) => {
        this.lastConnectError = error.message;
        this.log(this.describeConnectError(error));
        if (!autoReconnect) {
          settle(error);
          this.stop();
        } else if (!socket.active) {
          // Refused by the server (e.g. unauthorized): the client will not retry by itself.
          this.scheduleManualReconnect();
        }
      });
    });
  }

  /** Disconnects for good and cancels every timer (an unfinished dispense is abandoned). */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.stopHeartbeats();
    for (const timer of [this.dispenseTimer, this.retryTimer]) if (timer) clearTimeout(timer);
    this.dispenseTimer = this.retryTimer = null;
    this.socket?.removeAllListeners();
    this.socket?.disconnect();
    this.socket = null;
    this.current = null;
    this.settleStart?.(new Error(`machine ${this.machineId} stopped before connecting`));
  }

  /** Drops the transport as a network loss would; with autoReconnect it reconnects shortly after. */
  disconnectNow(): void {
    this.socket?.io.engine?.close();
  }

  private handleDispense(raw: unknown, rawAck: unknown): void {
    const receivedAt = Date.now();
    const ack = (answer: DispenseAck): void => {
      if (typeof rawAck === 'function') (rawAck as (answer: DispenseAck) => void)(answer);
    };
    const command = parseDispenseCommand(raw);
    if (!command) {
      this.log('invalid dispense command ignored');
      this.emit('command', { command: null, handling: 'invalid', receivedAt });
      ack({ accepted: false, reason: 'INVALID_COMMAND' });
      return;
    }
    const handling = this.classify(command);
    this.emit('command', { command, handling, receivedAt });
    switch (handling) {
      case 'repeat': {
        ack({ accepted: true });
        this.log(`repeat command ${command.commandId} answered with stored result`);
        const finished = this.finished.get(command.commandId);
        if (finished) this.sendDone(finished);
        return;
      }
      case 'in-progress':
        ack({ accepted: true });
        this.log(`repeat command ${command.commandId} already dispensing`);
        return;
      case 'busy':
        ack({ accepted: false, reason: 'BUSY' });
        this.log(`busy: refused command ${command.commandId} order=${command.orderId}`);
        return;
      default:
        this.current = command;
        ack({ accepted: true });
        this.log(`dispense order=${command.orderId} command=${command.commandId}`);
        this.emit('dispense', { command, receivedAt });
        if (!this.options.holdDispense)
          this.dispenseTimer = setTimeout(() => this.finishDispense(command), this.options.dispenseDelayMs);
    }
  }

  private classify(command: DispenseCommand): Exclude<CommandHandling, 'invalid'> {
    if (this.finished.has(command.commandId)) return 'repeat';
    if (this.current?.commandId === command.commandId) return 'in-progress';
    if (this.current) return 'busy';
    return 'dispense';
  }

  /** Ends the dispense in progress now (with `holdDispense`, the only way it ends); false if none. */
  releaseDispense(): boolean {
    if (!this.current) return false;
    if (this.dispenseTimer) clearTimeout(this.dispenseTimer);
    this.finishDispense(this.current);
    return true;
  }

  private finishDispense(command: DispenseCommand): void {
    this.dispenseTimer = null;
    const failed = this.options.random() < this.options.failureRate;
    const result: DonePayload = {
      commandId: command.commandId,
      orderId: command.orderId,
      status: failed ? 'FAILED' : 'SUCCESS',
      ...(failed ? { failureCode: FAILURE_CODE } : {}),
    };
    const at = Date.now();
    const finished: FinishedCommand = { result, acked: false };
    this.finished.add(finished);
    this.dispensed.push({
      commandId: command.commandId,
      orderId: command.orderId,
      status: result.status,
      at,
    });
    this.current = null;
    this.log(`done ${result.status}${failed ? ` ${FAILURE_CODE}` : ''} order=${command.orderId}`);
    this.emit('done', { result, at });
    this.sendDone(finished);
  }

  private sendDone(finished: FinishedCommand): void {
    const socket = this.socket;
    if (!socket?.connected) {
      this.log(`offline: result for ${finished.result.commandId} kept until reconnect`);
      return;
    }
    socket.timeout(this.options.ackTimeoutMs).emit(V2_EVENTS.done, finished.result, (err, ack) => {
      if (err) {
        this.log(`no ack for done ${finished.result.commandId} (${err.message}); resent after reconnect`);
        return;
      }
      // Any answer means the server has it; resending would not change a refusal.
      finished.acked = true;
      if (!isOkAck(ack)) this.log(`done ${finished.result.commandId} refused: ${describeAck(ack)}`);
    });
  }

  private flushUnackedResults(): void {
    for (const finished of this.finished.unacked()) this.sendDone(finished);
  }

  /** Resolves true when the server acknowledged the heartbeat. */
  private sendHeartbeat(): Promise<boolean> {
    const socket = this.socket;
    if (!socket?.connected) return Promise.resolve(false);
    return new Promise((resolve) => {
      const payload = { status: this.status, firmware: this.options.firmware };
      socket.timeout(this.options.ackTimeoutMs).emit(V2_EVENTS.heartbeat, payload, (err, ack) => {
        if (err) this.log(`heartbeat not acknowledged (${err.message})`);
        else if (!isOkAck(ack)) this.log(`heartbeat refused: ${describeAck(ack)}`);
        resolve(!err && isOkAck(ack));
      });
    });
  }

  private startHeartbeats(): void {
    this.stopHeartbeats();
    this.heartbeatTimer = setInterval(() => {
      if (this.options.disconnectRate > 0 && this.options.random() < this.options.disconnectRate) {
        this.log('simulating network loss');
        this.disconnectNow();
        return;
      }
      void this.sendHeartbeat();
    }, this.options.heartbeatMs);
  }

  private stopHeartbeats(): void {
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = null;
  }

  private scheduleManualReconnect(): void {
    if (this.stopped || !this.options.autoReconnect || this.retryTimer) return;
    const base = Math.min(MANUAL_RETRY_MAX_MS, MANUAL_RETRY_BASE_MS * 2 ** this.manualRetries);
    const delay = Math.round(base * (0.5 + this.options.random()));
    this.manualRetries += 1;
    this.log(`reconnecting in ${delay}ms`);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      if (!this.stopped) this.socket?.connect();
    }, delay);
  }

  /** What went wrong and what to do, in full the first time each kind of failure happens. */
  private describeConnectError(error: Error): string {
    const url = this.options.url;
    const refused = error.message === 'unauthorized';
    const kind = refused ? 'refused' : error.message === 'unavailable' ? 'unavailable' : 'unreachable';
    const first = !this.explained.has(kind);
    this.explained.add(kind);
    if (refused) {
      return first
        ? `refused by ${url}: the server does not know machine ${this.machineId} or its key is wrong. ` +
            'Check the key in MACHINE_KEYS (machine-simulator/.env) or --keys: it is shown once, ' +
            `when the machine is created. A new one: POST /v1/machines/${this.machineId}/rotate-key, ` +
            'or "Rotate key" on its dashboard page.'
        : `refused by ${url} (wrong key); retrying`;
    }
    if (kind === 'unavailable') {
      return `${url} could not check the key (its database did not answer); retrying`;
    }
    return first
      ? `cannot reach the server at ${url} (${error.message}): ` +
          'check --url / KIOSKHUB_URL and that the server is running'
      : `cannot reach ${url} (${error.message}); retrying`;
  }

  private log(message: string): void {
    this.options.logger(`[${this.machineId}] ${message}`);
  }
}
