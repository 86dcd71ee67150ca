// The reboot rule on an external broker (Mosquitto), where a reconnect's birth may still be being
// taken on by another process when the SUCCEEDED arrives: the report is left unanswered so the
// device sends it again, and it is applied once a birth naming the version is known. A device that
// never rebooted used to be left unanswered for ever (until its own timeout); it is now refused
// once the grace (3 × the resend time by default) has passed since its first such report.
// The real-broker path (a reboot whose birth another process of a cluster takes) is
// server/test/cluster/mqtt-cluster.test.ts.
import type { MqttOtaAnswer } from '@kioskhub/protocol';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { installMqttOta } from './mqtt-ota.js';

type Hooks = {
  onOta?: (machineId: string, payload: Record<string, unknown>) => Promise<void>;
  onBirthSeen?: (machineId: string, birth: { firmware: string; hw?: string }) => void;
};

function setUp(opts: { recorded?: string | null } = {}) {
  let clock = 1_000_000;
  const answers: MqttOtaAnswer[] = [];
  const applied: unknown[] = [];
  const hooks: Hooks = {};
  let recorded = opts.recorded ?? '1.0.0';
  installMqttOta({
    gateway: {
      hooks: hooks as never,
      sendDeviceCommand: async () => {},
      answerOta: async (_machineId: string, answer: MqttOtaAnswer) => {
        answers.push(answer);
      },
      heardBirth: () => true,
      knowsCurrentBirth: () => false, // an external broker
    } as never,
    device: {
      applyStatus: async (_machineId: string, _deploymentId: string, report: unknown) => {
        applied.push(report);
        return { ok: true, state: 'SUCCEEDED' };
      },
      offerOnConnect: async () => undefined,
      pendingOffer: async () => undefined,
    } as never,
    logger: pino({ level: 'silent' }),
    resendAfterMs: 10_000,
    recordedFirmware: async () => recorded,
    now: () => clock,
  });
  const succeeded = (seq = 7) =>
    hooks.onOta!('M1', {
      deploymentId: 'DEP1',
      seq,
      state: 'SUCCEEDED',
      currentVersion: '2.0.0',
      confirmed: true,
    });
  return {
    answers,
    applied,
    succeeded,
    advance: (ms: number) => (clock += ms),
    record: (v: string) => (recorded = v),
    birth: (firmware: string) => hooks.onBirthSeen!('M1', { firmware }),
  };
}

describe('MQTT OTA on an external broker: SUCCEEDED waits for a birth naming its version', () => {
  it('a device that never rebooted is refused INVALID_STATE once the grace (3 × resend, 30 s) is over', async () => {
    const t = setUp();
    t.birth('1.0.0');
    await t.succeeded();
    t.advance(29_000);
    await t.succeeded();
    expect(t.answers).toEqual([]); // still inside the grace: the birth may be on its way
    t.advance(1_000);
    await t.succeeded();
    expect(t.applied).toEqual([]);
    expect(t.answers).toHaveLength(1);
    expect(t.answers[0]).toMatchObject({
      deploymentId: 'DEP1',
      seq: 7,
      ok: false,
      error: { code: 'INVALID_STATE' },
    });
    expect((t.answers[0] as { error: { message: string } }).error.message).toMatch(
      /needs a reconnect whose birth names firmware 2\.0\.0; none was seen within 30 s .*last birth named 1\.0\.0/,
    );
  });

  it('a birth that arrives during the grace (here, or recorded by another process) lets it through', async () => {
    const here = setUp();
    await here.succeeded();
    here.advance(5_000);
    here.birth('2.0.0');
    await here.succeeded();
    expect(here.applied).toHaveLength(1);
    expect(here.answers[0]).toMatchObject({ ok: true });

    const elsewhere = setUp();
    await elsewhere.succeeded();
    elsewhere.advance(5_000);
    elsewhere.record('2.0.0'); // another process took the birth and wrote the machine's firmware
    await elsewhere.succeeded();
    expect(elsewhere.applied).toHaveLength(1);
    // Later reports are judged afresh: no wait left over from this deployment.
    elsewhere.record('1.0.0');
    elsewhere.advance(60_000);
    await elsewhere.succeeded(8);
    expect(elsewhere.answers).toHaveLength(1);
  });

  it('a device that went quiet longer than the grace (offline) waits afresh when it reports again', async () => {
    const t = setUp();
    t.birth('1.0.0');
    await t.succeeded(); // left unanswered: the birth may be on its way
    t.advance(10 * 60_000); // the device lost power before sending it again
    await t.succeeded(); // back: its reconnect's birth may be being taken on by another process
    expect(t.answers).toEqual([]);
    t.advance(5_000);
    t.record('2.0.0'); // that process wrote the machine's firmware
    await t.succeeded();
    expect(t.applied).toHaveLength(1);
    expect(t.answers[0]).toMatchObject({ ok: true });
  });
});
