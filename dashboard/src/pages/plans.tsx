// Water plans: what customers buy over USSD, SMS and mobile money. A subscription gives days of
// water within a daily limit; a credit plan gives litres. Prices are typed in major units and
// sent in minor units (the currency's own decimals).
import { majorToMinor, type Page, type PlanView } from '@kioskhub/protocol';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { useAction } from '../action.ts';
import { Link } from 'wouter';
import { api } from '../api.ts';
import { useAuth } from '../auth.tsx';
import { litres, money } from '../format.ts';
import { Columns, ErrorNote, Listing, Section, SelectField, TableWrap, TextField } from '../ui.tsx';

function NewPlan() {
  const client = useQueryClient();
  const [form, setForm] = useState({
    id: '',
    name: '',
    kind: 'subscription' as 'subscription' | 'credit',
    price: '',
    currency: 'KES',
    days: '30',
    litres: '',
    dailyLitres: '',
  });
  const action = useAction();
  const set = (k: keyof typeof form) => (e: { target: { value: string } }) =>
    setForm((f) => ({ ...f, [k]: e.target.value }));
  const ml = (text: string) => Math.round(Number(text.replace(',', '.')) * 1000);

  return (
    <form
      className="inline-form"
      aria-label="Create a plan"
      onSubmit={action.run(async () => {
        const priceMinor = majorToMinor(Number(form.price.replace(',', '.')), form.currency.toUpperCase());
        if (priceMinor === undefined) throw new Error(`The price does not fit ${form.currency}’s decimals`);
        await api('/v1/water/plans', {
          method: 'POST',
          body: {
            id: form.id.trim(),
            name: form.name.trim(),
            kind: form.kind,
            priceMinor,
            currency: form.currency.toUpperCase(),
            ...(form.kind === 'subscription' ? { days: Number(form.days) } : { creditMl: ml(form.litres) }),
            ...(form.kind === 'subscription' && form.dailyLitres.trim()
              ? { dailyLimitMl: ml(form.dailyLitres) }
              : {}),
          },
        });
        setForm((f) => ({ ...f, id: '', name: '', price: '', litres: '', dailyLitres: '' }));
        await client.invalidateQueries({ queryKey: ['plans'] });
      })}
    >
      <TextField label="Id (what customers type: BUY month)" required value={form.id} onChange={set('id')} />
      <TextField label="Name" required value={form.name} onChange={set('name')} />
      <SelectField
        label="Kind"
        value={form.kind}
        onChange={set('kind')}
        options={[
          { value: 'subscription', label: 'Subscription (days)' },
          { value: 'credit', label: 'Credit (litres)' },
        ]}
      />
      <TextField label="Price" inputMode="decimal" required value={form.price} onChange={set('price')} />
      <TextField label="Currency" required maxLength={3} value={form.currency} onChange={set('currency')} />
      {form.kind === 'subscription' ? (
        <>
          <TextField label="Days" type="number" min={1} required value={form.days} onChange={set('days')} />
          <TextField
            label="Litres a day (optional)"
            inputMode="decimal"
            value={form.dailyLitres}
            onChange={set('dailyLitres')}
          />
        </>
      ) : (
        <TextField label="Litres" inputMode="decimal" required value={form.litres} onChange={set('litres')} />
      )}
      <button type="submit" className="primary" disabled={action.busy}>
        Create plan
      </button>
      <ErrorNote error={action.error} />
    </form>
  );
}

/** Takes a plan off sale (USSD and SMS stop offering it) or puts it back; a plan is never deleted. */
function SaleToggle({ plan }: { plan: PlanView }) {
  const client = useQueryClient();
  const action = useAction();
  return (
    <>
      <button
        type="button"
        disabled={action.busy}
        aria-label={`${plan.active ? 'Take off sale' : 'Put on sale'}: ${plan.id}`}
        onClick={() =>
          void action.run(async () => {
            await api(`/v1/water/plans/${encodeURIComponent(plan.id)}`, {
              method: 'PATCH',
              body: { active: !plan.active },
            });
            await client.invalidateQueries({ queryKey: ['plans'] });
          })()
        }
      >
        {plan.active ? 'Take off sale' : 'Put on sale'}
      </button>
      <ErrorNote error={action.error} />
    </>
  );
}

export function PlansPage() {
  const { can } = useAuth();
  const plans = useQuery({ queryKey: ['plans'], queryFn: () => api<Page<PlanView>>('/v1/water/plans') });
  const items = plans.data?.items ?? [];
  return (
    <>
      <p>
        <Link href="/customers">← Customers</Link>
      </p>
      <h1>Water plans</h1>
      <Listing
        query={plans}
        count={items.length}
        loading="Loading plans"
        empty="No plans yet: customers cannot buy water until there is one."
      >
        {() => (
          <TableWrap label="Plans, cheapest first">
            <Columns
              names={[
                'Id',
                'Name',
                'Gives',
                { name: 'Price', num: true },
                'Sale',
                ...(can('manageCustomers') ? [{ name: 'Actions', srOnly: true }] : []),
              ]}
            />
            <tbody data-testid="plan-rows">
              {items.map((p) => (
                <tr key={p.id}>
                  <th scope="row">{p.id}</th>
                  <td>{p.name}</td>
                  <td>
                    {p.kind === 'subscription'
                      ? `${p.days ?? 0} days${p.dailyLimitMl !== null ? `, ${litres(p.dailyLimitMl)} a day` : ''}`
                      : litres(p.creditMl ?? 0)}
                  </td>
                  <td className="num">{money(p.priceMinor, p.currency)}</td>
                  <td>{p.active ? 'On sale' : 'Off sale'}</td>
                  {can('manageCustomers') && (
                    <td>
                      <SaleToggle plan={p} />
                    </td>
                  )}
                </tr>
              ))}
            </tbody>
          </TableWrap>
        )}
      </Listing>
      {can('manageCustomers') && (
        <Section title="Create a plan">
          <NewPlan />
        </Section>
      )}
    </>
  );
}
