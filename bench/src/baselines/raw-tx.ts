// Baseline (b) of the webhook scenario: the storage engine's raw rate for one webhook's unit
// of work (insert payment event, insert order, update machine, commit) through Kysely, on
// the server's own openDatabase() (same pragmas: WAL, synchronous=FULL; same schema).
// SQLite: one loop (one process owns the file). PostgreSQL: 10 loops over a pool of 10.
import { randomBytes } from 'node:crypto';
import { ulid } from 'ulid';
import { openDatabase, type Db } from '../../../server/src/platform/db/database.js';
import { freshPgSchema, type Engine } from '../lib/kioskhub.js';
import { summarize, type Summary } from '../lib/stats.js';
import { tempDir } from '../lib/temp.js';

export interface RawTxResult {
  engine: Engine;
  concurrency: number;
  txPerSec: number;
  latency: Summary;
}

const TENANT = 'bench';
const MACHINE = 'RAW00001';

async function seed(db: Db): Promise<void> {
  const now = new Date().toISOString();
  await db.insertInto('tenants').values({ id: TENANT, name: 'Bench', created_at: now }).execute();
  await db
    .insertInto('machines')
    .values({
      id: MACHINE,
      tenant_id: TENANT,
      site_id: 'default',
      name: 'Raw',
      kind: 'vending',
      key_hash: randomBytes(32).toString('hex'),
      status: 'IDLE',
      socket_connected: 0,
      connection_id: null,
      protocol: null,
      last_seen_at: null,
      firmware: null,
      payment_provider: 'razorpay',
      payment_qr_code_id: 'qr_raw',
      payment_qr_image_url: null,
      payment_qr_short_url: null,
      payment_fixed_amount_minor: 2000,
      payment_qr_content: null,
      currency: 'INR',
      created_at: now,
      updated_at: now,
    })
    .execute();
}

async function unitOfWork(db: Db, raw: string): Promise<void> {
  await db.transaction().execute(async (tx) => {
    const now = new Date().toISOString();
    const paymentId = `pay_raw_${ulid()}`;
    const orderId = ulid();
    await tx
      .insertInto('payment_events')
      .values({
        id: ulid(),
        provider: 'razorpay',
        provider_payment_id: paymentId,
        event_id: null,
        event_type: 'qr_code.credited',
        tenant_id: TENANT,
        status: 'PROCESSED',
        reason: null,
        machine_id: MACHINE,
        order_id: orderId,
        amount_minor: 2000,
        currency: 'INR',
        raw,
        received_at: now,
        processed_at: now,
      })
      .execute();
    await tx
      .insertInto('orders')
      .values({
        id: orderId,
        tenant_id: TENANT,
        site_id: 'default',
        machine_id: MACHINE,
        order_number: null,
        amount: 2000,
        currency: 'INR',
        source: 'upi_qr',
        provider: 'razorpay',
        provider_payment_id: paymentId,
        provider_qr_code_id: 'qr_raw',
        paid_at: now,
        status: 'PAID',
        failure_code: null,
        items: null,
        customer_name: null,
        created_at: now,
        updated_at: now,
      })
      .execute();
    await tx.updateTable('machines').set({ updated_at: now }).where('id', '=', MACHINE).execute();
  });
}

export async function measureRawTx(options: {
  engine: Engine;
  pgUrl?: string;
  seconds: number;
  rawBody: string;
}): Promise<RawTxResult> {
  const concurrency = options.engine === 'postgres' ? 10 : 1;
  let opened;
  let cleanup: () => Promise<void>;
  if (options.engine === 'postgres') {
    const fresh = await freshPgSchema(options.pgUrl!, 'raw');
    opened = await openDatabase(
      { kind: 'postgres', url: options.pgUrl! },
      { schema: fresh.schema, poolSize: 10 },
    );
    cleanup = fresh.drop;
  } else {
    const dir = tempDir('rawtx');
    opened = await openDatabase({ kind: 'sqlite-file', file: `${dir.path}/raw.db` });
    cleanup = dir.remove;
  }
  const { db } = opened;
  try {
    await seed(db);
    // Warm-up: JIT, page cache, pool connections.
    const warmUntil = performance.now() + 500;
    while (performance.now() < warmUntil) await unitOfWork(db, options.rawBody);
    await new Promise((r) => setImmediate(r));

    const latencies: number[] = [];
    const started = performance.now();
    const until = started + options.seconds * 1000;
    const maxTx = 1_000_000;
    const loop = async () => {
      while (performance.now() < until && latencies.length < maxTx) {
        const t0 = performance.now();
        await unitOfWork(db, options.rawBody);
        latencies.push(performance.now() - t0);
        // SQLite work resolves without ever yielding; let signals and timers through now and then.
        if (latencies.length % 64 === 0) await new Promise((r) => setImmediate(r));
      }
    };
    await Promise.all(Array.from({ length: concurrency }, loop));
    const elapsed = (performance.now() - started) / 1000;
    return {
      engine: options.engine,
      concurrency,
      txPerSec: latencies.length / elapsed,
      latency: summarize(latencies),
    };
  } finally {
    await opened.close();
    await cleanup();
  }
}
