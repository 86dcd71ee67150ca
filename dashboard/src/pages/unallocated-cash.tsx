// Unallocated cash on the cash page: money machines took that no order could use. Staff resolve
// each item once: Return (handed back), Apply to order (counts in that order's open cash
// session), Keep, or Void (a device's repeated report of money that is not in the machine; such
// items are marked as a possible repeat); resolved items show what was done, by whom and why.
import type { Page, UnallocatedCashView } from '@kioskhub/protocol';
import { useInfiniteQuery, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { useAction } from '../action.ts';
import { api } from '../api.ts';
import { useAuth } from '../auth.tsx';
import { dateTime, majorAmount, titleCase } from '../format.ts';
import { Columns, Empty, ErrorNote, LoadMore, TableWrap, TextField } from '../ui.tsx';

type Action = 'returned' | 'applied' | 'kept' | 'void';

function Resolution({ u }: { u: UnallocatedCashView }) {
  const what =
    u.status === 'APPLIED' ? `Applied to order ${u.appliedOrderNumber ?? '—'}` : titleCase(u.status);
  return (
    <span className="resolution" data-testid={`resolution-${u.id}`}>
      <strong>{what}</strong> by {u.resolvedBy ?? '—'}, {dateTime(u.resolvedAt)}
      {u.resolutionNote ? `: ${u.resolutionNote}` : ''}
    </span>
  );
}

function ResolveForm({ u }: { u: UnallocatedCashView }) {
  const client = useQueryClient();
  const [note, setNote] = useState('');
  const [orderNumber, setOrderNumber] = useState('');
  const { busy, error, run } = useAction();
  const resolve = (action: Action) =>
    run(async () => {
      if (note.trim() === '') throw new Error('Write a note: what happened to the money?');
      if (action === 'applied' && orderNumber.trim() === '') throw new Error('Which order number?');
      const body = {
        action,
        note: note.trim(),
        ...(action === 'applied' ? { orderNumber: orderNumber.trim() } : {}),
      };
      await api(`/v1/cash/unallocated/${encodeURIComponent(u.id)}/resolve`, { method: 'POST', body });
      await client.invalidateQueries({ queryKey: ['cash'] });
    })();
  return (
    <div className="resolve" role="group" aria-label={`Resolve unallocated cash ${u.id}`}>
      <TextField label="Note" value={note} maxLength={500} onChange={(e) => setNote(e.target.value)} />
      <TextField
        label="Order number (to apply)"
        value={orderNumber}
        maxLength={64}
        onChange={(e) => setOrderNumber(e.target.value)}
      />
      <div className="buttons">
        <button type="button" className="secondary" disabled={busy} onClick={() => void resolve('returned')}>
          Return
        </button>
        <button type="button" className="secondary" disabled={busy} onClick={() => void resolve('applied')}>
          Apply to order
        </button>
        <button type="button" className="secondary" disabled={busy} onClick={() => void resolve('kept')}>
          Keep
        </button>
        <button
          type="button"
          className="secondary"
          disabled={busy}
          title="The report was a repeat: this money is not in the machine"
          onClick={() => void resolve('void')}
        >
          Void
        </button>
      </div>
      <ErrorNote error={error} />
    </div>
  );
}

export function UnallocatedCash() {
  const { can } = useAuth();
  // Newest first, 100 a page; "Load more" follows nextCursor to the older ones.
  const unallocated = useInfiniteQuery({
    queryKey: ['cash', 'unallocated'],
    queryFn: ({ pageParam }) =>
      api<Page<UnallocatedCashView>>(
        `/v1/cash/unallocated?limit=100${pageParam ? `&cursor=${pageParam}` : ''}`,
      ),
    initialPageParam: undefined as string | undefined,
    getNextPageParam: (last) => last.nextCursor ?? undefined,
    refetchInterval: 30_000,
  });
  if (unallocated.error) return <ErrorNote error={unallocated.error} />;
  if (!unallocated.data) return null;
  const items = unallocated.data.pages.flatMap((p) => p.items);
  if (items.length === 0) return <Empty>No unallocated cash.</Empty>;
  const byId = new Map(items.map((u) => [u.id, u]));
  return (
    <>
      <TableWrap label="Unallocated cash">
        <Columns
          names={[
            'Recorded',
            'Order number',
            'Machine',
            { name: 'Amount', num: true },
            'Reason',
            'Resolution',
          ]}
        />
        <tbody>
          {items.map((u) => (
            <tr key={u.id}>
              <td>{dateTime(u.recordedAt)}</td>
              <th scope="row">{u.orderNumber}</th>
              <td>{u.machineId ?? '—'}</td>
              <td className="num">
                {majorAmount(u.amount, u.currency)} {u.currency}
              </td>
              <td>
                {u.reason}
                {u.possibleRepeatOf !== null ? (
                  <div className="muted" data-testid={`repeat-${u.id}`}>
                    Possible repeat of the report at{' '}
                    {dateTime(byId.get(u.possibleRepeatOf)?.recordedAt ?? null)}: count the cash box
                  </div>
                ) : null}
              </td>
              <td>
                {u.status !== 'OPEN' ? (
                  <Resolution u={u} />
                ) : can('resolveCash') ? (
                  <ResolveForm u={u} />
                ) : (
                  'Open'
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </TableWrap>
      <LoadMore query={unallocated} label="Load older unallocated cash" />
    </>
  );
}
