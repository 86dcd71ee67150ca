// The kiosk's SD card: dispenses the server has not confirmed, one JSON object per line. An
// entry leaves the card only when the server answered it applied or duplicate.
import { appendFileSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { KioskOfflineError, type FirmwareApi } from './firmware-api.js';
import { BATCH_MAX, type OfflineTransaction } from './wire.js';

export interface UploadReport {
  sent: number;
  applied: number;
  duplicate: number;
  rejected: { kioskTxnId: string; code?: string }[];
  left: number;
}

export class SdCardLog {
  constructor(readonly path: string) {
    mkdirSync(dirname(path), { recursive: true });
  }

  /** Appends one dispense (written before the customer walks away, like the firmware does). */
  append(txn: OfflineTransaction): void {
    appendFileSync(this.path, `${JSON.stringify(txn)}\n`);
  }

  /** Every entry on the card; a torn last line (power cut mid-write) is skipped. */
  entries(): OfflineTransaction[] {
    if (!existsSync(this.path)) return [];
    const out: OfflineTransaction[] = [];
    for (const line of readFileSync(this.path, 'utf8').split('\n')) {
      if (!line.trim()) continue;
      try {
        out.push(JSON.parse(line) as OfflineTransaction);
      } catch {
        // A half-written line: the dispense it described never finished writing.
      }
    }
    return out;
  }

  /** Removes the given transactions, keeping everything else (written to a new file, then renamed). */
  remove(kioskTxnIds: ReadonlySet<string>): void {
    if (kioskTxnIds.size === 0) return;
    const kept = this.entries().filter((t) => !kioskTxnIds.has(t.kioskTxnId));
    const tmp = `${this.path}.tmp`;
    writeFileSync(tmp, kept.map((t) => `${JSON.stringify(t)}\n`).join(''));
    renameSync(tmp, this.path);
  }
}

/**
 * Uploads the card to `POST /v1/water/transactions:batch`, 500 lines at a time, and removes only
 * the lines the server answered applied or duplicate; stops at the first batch with no answer.
 */
export async function uploadSdCard(
  api: Pick<FirmwareApi, 'uploadBatch'>,
  sd: SdCardLog,
  isOffline: () => boolean,
): Promise<UploadReport> {
  const entries = sd.entries();
  const report: UploadReport = { sent: 0, applied: 0, duplicate: 0, rejected: [], left: 0 };
  for (let i = 0; i < entries.length && !isOffline(); i += BATCH_MAX) {
    const batch = entries.slice(i, i + BATCH_MAX);
    let results;
    try {
      results = (await api.uploadBatch(batch)).results;
    } catch (err) {
      if (err instanceof KioskOfflineError) break; // try again at the next reconnect
      throw err;
    }
    report.sent += batch.length;
    const done = new Set<string>();
    for (const r of results) {
      if (r.status === 'applied') report.applied += 1;
      else if (r.status === 'duplicate') report.duplicate += 1;
      else report.rejected.push({ kioskTxnId: r.kioskTxnId, ...(r.code ? { code: r.code } : {}) });
      if (r.status === 'applied' || r.status === 'duplicate') done.add(r.kioskTxnId);
    }
    sd.remove(done);
  }
  report.left = sd.entries().length;
  return report;
}
