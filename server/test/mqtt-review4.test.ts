// Review 4 of the MQTT machine transport (embedded broker): behaviour docs/mqtt.md promises that
// the current code does not keep.
import { expect, it } from 'vitest';
import { describeMqtt, embeddedBroker, MqttDevice } from './mqtt-fixtures.js';

type FindRow = (id: string, ...rest: unknown[]) => Promise<unknown>;

describeMqtt('MQTT review 4, embedded broker', { broker: embeddedBroker }, (ctx, devices) => {
  // docs/mqtt.md, "Logging in": "Rotating the key disconnects the device at once; the old key no
  // longer logs in." A login whose key was checked just before a rotation committed must not
  // outlive it (Socket.IO re-checks the key once registered: `credentialCurrent`; MQTT does not).
  it('a login checked against the old key while the key is rotated is not left connected', async () => {
    const server = ctx.server();
    const m = await server.createMachine('R4ROTRACE');
    const machines = server.kioskhub.services.machines as unknown as { findRow: FindRow };
    const original = machines.findRow;
    let readDone!: () => void;
    const read = new Promise<void>((r) => (readDone = r));
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let held = false;
    // Widens the window between the login's read of the machine row and its answer (a database
    // round trip) so that a rotation lands in it deterministically.
    machines.findRow = async (id, ...rest) => {
      const row = await original(id, ...rest);
      if (id === m.id && !held) {
        held = true;
        readDone();
        await gate;
      }
      return row;
    };
    try {
      const connecting = MqttDevice.connect(ctx.brokerUrl(), m.id, m.key, { birth: false }).then(
        (d) => (devices.push(d), d),
        (err: unknown) => err,
      );
      await read; // the login has read the row with the old key's hash
      const rotated = await server.request('POST', `/v1/machines/${m.id}/rotate-key`);
      expect(rotated.status).toBe(200);
      release();
      const outcome = await connecting;
      if (outcome instanceof MqttDevice) {
        await new Promise((r) => setTimeout(r, 1_500));
        const machine = (await server.request('GET', `/v1/machines/${m.id}`)).body;
        expect(
          { deviceDisconnected: outcome.closedAt !== undefined, socketConnected: machine.socketConnected },
          'a device logged in with the replaced key is still connected after the rotation answered',
        ).toEqual({ deviceDisconnected: true, socketConnected: false });
      }
    } finally {
      machines.findRow = original;
      release();
    }
  });
});
