// The print client's modules, for tests and for tools built on top of it.
export { startPrintClient, type PrintClient } from './client.js';
export { loadPrintClientConfig, type PrintClientConfig } from './config.js';
export { encodeText, escpos, COMMANDS } from './escpos.js';
export { parseReceipt, type Receipt } from './receipt.js';
export { renderReceipt, type LayoutOptions } from './receipt-layout.js';
