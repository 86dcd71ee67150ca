// One simulated water kiosk: the ESP32-S3 "server" with its taps. For each customer it asks the
// server to verify (or, offline, its signed credential cache), runs the tap while the flow
// meter counts pulses, and settles what was actually poured under a unique kioskTxnId. Offline
// dispenses (and settlements the server never answered) go to the SD-card log and are uploaded
// as one batch when the modem is back. Heartbeats report each tap, the firmware and the cache
// (over HTTP, or with `mqtt` as telemetry on the kiosk's MQTT link, CONTRACTS §14).
import { EventEmitter } from 'node:events';
import { randomBytes } from 'node:crypto';
import { CredentialCache } from './credential-cache.js';
import { createFirmwareApi, KioskOfflineError, type FirmwareApi } from './firmware-api.js';
import { WaterMqttLink } from './mqtt-link.js';
import { SdCardLog, uploadSdCard, type UploadReport } from './sd-card.js';
import { type OfflineTransaction, type TapStatus, type VerificationResponse } from './wire.js';

export interface WaterKioskOptions {
  url: string;
  kioskId: string;
  key: string;
  /** The kiosk's credential-cache secret (hex), given once at provisioning; without it the kiosk
   * trusts no cache and serves nobody offline. */
  cacheSecret?: string | null;
  taps?: number;
  firmware?: string;
  /** Heartbeat interval; 0 sends none by itself (call `heartbeat()`). */
  heartbeatMs?: number;
  /** The SD card's log file (JSONL). */
  sdCardPath: string;
  /** How fast a tap pours, and how often the flow meter's count is read. */
  flowMlPerSecond?: number;
  pulseTickMs?: number;
  /** Flow-meter pulses per litre (a YF-S201-type hall sensor gives about 450). */
  pulsesPerLitre?: number;
  signalDbm?: number;
  sdFreeMb?: number;
  /** `--transport mqtt`: the kiosk keeps an MQTT link (presence, heartbeats, commands). */
  mqtt?: { url: string };
}

export interface Customer {
  phone: string;
  pin: string;
  volumeMl: number;
  tap?: number;
  /** Share of the approved volume actually poured (a customer may walk away early); default 1. */
  pourShare?: number;
}

export type ServeResult =
  | { approved: false; code: string; reason: string; offline: boolean }
  | {
      approved: true;
      offline: boolean;
      tap: number;
      kioskTxnId: string;
      dispensedMl: number;
      authorizationId?: string;
      /** Online: the server's answer to the settlement; null when it went to the SD card. */
      settled: { duplicate: boolean; creditsMl: number } | null;
    };

export interface WaterKioskEvents {
  verified: [
    { phone: string; tap: number; response: VerificationResponse | null; offline: boolean; code: string },
  ];
  pour: [{ tap: number; ml: number; pulses: number; targetMl: number }];
  settled: [ServeResult & { approved: true }];
  logged: [OfflineTransaction];
  heartbeat: [{ ok: boolean; error?: string }];
  offline: [];
  online: [UploadReport];
  /** A batch upload of the SD-card log finished (on reconnect, or a retry after a heartbeat). */
  uploaded: [UploadReport];
  cache: [{ version: number | undefined; customers: number; trusted: boolean }];
  warning: [Error];
}

interface Tap {
  tap: number;
  status: TapStatus;
  totalMl: number;
}

export type { UploadReport };

export class WaterKiosk extends EventEmitter<WaterKioskEvents> {
  readonly api: FirmwareApi;
  readonly cache: CredentialCache;
  readonly sd: SdCardLog;
  readonly taps: Tap[];
  /** The MQTT link, with `mqtt` set. */
  readonly mqtt: WaterMqttLink | undefined;
  private offlineFlag = false;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private txnCounter = 0;
  private readonly bootId = randomBytes(3).toString('hex');

  constructor(readonly options: WaterKioskOptions) {
    super();
    this.api = createFirmwareApi({ url: options.url, key: options.key });
    this.cache = new CredentialCache(
      options.cacheSecret ? Buffer.from(options.cacheSecret, 'hex') : null,
      options.kioskId,
    );
    this.sd = new SdCardLog(options.sdCardPath);
    this.mqtt = options.mqtt
      ? new WaterMqttLink({
          url: options.mqtt.url,
          kioskId: options.kioskId,
          key: options.key,
          firmware: this.firmware,
        })
      : undefined;
    this.taps = Array.from({ length: options.taps ?? 4 }, (_, i) => ({
      tap: i + 1,
      status: 'idle',
      totalMl: 0,
    }));
  }

