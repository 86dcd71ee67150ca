// The `Needs review` list: paid orders without a good ending, and the two audited decisions.
import type { OrderView, Page, ReviewOrderView } from '@kioskhub/protocol';
import { useInfiniteQuery, useQueryClient } from '@tanstack/react-query';
import { Link } from 'wouter';
import { api } from '../api.ts';
import { useAuth } from '../auth.tsx';
import { dateTime, money } from '../format.ts';
import { Columns, ConfirmButton, Listing, LoadMore, TableWrap } from '../ui.tsx';

const REASONS: Record<string, string> = {
  NO_RESULT: 'Dispensed without a result (v1)',
  AMOUNT_MISMATCH: 'Amount mismatch',
  DISPENSE_FAILED: 'Failed dispense after payment',
};
export const reasonLabel = (r: string): string => REASONS[r] ?? r;

export const needsReview = (o: Pick<OrderView, 'status' | 'paidAt'>): boolean =>
  o.status === 'NEEDS_REVIEW' || (o.status === 'FAILED' && o.paidAt !== null);

/** "Mark dispensed" (NEEDS_REVIEW only) and "Refund due", as the viewer's role allows. */
export function ReviewActions({ order }: { order: OrderView }) {
  const { can } = useAuth();
  const client = useQueryClient();
  if (!needsReview(order)) return null;
  const decide = async (action: 'mark-dispensed' | 'refund-due', note: string) => {
    const updated = await api<ReviewOrderView>(`/v1/orders/${order.id}/${action}`, {
      method: 'POST',
      body: note ? { note } : {},
    });
    client.setQueryData(['order', order.id], updated);
    await Promise.all([
      client.invalidateQueries({ queryKey: ['review'] }),
      client.invalidateQueries({ queryKey: ['orders'] }),
      client.invalidateQueries({ queryKey: ['timeline', order.id] }),
    ]);
  };
  return (
    <div className="actions">
      {order.status === 'NEEDS_REVIEW' && can('markDispensed') && (
        <ConfirmButton
          label="Mark dispensed"
          confirmLabel="Confirm: it was dispensed"
          withNote
          onConfirm={(note) => decide('mark-dispensed', note)}
        />
      )}
      {can('refundDue') && (
        <ConfirmButton
          label="Refund due"
          confirmLabel="Confirm: refund due"
          tone="danger"
          withNote
          onConfirm={(note) => decide('refund-due', note)}
        />
      )}
      {!can('markDispensed') && !can('refundDue') && (
        <span className="muted small">Your role cannot settle reviews.</span>
      )}
    </div>
  );
}

export function ReviewPage() {
  const list = useInfiniteQuery({
    queryKey: ['review'],
    queryFn: ({ pageParam }) =>
      api<Page<ReviewOrderView>>(
        `/v1/orders/needs-review?limit=50${pageParam ? `&cursor=${pageParam}` : ''}`,
      ),
    initialPageParam: undefined as string | undefined,
    getNextPageParam: (last) => last.nextCursor ?? undefined,
  });
  const orders = list.data?.pages.flatMap((p) => p.items) ?? [];
  return (
    <>
      <h1>Needs review</h1>
      <p className="muted">
        Paid orders that did not end well. Check the machine, then record what happened; every decision is
        audited.
      </p>
      <Listing query={list} count={orders.length} loading="Loading orders" empty="Nothing needs review.">
        {() => (
          <TableWrap label="Orders that need review">
            <Columns names={['Paid', 'Order', 'Machine', { name: 'Amount', num: true }, 'Why', 'Decision']} />
            <tbody>
              {orders.map((o) => (
                <tr key={o.id} data-order-id={o.id}>
                  <td>{dateTime(o.paidAt)}</td>
                  <th scope="row">
                    <Link href={`/orders/${o.id}`}>{o.orderNumber ?? `…${o.id.slice(-8)}`}</Link>
                  </th>
                  <td>{o.machineId ?? '—'}</td>
                  <td className="num">{money(o.amount, o.currency)}</td>
                  <td>{reasonLabel(o.reviewReason)}</td>
                  <td>
                    <ReviewActions order={o} />
                  </td>
                </tr>
              ))}
            </tbody>
          </TableWrap>
        )}
      </Listing>
      <LoadMore query={list} label="Load more" />
    </>
  );
}
