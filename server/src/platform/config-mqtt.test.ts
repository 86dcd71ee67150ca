// MQTT settings: the embedded broker and an external Mosquitto exclude each other, TLS needs both
// files and the embedded broker, and a bad value names its variable.
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from './config.js';

const base = { DATABASE_URL: 'memory://' };

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
      MQTT_TLS_CERT: '/c.pem',
      MQTT_TLS_KEY: '/k.pem',
    });
    expect(embedded.mqtt).toMatchObject({ port: 1884, tlsCert: '/c.pem', tlsKey: '/k.pem' });
    const external = loadConfig({ ...base, MQTT_URL: 'mqtts://kh:secret@broker:8883' });
    expect(external.mqtt.url).toBe('mqtts://kh:secret@broker:8883');
  });

  it.each([
    [{ MQTT_PORT: '1884', MQTT_URL: 'mqtt://broker:1883' }, 'MQTT_URL'],
    [{ MQTT_PORT: 'x' }, 'MQTT_PORT'],
    [{ MQTT_URL: 'http://broker' }, 'MQTT_URL'],
    [{ MQTT_PORT: '1884', MQTT_TLS_CERT: '/c.pem' }, 'MQTT_TLS_KEY'],
    [{ MQTT_TLS_CERT: '/c.pem', MQTT_TLS_KEY: '/k.pem' }, 'MQTT_TLS_CERT'],
    [{ COMMAND_EXPIRY_MS: '5' }, 'COMMAND_EXPIRY_MS'],
  ])('refuses %j naming %s', (env, name) => {
    expect(() => loadConfig({ ...base, ...env })).toThrow(ConfigError);
    expect(() => loadConfig({ ...base, ...env })).toThrow(name);
  });
});
