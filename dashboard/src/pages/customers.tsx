// Water customers: one search box (a phone number in any form, an account id or part of a
// name), 25 a page with next and previous, and registering a new customer.
import type { CustomerView, Page } from '@kioskhub/protocol';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { useAction } from '../action.ts';
import { Link, useLocation } from 'wouter';
import { api, qs } from '../api.ts';
import { useAuth } from '../auth.tsx';
import { useFilters } from '../data.ts';
import { dateTime, litres } from '../format.ts';
import { Columns, ErrorNote, Listing, TableWrap, TextField } from '../ui.tsx';

const PAGE_SIZE = 25;

/** Where a customer stands, in a word staff can act on. */
export function customerStatus(c: CustomerView): { label: string; tone: string } {
  if (!c.active) return { label: 'Suspended', tone: 'bad' };
  if (c.pinLocked) return { label: 'PIN locked', tone: 'warn' };
  if (!c.registered) return { label: 'No PIN', tone: 'muted' };
  return { label: 'Active', tone: 'ok' };
}

export function subscriptionText(c: CustomerView, now = Date.now()): string {
  if (!c.subscription) return '—';
  const expired = Date.parse(c.subscription.expiresAt) <= now;
  return `${expired ? 'expired' : 'until'} ${dateTime(c.subscription.expiresAt)}`;
}

function NewCustomer({ onDone }: { onDone(): void }) {
  const [, navigate] = useLocation();
  const client = useQueryClient();
  const [phone, setPhone] = useState('');
  const [fullName, setFullName] = useState('');
  const action = useAction();
  return (
    <form
      className="inline-form card"
      aria-label="Register a customer"
      onSubmit={action.run(async () => {
        const created = await api<CustomerView>('/v1/customers', {
          method: 'POST',
          body: { phone, ...(fullName.trim() ? { fullName: fullName.trim() } : {}) },
        });
        await client.invalidateQueries({ queryKey: ['customers'] });
        onDone();
        navigate(`/customers/${encodeURIComponent(created.id)}`);
      })}
    >
      <h3>Register a customer</h3>
      <TextField label="Phone" required value={phone} onChange={(e) => setPhone(e.target.value)} />
      <TextField
        label="Full name (optional)"
        value={fullName}
        onChange={(e) => setFullName(e.target.value)}
      />
      <button type="submit" className="primary" disabled={action.busy}>
        Register
      </button>
      <button type="button" className="secondary" onClick={onDone}>
        Cancel
      </button>
      <p className="muted small">The customer sets a PIN over USSD, or staff send one with “Reset PIN”.</p>
      <ErrorNote error={action.error} />
    </form>
  );
}

export function CustomersPage() {
  const { can } = useAuth();
  const [filters, setFilters] = useFilters();
  const query = filters.get('q') ?? '';
  const [draft, setDraft] = useState(query);
  // Cursors of the pages before this one: "previous" pops one.
  const [cursors, setCursors] = useState<string[]>([]);
  const cursor = cursors.at(-1);
  const [adding, setAdding] = useState(false);
  const list = useQuery({
    queryKey: ['customers', query, cursor],
    queryFn: () => api<Page<CustomerView>>(`/v1/customers${qs({ query, cursor, limit: PAGE_SIZE })}`),
    placeholderData: (previous) => previous,
  });
  const items = list.data?.items ?? [];
  const page = cursors.length + 1;

  return (
    <>
      <div className="page-head spaced">
        <h1>Customers</h1>
        <Link href="/plans">Plans</Link>
        {can('manageCustomers') && !adding && (
          <button type="button" className="primary" onClick={() => setAdding(true)}>
            Register a customer
          </button>
        )}
      </div>
      {adding && <NewCustomer onDone={() => setAdding(false)} />}
      <form
        className="filters"
        role="search"
        aria-label="Search customers"
        onSubmit={(e) => {
          e.preventDefault();
          setCursors([]);
          setFilters({ q: draft.trim() });
        }}
      >
        <TextField
          label="Phone, account id or name"
          type="search"
          name="query"
          value={draft}
          placeholder="0712 345 678, TSF…, Amina"
          onChange={(e) => setDraft(e.target.value)}
        />
        <button type="submit" className="primary">
          Search
        </button>
        {query && (
          <button
            type="button"
            className="secondary"
            onClick={() => {
              setDraft('');
              setCursors([]);
              setFilters({ q: undefined });
            }}
          >
            Clear
          </button>
        )}
      </form>
      <Listing
        query={list}
        count={items.length}
        loading="Loading customers"
        empty={query ? `No customer matches “${query}”.` : 'No customers yet.'}
      >
        {() => (
          <TableWrap label="Customers, newest first">
            <Columns
              names={[
                'Account',
                'Name',
                'Phone',
                'Status',
                { name: 'Subscription', hideSm: true },
                { name: 'Credit', num: true },
                { name: 'Today', num: true, hideSm: true },
              ]}
            />
            <tbody data-testid="customer-rows">
              {items.map((c) => {
                const status = customerStatus(c);
                return (
                  <tr key={c.id} data-customer-id={c.id}>
                    <th scope="row">
                      <Link href={`/customers/${encodeURIComponent(c.id)}`}>{c.accountId}</Link>
                    </th>
                    <td>{c.fullName ?? <span className="muted">—</span>}</td>
                    <td className="nowrap">{c.phone}</td>
                    <td>
                      <span className={`badge badge-${status.tone}`}>{status.label}</span>
                    </td>
                    <td className="hide-sm">{subscriptionText(c)}</td>
                    <td className="num">{litres(c.creditsMl)}</td>
                    <td className="num hide-sm">{litres(c.usedTodayMl)}</td>
                  </tr>
                );
              })}
            </tbody>
          </TableWrap>
        )}
      </Listing>
      <nav className="pager" aria-label="Pages of customers">
        <button
          type="button"
          className="secondary"
          disabled={cursors.length === 0 || list.isFetching}
          onClick={() => setCursors((c) => c.slice(0, -1))}
        >
          ← Previous
        </button>
        <span className="muted small" aria-live="polite">
          Page {page}
        </span>
        <button
          type="button"
          className="secondary"
          disabled={!list.data?.nextCursor || list.isFetching}
          onClick={() => {
            const next = list.data?.nextCursor;
            if (next) setCursors((c) => [...c, next]);
          }}
        >
          Next →
        </button>
      </nav>
    </>
  );
}
