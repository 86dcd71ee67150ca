// Prometheus metrics (served at /metrics). Each app instance has its own registry so tests
// can build many apps in one process.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export function createMetrics(collect: {
  machinesOnline(): number;
  queueDepth(): Promise<number>;
  /** PostgreSQL only: statements sent and writes held so far (write-behind.ts). */
  dbStatements?(): { sent: number; held: number };
}) {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const webhooks = new Counter({
    name: 'kioskhub_webhooks_total',
    help: 'Provider webhooks received, by provider and outcome',
    labelNames: ['provider', 'outcome'] as const,
    registers: [registry],
  });
  const duplicates = new Counter({
    name: 'kioskhub_webhook_duplicates_total',
    help: 'Webhook deliveries recognised as duplicates of an already applied payment or event',
    labelNames: ['provider'] as const,
    registers: [registry],
  });
  const dispatchLatency = new Histogram({
    name: 'kioskhub_dispatch_latency_seconds',
    help: 'Time from payment to the dispense command leaving for the machine',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 5, 30, 120],
    registers: [registry],
  });
  new Gauge({
    name: 'kioskhub_machines_online',
    help: 'Machines connected to this process',
    registers: [registry],
    collect() {
      this.set(collect.machinesOnline());
    },
  });
  new Gauge({
    name: 'kioskhub_command_queue_depth',
    help: 'Commands queued or in flight',
    registers: [registry],
    async collect() {
      this.set(await collect.queueDepth());
    },
  });
  const jobs = new Counter({
    name: 'kioskhub_jobs_total',
    help: 'Job runs by topic and outcome (done, retry: threw and rescheduled, failed: gave up)',
    labelNames: ['topic', 'outcome'] as const,
    registers: [registry],
  });
  const commitGroups = new Histogram({
    name: 'kioskhub_commit_group_events',
    help: 'Money events written together in one SQLite transaction (one fsync) by group commit',
    buckets: [1, 2, 4, 8, 16, 32, 64],
    registers: [registry],
  });
  const commitReplays = new Counter({
    name: 'kioskhub_commit_group_replays_total',
    help: 'Money events run again, each in a savepoint, because a later event of their group (SQLite, no savepoints) failed after writing',
    registers: [registry],
  });
  const statements = collect.dbStatements;
  if (statements) {
    const counted = { sent: 0, held: 0 };
    new Counter({
      name: 'kioskhub_db_statements_total',
      help: 'PostgreSQL: statements sent to the server (kind="sent", one round trip each) and writes that travelled inside them (kind="held")',
      labelNames: ['kind'] as const,
      registers: [registry],
      collect() {
        const now = statements();
        for (const kind of ['sent', 'held'] as const) {
          this.inc({ kind }, now[kind] - counted[kind]);
          counted[kind] = now[kind];
        }
      },
    });
  }
  return { registry, webhooks, duplicates, dispatchLatency, jobs, commitGroups, commitReplays };
}

export type Metrics = ReturnType<typeof createMetrics>;
