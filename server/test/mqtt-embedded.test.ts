// The embedded MQTT broker (MQTT_PORT, CONTRACTS §14) against the real server and real MQTT.js
// devices: logins, ACLs, dispatch through the same engine as Socket.IO, expiry, bad payloads.
import { describeMqtt, embeddedBroker, EXPIRY_ENV, expiryScenario, mqttScenarios } from './mqtt-fixtures.js';

describeMqtt('MQTT, embedded broker', { broker: embeddedBroker }, (ctx, devices) =>
  mqttScenarios(ctx, 'EM', devices),
);

describeMqtt(
  'MQTT, embedded broker, command expiry',
  { broker: embeddedBroker, env: EXPIRY_ENV },
  (ctx, devices) => expiryScenario(ctx, 'EMX', devices),
);
