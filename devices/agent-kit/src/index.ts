// What the Kioskhub field agents share.
export { createHttpClient, errorCode, type HttpAnswer, type HttpClient } from './http.js';
export { createLogger, isLogLevel, memoryLogger, type LogFields, type LogLevel, type Logger } from './log.js';
export {
  ConfigError,
  OperatorError,
  requiredVariables,
  baseUrl,
  deviceKey,
  integer,
  machineId,
  oneOf,
  parseArgs,
  readSettings,
  text,
  usableDirectory,
  type Vars,
} from './settings.js';
export { backoffDelay, createWakeup, sleep, type BackoffOptions } from './timing.js';
export { runAgent, type AgentDefinition } from './run-agent.js';
