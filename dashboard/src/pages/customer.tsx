// One water customer: who they are and where they stand (subscription, credit, today's use, PIN),
// the staff actions (reset PIN, unlock, extend the subscription, daily limit, credit with a
// reason, suspend), and their ledger, payments and dispenses. Actions show only to the roles the
// server allows (admin, customer_service); every change asks for a reason for the audit.
import type {
  CustomerView,
  DispenseView,
  LedgerEntryView,
  Page,
  PaymentView,
  PlanView,
} from '@kioskhub/protocol';
import { useInfiniteQuery, useQuery, useQueryClient } from '@tanstack/react-query';
import { useState, type ReactNode } from 'react';
import { useAction } from '../action.ts';
import { Link } from 'wouter';
import { api, qs } from '../api.ts';
import { useAuth } from '../auth.tsx';
import { dateTime, litres, money } from '../format.ts';
import {
  Columns,
  ConfirmButton,
  ErrorNote,
  Listing,
  Loading,
  LoadMore,
  Section,
  SelectField,
  StatusBadge,
  TableWrap,
  TextField,
} from '../ui.tsx';
import { customerStatus, subscriptionText } from './customers.tsx';

const path = (id: string, rest = '') => `/v1/customers/${encodeURIComponent(id)}${rest}`;

/** A small form for one action: its fields, a required reason, one submit; errors in place. */
function ActionForm({
  title,
  submit,
  onSubmit,
  children,
  reasonRequired,
}: {
  title: string;
  submit: string;
  onSubmit(reason: string): Promise<unknown>;
  children?: ReactNode;
  reasonRequired?: boolean;
}) {
  const [reason, setReason] = useState('');
  const action = useAction();
  const [done, setDone] = useState(false);
  return (
    <form
      className="inline-form action-form"
      aria-label={title}
      onSubmit={action.run(async () => {
        setDone(false);
        await onSubmit(reason.trim());
        setReason('');
        setDone(true);
      })}
    >
      <h3>{title}</h3>
      {children}
      <TextField
        label={reasonRequired ? 'Reason' : 'Reason (optional)'}
        value={reason}
        required={reasonRequired}
        maxLength={500}
        onChange={(e) => setReason(e.target.value)}
      />
      <button type="submit" className="primary" disabled={action.busy}>
        {submit}
      </button>
      {done && !action.error && (
        <span className="ok small" role="status">
          Done
        </span>
      )}
      <ErrorNote error={action.error} />
    </form>
  );
}

function Actions({ customer, refresh }: { customer: CustomerView; refresh(): Promise<unknown> }) {
  const plans = useQuery({ queryKey: ['plans'], queryFn: () => api<Page<PlanView>>('/v1/water/plans') });
  const subscriptions = (plans.data?.items ?? []).filter((p) => p.kind === 'subscription');
  const [planId, setPlanId] = useState('');
  const [expiresAt, setExpiresAt] = useState('');
  const [deltaLitres, setDeltaLitres] = useState('');
  // One id per adjustment being made: a retry or a second click of the same one is not counted
  // twice by the server; a new id once it went through.
  const [adjustmentId, setAdjustmentId] = useState(newAdjustmentId);
  const [limitLitres, setLimitLitres] = useState(
    customer.dailyLimitMl === null ? '' : String(customer.dailyLimitMl / 1000),
  );
  const [newPin, setNewPin] = useState<string | null>(null);
  const post = async (rest: string, body: object) => {
    const result = await api<unknown>(path(customer.id, rest), { method: 'POST', body });
    await refresh();
    return result;
  };
  const withReason = (reason: string) => (reason ? { reason } : {});
  const toMl = (text: string): number => {
    const ml = Math.round(Number(text.replace(',', '.')) * 1000);
    if (!Number.isFinite(ml) || text.trim() === '')
      throw new Error('Enter an amount in litres, e.g. 20 or -5');
    return ml;
  };

  return (
    <Section title="Actions">
      <div className="actions">
        <ConfirmButton
          label="Reset PIN"
          confirmLabel="Send a new PIN"
          withNote
          onConfirm={async (note) => {
            const r = (await post('/pin-reset', withReason(note))) as { sent: boolean; pin?: string };
            setNewPin(r.sent ? null : (r.pin ?? null));
          }}
        />
        {customer.pinLocked && (
          <ConfirmButton
            label="Unlock PIN"
            confirmLabel="Unlock"
            withNote
            onConfirm={(note) => post('/unlock', withReason(note))}
          />
        )}
        <ConfirmButton
          label={customer.active ? 'Suspend' : 'Reactivate'}
          confirmLabel={customer.active ? 'Suspend the account' : 'Reactivate the account'}
          tone={customer.active ? 'danger' : 'primary'}
          withNote
          onConfirm={async (note) => {
            await api(path(customer.id), {
              method: 'PATCH',
              body: { active: !customer.active, ...withReason(note) },
            });
            await refresh();
          }}
        />
      </div>
      {newPin && (
        <p className="card pin-once" role="status">
          No SMS provider is set up, so the new PIN is shown here once:{' '}
          <strong data-testid="new-pin">{newPin}</strong>. Give it to the customer; it cannot be shown again.
        </p>
      )}
      <div className="action-grid">
        <ActionForm
          title="Adjust credit"
          submit="Apply"
          reasonRequired
          onSubmit={(reason) =>
            post('/credits', { deltaMl: toMl(deltaLitres), reason, adjustmentId }).then(() => {
              setDeltaLitres('');
              setAdjustmentId(newAdjustmentId());
            })
          }
        >
          <TextField
            label="Litres (+ adds, − takes)"
            inputMode="decimal"
            required
            value={deltaLitres}
            onChange={(e) => setDeltaLitres(e.target.value)}
          />
        </ActionForm>
        <ActionForm
          title="Extend subscription"
          submit="Extend"
          onSubmit={(reason) =>
            post('/subscription', {
              ...(planId ? { planId } : {}),
              ...(expiresAt ? { expiresAt: endOfLocalDay(expiresAt) } : {}),
              ...withReason(reason),
            })
          }
        >
          <SelectField
            label="By a plan’s days"
            value={planId}
            onChange={(e) => setPlanId(e.target.value)}
            options={[
              { value: '', label: subscriptions.length ? 'Choose a plan' : 'No subscription plans' },
              ...subscriptions.map((p) => ({ value: p.id, label: `${p.name} (${p.days ?? 0} days)` })),
            ]}
          />
          <TextField
            label="Or until (date)"
            type="date"
            value={expiresAt}
            onChange={(e) => setExpiresAt(e.target.value)}
          />
        </ActionForm>
        <ActionForm
          title="Daily limit"
          submit="Set limit"
          onSubmit={async (reason) => {
            await api(path(customer.id), {
              method: 'PATCH',
              body: {
                dailyLimitMl: limitLitres.trim() === '' ? null : toMl(limitLitres),
                ...withReason(reason),
              },
            });
            await refresh();
          }}
        >
          <TextField
            label="Litres a day (empty: none)"
            inputMode="decimal"
            value={limitLitres}
            onChange={(e) => setLimitLitres(e.target.value)}
          />
        </ActionForm>
      </div>
    </Section>
  );
}

