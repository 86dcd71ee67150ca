import { describe, expect, it } from 'vitest';
import { loadPrintClientConfig } from './config.js';

describe('print client config', () => {
  const required = { KIOSKHUB_URL: 'https://kiosk.example.com', DEVICE_KEY: 'k3y' };

  it('long-polls a USB printer by default', () => {
    expect(loadPrintClientConfig(required)).toMatchObject({
      mode: 'poll',
      output: '/dev/usb/lp0',
      outputKind: 'file',
      pollWaitSeconds: 25,
      columns: 32,
      currencyLabel: 'PHP',
      stateDir: '/var/lib/kioskhub-print-client',
    });
  });

  it('picks serial output for tty devices and needs a printer id for socket mode', () => {
    expect(loadPrintClientConfig({ ...required, OUTPUT: '/dev/ttyUSB0' }).outputKind).toBe('serial');
    expect(
      loadPrintClientConfig({ ...required, OUTPUT: '/tmp/r.bin', OUTPUT_KIND: 'serial' }).outputKind,
    ).toBe('serial');
    expect(() => loadPrintClientConfig({ ...required, MODE: 'socket' })).toThrow(/PRINTER_ID is required/);
    expect(loadPrintClientConfig({ ...required, MODE: 'socket', PRINTER_ID: 'PRN1' })).toMatchObject({
      mode: 'socket',
      printerId: 'PRN1',
    });
  });

  it('names the variable that is wrong', () => {
    expect(() => loadPrintClientConfig({ ...required, MODE: 'push' })).toThrow(
      /MODE must be one of poll, socket/,
    );
    expect(() => loadPrintClientConfig({ ...required, POLL_WAIT_S: '60' })).toThrow(/POLL_WAIT_S/);
    expect(() => loadPrintClientConfig({ ...required, TIME_ZONE: 'Mars/Base' })).toThrow(/TIME_ZONE/);
    expect(() => loadPrintClientConfig({ DEVICE_KEY: 'k' })).toThrow(/KIOSKHUB_URL is required/);
  });
});
