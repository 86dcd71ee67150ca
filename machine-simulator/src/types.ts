// Public types of the simulator (options, records and the events a machine emits).
import type { DispenseCommand, DispenseResult, DonePayload } from '@kioskhub/protocol';

export interface SimulatedMachineOptions {
  /** Server base URL, e.g. http://127.0.0.1:8080 (the `/machines` namespace is appended). */
  url: string;
  machineId: string;
  key: string;
  heartbeatMs?: number;
  dispenseDelayMs?: number;
  /**
   * A dispense runs until `releaseDispense()` is called rather than for dispenseDelayMs: a scripted
   * scenario (a test, a demo) decides when the motor stops.
   */
  holdDispense?: boolean;
  /** Probability (0..1) that a dispense ends FAILED with failureCode MOTOR_JAM. */
  failureRate?: number;
  /** Probability (0..1), checked at every heartbeat, of dropping the transport (it reconnects). */
  disconnectRate?: number;
  firmware?: string;
  autoReconnect?: boolean;
  /** How long to wait for the server's ack of a heartbeat or done. */
  ackTimeoutMs?: number;
  random?: () => number;
  logger?: (line: string) => void;
}

export interface DispenseRecord {
  commandId: string;
  orderId: string;
  status: DispenseResult;
  at: number;
}

/** How an arriving `machine:dispense` was handled. */
export type CommandHandling = 'dispense' | 'repeat' | 'in-progress' | 'busy' | 'invalid';

export interface SimulatedMachineEvents {
  /** Every `machine:dispense` that arrives, including repeats; receivedAt is Date.now() on arrival. */
  command: [info: { command: DispenseCommand | null; handling: CommandHandling; receivedAt: number }];
  /** A real (new) dispense starts. */
  dispense: [info: { command: DispenseCommand; receivedAt: number }];
  /** A real dispense finished (once per command, never for repeats). */
  done: [info: { result: DonePayload; at: number }];
  connect: [];
  disconnect: [reason: string];
}