/** One of a customer's paged lists (newest first), 50 at a time, with "Load more" below it. */
function useCustomerList<T>(id: string, list: 'ledger' | 'payments' | 'dispenses') {
  const query = useInfiniteQuery({
    queryKey: ['customer', id, list],
    queryFn: ({ pageParam }) => api<Page<T>>(path(id, `/${list}${qs({ limit: 50, cursor: pageParam })}`)),
    initialPageParam: undefined as string | undefined,
    getNextPageParam: (last) => last.nextCursor ?? undefined,
  });
  return { query, items: query.data?.pages.flatMap((p) => p.items) ?? [] };
}

function Ledger({ id }: { id: string }) {
  const { query, items } = useCustomerList<LedgerEntryView>(id, 'ledger');
  return (
    <Listing query={query} count={items.length} loading="Loading ledger" empty="No entries yet.">
      {() => (
        <>
          <TableWrap label="Ledger entries, newest first">
            <Columns names={['Time', { name: 'Amount', num: true }, 'Cause', 'Memo']} />
            <tbody data-testid="ledger-rows">
              {items.map((e) => (
                <tr key={e.id}>
                  <td className="nowrap">{dateTime(e.createdAt)}</td>
                  <td className={`num ${e.amount < 0 ? 'neg' : 'pos'}`}>
                    {e.amount > 0 ? '+' : '−'}
                    {e.unit === 'ml' ? litres(Math.abs(e.amount)) : money(Math.abs(e.amount), e.unit)}
                  </td>
                  <td>{e.cause.type.replaceAll('_', ' ')}</td>
                  <td>{e.memo ?? ''}</td>
                </tr>
              ))}
            </tbody>
          </TableWrap>
          <LoadMore query={query} label="Load older entries" />
        </>
      )}
    </Listing>
  );
}

function Payments({ id }: { id: string }) {
  const { query, items } = useCustomerList<PaymentView>(id, 'payments');
  return (
    <Listing query={query} count={items.length} loading="Loading payments" empty="No payments.">
      {() => (
        <>
          <TableWrap label="Payments, newest first">
            <Columns names={['Time', 'Plan', 'Method', 'Status', { name: 'Amount', num: true }]} />
            <tbody>
              {items.map((p) => (
                <tr key={p.id}>
                  <td className="nowrap">{dateTime(p.createdAt)}</td>
                  <td>{p.planId ?? p.purpose}</td>
                  <td>{p.method}</td>
                  <td>
                    <StatusBadge status={p.status} />
                  </td>
                  <td className="num">{money(p.amountMinor, p.currency)}</td>
                </tr>
              ))}
            </tbody>
          </TableWrap>
          <LoadMore query={query} label="Load older payments" />
        </>
      )}
    </Listing>
  );
}

