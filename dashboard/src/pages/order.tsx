// One order: its facts, its payments (every channel, with what arrived and what was refunded)
// and its timeline (payment received → command sent → accepted → done), each step with its time
// and who or what did it.
import type { OrderView, PaymentView, TimelineEntryView } from '@kioskhub/protocol';
import { useQueries, useQuery, useQueryClient } from '@tanstack/react-query';
import { useAuth } from '../auth.tsx';
import { Link } from 'wouter';
import { api } from '../api.ts';
import { dateTime, eventLabel, money } from '../format.ts';
import { Columns, ConfirmButton, ErrorNote, Loading, Section, StatusBadge } from '../ui.tsx';
import { ReviewActions, needsReview } from './review.tsx';

function detailText(detail: unknown): string {
  if (!detail || typeof detail !== 'object') return '';
  const d = detail as Record<string, unknown>;
  const parts: string[] = [];
  if (typeof d['note'] === 'string') parts.push(`note: ${d['note']}`);
  if (typeof d['failureCode'] === 'string') parts.push(d['failureCode']);
  if (typeof d['reason'] === 'string') parts.push(d['reason']);
  if (typeof d['providerPaymentId'] === 'string') parts.push(d['providerPaymentId']);
  if (typeof d['attempt'] === 'number' && d['attempt'] > 1) parts.push(`attempt ${d['attempt']}`);
  return parts.join(' · ');
}

const METHOD_LABELS: Record<string, string> = {
  upi_qr: 'UPI QR',
  cash: 'Cash',
  card: 'Card',
  bank_transfer: 'Bank transfer',
  credit: 'Wallet',
  momo: 'MTN MoMo',
  airtel: 'Airtel Money',
};

interface RefundRow {
  id: string;
  paymentId: string;
  amountMinor: number;
  currency: string;
  reason: string;
  destination: string;
  status: string;
  actor: string;
  providerRefundId: string | null;
  error: string | null;
  createdAt: string;
  completedAt: string | null;
}

const DESTINATION_LABELS: Record<string, string> = {
  original: 'Original method',
  refund_due: 'Handed back by staff',
  credit: 'Customer wallet',
};

