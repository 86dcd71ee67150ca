// Firmware over the air for MQTT devices (CONTRACTS §14, §15): a released deployment goes out as
// an `ota.install` device command carrying the `next` answer, re-sent with the same commandId
// until the device reports on it (the broker's PUBACK is not delivery); `up/ota` status reports
// are applied with the same rules as HTTP and answered on `down/ota`; a birth re-offers a
// deployment not yet started, like a command in flight.
import type { MqttOtaAnswer, OtaNext } from '@kioskhub/protocol';
import type { Logger } from 'pino';
import { AppError } from '../../platform/errors.js';
import { socketValidator } from '../../platform/socket-validation.js';
import type { DeviceReport, OtaDevice } from '../firmware/ota-device.js';
import { MqttOtaReportBody } from '../firmware/ota.schema.js';
import type { MqttGateway } from './mqtt.gateway.js';

const parseReport = socketValidator(MqttOtaReportBody);

/** An ota.install this process published that the device has not reported on yet. */
interface Unanswered {
  machineId: string;
  deploymentId: string;
  attempt: number;
  /** Unset while the machine is not held here: its next birth offers the command again. */
  timer?: NodeJS.Timeout;
}

export function installMqttOta(deps: {
  gateway: Pick<
    MqttGateway,
    'hooks' | 'sendDeviceCommand' | 'answerOta' | 'heardBirth' | 'knowsCurrentBirth'
  >;
  device: Pick<OtaDevice, 'applyStatus' | 'offerOnConnect' | 'pendingOffer'>;
  logger: Logger;
  /** Without a report on the command within this, it is published again (DISPATCH_ACK_TIMEOUT_MS). */
  resendAfterMs: number;
  /** The firmware on the machine's record (what its last birth named, whichever process heard it). */
  recordedFirmware(machineId: string): Promise<string | null | undefined>;
  /**
   * On an external broker, how long a SUCCEEDED may wait for a birth naming its version before it
   * is refused (the first such report starts the wait). Default: 3 × resendAfterMs.
   */
  birthGraceMs?: number;
  now?: () => number;
}) {
  const { gateway, device, logger } = deps;
  const unanswered = new Map<string, Unanswered>();
  /** What each machine named in its last birth (firmware, hw): the skip rules of a push use it. */
  const births = new Map<string, DeviceReport>();
  const now = deps.now ?? Date.now;
  const birthGraceMs = deps.birthGraceMs ?? 3 * deps.resendAfterMs;
  /**
   * `<machineId> <deploymentId>` → when a SUCCEEDED no known birth backs was first left unanswered,
   * and when it was last: a device quiet longer than the grace (it went offline) waits afresh.
   */
  const awaitingBirth = new Map<string, { first: number; last: number }>();
  const AWAITING_MAX = 10_000;

  function forget(commandId: string): void {
    clearTimeout(unanswered.get(commandId)?.timer);
    unanswered.delete(commandId);
  }

  /**
   * Sends `ota.install` when this process holds the machine's MQTT session and has seen its birth
   * (before it, the device may not be subscribed yet, and the skip rules would be judged by what
   * an earlier connection said: the birth offers it instead).
   */
  async function offer(machineId: string, next: OtaNext): Promise<boolean> {
    if (!gateway.heardBirth(machineId)) return false;
    // The same skip rules as `next`: a device the image does not suit is SKIPPED, not offered.
    const pending = await device.pendingOffer(machineId, next.deploymentId, births.get(machineId));
    if (!pending) return false;
    await publish(machineId, pending.commandId, pending.next);
    return true;
  }

  async function publish(machineId: string, commandId: string, next: OtaNext): Promise<void> {
    const before = unanswered.get(commandId);
    clearTimeout(before?.timer);
    const entry: Unanswered = {
      machineId,
      deploymentId: next.deploymentId,
      attempt: (before?.attempt ?? 0) + 1,
    };
    entry.timer = setTimeout(() => void resend(commandId, entry), deps.resendAfterMs);
    entry.timer.unref();
    unanswered.set(commandId, entry);
    await gateway.sendDeviceCommand(machineId, {
      commandId,
      kind: 'ota.install',
      attempt: entry.attempt,
      ota: next as unknown as Record<string, unknown>,
    });
    logger.info(
      { machineId, deploymentId: next.deploymentId, commandId, attempt: entry.attempt },
      'mqtt: ota.install sent',
    );
  }

  /** No report within resendAfterMs: the same command again while the deployment still waits for it. */
  async function resend(commandId: string, entry: Unanswered): Promise<void> {
    try {
      if (unanswered.get(commandId) !== entry) return; // answered, or sent again meanwhile
      entry.timer = undefined;
      if (!gateway.heardBirth(entry.machineId)) return; // its next birth offers it again
      const pending = await device.pendingOffer(
        entry.machineId,
        entry.deploymentId,
        births.get(entry.machineId),
      );
      // Started (the device reported progress), ended, aborted, or released again under a new id.
      if (pending?.commandId !== commandId) return forget(commandId);
      if (unanswered.get(commandId) !== entry || entry.timer) return;
      await publish(entry.machineId, commandId, pending.next);
    } catch (err) {
      logger.warn({ err, machineId: entry.machineId, commandId }, 'mqtt: could not send ota.install again');
    }
  }

  async function applyReport(machineId: string, payload: Record<string, unknown>): Promise<void> {
    const parsed = parseReport(payload);
    if (!parsed.ok) {
      logger.warn(
        { machineId, topic: 'up/ota', reason: parsed.message },
        'mqtt: bad message from a device ignored',
      );
      // A report that names its deployment and seq gets the refusal, so the device stops waiting.
      const { deploymentId, seq } = payload;
      if (typeof deploymentId === 'string' && typeof seq === 'number')
        await gateway.answerOta(machineId, {
          deploymentId,
          seq,
          ok: false,
          error: { code: 'VALIDATION_FAILED', message: parsed.message },
        });
      return;
    }
    const { deploymentId, ...report } = parsed.value;
    let answer: MqttOtaAnswer;
    try {
      // The reboot is seen, not told: SUCCEEDED counts only once a birth has named the new
      // firmware (a device that never restarted, or whose bootloader fell back, has not).
      if (report.state === 'SUCCEEDED') {
        const named = (v: string | null | undefined) => v === report.currentVersion;
        const heard = births.get(machineId)?.current;
        if (gateway.knowsCurrentBirth(machineId)) {
          // An embedded session: its birth is this connection's, so this is certain.
          if (!named(heard))
            throw new AppError(
              'INVALID_STATE',
              `SUCCEEDED over MQTT needs a reconnect whose birth names firmware ${report.currentVersion}; ` +
                `the device's last birth named ${heard ?? 'none'}`,
            );
        } else if (!named(heard) && !named(await deps.recordedFirmware(machineId))) {
          // An external broker: the reconnect's birth may still be being taken on, here or by
          // another process of a cluster (which writes it to the machine's record). No answer, so
          // the device sends the report again, and it is judged once the birth is known; a device
          // still sending it when the grace is over never rebooted into the version: refused.
          const key = `${machineId} ${deploymentId}`;
          const at = now();
          let wait = awaitingBirth.get(key);
          // A wait the device left (no report for longer than the grace: it was away) starts again:
          // its reconnect's birth may be the one still being taken on.
          if (wait !== undefined && at - wait.last > birthGraceMs) {
            awaitingBirth.delete(key);
            wait = undefined;
          }
          if (wait === undefined || at - wait.first < birthGraceMs) {
            if (wait === undefined) {
              if (awaitingBirth.size >= AWAITING_MAX)
                awaitingBirth.delete(awaitingBirth.keys().next().value!);
              awaitingBirth.set(key, { first: at, last: at });
            } else wait.last = at;
            logger.info(
              { machineId, deploymentId, currentVersion: report.currentVersion },
              'mqtt: SUCCEEDED before a birth naming its version is known here; left for the device to send again',
            );
            return;
          }
          awaitingBirth.delete(key);
          throw new AppError(
            'INVALID_STATE',
            `SUCCEEDED over MQTT needs a reconnect whose birth names firmware ${report.currentVersion}; ` +
              `none was seen within ${Math.round(birthGraceMs / 1000)} s of the first such report ` +
              `(the device's last birth named ${heard ?? 'none'})`,
          );
        }
        awaitingBirth.delete(`${machineId} ${deploymentId}`);
      }
      const outcome = await device.applyStatus(machineId, deploymentId, report);
      answer = { deploymentId, seq: report.seq, ...outcome };
    } catch (err) {
      if (!(err instanceof AppError)) {
        // Nothing decided (the database, say): no answer, so the device sends the report again.
        logger.error({ err, machineId, deploymentId }, 'mqtt: could not apply a firmware report');
        return;
      }
      answer = { deploymentId, seq: report.seq, ok: false, error: { code: err.code, message: err.message } };
    }
    await gateway.answerOta(machineId, answer);
  }

  // Routed by topic: whatever fields an up/ota payload carries, it is a status report.
  gateway.hooks.onOta = (machineId, payload) => applyReport(machineId, payload);
  gateway.hooks.onDeviceCommandReport = (machineId, commandId, report) => {
    // A report on the ota.install command itself: the device has it (or refused it), so it is
    // not sent again. Its progress comes on up/ota.
    if (unanswered.get(commandId)?.machineId === machineId) forget(commandId);
    logger.info({ machineId, commandId, ...report }, 'mqtt: device answered ota.install');
  };
  gateway.hooks.onBirthSeen = (machineId, birth) => {
    births.set(machineId, { current: birth.firmware, hw: birth.hw });
  };
  gateway.hooks.onBirth = async (machineId, birth) => {
    const reported: DeviceReport = { current: birth.firmware, hw: birth.hw };
    births.set(machineId, reported);
    const next = await device.offerOnConnect(machineId, reported);
    if (next) await offer(machineId, next);
    else for (const [commandId, entry] of unanswered) if (entry.machineId === machineId) forget(commandId); // nothing waits for it any more
  };

  return {
    offer,
    /** Stops the re-send timers (shutdown). */
    close(): void {
      for (const commandId of [...unanswered.keys()]) forget(commandId);
    },
  };
}