  get offline(): boolean {
    return this.offlineFlag;
  }

  private get firmware(): string {
    return this.options.firmware ?? 'kioskhub-water-sim/1.0.0';
  }

  /** Connects MQTT (if used), loads the credential cache, sends a first heartbeat, starts the timer. */
  async start(): Promise<void> {
    await this.mqtt?.connect();
    await this.refreshCache().catch((err: Error) => this.emit('warning', err));
    await this.heartbeat();
    const every = this.options.heartbeatMs ?? 120_000;
    if (every > 0) {
      this.heartbeatTimer = setInterval(() => void this.heartbeat(), every);
      this.heartbeatTimer.unref();
    }
  }

  stop(): void {
    clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = undefined;
    void this.mqtt?.close();
  }

  /** The modem drops: nothing reaches the server until `goOnline()` (MQTT: the broker sends the will). */
  goOffline(): void {
    if (this.offlineFlag) return;
    this.offlineFlag = true;
    this.mqtt?.drop();
    this.emit('offline');
  }

  /** The modem is back: reconnect MQTT, upload the SD-card log, refresh the cache, heartbeat. */
  async goOnline(): Promise<UploadReport> {
    this.offlineFlag = false;
    await this.mqtt?.connect().catch((err: Error) => this.emit('warning', err));
    const report = await this.uploadBacklog();
    await this.refreshCache().catch((err: Error) => this.emit('warning', err));
    await this.heartbeat();
    this.emit('online', report);
    return report;
  }

  /** Unique per kiosk for ever: boot id, time and a counter (the firmware keeps its counter on flash). */
  nextTxnId(): string {
    this.txnCounter += 1;
    return `${this.options.kioskId}-${this.bootId}-${Date.now().toString(36)}-${this.txnCounter}`;
  }

  private pickTap(wanted?: number): Tap {
    const tap = wanted !== undefined ? this.taps[wanted - 1] : this.taps.find((t) => t.status === 'idle');
    if (!tap) throw new Error(wanted !== undefined ? `no tap ${wanted}` : 'every tap is busy');
    return tap;
  }

  /** One customer at a tap: verify, pour, settle (or log to the SD card). */
  async serve(customer: Customer): Promise<ServeResult> {
    const tap = this.pickTap(customer.tap);
    if (tap.status !== 'idle') throw new Error(`tap ${tap.tap} is ${tap.status}`);
    tap.status = 'dispensing'; // reserved while the customer is at it
    try {
      const decision = await this.verify(customer, tap.tap);
      if (!decision.approved) return decision;
      const targetMl = Math.round(customer.volumeMl * Math.min(1, Math.max(0, customer.pourShare ?? 1)));
      const dispensedMl = await this.pour(tap, targetMl);
      return await this.record(customer, tap.tap, dispensedMl, decision);
    } finally {
      tap.status = 'idle';
    }
  }

  private async verify(
    customer: Customer,
    tap: number,
  ): Promise<
    | { approved: true; offline: boolean; authorizationId?: string; phone?: string }
    | { approved: false; code: string; reason: string; offline: boolean }
  > {
    if (!this.offlineFlag) {
      try {
        const response = await this.api.verify({
          kiosk_id: this.options.kioskId,
          user_id: customer.phone,
          pin: customer.pin,
          volume_ml: customer.volumeMl,
          timestamp: new Date().toISOString(),
        });
        this.emit('verified', { phone: customer.phone, tap, response, offline: false, code: response.code });
        if (!response.approved)
          return { approved: false, code: response.code, reason: response.reason, offline: false };
        return {
          approved: true,
          offline: false,
          ...(response.authorization_id ? { authorizationId: response.authorization_id } : {}),
        };
      } catch (err) {
        if (!(err instanceof KioskOfflineError)) throw err;
        // No answer: the customer is served from the cache like during any outage.
      }
    }
    const offline = this.cache.decide(customer.phone, customer.pin, customer.volumeMl);
    this.emit('verified', { phone: customer.phone, tap, response: null, offline: true, code: offline.code });
    if (!offline.approved)
      return { approved: false, code: offline.code, reason: `offline: ${offline.code}`, offline: true };
    // The log names the customer as the cache does (E.164), whatever form was typed.
    return { approved: true, offline: true, phone: offline.customer.phone };
  }

