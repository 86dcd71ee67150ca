// Provisions payment QR codes for machines: creates a missing machine (its key is shown once),
// creates a fixed-amount UPI QR (Razorpay, or a local upi:// link), stores the payment profile
// (the qrCodeId → machine mapping the webhook uses) and writes the printable image.
//
// What a customer scans must be a UPI payment string. Razorpay's image_url is a web link to
// a rendered image, not a payment: encoding it would give customers a QR that pays nobody. So
// we render `image_content` (the UPI string) when Razorpay returns it, and otherwise save the
// image Razorpay rendered, downloaded from image_url, byte for byte.
import { access, mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import QRCode from 'qrcode';
import type { RazorpayClient } from '../../providers/razorpay/razorpay.api.js';
import { AppError } from '../../platform/errors.js';
import { toMachine, type MachinesService, type PaymentProfile } from './machines.service.js';
import { buildUpiLink, formatRupees } from './upi-link.js';

export const MACHINE_ID = /^[A-Za-z0-9_-]{1,64}$/;
const ACTOR = 'cli:qr-provision';

export type PaymentChannel =
  | { kind: 'razorpay'; client: Pick<RazorpayClient, 'createQrCode' | 'closeQrCode' | 'downloadQrImage'> }
  | { kind: 'upi_local'; vpa: string; payeeName: string };

export interface ProvisionRequest {
  machineId: string;
  tenantId: string;
  siteId?: string;
  amountPaise: number;
  /** Replace an existing payment profile with a new QR code. */
  force: boolean;
  outDir: string;
  /** Who asks, for the audit rows (the dashboard's operator); the CLI's own name by default. */
  actor?: string;
}

export interface ProvisionResult {
  machineId: string;
  status: 'provisioned' | 'skipped' | 'failed';
  /** The key of a machine created by this call: it is stored hashed and never shown again. */
  createdKey?: string;
  qrCodeId?: string;
  imagePath?: string;
  /** Human-readable remarks (old QR closed, image restored, amount differs, …). */
  notes: string[];
  error?: string;
}

const messageOf = (err: unknown): string => (err instanceof Error ? err.message : String(err));

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

export function createProvisioningService(deps: {
  machines: Pick<MachinesService, 'create' | 'findRow' | 'setPaymentProfile'>;
  channel: PaymentChannel;
}) {
  const { machines, channel } = deps;

  async function saveImage(
    outDir: string,
    machineId: string,
    bytes: Buffer,
    ext: 'png' | 'jpg',
  ): Promise<string> {
    await mkdir(outDir, { recursive: true });
    const path = join(outDir, `${machineId}.${ext}`);
    // Write then rename, so a half-written file is never mistaken for a finished sticker.
    const temp = `${path}.${process.pid}.tmp`;
    await writeFile(temp, bytes);
    await rename(temp, path);
    return path;
  }

  /** Writes the printable image of a profile; returns its path, or undefined when there is no source. */
  async function writeImage(
    outDir: string,
    machineId: string,
    profile: PaymentProfile,
  ): Promise<string | undefined> {
    if (profile.qrContent) {
      const png = await QRCode.toBuffer(profile.qrContent, {
        type: 'png',
        errorCorrectionLevel: 'M',
        margin: 4,
        width: 512,
      });
      return saveImage(outDir, machineId, png, 'png');
    }
    if (profile.provider === 'razorpay' && profile.qrImageUrl && channel.kind === 'razorpay') {
      const image = await channel.client.downloadQrImage(profile.qrImageUrl);
      return saveImage(outDir, machineId, image.bytes, image.format === 'png' ? 'png' : 'jpg');
    }
    return undefined;
  }

  async function existingImage(outDir: string, machineId: string): Promise<string | undefined> {
    for (const ext of ['png', 'jpg']) {
      const path = join(outDir, `${machineId}.${ext}`);
      if (await exists(path)) return path;
    }
    return undefined;
  }

  async function createProfile(machineId: string, amountPaise: number): Promise<PaymentProfile> {
    if (channel.kind === 'razorpay') {
      const qr = await channel.client.createQrCode({
        name: `Kioskhub ${machineId}`,
        description: `Machine ${machineId}, ₹${formatRupees(amountPaise)}`,
        paymentAmountPaise: amountPaise,
        notes: { machine_id: machineId },
      });
      return {
        provider: 'razorpay',
        qrCodeId: qr.id,
        qrImageUrl: qr.imageUrl,
        qrShortUrl: qr.shortUrl,
        fixedAmountPaise: amountPaise,
        qrContent: qr.imageContent,
      };
    }
    const content = buildUpiLink({
      vpa: channel.vpa,
      payeeName: channel.payeeName,
      amountPaise,
      reference: machineId,
      note: `Kioskhub ${machineId}`,
    });
    return {
      provider: 'upi_local',
      qrCodeId: `local_${machineId}`,
      qrImageUrl: null,
      qrShortUrl: null,
      fixedAmountPaise: amountPaise,
      qrContent: content,
    };
  }

  /** A replaced Razorpay QR would still take money for a machine nobody maps it to: close it. */
  async function retire(old: PaymentProfile, replacement: PaymentProfile, notes: string[]): Promise<void> {
    if (old.provider !== 'razorpay' || old.qrCodeId === replacement.qrCodeId) return;
    if (channel.kind !== 'razorpay') {
      notes.push(
        `the old Razorpay QR ${old.qrCodeId} is still active: close it in the Razorpay Dashboard and remove its sticker`,
      );
      return;
    }
    try {
      await channel.client.closeQrCode(old.qrCodeId);
      notes.push(`closed the old QR ${old.qrCodeId}`);
    } catch (err) {
      notes.push(
        `could not close the old QR ${old.qrCodeId} (${messageOf(err)}): close it in the Razorpay Dashboard`,
      );
    }
  }

  async function provision(req: ProvisionRequest): Promise<ProvisionResult> {
    const { machineId, tenantId, amountPaise, outDir } = req;
    const actor = req.actor ?? ACTOR;
    const result: ProvisionResult = { machineId, status: 'failed', notes: [] };
    if (!MACHINE_ID.test(machineId)) {
      return {
        ...result,
        error: `"${machineId}" is not a valid machine id (1–64 of A–Z, a–z, 0–9, _ and -)`,
      };
    }

    let row = await machines.findRow(machineId);
    if (row && row.tenant_id !== tenantId) {
      return {
        ...result,
        error: `machine ${machineId} belongs to tenant "${row.tenant_id}", not "${tenantId}"`,
      };
    }
    if (!row) {
      try {
        const created = await machines.create(
          { id: machineId, tenantId, ...(req.siteId ? { siteId: req.siteId } : {}) },
          actor,
        );
        result.createdKey = created.key;
      } catch (err) {
        // Someone else created it a moment ago: carry on with theirs.
        if (!(err instanceof AppError && err.code === 'CONFLICT'))
          return { ...result, error: messageOf(err) };
      }
      row = await machines.findRow(machineId);
      if (!row) return { ...result, error: `machine ${machineId} vanished while it was being provisioned` };
    } else if (req.siteId && row.site_id !== req.siteId) {
      result.notes.push(`machine already exists in site "${row.site_id}"; --site is not applied to it`);
    }
    if (row.currency !== 'INR') {
      return { ...result, error: `machine ${machineId} takes ${row.currency}; UPI QR codes are INR only` };
    }

    const old = toMachine(row).paymentProfile;
    if (old && !req.force) {
      result.status = 'skipped';
      result.qrCodeId = old.qrCodeId;
      if (old.fixedAmountPaise !== amountPaise) {
        result.notes.push(
          `its QR is for ₹${old.fixedAmountPaise === null ? 'any amount' : formatRupees(old.fixedAmountPaise)}, not ₹${formatRupees(amountPaise)}; use --force to replace it`,
        );
      }
      const present = await existingImage(outDir, machineId);
      if (present) {
        result.imagePath = present;
        return result;
      }
      try {
        result.imagePath = await writeImage(outDir, machineId, old);
        result.notes.push(
          result.imagePath
            ? 'image was missing and has been written again'
            : 'no image written: the stored profile has no image source',
        );
      } catch (err) {
        return {
          ...result,
          status: 'failed',
          error: `QR ${old.qrCodeId} is stored, but its image could not be written: ${messageOf(err)}`,
        };
      }
      return result;
    }

    let profile: PaymentProfile;
    try {
      profile = await createProfile(machineId, amountPaise);
    } catch (err) {
      return { ...result, error: messageOf(err) };
    }
    try {
      await machines.setPaymentProfile(machineId, tenantId, profile, actor);
    } catch (err) {
      if (profile.provider === 'razorpay' && channel.kind === 'razorpay')
        await channel.client.closeQrCode(profile.qrCodeId).catch(() => undefined);
      return {
        ...result,
        error: `QR ${profile.qrCodeId} was created but could not be stored: ${messageOf(err)}`,
      };
    }
    result.qrCodeId = profile.qrCodeId;
    if (old) await retire(old, profile, result.notes);

    try {
      result.imagePath = await writeImage(outDir, machineId, profile);
    } catch (err) {
      return {
        ...result,
        error: `QR ${profile.qrCodeId} is stored, but its image could not be written (run again to retry the image): ${messageOf(err)}`,
      };
    }
    if (!result.imagePath)
      return { ...result, error: `QR ${profile.qrCodeId} is stored, but there is nothing to draw it from` };
    result.status = 'provisioned';
    return result;
  }

  return { provision };
}

export type ProvisioningService = ReturnType<typeof createProvisioningService>;
