// `/staff`: a cafe's tables with their open orders, cash to collect (Confirm), bank transfers to
// confirm, refunds owed, and refunds of recent payments (amount, reason, to the original method
// or the guest's wallet). Live events refresh it (live.tsx).
import type { Page, PaymentView } from '@kioskhub/protocol';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { majorToMinor } from '@kioskhub/protocol';
import { useState } from 'react';
import { useAction } from '../action.ts';
import { api } from '../api.ts';
import { useAuth } from '../auth.tsx';
import { ago, minorToInput, money } from '../format.ts';
import {
  ConfirmButton,
  Empty,
  ErrorNote,
  Loading,
  Section,
  SelectField,
  StatusBadge,
  TableWrap,
  TextField,
} from '../ui.tsx';
import {
  CafeHeader,
  itemsText,
  useCafeOverview,
  useCafeSite,
  type CafeOverview,
  type PendingPaymentView,
} from './cafe-common.tsx';

function PendingTable({
  label,
  rows,
  overview,
  confirmLabel,
  verify,
}: {
  label: string;
  rows: PendingPaymentView[];
  overview: CafeOverview;
  confirmLabel: string;
  verify(p: PendingPaymentView): Promise<unknown>;
}) {
  const { can } = useAuth();
  if (rows.length === 0) return <Empty>Nothing waiting.</Empty>;
  const transfers = rows.some((p) => p.method === 'bank_transfer');
  const tableName = (id: string | null) => overview.tables.find((t) => t.id === id)?.name ?? id ?? '—';
  const orderNumber = (id: string | null) =>
    overview.tables.flatMap((t) => t.openOrders).find((o) => o.id === id)?.orderNumber ?? '—';
  return (
    <TableWrap label={label}>
      <thead>
        <tr>
          <th>Table</th>
          <th>Order</th>
          <th className="num">Amount</th>
          {transfers && <th>Reference</th>}
          <th>Since</th>
          <th />
        </tr>
      </thead>
      <tbody>
        {rows.map((p) => (
          <tr key={p.paymentId} data-payment-id={p.paymentId} data-order-id={p.orderId ?? ''}>
            <th>{tableName(p.tableId)}</th>
            <td>#{orderNumber(p.orderId)}</td>
            <td className="num">
              {money(p.amountMinor, p.currency)}
              {p.mismatched && (
                <div className="error small">only {money(p.receivedMinor, p.currency)} arrived</div>
              )}
            </td>
            {transfers && (
              <td>
                <code>{p.reference ?? '—'}</code>
              </td>
            )}
            <td>{ago(p.createdAt)}</td>
            <td>
              {can('serveCafe') ? (
                <ConfirmButton
                  label={confirmLabel}
                  confirmLabel={`Received ${money(p.amountMinor, p.currency)}`}
                  onConfirm={() => verify(p)}
                />
              ) : (
                <span className="muted small">staff confirm</span>
              )}
            </td>
          </tr>
        ))}
      </tbody>
    </TableWrap>
  );
}

function RefundForm({ payment, done }: { payment: PaymentView; done(): void }) {
  const left = payment.receivedMinor - payment.refundedMinor;
  const [amount, setAmount] = useState(minorToInput(left, payment.currency));
  const [reason, setReason] = useState('');
  const [to, setTo] = useState<'original' | 'credit'>('original');
  const [customerId, setCustomerId] = useState(payment.customerId ?? '');
  const action = useAction();
  return (
    <form
      className="inline-form"
      aria-label={`Refund payment ${payment.id}`}
      onSubmit={action.run(async () => {
        const amountMinor = majorToMinor(Number(amount), payment.currency);
        if (amountMinor === undefined || amountMinor <= 0) throw new Error('Enter a valid amount.');
        await api(`/api/payments/${payment.id}/refund`, {
          method: 'POST',
          body: { amountMinor, reason, to, ...(to === 'credit' && customerId ? { customerId } : {}) },
        });
        done();
      })}
    >
      <TextField
        label={`Amount (${payment.currency})`}
        value={amount}
        inputMode="decimal"
        required
        onChange={(e) => setAmount(e.target.value)}
      />
      <TextField
        label="Reason"
        value={reason}
        required
        maxLength={500}
        onChange={(e) => setReason(e.target.value)}
      />
      <SelectField
        label="Refund to"
        value={to}
        onChange={(e) => setTo(e.target.value as 'original' | 'credit')}
        options={[
          {
            value: 'original',
            label: payment.method === 'cash' ? 'Cash back (refund due)' : 'Original payment method',
          },
          { value: 'credit', label: 'Guest’s wallet credit' },
        ]}
      />
      {to === 'credit' && !payment.customerId && (
        <TextField
          label="Customer id (guest not signed in)"
          value={customerId}
          onChange={(e) => setCustomerId(e.target.value)}
        />
      )}
      <button type="submit" className="danger" disabled={action.busy}>
        Refund
      </button>
      <ErrorNote error={action.error} />
    </form>
  );
}

