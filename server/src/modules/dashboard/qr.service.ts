// A machine's payment QR as a PNG for the dashboard, and "provision its UPI QR" from the
// dashboard through the provisioning service the `qr:provision` CLI uses.
import { join } from 'node:path';
import type { ProvisionQrView } from '@kioskhub/protocol';
import QRCode from 'qrcode';
import type { Config } from '../../platform/config.js';
import type { Db } from '../../platform/db/database.js';
import { AppError, notFound } from '../../platform/errors.js';
import { recordAudit } from '../audit/audit.service.js';
import type { MachinesService } from '../machines/machines.service.js';
import { createProvisioningService, type PaymentChannel } from '../machines/provisioning.service.js';
import { isValidVpa } from '../machines/upi-link.js';
import { createRazorpayClient } from '../../providers/razorpay/razorpay.api.js';

/** What the PNG encodes: the UPI string itself, or (without one) a link to the provider's page. */
export type QrSource = 'content' | 'short-url' | 'image-url';

/** Same choice as `npm run qr:provision`: Razorpay keys, else a local UPI VPA, else nothing. */
export function paymentChannel(config: Pick<Config, 'razorpay' | 'upi'>): PaymentChannel | undefined {
  const { keyId, keySecret, apiBase } = config.razorpay;
  if (keyId && keySecret)
    return { kind: 'razorpay', client: createRazorpayClient({ baseUrl: apiBase, keyId, keySecret }) };
  const vpa = config.upi.vpa;
  if (vpa && isValidVpa(vpa)) return { kind: 'upi_local', vpa, payeeName: config.upi.payeeName ?? vpa };
  return undefined;
}

export function createQrService(deps: {
  db: Db;
  machines: Pick<MachinesService, 'get' | 'create' | 'findRow' | 'setPaymentProfile'>;
  config: Pick<Config, 'razorpay' | 'upi' | 'dataDir'>;
}) {
  const { machines } = deps;

  return {
    async png(machineId: string, tenantId: string | null): Promise<{ png: Buffer; source: QrSource }> {
      const profile = (await machines.get(machineId, tenantId)).paymentProfile;
      const choice: [QrSource, string | null | undefined][] = [
        ['content', profile?.qrContent],
        ['short-url', profile?.qrShortUrl],
        ['image-url', profile?.qrImageUrl],
      ];
      const found = choice.find(([, text]) => typeof text === 'string' && text !== '');
      if (!found) throw notFound('payment QR of machine', machineId);
      const png = await QRCode.toBuffer(found[1]!, {
        type: 'png',
        errorCorrectionLevel: 'M',
        margin: 4,
        width: 512,
      });
      return { png, source: found[0] };
    },

    async provision(
      machineId: string,
      tenantId: string | null,
      input: { amountPaise: number; force: boolean },
      actor: string,
    ): Promise<ProvisionQrView> {
      const machine = await machines.get(machineId, tenantId);
      const channel = paymentChannel(deps.config);
      if (!channel)
        throw new AppError(
          'PROVIDER_NOT_CONFIGURED',
          'set RAZORPAY_KEY_ID and RAZORPAY_KEY_SECRET, or UPI_VPA, to provision payment QR codes',
        );
      const provisioning = createProvisioningService({ machines, channel });
      const result = await provisioning.provision({
        machineId,
        tenantId: machine.tenantId,
        amountPaise: input.amountPaise,
        force: input.force,
        outDir: join(deps.config.dataDir, 'qr'),
        actor,
      });
      if (result.status === 'provisioned') {
        await recordAudit(deps.db, {
          tenantId: machine.tenantId,
          actor,
          action: 'machine.provision_qr',
          subjectType: 'machine',
          subjectId: machineId,
          after: { qrCodeId: result.qrCodeId, amountPaise: input.amountPaise, provider: channel.kind },
        });
      }
      return {
        machineId,
        status: result.status,
        qrCodeId: result.qrCodeId ?? null,
        notes: result.notes,
        error: result.error ?? null,
      };
    },
  };
}

export type QrService = ReturnType<typeof createQrService>;
