// `/staff/kitchen`: the cafe's table orders in three columns (new, preparing, ready) with the
// buttons that move them on: POST /v1/orders/:id/kitchen-status PREPARING → READY → SERVED.
// Unpaid orders show only when the cafe lets cash orders into the kitchen before payment.
import { useQueryClient } from '@tanstack/react-query';
import { useAction } from '../action.ts';
import { api } from '../api.ts';
import { useAuth } from '../auth.tsx';
import { ago, money } from '../format.ts';
import { Empty, ErrorNote, Loading } from '../ui.tsx';
import { CafeHeader, useCafeOverview, useCafeSite, type CafeOrderView } from './cafe-common.tsx';

const NEXT: Record<string, { status: string; label: string }[]> = {
  NEW: [
    { status: 'PREPARING', label: 'Start preparing' },
    { status: 'READY', label: 'Ready' },
  ],
  PREPARING: [{ status: 'READY', label: 'Ready' }],
  READY: [{ status: 'SERVED', label: 'Served' }],
};
const COLUMNS = [
  { key: 'NEW', title: 'New' },
  { key: 'PREPARING', title: 'Preparing' },
  { key: 'READY', title: 'Ready to serve' },
];

function Ticket({ order, table, column }: { order: CafeOrderView; table: string; column: string }) {
  const client = useQueryClient();
  const { busy, error, run } = useAction();
  const { can } = useAuth();
  const move = (status: string) =>
    run(async () => {
      await api(`/v1/orders/${order.id}/kitchen-status`, { method: 'POST', body: { status } });
      await client.invalidateQueries({ queryKey: ['cafe'] });
    })();
  return (
    <li
      className="ticket"
      data-order-id={order.id}
      data-status={order.status}
      aria-label={`Order ${order.orderNumber ?? ''}, ${table}`}
    >
      <div className="ticket-head">
        <strong>{table}</strong>
        <span className="muted small">
          #{order.orderNumber} · {ago(order.paidAt ?? order.createdAt)}
        </span>
      </div>
      {!order.paid && <div className="error small">Not paid yet (cash later)</div>}
      <ul className="ticket-items">
        {(order.items ?? []).map((i, n) => (
          <li key={n}>
            <strong>{i.qty} ×</strong> {i.name ?? i.sku}
            {i.notes && <div className="note">“{i.notes}”</div>}
          </li>
        ))}
      </ul>
      <div className="actions">
        {(can('serveCafe') ? (NEXT[column] ?? []) : []).map((n) => (
          <button
            key={n.status}
            type="button"
            className={n.status === 'PREPARING' ? 'secondary' : 'primary'}
            disabled={busy}
            onClick={() => void move(n.status)}
            aria-label={`${n.label}: order ${order.orderNumber ?? ''}`}
          >
            {n.label}
          </button>
        ))}
      </div>
      <div className="muted small">{money(order.subtotalMinor, order.currency)}</div>
      <ErrorNote error={error} />
    </li>
  );
}

export function StaffKitchenPage() {
  const { site, sites, tenantQs } = useCafeSite();
  const overview = useCafeOverview(site, tenantQs);
  const o = overview.data;
  const pendingCash = new Set(o?.cashToCollect.map((p) => p.orderId) ?? []);
  const orders = (o?.tables ?? []).flatMap((t) => t.openOrders.map((order) => ({ order, table: t.name })));
  const columnOf = (order: CafeOrderView): string | null => {
    if (order.status === 'PREPARING' || order.status === 'READY') return order.status;
    if (order.status === 'PAID') return 'NEW';
    // A pay-later cash order may start before it is paid.
    if (order.status === 'CREATED' && o?.settings.payLater && pendingCash.has(order.id)) return 'NEW';
    return null;
  };
  return (
    <>
      <CafeHeader title="Kitchen" site={site} sites={sites} />
      {!site ? (
        <Empty>No sites yet.</Empty>
      ) : overview.isPending ? (
        <Loading />
      ) : !o ? (
        <ErrorNote error={overview.error} />
      ) : (
        <div className="kitchen-board">
          {COLUMNS.map((c) => {
            const list = orders.filter((x) => columnOf(x.order) === c.key);
            return (
              <section key={c.key} className="card" aria-label={c.title} data-column={c.key}>
                <h2>
                  {c.title} <span className="count">{list.length}</span>
                </h2>
                {list.length === 0 ? (
                  <Empty>Nothing here.</Empty>
                ) : (
                  <ul className="tickets">
                    {list.map((x) => (
                      <Ticket key={x.order.id} order={x.order} table={x.table} column={c.key} />
                    ))}
                  </ul>
                )}
              </section>
            );
          })}
        </div>
      )}
    </>
  );
}
