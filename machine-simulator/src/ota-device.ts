// A simulated device updating its firmware over the air (CONTRACTS.md §15), the reference client
// of the device protocol: poll `next` (or take a pushed `ota.install`), check the manifest's
// signature, download with HTTP Range (resuming after a cut), check sha256 and size, report each
// state (over HTTP, or through another transport's reporter), "reboot" and confirm.
import { createHash, createPublicKey, verify, type KeyObject } from 'node:crypto';
import type { FirmwareManifest, OtaNext, OtaReportedState, OtaStatusReport } from '@kioskhub/protocol';

/** What the server answered to one status report (HTTP status, or the MQTT down/ota answer). */
export interface OtaReportAnswer {
  ok: boolean;
  state?: string;
  retry?: boolean;
  duplicate?: boolean;
  error?: { code: string; message?: string };
}

/** How status reports travel; HTTP `POST …/status` unless a transport brings its own (MQTT up/ota). */
export type OtaReporter = (deploymentId: string, body: OtaStatusReport) => Promise<OtaReportAnswer>;

export interface OtaDeviceOptions {
  /** The server's HTTP address: downloads (and, without `reporter`, `next` and reports). */
  url: string;
  machineId: string;
  key: string;
  /** The firmware version the device runs now. */
  version: string;
  hw: string;
  /** The public keys the device trusts, as in FIRMWARE_SIGNING_KEYS (`<keyId>:<base64 SPKI DER>`, …). */
  trustedKeys: string;
  /** Cut the first download after this many bytes (a 4G drop), then resume with Range. */
  cutAfterBytes?: number;
  /** Download chunk per request (bytes); default the whole rest. */
  chunkBytes?: number;
  /**
   * What goes wrong, to exercise the server: a download error, an image altered on the way
   * (`tamper`: the sha256 check refuses it), a bad install, a boot that rolls back, or a device
   * that goes quiet.
   */
  fault?: OtaFault;
  rebootMs?: number;
  reporter?: OtaReporter;
  /** Restarts the device into `version` (MQTT: a new connection whose birth names it). */
  reboot?(version: string): Promise<void>;
  log?(line: string): void;
}

export const OTA_FAULTS = ['download', 'tamper', 'install', 'boot', 'silent'] as const;
export type OtaFault = (typeof OTA_FAULTS)[number];

export type OtaRunOutcome =
  'none' | 'succeeded' | 'failed' | 'rolled-back' | 'refused' | 'silent' | 'stopped';

