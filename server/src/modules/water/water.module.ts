// The water kiosk firmware API, put together (CONTRACTS §11, docs/water.md): verification with
// holds, settlements and offline logs, the per-kiosk credential cache, heartbeats, and the
// seal of each PIN set, kept for the caches.
import type { Db, Executor } from '../../platform/db/database.js';
import type { CustomerRow } from '../../platform/db/schema.js';
import type { AlertsService } from '../alerts/alerts.service.js';
import type { CustomersService } from '../customers/customers.service.js';
import type { LedgerService } from '../ledger/ledger.service.js';
import type { WaterNotices } from '../water-messaging/notices.js';
import { createCredentialCache } from './credential-cache.js';
import { createDispenses } from './dispenses.js';
import { createWaterKiosks } from './kiosks.js';
import { createVerification, type VerificationDeps } from './verification.js';
import { createWaterKeys } from './water-keys.js';
import { createWaterLedger } from './water-ledger.js';
import { createWaterRepo } from './water.repo.js';

/** Kept apart from the water service: the customers module calls it when a PIN is set. */
export function createPinSealer(deps: { pinKey: Buffer }) {
  const keys = createWaterKeys(deps.pinKey);
  const repo = createWaterRepo();
  return {
    keys,
    /** Seals the new PIN for kiosk credential caches, in the PIN change's transaction. */
    async pinSet(ex: Executor, customer: Pick<CustomerRow, 'id' | 'tenant_id'>, pin: string): Promise<void> {
      await repo.upsertSeal(ex, {
        customer_id: customer.id,
        tenant_id: customer.tenant_id,
        sealed: keys.seal(customer.tenant_id, customer.id, pin),
        updated_at: new Date().toISOString(),
      });
    },
  };
}

export function createWater(deps: {
  db: Db;
  dialect: 'sqlite' | 'postgres';
  keys: ReturnType<typeof createWaterKeys>;
  ledger: LedgerService;
  customers: CustomersService;
  notices: Pick<WaterNotices, 'lowCredit'>;
  alerts: Pick<AlertsService, 'raise'>;
  holdMs: number;
  /** Where each verification's outcome is recorded for staff (water-ops). */
  recordOutcome?: VerificationDeps['recordOutcome'];
}) {
  const { db, dialect } = deps;
  const repo = createWaterRepo();
  const water = createWaterLedger({ ledger: deps.ledger, customers: deps.customers });
  return {
    keys: deps.keys,
    verification: createVerification({
      db,
      dialect,
      repo,
      water,
      customers: deps.customers,
      holdMs: deps.holdMs,
      ...(deps.recordOutcome ? { recordOutcome: deps.recordOutcome } : {}),
    }),
    dispenses: createDispenses({
      db,
      dialect,
      repo,
      water,
      customers: deps.customers,
      notices: deps.notices,
      alerts: deps.alerts,
    }),
    cache: createCredentialCache({ db, dialect, repo, keys: deps.keys }),
    kiosks: createWaterKiosks({ db, repo }),
  };
}

export type Water = ReturnType<typeof createWater>;
