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
export { MqttSimulatedMachine } from './mqtt-machine.js';
export type { MqttMachineEvents, MqttMachineOptions, MqttOtaOptions } from './mqtt-machine.js';
export { createOtaDevice, OTA_FAULTS } from './ota-device.js';
export type {
  OtaDeviceOptions,
  OtaFault,
  OtaReportAnswer,
  OtaReporter,
  OtaRunOutcome,
} from './ota-device.js';