export function createOtaDevice(options: OtaDeviceOptions) {
  let version = options.version;
  let seq = Date.now();
  const keys = new Map<string, KeyObject>();
  for (const entry of options.trustedKeys
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const i = entry.indexOf(':');
    keys.set(
      entry.slice(0, i),
      createPublicKey({ key: Buffer.from(entry.slice(i + 1), 'base64'), format: 'der', type: 'spki' }),
    );
  }
  const log = options.log ?? (() => undefined);
  const headers = { 'x-api-key': options.key };
  let cutDone = false;
  /** Bytes kept from an interrupted download, by sha256. */
  const partial = new Map<string, Buffer[]>();
  const ranges: string[] = [];

  const httpReporter: OtaReporter = async (deploymentId, body) => {
    const res = await fetch(`${options.url}/api/device/v1/ota/${deploymentId}/status`, {
      method: 'POST',
      headers: { ...headers, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    const answer = (await res.json()) as Omit<OtaReportAnswer, 'ok'>;
    return { ok: res.ok, ...answer };
  };
  const reporter = options.reporter ?? httpReporter;

  async function report(deploymentId: string, state: OtaReportedState, extra: Partial<OtaStatusReport> = {}) {
    const body: OtaStatusReport = { seq: ++seq, state, currentVersion: version, ...extra };
    const answer = await reporter(deploymentId, body);
    log(`${options.machineId}: ${state} → ${answer.state ?? answer.error?.code ?? ''}`);
    // An aborted campaign or an ended deployment: the device stops working on it.
    if (!answer.ok && answer.error?.code === 'INVALID_STATE') throw new DeploymentEnded(answer.error.code);
    return answer;
  }

  function checkSignature(next: OtaNext): FirmwareManifest | undefined {
    const key = keys.get(next.keyId);
    if (!key) return undefined;
    const ok = verify(
      next.sigAlg === 'ed25519' ? null : 'sha256',
      Buffer.from(next.manifest, 'utf8'),
      key,
      Buffer.from(next.signature, 'base64'),
    );
    return ok ? (JSON.parse(next.manifest) as FirmwareManifest) : undefined;
  }

  /** Downloads with Range from what is already here; a cut leaves the bytes for the next try. */
  async function download(next: OtaNext, m: FirmwareManifest, deploymentId: string): Promise<Buffer> {
    const chunks = partial.get(m.sha256) ?? [];
    partial.set(m.sha256, chunks);
    let have = chunks.reduce((n, c) => n + c.length, 0);
    while (have < m.size) {
      const end = options.chunkBytes ? Math.min(m.size, have + options.chunkBytes) - 1 : m.size - 1;
      ranges.push(`bytes=${have}-${end}`);
      const res = await fetch(new URL(next.url, options.url), {
        headers: { ...headers, range: `bytes=${have}-${end}`, 'if-range': `"${m.sha256}"` },
      });
      if (res.status !== 206 && res.status !== 200) throw new Error(`download answered ${res.status}`);
      if (res.status === 200) {
        chunks.length = 0;
        have = 0;
      }
      const reader = res.body!.getReader();
      let resumed = false;
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        let piece = Buffer.from(value);
        if (options.cutAfterBytes !== undefined && !cutDone && have + piece.length > options.cutAfterBytes) {
          piece = piece.subarray(0, Math.max(0, options.cutAfterBytes - have));
          chunks.push(piece);
          have += piece.length;
          cutDone = true;
          await reader.cancel();
          log(`${options.machineId}: connection cut after ${have} bytes; resuming with Range`);
          resumed = true;
          break;
        }
        chunks.push(piece);
        have += piece.length;
      }
      if (resumed) continue;
      await report(deploymentId, 'DOWNLOADING', { bytes: have, total: m.size });
    }
    partial.delete(m.sha256);
    return Buffer.concat(chunks);
  }

  /** Takes one offered deployment all the way (or to its failure). */
  async function install(next: OtaNext): Promise<OtaRunOutcome> {
    try {
      return await installSteps(next);
    } catch (err) {
      if (err instanceof DeploymentEnded) return 'stopped';
      throw err;
    }
  }

  async function installSteps(next: OtaNext): Promise<OtaRunOutcome> {
    if (options.fault === 'silent') return 'silent';
    const manifest = checkSignature(next);
    if (!manifest) {
      await report(next.deploymentId, 'FAILED', { code: 'SIGNATURE_INVALID' });
      return 'refused';
    }
    if (!manifest.hwModels.includes(options.hw)) {
      await report(next.deploymentId, 'FAILED', { code: 'HW_MISMATCH' });
      return 'refused';
    }
    await report(next.deploymentId, 'DOWNLOADING', { bytes: 0, total: manifest.size });
    let image: Buffer;
    try {
      if (options.fault === 'download') throw new Error('simulated download error');
      image = await download(next, manifest, next.deploymentId);
    } catch (err) {
      const r = await report(next.deploymentId, 'FAILED', {
        code: 'DOWNLOAD_FAILED',
        message: (err as Error).message,
      });
      return r.retry ? installSteps(next) : 'failed';
    }
    if (options.fault === 'tamper') {
      // Altered on the way: one byte differs from what was signed.
      image = Buffer.from(image);
      const at = image.length >> 1;
      image.writeUInt8(image.readUInt8(at) ^ 0xff, at);
    }
    await report(next.deploymentId, 'DOWNLOADED', { bytes: image.length, total: manifest.size });
    const sha = createHash('sha256').update(image).digest('hex');
    if (sha !== manifest.sha256 || image.length !== manifest.size) {
      await report(next.deploymentId, 'FAILED', { code: 'VERIFY_FAILED', message: `sha256 ${sha}` });
      return 'failed';
    }
    await report(next.deploymentId, 'VERIFIED');
    await report(next.deploymentId, 'INSTALLING');
    if (options.fault === 'install') {
      await report(next.deploymentId, 'FAILED', { code: 'INSTALL_FAILED' });
      return 'failed';
    }
    await report(next.deploymentId, 'REBOOTING');
    const booted = options.fault === 'boot' ? version : manifest.version;
    if (options.reboot) await options.reboot(booted);
    else await new Promise((r) => setTimeout(r, options.rebootMs ?? 50));
    if (options.fault === 'boot') {
      // The bootloader fell back to the old image: the new one never confirmed itself.
      await report(next.deploymentId, 'ROLLED_BACK', { code: 'BOOT_FAILED' });
      return 'rolled-back';
    }
    version = manifest.version;
    await report(next.deploymentId, 'SUCCEEDED', { confirmed: true });
    return 'succeeded';
  }

  return {
    get version() {
      return version;
    },
    /** Range requests made, for tests: how the image was fetched. */
    ranges,
    install,
    /** One round: ask `next` over HTTP, and if there is something, take it all the way (or fail). */
    async runOnce(): Promise<OtaRunOutcome> {
      const q = new URLSearchParams({ current: version, hw: options.hw });
      const res = await fetch(`${options.url}/api/device/v1/ota/next?${q}`, { headers });
      if (res.status === 204) return 'none';
      if (res.status !== 200) throw new Error(`next answered ${res.status}`);
      return install((await res.json()) as OtaNext);
    },
  };
}

/** The server says the deployment is over (aborted, ended): stop working on it. */
class DeploymentEnded extends Error {}
