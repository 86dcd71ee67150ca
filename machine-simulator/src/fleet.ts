// Many simulated machines at once; connections are opened a few at a time so 1,000+ can join.
import { SimulatedMachine, type SimulatedMachineOptions } from './machine.js';

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
}

export interface Fleet {
  machines: SimulatedMachine[];
  /** Connects every machine; rejects (after stopping the fleet) if any machine's start() rejects. */
  start(): Promise<void>;
  stop(): void;
}

const MANY_MACHINES = 100;

/** Creates the machines without connecting them (so a caller can stop them mid-start). */
export function createFleet(options: FleetOptions): Fleet {
  const { url, machines: credentials, connectConcurrency = 50, progress, ...shared } = options;
  if (!Number.isInteger(connectConcurrency) || connectConcurrency < 1) {
    throw new Error(`connectConcurrency must be a positive integer (got ${connectConcurrency})`);
  }
  const report =
    progress === undefined ? (credentials.length >= MANY_MACHINES ? console.log : null) : progress;
  const machines = credentials.map((c) => new SimulatedMachine({ ...shared, url, ...c }));
  let stopped = false;

  const stop = (): void => {
    stopped = true;
    for (const machine of machines) machine.stop();
  };

  const start = async (): Promise<void> => {
    const total = machines.length;
    const step = Math.max(1, Math.floor(total / 10));
    let next = 0;
    let connected = 0;
    const failures: string[] = [];
    const worker = async (): Promise<void> => {
      while (!stopped && next < total) {
        const machine = machines[next++];
        if (!machine) break;
        try {
          await machine.start();
          connected += 1;
          if (report && (connected % step === 0 || connected === total)) {
            report(`fleet: ${connected}/${total} machines connected`);
          }
        } catch (error) {
          if (!stopped) failures.push(`${machine.machineId}: ${(error as Error).message}`);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(connectConcurrency, total) }, worker));
    if (failures.length > 0) {
      stop();
      const shown = failures.slice(0, 5).join('; ');
      const more = failures.length > 5 ? ` (and ${failures.length - 5} more)` : '';
      throw new Error(`${failures.length} of ${total} machines failed to connect: ${shown}${more}`);
    }
  };

  return { machines, start, stop };
}

/** Creates and connects a fleet; resolves once every machine is connected. */
export async function startFleet(options: FleetOptions): Promise<Fleet> {
  const fleet = createFleet(options);
  await fleet.start();
  return fleet;
}
