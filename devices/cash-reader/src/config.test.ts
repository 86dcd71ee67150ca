import { describe, expect, it } from 'vitest';
import { loadCashReaderConfig } from './config.js';

describe('cash reader config', () => {
  const required = { KIOSKHUB_URL: 'https://kiosk.example.com/', DEVICE_KEY: 'k3y', KIOSK_ID: 'KIOSK1' };

  it('applies defaults for a Raspberry Pi with a USB Arduino', () => {
    expect(loadCashReaderConfig(required)).toEqual({
      url: 'https://kiosk.example.com',
      key: 'k3y',
      kioskId: 'KIOSK1',
      serialPort: '/dev/ttyUSB0',
      baudRate: 9600,
      queueDir: '/var/lib/kioskhub-cash-reader',
      pollIntervalMs: 1000,
      pingIntervalMs: 30_000,
      pingTimeoutMs: 5000,
      requestTimeoutMs: 10_000,
      retryBaseMs: 500,
      retryMaxMs: 30_000,
      logLevel: 'info',
    });
  });

  it('names the variable that is missing or wrong', () => {
    expect(() => loadCashReaderConfig({ ...required, KIOSK_ID: '' })).toThrow(/KIOSK_ID is required/);
    expect(() => loadCashReaderConfig({ ...required, KIOSK_ID: 'kiosk 1' })).toThrow(
      /KIOSK_ID must be a machine id/,
    );
    expect(() => loadCashReaderConfig({ ...required, DEVICE_KEY: undefined })).toThrow(/DEVICE_KEY/);
    // Pasted with curly quotes: no header can carry it (every request failed as "unreachable").
    expect(() => loadCashReaderConfig({ ...required, DEVICE_KEY: '“k3y”' })).toThrow(
      /DEVICE_KEY holds a character no HTTP header can carry/,
    );
    expect(() => loadCashReaderConfig({ ...required, BAUD_RATE: 'fast' })).toThrow(/BAUD_RATE/);
    expect(() => loadCashReaderConfig({ ...required, LOG_LEVEL: 'loud' })).toThrow(/LOG_LEVEL/);
  });
});
