import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, baseUrl, integer, parseArgs, readSettings } from './settings.js';

describe('agent settings', () => {
  it('reads an env file with the environment on top', () => {
    const dir = mkdtempSync(join(tmpdir(), 'agent-settings-'));
    try {
      const file = join(dir, 'agent.env');
      writeFileSync(
        file,
        '# kiosk 1\nKIOSKHUB_URL=https://kiosk.example.com\nDEVICE_KEY="abc def"\nKIOSK_ID=K1\n',
      );
      expect(readSettings(file, '/nonexistent', { KIOSK_ID: 'K2' })).toMatchObject({
        KIOSKHUB_URL: 'https://kiosk.example.com',
        DEVICE_KEY: 'abc def',
        KIOSK_ID: 'K2',
      });
      expect(readSettings(undefined, join(dir, 'missing.env'), { A: '1' })).toEqual({ A: '1' });
      expect(() => readSettings(join(dir, 'missing.env'), '/x', {})).toThrow(ConfigError);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('parses flags and values with messages naming the variable', () => {
    expect(parseArgs(['--config', '/etc/x.env'])).toEqual({ configPath: '/etc/x.env', help: false });
    expect(parseArgs(['--config=/etc/y.env'])).toEqual({ configPath: '/etc/y.env', help: false });
    expect(parseArgs(['--help'])).toEqual({ help: true });
    expect(() => parseArgs(['--nope'])).toThrow(/unknown argument/);
    expect(integer({ N: '25' }, 'N', 1, 1, 30)).toBe(25);
    expect(() => integer({ N: '31' }, 'N', 1, 1, 30)).toThrow(/N must be an integer from 1 to 30/);
    expect(baseUrl('KIOSKHUB_URL', 'https://kiosk.example.com/')).toBe('https://kiosk.example.com');
    expect(baseUrl('KIOSKHUB_URL', 'http://10.0.0.2:8080/kioskhub/')).toBe('http://10.0.0.2:8080/kioskhub');
    expect(() => baseUrl('KIOSKHUB_URL', 'ftp://x')).toThrow(/KIOSKHUB_URL/);
  });
});
