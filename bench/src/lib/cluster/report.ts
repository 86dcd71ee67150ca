// Shared bits of the cluster scenarios' reports: the per-scenario note (services, load average)
// and the check that webhook answers and the orders table agree.
import { clusterPgUrl, clusterRedisUrl, loadAvg, readClusterOrders, type Cluster } from './cluster.js';
import type { WebhookLoadResult } from '../webhook-load.js';

export function printHeaderNote(name: string, detail: string): void {
  const pg = new URL(clusterPgUrl());
  console.log(
    `[${name}] PostgreSQL ${pg.host}${pg.pathname} (fresh schema per cluster, dropped after), Redis ${new URL(clusterRedisUrl()).host}; load average now ${loadAvg()}`,
  );
  console.log(`[${name}] ${detail}`);
}

/**
 * Every 2xx with an orderId has its order; no order exists for a payment that was not sent; the
 * only orders without a 2xx are those committed for requests still in flight when autocannon
 * stopped (at most one per connection per load run).
 */
export async function verifyWebhookOrders(
  cluster: Pick<Cluster, 'pgUrl' | 'schema'>,
  loads: Pick<WebhookLoadResult, 'created' | 'sent' | 'unexpected'>[],
  connections: number,
): Promise<{ checks: string[]; ok: boolean }> {
  const orders = await readClusterOrders(cluster);
  const created = new Set(loads.flatMap((l) => [...l.created]));
  const sent = new Set(loads.flatMap((l) => [...l.sent]));
  const unexpected = loads.reduce((a, l) => a + l.unexpected.size, 0);
  const missing = [...created].filter((id) => !orders.paymentIds.has(id)).length;
  const strangers = [...orders.paymentIds].filter((id) => !sent.has(id)).length;
  const unanswered = [...orders.paymentIds].filter((id) => !created.has(id)).length;
  const allowance = connections * loads.length;
  const checks = [
    `orders in DB ${orders.count} (by status ${JSON.stringify(orders.byStatus)}); 2xx with a new orderId ${created.size}; sent ${sent.size}`,
    `2xx without an order ${missing}; orders for payments never sent ${strangers}; orders committed for in-flight requests (no answer read) ${unanswered} (≤ ${allowance} allowed); duplicate/ignored answers ${unexpected}`,
  ];
  return {
    checks,
    ok:
      missing === 0 &&
      strangers === 0 &&
      unanswered <= allowance &&
      unexpected === 0 &&
      orders.count === orders.paymentIds.size,
  };
}
