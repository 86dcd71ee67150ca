// Live events of firmware campaigns (CONTRACTS.md §15), written to the job table inside the
// transaction that made the change, so they follow its commit.
import {
  LIVE_EVENTS,
  type CampaignStatus,
  type FirmwareCampaignEvent,
  type FirmwareDeviceEvent,
  type OtaDeviceState,
} from '@kioskhub/protocol';
import type { Executor } from '../../platform/db/database.js';
import type { FirmwareCampaignRow, FirmwareDeploymentRow } from '../../platform/db/schema.js';
import { enqueueOutbox } from '../../platform/outbox.js';

export async function campaignUpdated(ex: Executor, c: FirmwareCampaignRow): Promise<void> {
  const data: FirmwareCampaignEvent = {
    tenantId: c.tenant_id,
    campaignId: c.id,
    status: c.status as CampaignStatus,
    currentWave: Number(c.current_wave),
  };
  await enqueueOutbox(ex, 'live', {
    tenantId: c.tenant_id,
    rooms: [`tenant:${c.tenant_id}`],
    event: LIVE_EVENTS.firmwareCampaignUpdated,
    data: { ...data },
  });
}

export async function deviceUpdated(ex: Executor, d: FirmwareDeploymentRow): Promise<void> {
  const data: FirmwareDeviceEvent = {
    tenantId: d.tenant_id,
    campaignId: d.campaign_id,
    deploymentId: d.id,
    machineId: d.machine_id,
    state: d.state as OtaDeviceState,
    code: d.code,
    currentVersion: d.current_version,
    bytes: d.bytes === null ? null : Number(d.bytes),
    total: d.total === null ? null : Number(d.total),
  };
  await enqueueOutbox(ex, 'live', {
    tenantId: d.tenant_id,
    rooms: [`tenant:${d.tenant_id}`],
    event: LIVE_EVENTS.firmwareDeviceUpdated,
    data: { ...data },
  });
}
