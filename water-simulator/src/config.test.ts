import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadWaterSimConfig, UsageError } from './config.js';

const required = ['--kiosk', 'W01', '--key', 'k', '--customers', '+254712345678:1234'];

describe('water-sim settings', () => {
  it('takes a relative --sd-card from the directory npm was started in (INIT_CWD)', () => {
    const config = loadWaterSimConfig([...required, '--sd-card', 'logs/w.jsonl'], {
      INIT_CWD: '/home/op/site',
    });
    expect(config?.sdCardPath).toBe('/home/op/site/logs/w.jsonl');
  });

  it('keeps an absolute --sd-card as given', () => {
    const config = loadWaterSimConfig([...required, '--sd-card', '/var/sd/w.jsonl'], {
      INIT_CWD: '/home/op',
    });
    expect(config?.sdCardPath).toBe('/var/sd/w.jsonl');
  });

  it('puts the default SD card under data/water-sim in that directory, else the current one', () => {
    expect(loadWaterSimConfig(required, { INIT_CWD: '/home/op' })?.sdCardPath).toBe(
      '/home/op/data/water-sim/W01.jsonl',
    );
    expect(loadWaterSimConfig(required, {})?.sdCardPath).toBe(
      join(process.cwd(), 'data/water-sim/W01.jsonl'),
    );
  });

  it('refuses a missing kiosk and an unknown option with a usage error', () => {
    expect(() => loadWaterSimConfig(['--key', 'k'], {})).toThrow(UsageError);
    expect(() => loadWaterSimConfig([...required, '--sdcard', 'x'], {})).toThrow(/unknown option --sdcard/);
  });
});