/** The refunds of an order's payments, oldest first; a refund due can be marked handed back. */
function Refunds({ orderId, payments }: { orderId: string; payments: PaymentView[] }) {
  const { can } = useAuth();
  const client = useQueryClient();
  const refunded = payments.filter((p) => p.refundedMinor > 0);
  const lists = useQueries({
    queries: refunded.map((p) => ({
      queryKey: ['refunds', p.id],
      queryFn: () => api<{ items: RefundRow[] }>(`/v1/payments/${encodeURIComponent(p.id)}/refunds`),
    })),
  });
  if (refunded.length === 0) return null;
  const failed = lists.find((l) => l.error);
  if (failed) return <ErrorNote error={failed.error} />;
  if (lists.some((l) => l.isPending)) return <Loading what="Loading refunds" />;
  const items = lists
    .flatMap((l) => l.data?.items ?? [])
    .sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  const complete = async (refund: RefundRow, note: string) => {
    await api(`/v1/refunds/${encodeURIComponent(refund.id)}/complete`, {
      method: 'POST',
      body: note ? { note } : {},
    });
    await Promise.all([
      client.invalidateQueries({ queryKey: ['refunds', refund.paymentId] }),
      client.invalidateQueries({ queryKey: ['payments', orderId] }),
    ]);
  };
  return (
    <>
      <h3>Refunds</h3>
      <div className="table-wrap">
        <table aria-label="Refunds of this order">
          <Columns names={['When', 'Amount', 'To', 'Status', 'Reason · by', 'Completed']} />
          <tbody>
            {items.map((r) => (
              <tr key={r.id} data-refund={r.id}>
                <td>{dateTime(r.createdAt)}</td>
                <td>{money(r.amountMinor, r.currency)}</td>
                <td>{DESTINATION_LABELS[r.destination] ?? r.destination}</td>
                <td>
                  <StatusBadge status={r.status} />
                  {r.error ? <span className="small"> {r.error}</span> : null}
                </td>
                <td className="text">
                  {r.reason}
                  <br />
                  <span className="muted small">{r.actor}</span>
                </td>
                <td>
                  {r.status === 'DUE' && can('refundDue') ? (
                    <ConfirmButton
                      label="Handed back"
                      confirmLabel="Confirm: the money was handed back"
                      withNote
                      onConfirm={(note) => complete(r, note)}
                    />
                  ) : (
                    dateTime(r.completedAt)
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </>
  );
}

function Payments({ orderId }: { orderId: string }) {
  const payments = useQuery({
    queryKey: ['payments', orderId],
    queryFn: () => api<{ items: PaymentView[] }>(`/v1/payments?orderId=${encodeURIComponent(orderId)}`),
  });
  if (payments.isPending) return <Loading what="Loading payments" />;
  if (payments.error) return <ErrorNote error={payments.error} />;
  const items = payments.data?.items ?? [];
  if (items.length === 0) return <p className="muted">No payment yet.</p>;
  return (
    <>
      <PaymentsTable items={items} />
      <Refunds orderId={orderId} payments={items} />
    </>
  );
}

function PaymentsTable({ items }: { items: PaymentView[] }) {
  return (
    <div className="table-wrap">
      <table aria-label="Payments of this order">
        <Columns names={['Method', 'Status', 'To pay', 'Received', 'Refunded', 'Reference', 'Completed']} />
        <tbody>
          {items.map((p) => (
            <tr key={p.id} data-payment={p.id}>
              <td>
                {METHOD_LABELS[p.method] ?? p.method}
                {p.provider ? <span className="muted"> · {p.provider}</span> : null}
              </td>
              <td>
                <StatusBadge status={p.status} />
                {p.failureCode ? <span className="small"> {p.failureCode}</span> : null}
              </td>
              <td>{money(p.amountMinor, p.currency)}</td>
              <td>{money(p.receivedMinor, p.currency)}</td>
              <td>{p.refundedMinor > 0 ? money(p.refundedMinor, p.currency) : '—'}</td>
              <td>
                <code>{p.providerPaymentId ?? p.reference ?? p.id}</code>
              </td>
              <td>{dateTime(p.completedAt)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

export function OrderPage({ id }: { id: string }) {
  const order = useQuery({
    queryKey: ['order', id],
    queryFn: () => api<OrderView>(`/v1/orders/${encodeURIComponent(id)}`),
  });
  const timeline = useQuery({
    queryKey: ['timeline', id],
    queryFn: () => api<{ items: TimelineEntryView[] }>(`/v1/orders/${encodeURIComponent(id)}/timeline`),
  });
  if (order.isPending) return <Loading what="Loading order" />;
  if (order.error || !order.data) {
    return (
      <>
        <p>
          <Link href="/orders">← Orders</Link>
        </p>
        <h1>Order …{id.slice(-8)}</h1>
        <ErrorNote error={order.error} />
      </>
    );
  }
  const o = order.data;
  return (
    <>
      <p>
        <Link href="/orders">← Orders</Link>
      </p>
      <h1>
        Order {o.orderNumber ?? `…${o.id.slice(-8)}`} <StatusBadge status={o.status} />
      </h1>
      <dl className="facts">
        <dt>Amount</dt>
        <dd>{money(o.amount, o.currency)}</dd>
        <dt>Machine</dt>
        <dd>
          {o.machineId ? (
            <Link href={`/machines/${encodeURIComponent(o.machineId)}`}>{o.machineId}</Link>
          ) : (
            '—'
          )}
        </dd>
        <dt>Site</dt>
        <dd>{o.siteId ?? '—'}</dd>
        <dt>Source</dt>
        <dd>
          {o.source}
          {o.provider ? ` · ${o.provider}` : ''}
        </dd>
        <dt>Payment</dt>
        <dd>{o.providerPaymentId ?? '—'}</dd>
        <dt>Paid</dt>
        <dd>{dateTime(o.paidAt)}</dd>
        {o.failureCode && (
          <>
            <dt>Failure</dt>
            <dd>{o.failureCode}</dd>
          </>
        )}
        <dt>Id</dt>
        <dd>
          <code>{o.id}</code>
        </dd>
      </dl>
      {needsReview(o) && (
        <Section title="Needs review">
          <ReviewActions order={o} />
        </Section>
      )}
      <Section title="Payments">
        <Payments orderId={o.id} />
      </Section>
      <Section title="Timeline">
        <ErrorNote error={timeline.error} />
        <ol className="timeline" aria-label="Order timeline, oldest first">
          {timeline.data?.items.map((e, i) => (
            <li key={i} data-event={e.type}>
              <time dateTime={e.at}>{dateTime(e.at)}</time>
              <strong>{eventLabel(e.type)}</strong>
              <span className="muted">by {e.actor}</span>
              {detailText(e.detail) && <span className="small">{detailText(e.detail)}</span>}
            </li>
          ))}
        </ol>
      </Section>
    </>
  );
}
