// 0018: firmware over the air (CONTRACTS.md §15): signed artifacts, staged campaigns and one
// deployment row per machine of a campaign. All campaign state lives here, so a restart resumes.
import type { Kysely, Migration } from 'kysely';

/* eslint-disable @typescript-eslint/no-explicit-any -- migrations see the schema before it exists */
type AnyDb = Kysely<any>;

export const firmwareMigration: Migration = {
  async up(db: AnyDb) {
    await db.schema
      .createTable('firmware_artifacts')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('tenant_id', 'text', (c) => c.notNull())
      .addColumn('sha256', 'text', (c) => c.notNull())
      .addColumn('size', 'bigint', (c) => c.notNull())
      .addColumn('product', 'text', (c) => c.notNull())
      .addColumn('version', 'text', (c) => c.notNull())
      .addColumn('hw_models', 'text', (c) => c.notNull())
      .addColumn('min_from_version', 'text')
      .addColumn('allow_downgrade', 'integer', (c) => c.notNull())
      // The manifest exactly as signed: devices verify the signature over these bytes.
      .addColumn('manifest', 'text', (c) => c.notNull())
      .addColumn('signature', 'text', (c) => c.notNull())
      .addColumn('key_id', 'text', (c) => c.notNull())
      .addColumn('sig_alg', 'text', (c) => c.notNull())
      .addColumn('created_by', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema
      .createIndex('firmware_artifacts_sha_idx')
      .unique()
      .on('firmware_artifacts')
      .columns(['tenant_id', 'sha256'])
      .execute();
    await db.schema
      .createTable('firmware_campaigns')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('tenant_id', 'text', (c) => c.notNull())
      .addColumn('artifact_id', 'text', (c) => c.notNull())
      .addColumn('name', 'text')
      .addColumn('status', 'text', (c) => c.notNull())
      .addColumn('target', 'text', (c) => c.notNull())
      .addColumn('hw_model', 'text', (c) => c.notNull())
      // JSON [{percent, soakMinutes, approval, status, startedAt, soakUntil, completedAt}]
      .addColumn('waves', 'text', (c) => c.notNull())
      .addColumn('current_wave', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('max_concurrent', 'integer', (c) => c.notNull())
      .addColumn('failure_threshold_percent', 'integer', (c) => c.notNull())
      .addColumn('min_finished_for_threshold', 'integer', (c) => c.notNull())
      .addColumn('device_timeout_minutes', 'double precision', (c) => c.notNull())
      .addColumn('download_retries', 'integer', (c) => c.notNull())
      .addColumn('allow_downgrade', 'integer', (c) => c.notNull())
      .addColumn('pause_reason', 'text')
      // Failures an operator has seen and resumed past: the threshold counts only newer ones.
      .addColumn('acknowledged_failures', 'integer', (c) => c.notNull().defaultTo(0))
      // The tick chain's sequence: a tick whose number is not this one is a stale duplicate.
      .addColumn('tick_seq', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('created_by', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .addColumn('started_at', 'text')
      .addColumn('finished_at', 'text')
      .execute();
    await db.schema
      .createIndex('firmware_campaigns_tenant_idx')
      .on('firmware_campaigns')
      .columns(['tenant_id', 'created_at'])
      .execute();
    await db.schema
      .createTable('firmware_deployments')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('tenant_id', 'text', (c) => c.notNull())
      .addColumn('campaign_id', 'text', (c) => c.notNull())
      .addColumn('machine_id', 'text', (c) => c.notNull())
      .addColumn('wave', 'integer', (c) => c.notNull())
      .addColumn('ordinal', 'integer', (c) => c.notNull())
      .addColumn('state', 'text', (c) => c.notNull())
      .addColumn('code', 'text')
      .addColumn('message', 'text')
      .addColumn('from_version', 'text')
      .addColumn('current_version', 'text')
      .addColumn('bytes', 'bigint')
      .addColumn('total', 'bigint')
      .addColumn('seq', 'bigint', (c) => c.notNull().defaultTo(-1))
      .addColumn('retries', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('notified_at', 'text')
      // When the device was last heard about this deployment (the in-progress timeout runs from it).
      .addColumn('active_at', 'text')
      .addColumn('finished_at', 'text')
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema
      .createIndex('firmware_deployments_campaign_idx')
      .unique()
      .on('firmware_deployments')
      .columns(['campaign_id', 'machine_id'])
      .execute();
    await db.schema
      .createIndex('firmware_deployments_machine_idx')
      .on('firmware_deployments')
      .columns(['machine_id', 'state'])
      .execute();
  },
};
