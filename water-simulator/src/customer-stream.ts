// A stream of customers walking up to one kiosk: one every `everyMs`, at the next free tap, with
// optional scripted outages (offline after N customers, back online after M more). Shared by the
// CLI and `npm run demo`; `printKioskActivity` turns a kiosk's events into the lines both print.
import type { Customer, ServeResult, WaterKiosk } from './water-kiosk.js';

export interface CustomerStreamOptions {
  customers: { phone: string; pin: string }[];
  everyMs: number;
  /** Volumes to pick from at random (ml). */
  volumesMl?: number[];
  /** Share of customers who walk away early (pour less than approved). */
  walkAwayRate?: number;
  /** Go offline after this many customers (0: never), for `offlineFor` customers. */
  offlineAfter?: number;
  offlineFor?: number;
  /** Stop after this many customers (0: never). */
  count?: number;
}

export interface CustomerStreamStats {
  served: number;
  refused: number;
  offlineServed: number;
  litres: number;
}

const pick = <T>(items: readonly T[]): T => items[Math.floor(Math.random() * items.length)]!;

export function startCustomerStream(
  kiosk: WaterKiosk,
  options: CustomerStreamOptions,
  onError: (err: Error) => void = () => undefined,
) {
  const stats: CustomerStreamStats = { served: 0, refused: 0, offlineServed: 0, litres: 0 };
  const volumes = options.volumesMl ?? [1000, 5000, 10000, 20000];
  let started = 0;
  let offlineSince: number | null = null;
  let timer: NodeJS.Timeout | undefined;
  const inFlight = new Set<Promise<void>>();
  let finish!: () => void;
  const finished = new Promise<void>((r) => (finish = r));

  const account = (result: ServeResult) => {
    if (!result.approved) stats.refused += 1;
    else {
      stats.served += 1;
      if (result.offline) stats.offlineServed += 1;
      stats.litres += result.dispensedMl / 1000;
    }
  };

  function next(): void {
    const limit = options.count ?? 0;
    if (limit > 0 && started >= limit) {
      timer = undefined;
      void Promise.all(inFlight).then(finish);
      return;
    }
    if (options.offlineAfter && offlineSince === null && started === options.offlineAfter) {
      offlineSince = started;
      kiosk.goOffline();
    } else if (
      offlineSince !== null &&
      started - offlineSince === (options.offlineFor ?? 3) &&
      kiosk.offline
    ) {
      void kiosk.goOnline().catch(onError);
    }
    if (kiosk.taps.some((t) => t.status === 'idle')) {
      started += 1;
      const who = pick(options.customers);
      const customer: Customer = {
        ...who,
        volumeMl: pick(volumes),
        ...(Math.random() < (options.walkAwayRate ?? 0) ? { pourShare: 0.4 + Math.random() * 0.5 } : {}),
      };
      const p = kiosk
        .serve(customer)
        .then(account, onError)
        .finally(() => inFlight.delete(p));
      inFlight.add(p);
    }
    timer = setTimeout(next, options.everyMs);
  }
  timer = setTimeout(next, Math.min(500, options.everyMs));

  return {
    stats,
    /** Resolves when `count` customers have been served. */
    finished,
    async stop(): Promise<void> {
      clearTimeout(timer);
      timer = undefined;
      await Promise.all(inFlight);
    },
  };
}

const litres = (ml: number): string => `${(ml / 1000).toFixed(1)} L`;

/** Prints what a kiosk does, one line per step; pours are shown at each quarter. */
export function printKioskActivity(kiosk: WaterKiosk, log: (line: string) => void): void {
  const id = kiosk.options.kioskId;
  const shownQuarter = new Map<number, number>();
  kiosk.on('verified', (e) => {
    const where = e.offline ? 'offline (credential cache)' : 'server';
    const tail = e.phone.slice(-4);
    log(
      `${id}  tap ${e.tap}  …${tail} ${e.code === 'VERIFIED' ? 'approved' : `refused ${e.code}`} by ${where}`,
    );
    shownQuarter.set(e.tap, 0);
  });
  kiosk.on('pour', (e) => {
    const quarter = e.targetMl === 0 ? 4 : Math.floor((e.ml / e.targetMl) * 4);
    if (quarter <= (shownQuarter.get(e.tap) ?? 0)) return;
    shownQuarter.set(e.tap, quarter);
    const bar = '▓'.repeat(quarter * 2) + '░'.repeat(8 - quarter * 2);
    log(`${id}  tap ${e.tap}  ${bar} ${litres(e.ml)} / ${litres(e.targetMl)} (${e.pulses} pulses)`);
  });
  kiosk.on('settled', (r) => {
    if (r.settled)
      log(
        `${id}  tap ${r.tap}  settled ${litres(r.dispensedMl)} as ${r.kioskTxnId}${r.settled.duplicate ? ' (duplicate)' : ''}; credit ${litres(r.settled.creditsMl)}`,
      );
  });
  kiosk.on('logged', (t) =>
    log(`${id}  tap ${t.tap ?? '-'}  ${litres(t.dispensedMl)} written to the SD card as ${t.kioskTxnId}`),
  );
  kiosk.on('offline', () =>
    log(`${id}  ✗ modem down: serving from the credential cache (${kiosk.cache.size} customers)`),
  );
  kiosk.on('online', () => log(`${id}  ✓ back online`));
  kiosk.on('uploaded', (r) =>
    log(
      `${id}  uploaded ${r.sent} from the SD card: ${r.applied} applied, ${r.duplicate} duplicate, ${r.rejected.length} rejected; ${r.left} left on the card`,
    ),
  );
  kiosk.on('cache', (c) =>
    log(
      c.trusted
        ? `${id}  credential cache version ${String(c.version)}: ${c.customers} customers`
        : kiosk.cache.hasSecret
          ? `${id}  credential cache REFUSED: bad signature`
          : `${id}  credential cache not used: no --cache-secret (no offline service without it)`,
    ),
  );
  kiosk.on('heartbeat', (h) => {
    if (!h.ok) log(`${id}  heartbeat failed: ${h.error ?? ''}`);
  });
  kiosk.on('warning', (err) => log(`${id}  ${err.message}`));
}
