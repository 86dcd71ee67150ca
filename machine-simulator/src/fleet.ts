// Many simulated machines at once; connections are opened a few at a time so 1,000+ can join.
import { SimulatedMachine, type SimulatedMachineOptions } from './machine.js';
import { MqttSimulatedMachine } from './mqtt-machine.js';

export interface MachineCredentials {
  machineId: string;
  key: string;
}

export type SharedMachineOptions = Omit<SimulatedMachineOptions, 'url' | 'machineId' | 'key'>;

export interface FleetOptions extends SharedMachineOptions {
  url: string;
  machines: MachineCredentials[];
  /** How many machines may be connecting at the same moment (default 50). */
  connectConcurrency?: number;
  /** Progress lines while connecting; default console.log when there are 100+ machines, null for none. */
  progress?: ((line: string) => void) | null;
  /** `mqtt`: machines speak the MQTT transport to `mqttUrl` instead of Socket.IO to `url`. */
  transport?: 'socketio' | 'mqtt';
  mqttUrl?: string;
  /**
   * start() rejects (and stops the fleet) when no machine has connected for this long while
   * some are still trying, naming them and their last error. Default: keep trying, reporting the
   * stall through `progress` every STALL_REPORT_MS.
   */
  stallTimeoutMs?: number;
}

export interface Fleet {
  /** Socket.IO machines (empty with transport mqtt). */
  machines: SimulatedMachine[];
  /** MQTT machines (transport mqtt). */
  mqttMachines: MqttSimulatedMachine[];
  /** Connects every machine; rejects (after stopping the fleet) if any machine's start() rejects. */
  start(): Promise<void>;
  stop(): void;
}

const MANY_MACHINES = 100;
const STALL_REPORT_MS = 10_000;

/** Creates the machines without connecting them (so a caller can stop them mid-start). */
export function createFleet(options: FleetOptions): Fleet {
  const {
    url,
    machines: credentials,
    connectConcurrency = 50,
    progress,
    transport,
    mqttUrl,
    stallTimeoutMs,
    ...shared
  } = options;
  if (transport === 'mqtt' && !mqttUrl) throw new Error('transport mqtt needs mqttUrl');
  if (!Number.isInteger(connectConcurrency) || connectConcurrency < 1) {
    throw new Error(`connectConcurrency must be a positive integer (got ${connectConcurrency})`);
  }
  const report =
    progress === undefined ? (credentials.length >= MANY_MACHINES ? console.log : null) : progress;
  const machines =
    transport === 'mqtt' ? [] : credentials.map((c) => new SimulatedMachine({ ...shared, url, ...c }));
  const mqttMachines =
    transport === 'mqtt'
      ? credentials.map((c) => new MqttSimulatedMachine({ ...c, mqttUrl: mqttUrl!, ...pickMqtt(shared) }))
      : [];
  const all: (SimulatedMachine | MqttSimulatedMachine)[] = [...machines, ...mqttMachines];
  let stopped = false;

  const stop = (): void => {
    stopped = true;
    for (const machine of all) machine.stop();
  };

  const start = async (): Promise<void> => {
    const total = all.length;
    const step = Math.max(1, Math.floor(total / 10));
    let next = 0;
    const failures: string[] = [];
    const started = new Set<SimulatedMachine | MqttSimulatedMachine>();
    const worker = async (): Promise<void> => {
      while (!stopped && next < total) {
        const machine = all[next++];
        if (!machine) break;
        try {
          await machine.start();
          started.add(machine);
          if (report && (started.size % step === 0 || started.size === total)) {
            report(`fleet: ${started.size}/${total} machines connected`);
          }
        } catch (error) {
          if (!stopped) failures.push(`${machine.machineId}: ${(error as Error).message}`);
        }
      }
    };
    let lastProgress = Date.now();
    let lastCount = 0;
    // Machines still connecting, with why (a server refusing them is retried without end).
    const stalled = (): string => {
      const error = (m: SimulatedMachine | MqttSimulatedMachine) =>
        'lastConnectError' in m ? m.lastConnectError : undefined;
      // Those that were answered with an error first: they say what is wrong.
      const waiting = all
        .filter((m) => !started.has(m))
        .sort((a, b) => Number(error(b) !== undefined) - Number(error(a) !== undefined));
      const shown = waiting
        .slice(0, 3)
        .map((m) => `${m.machineId} (${error(m) ?? 'no answer yet'})`)
        .join(', ');
      return `${started.size}/${total} machines connected, no progress for ${Math.round((Date.now() - lastProgress) / 1000)} s; still trying: ${shown}${waiting.length > 3 ? ` and ${waiting.length - 3} more` : ''}`;
    };
    let stallError: Error | undefined;
    const watchdog = setInterval(
      () => {
        if (started.size !== lastCount) {
          lastCount = started.size;
          lastProgress = Date.now();
          return;
        }
        const quiet = Date.now() - lastProgress;
        if (stallTimeoutMs !== undefined && quiet >= stallTimeoutMs) {
          stallError = new Error(`fleet stalled: ${stalled()}`);
          stop();
        } else if (report && quiet >= STALL_REPORT_MS) report(`fleet: ${stalled()}`);
      },
      Math.min(STALL_REPORT_MS, stallTimeoutMs ?? STALL_REPORT_MS),
    );
    try {
      await Promise.all(Array.from({ length: Math.min(connectConcurrency, total) }, worker));
    } finally {
      clearInterval(watchdog);
    }
    if (stallError) throw stallError;
    if (failures.length > 0) {
      stop();
      const shown = failures.slice(0, 5).join('; ');
      const more = failures.length > 5 ? ` (and ${failures.length - 5} more)` : '';
      throw new Error(`${failures.length} of ${total} machines failed to connect: ${shown}${more}`);
    }
  };

  return { machines, mqttMachines, start, stop };
}

/** Creates and connects a fleet; resolves once every machine is connected. */
export async function startFleet(options: FleetOptions): Promise<Fleet> {
  const fleet = createFleet(options);
  await fleet.start();
  return fleet;
}

function pickMqtt(shared: SharedMachineOptions) {
  return {
    ...(shared.heartbeatMs !== undefined ? { heartbeatMs: shared.heartbeatMs } : {}),
    ...(shared.dispenseDelayMs !== undefined ? { dispenseDelayMs: shared.dispenseDelayMs } : {}),
    ...(shared.failureRate !== undefined ? { failureRate: shared.failureRate } : {}),
    ...(shared.logger !== undefined ? { logger: shared.logger } : {}),
  };
}