function Dispenses({ id }: { id: string }) {
  const { query, items } = useCustomerList<DispenseView>(id, 'dispenses');
  return (
    <Listing query={query} count={items.length} loading="Loading dispenses" empty="No water taken yet.">
      {() => (
        <>
          <TableWrap label="Dispenses, newest first">
            <Columns
              names={['Time', 'Kiosk', { name: 'Tap', num: true }, 'Status', { name: 'Water', num: true }]}
            />
            <tbody>
              {items.map((d) => (
                <tr key={d.id}>
                  <td className="nowrap">{dateTime(d.at)}</td>
                  <td>
                    <Link href={`/machines/${encodeURIComponent(d.kioskId)}`}>{d.kioskId}</Link>
                  </td>
                  <td className="num">{d.tap ?? '—'}</td>
                  <td>
                    <StatusBadge status={d.status} />
                    {d.flagged && <span className="badge badge-warn">flagged</span>}
                  </td>
                  <td className="num">{litres(d.dispensedMl ?? d.heldMl)}</td>
                </tr>
              ))}
            </tbody>
          </TableWrap>
          <LoadMore query={query} label="Load older dispenses" />
        </>
      )}
    </Listing>
  );
}

/**
 * The last moment of a date picked in the browser (`2027-01-31`), as UTC ISO text: "until the 31st"
 * is through the end of the 31st where the operator is, not midnight UTC (the evening of the 30th
 * west of Greenwich, a few hours into the 31st east of it).
 */
export function endOfLocalDay(date: string): string {
  const [year, month, day] = date.split('-').map(Number) as [number, number, number];
  return new Date(year, month - 1, day, 23, 59, 59, 999).toISOString();
}

/** 128 random bits in hex (crypto.randomUUID needs https; the dashboard may be served on plain http). */
const newAdjustmentId = (): string =>
  Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, '0')).join('');

export function CustomerPage({ id }: { id: string }) {
  const { can } = useAuth();
  const client = useQueryClient();
  const q = useQuery({ queryKey: ['customer', id], queryFn: () => api<CustomerView>(path(id)) });
  const refresh = () =>
    Promise.all([
      client.invalidateQueries({ queryKey: ['customer', id] }),
      client.invalidateQueries({ queryKey: ['customers'] }),
    ]);
  if (q.error)
    return (
      <>
        <p>
          <Link href="/customers">← Customers</Link>
        </p>
        <ErrorNote error={q.error} />
      </>
    );
  if (q.isPending) return <Loading what="Loading customer" />;
  const c = q.data;
  const status = customerStatus(c);
  return (
    <>
      <p>
        <Link href="/customers">← Customers</Link>
      </p>
      <div className="page-head">
        <h1>
          {c.fullName ?? 'Customer'} <span className="muted">{c.accountId}</span>
        </h1>
        <span className={`badge badge-${status.tone}`} data-testid="customer-status">
          {status.label}
        </span>
      </div>
      <div className="grid2">
        <Section title="Details">
          <dl className="facts" data-testid="customer-facts">
            <dt>Phone</dt>
            <dd>{c.phone}</dd>
            <dt>Account id</dt>
            <dd>{c.accountId}</dd>
            <dt>PIN</dt>
            <dd>{c.registered ? (c.pinLocked ? 'Set, locked after wrong tries' : 'Set') : 'Not set'}</dd>
            <dt>Subscription</dt>
            <dd>
              {c.subscription ? `${c.subscription.planId ?? 'set by staff'}, ${subscriptionText(c)}` : 'None'}
            </dd>
            <dt>Credit</dt>
            <dd data-testid="credit">{litres(c.creditsMl)}</dd>
            <dt>Today</dt>
            <dd>
              {litres(c.usedTodayMl)}
              {c.dailyLimitMl !== null ? ` of ${litres(c.dailyLimitMl)} a day` : ' (no daily limit)'}
            </dd>
            <dt>Sites</dt>
            <dd>{c.siteIds.length ? c.siteIds.join(', ') : 'Every site'}</dd>
            <dt>Since</dt>
            <dd>{dateTime(c.createdAt)}</dd>
          </dl>
        </Section>
        {can('manageCustomers') ? (
          <Actions key={`${c.id}:${c.dailyLimitMl ?? ''}`} customer={c} refresh={refresh} />
        ) : (
          <Section title="Actions">
            <p className="muted">Only admin and customer service staff change customers.</p>
          </Section>
        )}
      </div>
      <Section title="Ledger">
        <Ledger id={c.id} />
      </Section>
      <div className="grid2">
        <Section title="Payments">
          <Payments id={c.id} />
        </Section>
        <Section title="Dispenses">
          <Dispenses id={c.id} />
        </Section>
      </div>
    </>
  );
}
