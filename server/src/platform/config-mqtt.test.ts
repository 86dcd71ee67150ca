// MQTT settings: the embedded broker and an external Mosquitto exclude each other, TLS needs both
// files and the embedded broker, and a bad value names its variable.
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { TEST_CERT, TEST_KEY } from '../../test/fixtures/tls-pair.js';
import { ConfigError, loadConfig } from './config.js';

const base = { DATABASE_URL: 'memory://' };
// The TLS files are read when the configuration is loaded: a path that cannot be read, or a file
// that is not PEM, is named at start-up (before: exit 1 with ENOENT when the broker began listening).
const dir = mkdtempSync(join(tmpdir(), 'kh-mqtt-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const cert = join(dir, 'c.pem');
const key = join(dir, 'k.pem');
const notPem = join(dir, 'notes.txt');
const otherKey = join(dir, 'other-k.pem');
const damaged = join(dir, 'damaged.pem');
writeFileSync(cert, TEST_CERT);
writeFileSync(key, TEST_KEY);
writeFileSync(notPem, 'a certificate, honest\n');
writeFileSync(
  otherKey,
  generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey.export({ type: 'pkcs8', format: 'pem' }),
);
writeFileSync(damaged, '-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n');

describe('MQTT configuration', () => {
  it('is off by default, with a 10-minute command expiry', () => {
    const config = loadConfig(base);
    expect(config.mqtt.port).toBeUndefined();
    expect(config.mqtt.url).toBeUndefined();
    expect(config.commandExpiryMs).toBe(600_000);
  });

  it('reads the embedded broker with TLS, or an external broker', () => {
    const embedded = loadConfig({
      ...base,
      MQTT_PORT: '1884',
      MQTT_TLS_CERT: cert,
      MQTT_TLS_KEY: key,
    });
    expect(embedded.mqtt).toMatchObject({ port: 1884, tlsCert: cert, tlsKey: key });
    const external = loadConfig({ ...base, MQTT_URL: 'mqtts://kh:secret@broker:8883' });
    expect(external.mqtt.url).toBe('mqtts://kh:secret@broker:8883');
  });

  it.each([
    [{ MQTT_PORT: '1884', MQTT_URL: 'mqtt://broker:1883' }, 'MQTT_URL'],
    [{ MQTT_PORT: 'x' }, 'MQTT_PORT'],
    [{ MQTT_URL: 'http://broker' }, 'MQTT_URL'],
    [{ MQTT_PORT: '1884', MQTT_TLS_CERT: cert }, 'MQTT_TLS_KEY'],
    [{ MQTT_TLS_CERT: cert, MQTT_TLS_KEY: key }, 'MQTT_TLS_CERT'],
    [
      { MQTT_PORT: '1884', MQTT_TLS_CERT: join(dir, 'missing.pem'), MQTT_TLS_KEY: key },
      'MQTT_TLS_CERT: cannot read',
    ],
    [
      { MQTT_PORT: '1884', MQTT_TLS_CERT: cert, MQTT_TLS_KEY: join(dir, 'missing.pem') },
      'MQTT_TLS_KEY: cannot read',
    ],
    [{ MQTT_PORT: '1884', MQTT_TLS_CERT: notPem, MQTT_TLS_KEY: key }, 'MQTT_TLS_CERT: "'],
    [{ MQTT_PORT: '1884', MQTT_TLS_CERT: cert, MQTT_TLS_KEY: dir }, 'MQTT_TLS_KEY: cannot read'],
    // PEM files that are no pair: the broker failed as it started (exit 1, no setting named).
    [{ MQTT_PORT: '1884', MQTT_TLS_CERT: cert, MQTT_TLS_KEY: otherKey }, 'MQTT_TLS_CERT: and MQTT_TLS_KEY'],
    [{ MQTT_PORT: '1884', MQTT_TLS_CERT: key, MQTT_TLS_KEY: cert }, 'MQTT_TLS_CERT: and MQTT_TLS_KEY'],
    [{ MQTT_PORT: '1884', MQTT_TLS_CERT: damaged, MQTT_TLS_KEY: key }, 'MQTT_TLS_CERT: and MQTT_TLS_KEY'],
    [{ COMMAND_EXPIRY_MS: '5' }, 'COMMAND_EXPIRY_MS'],
  ])('refuses %j naming %s', (env, name) => {
    expect(() => loadConfig({ ...base, ...env })).toThrow(ConfigError);
    expect(() => loadConfig({ ...base, ...env })).toThrow(name);
  });
});
