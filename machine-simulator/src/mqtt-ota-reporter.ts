// Firmware status reports of a simulated MQTT device (CONTRACTS §14, §15): each goes on up/ota
// and waits for its answer on down/ota, named by deploymentId and seq; without one it is sent
// again (same seq, so applying it twice is impossible), and given up after five tries.
import { mqttTopics, type MqttOtaAnswer, type OtaStatusReport } from '@kioskhub/protocol';
import type { OtaReportAnswer } from './ota-device.js';

const TRIES = 5;

export class MqttOtaReporter {
  private readonly waits = new Map<string, (answer: OtaReportAnswer) => void>();

  constructor(
    private readonly publish: (topic: string, body: string) => Promise<unknown> | undefined,
    private readonly timeoutMs = 5_000,
  ) {}

  send(machineId: string, deploymentId: string, body: OtaStatusReport): Promise<OtaReportAnswer> {
    const key = `${deploymentId}:${body.seq}`;
    return new Promise((resolve, reject) => {
      let tries = 0;
      let timer: NodeJS.Timeout | undefined;
      const attempt = (): void => {
        if (++tries > TRIES) {
          this.waits.delete(key);
          reject(new Error(`no answer to the ${body.state} report`));
          return;
        }
        void this.publish(mqttTopics.ota(machineId), JSON.stringify({ deploymentId, ...body }))?.catch(
          () => undefined,
        );
        timer = setTimeout(attempt, this.timeoutMs);
        timer.unref();
      };
      this.waits.set(key, (answer) => {
        clearTimeout(timer);
        this.waits.delete(key);
        resolve(answer);
      });
      attempt();
    });
  }

  /** An answer on down/ota: settles the report it names (a late or unknown one is dropped). */
  answered(answer: MqttOtaAnswer): void {
    const settle = this.waits.get(`${answer.deploymentId}:${answer.seq}`);
    if (!settle) return;
    settle(
      answer.ok
        ? {
            ok: true,
            state: answer.state,
            ...(answer.retry ? { retry: true } : {}),
            ...(answer.duplicate ? { duplicate: true } : {}),
          }
        : { ok: false, error: answer.error },
    );
  }
}