  /** Opens the valve until the flow meter has counted `targetMl`, reporting progress. */
  private async pour(tap: Tap, targetMl: number): Promise<number> {
    const rate = this.options.flowMlPerSecond ?? 200;
    const tick = this.options.pulseTickMs ?? 250;
    const pulsesPerLitre = this.options.pulsesPerLitre ?? 450;
    let pulses = 0;
    const targetPulses = Math.round((targetMl * pulsesPerLitre) / 1000);
    while (pulses < targetPulses) {
      if (tick > 0) await new Promise((r) => setTimeout(r, tick));
      const perTick =
        tick > 0 ? Math.max(1, Math.round((rate * tick * pulsesPerLitre) / 1_000_000)) : targetPulses;
      pulses = Math.min(targetPulses, pulses + perTick);
      this.emit('pour', { tap: tap.tap, ml: Math.round((pulses * 1000) / pulsesPerLitre), pulses, targetMl });
    }
    // The meter counts whole pulses; what it measured is what the customer is charged.
    const dispensedMl =
      targetPulses === 0 ? 0 : Math.min(targetMl, Math.round((pulses * 1000) / pulsesPerLitre));
    tap.totalMl += dispensedMl;
    return dispensedMl;
  }

  private async record(
    customer: Customer,
    tap: number,
    dispensedMl: number,
    decision: { offline: boolean; authorizationId?: string; phone?: string },
  ): Promise<ServeResult & { approved: true }> {
    const kioskTxnId = this.nextTxnId();
    const base = {
      approved: true as const,
      offline: decision.offline,
      tap,
      kioskTxnId,
      dispensedMl,
      ...(decision.authorizationId ? { authorizationId: decision.authorizationId } : {}),
    };
    if (!decision.offline && decision.authorizationId && !this.offlineFlag) {
      try {
        const answer = await this.api.settle({
          authorizationId: decision.authorizationId,
          dispensedMl,
          kioskTxnId,
          tap,
        });
        const result = {
          ...base,
          settled: { duplicate: answer.duplicate === true, creditsMl: answer.creditsMl },
        };
        this.emit('settled', result);
        return result;
      } catch (err) {
        if (!(err instanceof KioskOfflineError)) throw err;
        // Poured but not confirmed: the SD card keeps it until the server has it.
      }
    }
    const txn: OfflineTransaction = {
      kioskTxnId,
      userId: decision.phone ?? customer.phone,
      dispensedMl,
      at: new Date().toISOString(),
      tap,
      ...(decision.authorizationId ? { authorizationId: decision.authorizationId } : {}),
    };
    this.sd.append(txn);
    if (decision.offline) this.cache.recordOffline(customer.phone, dispensedMl);
    this.emit('logged', txn);
    const result = { ...base, settled: null };
    this.emit('settled', result);
    return result;
  }

  /** Uploads the SD-card log in batches; removes only what the server applied or already had. */
  async uploadBacklog(): Promise<UploadReport> {
    const report = await uploadSdCard(this.api, this.sd, () => this.offlineFlag);
    if (report.sent > 0) this.emit('uploaded', report);
    return report;
  }

  /** Fetches the credential cache (a delta after the first copy); an unsigned copy is ignored. */
  async refreshCache(): Promise<void> {
    if (this.offlineFlag) return;
    const body = await this.api.credentialCache(this.cache.version);
    const trusted = this.cache.apply(body);
    this.emit('cache', { version: this.cache.version, customers: this.cache.size, trusted });
  }

  async heartbeat(): Promise<boolean> {
    if (this.offlineFlag) return false;
    try {
      const body = {
        firmware: this.firmware,
        taps: this.taps.map((t) => ({ tap: t.tap, status: t.status, totalMl: t.totalMl })),
        signalDbm: this.options.signalDbm ?? -71,
        sdFreeMb: this.options.sdFreeMb ?? 7200,
        ...(this.cache.version !== undefined ? { cacheVersion: this.cache.version } : {}),
      };
      if (this.mqtt) {
        const busy = this.taps.some((t) => t.status === 'dispensing');
        if (!(await this.mqtt.heartbeat(body, busy))) throw new Error('MQTT link is not connected');
      } else await this.api.heartbeat(body);
      this.emit('heartbeat', { ok: true });
      // Lines that reached the card after the last upload (a pour that ended just after the
      // reconnect, a settlement that got no answer) go at the next heartbeat.
      if (this.sd.entries().length > 0) await this.uploadBacklog();
      return true;
    } catch (err) {
      this.emit('heartbeat', { ok: false, error: (err as Error).message });
      return false;
    }
  }
}