function Refunds({ overview, siteId }: { overview: CafeOverview; siteId: string }) {
  const { can } = useAuth();
  const client = useQueryClient();
  const [open, setOpen] = useState<string | null>(null);
  const payments = useQuery({
    queryKey: ['cafe', 'payments', siteId],
    queryFn: () =>
      api<Page<PaymentView>>(`/v1/payments?purpose=order&siteId=${encodeURIComponent(siteId)}&limit=20`),
  });
  const refresh = () => void client.invalidateQueries({ queryKey: ['cafe'] });
  const paid = (payments.data?.items ?? []).filter((p) =>
    ['SUCCEEDED', 'PARTIALLY_REFUNDED'].includes(p.status),
  );
  return (
    <Section title="Refunds">
      {overview.refundsDue.length > 0 && (
        <>
          <h3>Cash to hand back</h3>
          <ul>
            {overview.refundsDue.map((r) => (
              <li key={r.id} className="actions">
                {money(r.amountMinor, r.currency)} · {r.reason}
                {can('refundDue') && (
                  <ConfirmButton
                    label="Handed back"
                    confirmLabel="Yes, handed back"
                    withNote
                    onConfirm={(note) =>
                      api(`/v1/refunds/${r.id}/complete`, {
                        method: 'POST',
                        body: note ? { note } : {},
                      }).then(refresh)
                    }
                  />
                )}
              </li>
            ))}
          </ul>
        </>
      )}
      <h3>Recent payments</h3>
      {payments.isPending ? (
        <Loading />
      ) : paid.length === 0 ? (
        <Empty>No paid orders yet.</Empty>
      ) : (
        <TableWrap label="Recent payments">
          <thead>
            <tr>
              <th>When</th>
              <th>Method</th>
              <th className="num">Paid</th>
              <th className="num">Refunded</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {paid.map((p) => (
              <tr key={p.id} data-payment-id={p.id}>
                <td>{ago(p.completedAt ?? p.createdAt)}</td>
                <td>{p.method.replace('_', ' ')}</td>
                <td className="num">{money(p.receivedMinor, p.currency)}</td>
                <td className="num">{money(p.refundedMinor, p.currency)}</td>
                <td>
                  {!can('refundDue') ? null : open === p.id ? (
                    <RefundForm payment={p} done={() => (setOpen(null), refresh())} />
                  ) : (
                    <button type="button" className="secondary" onClick={() => setOpen(p.id)}>
                      Refund…
                    </button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </TableWrap>
      )}
      {overview.recentRefunds.length > 0 && (
        <>
          <h3>Refunds made</h3>
          <ul>
            {overview.recentRefunds.map((r) => (
              <li key={r.id}>
                {money(r.amountMinor, r.currency)} to {r.destination} · {r.reason} ·{' '}
                <StatusBadge status={r.status} /> · {ago(r.createdAt)}
              </li>
            ))}
          </ul>
        </>
      )}
    </Section>
  );
}

export function StaffPage() {
  const { site, sites, tenantQs } = useCafeSite();
  const overview = useCafeOverview(site, tenantQs);
  const client = useQueryClient();
  const o = overview.data;
  const verify = (p: PendingPaymentView) =>
    api(`/api/payments/${p.paymentId}/verify`, { method: 'POST', body: {} }).then(() =>
      client.invalidateQueries({ queryKey: ['cafe'] }),
    );
  return (
    <>
      <CafeHeader title="Cafe" site={site} sites={sites} />
      {!site ? (
        <Empty>No sites yet: create one under Sites &amp; products, then add machines of kind “table”.</Empty>
      ) : overview.isPending ? (
        <Loading />
      ) : !o ? (
        <ErrorNote error={overview.error} />
      ) : (
        <>
          <div className="grid2">
            <Section title={`Cash to collect (${o.cashToCollect.length})`}>
              <PendingTable
                label="Cash to collect"
                rows={o.cashToCollect}
                overview={o}
                confirmLabel="Confirm cash"
                verify={verify}
              />
            </Section>
            <Section title={`Bank transfers to confirm (${o.transfersToConfirm.length})`}>
              <PendingTable
                label="Bank transfers to confirm"
                rows={o.transfersToConfirm}
                overview={o}
                confirmLabel="Confirm transfer"
                verify={verify}
              />
            </Section>
          </div>
          <Section title={`Tables (${o.tables.length})`}>
            {o.tables.length === 0 && <Empty>No tables: add machines of kind “table” to this site.</Empty>}
            <div className="tables-grid">
              {o.tables.map((t) => (
                <article key={t.id} className="table-card" aria-label={t.name} data-table-id={t.id}>
                  <h3>{t.name}</h3>
                  {t.openOrders.length === 0 ? (
                    <p className="muted small">No open orders</p>
                  ) : (
                    <ul>
                      {t.openOrders.map((order) => (
                        <li key={order.id} data-order-id={order.id}>
                          <strong>#{order.orderNumber}</strong> <StatusBadge status={order.status} />{' '}
                          {order.paid ? (
                            <span className="muted small">paid</span>
                          ) : (
                            <span className="error small">unpaid</span>
                          )}
                          <div className="small">{itemsText(order.items)}</div>
                          <div className="small muted">
                            {money(order.totalMinor, order.currency)}
                            {order.tipMinor > 0
                              ? ` (tip ${money(order.tipMinor, order.currency)})`
                              : ''} · {ago(order.createdAt)}
                          </div>
                        </li>
                      ))}
                    </ul>
                  )}
                </article>
              ))}
            </div>
          </Section>
          <Refunds overview={o} siteId={site.id} />
        </>
      )}
    </>
  );
}
