// Public API of @kioskhub/machine-simulator (server tests and benchmarks import from here).
export { SimulatedMachine } from './machine.js';
export type {
  CommandHandling,
  DispenseRecord,
  SimulatedMachineEvents,
  SimulatedMachineOptions,
} from './types.js';
export { createFleet, startFleet } from './fleet.js';
export type { Fleet, FleetOptions, MachineCredentials, SharedMachineOptions } from './fleet.js';
