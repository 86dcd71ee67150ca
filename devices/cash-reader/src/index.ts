// The cash reader's modules, for tests and for tools built on top of it.
export { startCashReader, type CashReader, type CashReaderDeps } from './agent.js';
export { loadCashReaderConfig, type CashReaderConfig } from './config.js';
export { openInsertQueue, type CashInsert, type InsertQueue } from './insert-queue.js';
export { parseAcceptorLine, type AcceptorLine } from './line-protocol.js';
export { minorToMajor, parseAcceptorAmount, parseMajorAmount } from './money.js';
export { noSessionOrderNumber, selectOwnSession } from './session-tracker.js';
