// Helpers of the firmware tests: a signing key, signed images, uploads and simulated devices.
import { randomBytes } from 'node:crypto';
import { createOtaDevice, type OtaDeviceOptions } from '../../machine-simulator/src/ota-device.js';
import { generateSigningKey, manifestFor, signManifest } from '../src/modules/firmware/signing.js';
import { expect } from 'vitest';
import { ADMIN_TOKEN, eventually, type TestServer } from './harness.js';

export const KEY = generateSigningKey('k1');
export const OTHER_KEY = generateSigningKey('k2');
/** Trusted by the server: k1 only (k2 is unknown to it). */
export const SIGNING_KEYS = KEY.entry;
export const HW = 'esp32-s3';

export interface SignedImage {
  image: Buffer;
  manifest: string;
  signature: string;
  keyId: string;
}

export function signedImage(
  version: string,
  options: { size?: number; allowDowngrade?: boolean; minFromVersion?: string } = {},
): SignedImage {
  const image = randomBytes(options.size ?? 40_000);
  const manifest = manifestFor(image, {
    product: 'kiosk-fw',
    hwModels: [HW, 'esp32-c3'],
    version,
    ...(options.minFromVersion ? { minFromVersion: options.minFromVersion } : {}),
    allowDowngrade: options.allowDowngrade ?? false,
  });
  return { image, manifest, signature: signManifest(KEY.privateKeyPem, manifest), keyId: 'k1' };
}

export async function upload(
  server: Pick<TestServer, 'url'>,
  parts: Partial<SignedImage> & { tenantId?: string },
  token: string = ADMIN_TOKEN,
): Promise<{ status: number; body: any }> {
  const form = new FormData();
  if (parts.manifest !== undefined) form.append('manifest', parts.manifest);
  if (parts.signature !== undefined) form.append('signature', parts.signature);
  if (parts.keyId !== undefined) form.append('keyId', parts.keyId);
  if (parts.tenantId !== undefined) form.append('tenantId', parts.tenantId);
  if (parts.image !== undefined) form.append('image', new Blob([new Uint8Array(parts.image)]), 'fw.bin');
  const res = await fetch(`${server.url}/v1/firmware`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}` },
    body: form,
  });
  return { status: res.status, body: await res.json() };
}

export async function uploadOk(
  server: Pick<TestServer, 'url'>,
  img: SignedImage,
  tenantId?: string,
): Promise<string> {
  const res = await upload(server, { ...img, ...(tenantId ? { tenantId } : {}) });
  if (res.status !== 201) throw new Error(`upload: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body.id as string;
}

export function device(
  server: TestServer,
  m: { id: string; key: string },
  extra: Partial<OtaDeviceOptions> = {},
) {
  return createOtaDevice({
    url: server.url,
    machineId: m.id,
    key: m.key,
    version: '1.0.0',
    hw: HW,
    trustedKeys: SIGNING_KEYS,
    rebootMs: 5,
    ...extra,
  });
}

export async function campaign(server: TestServer, id: string) {
  const res = await server.request('GET', `/v1/firmware/campaigns/${id}`);
  if (res.status !== 200) throw new Error(`campaign ${id}: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}

/**
 * A campaign of `artifactId` for `machineIds` (created, not started): one wave of everyone, no
 * soak, approved automatically, no failure pause; `over` changes any of it.
 */
export async function newCampaign(
  server: TestServer,
  artifactId: string,
  machineIds: string[],
  over: Record<string, unknown> = {},
): Promise<any> {
  const res = await server.request('POST', '/v1/firmware/campaigns', {
    body: {
      artifactId,
      target: { machineIds, hwModel: HW },
      waves: [{ percent: 100, soakMinutes: 0, approval: 'auto' }],
      maxConcurrent: 100,
      failureThresholdPercent: 100,
      minFinishedForThreshold: 1000,
      ...over,
    },
  });
  if (res.status !== 201) throw new Error(`campaign: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}

export async function act(server: TestServer, id: string, action: string) {
  return server.request('POST', `/v1/firmware/campaigns/${id}/${action}`);
}

/** Runs rounds of every device until `done` says so. */
export async function drive(
  server: TestServer,
  campaignId: string,
  devices: ReturnType<typeof device>[],
  done: (c: any) => boolean,
  what: string,
  timeoutMs = 20_000,
) {
  return eventually(
    async () => {
      await Promise.all(devices.map((d) => d.runOnce()));
      const c = await campaign(server, campaignId);
      return done(c) ? c : undefined;
    },
    timeoutMs,
    what,
  );
}

let machineSeq = 0;
const machineUid = (prefix: string) => `${prefix}${++machineSeq}${Math.random().toString(36).slice(2, 6)}`;
type Machine = { id: string; key: string };

/**
 * What campaign tests do on the server `get()` returns: machines, campaigns of a new image, an
 * action that must answer 200, a device's deployment and waiting for its state, a device's report
 * that must be accepted, and a device's reports up to REBOOTING (answers the next `seq`).
 */
export function campaignHelpers(get: () => TestServer) {
  const machine = (prefix: string) => get().createMachine(machineUid(prefix), { kind: 'kiosk' });
  async function create(v: string, machineIds: string[], over: Record<string, unknown> = {}) {
    const artifactId = await uploadOk(get(), signedImage(v, { size: 2_000 }));
    return (await newCampaign(get(), artifactId, machineIds, over)).id as string;
  }
  async function run(campaignId: string, action: string) {
    const res = await act(get(), campaignId, action);
    expect(res.status, `${action}: ${JSON.stringify(res.body)}`).toBe(200);
    return res.body;
  }
  async function deployment(campaignId: string, machineId: string) {
    const c = await campaign(get(), campaignId);
    return c.devices.find((d: any) => d.machineId === machineId);
  }
  const waitState = (campaignId: string, machineId: string, state: string, ms = 10_000) =>
    eventually(
      async () => {
        const d = await deployment(campaignId, machineId);
        return d.state === state ? d : undefined;
      },
      ms,
      `${machineId} ${state} in ${campaignId}`,
    );
  async function reportOk(m: Machine, deploymentId: string, body: Record<string, unknown>) {
    const res = await get().request('POST', `/api/device/v1/ota/${deploymentId}/status`, {
      token: null,
      headers: { 'x-api-key': m.key },
      body,
    });
    expect(res.status, `${String(body['state'])}: ${JSON.stringify(res.body)}`).toBe(200);
    return res.body;
  }
  async function toRebooting(m: Machine, deploymentId: string) {
    let s = 1;
    for (const state of ['DOWNLOADING', 'DOWNLOADED', 'VERIFIED', 'INSTALLING', 'REBOOTING'])
      await reportOk(m, deploymentId, { seq: s++, state, currentVersion: '1.0.0' });
    return s;
  }
  return { machine, create, run, deployment, waitState, reportOk, toRebooting };
}
