// One machine: status, recent orders and commands, its payment QR (vending machines) or what
// its kind does, key rotation, QR provisioning and name/site editing (admins).
import type { CommandView, MachineView, OrderView, Page } from '@kioskhub/protocol';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { Link } from 'wouter';
import { api, apiBlob } from '../api.ts';
import { useAuth } from '../auth.tsx';
import { useNow, useSites } from '../data.ts';
import { ago, dateTime, money, titleCase } from '../format.ts';
import {
  Columns,
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
import { OrdersTable } from './orders.tsx';
import { connectionText, dispenses, KindPanel, takesQrPayments } from './machine-kind.tsx';

export function MachinePage({ id }: { id: string }) {
  const { can } = useAuth();
  const now = useNow();
  const machine = useQuery({
    queryKey: ['machine', id],
    queryFn: () => api<MachineView>(`/v1/machines/${encodeURIComponent(id)}`),
  });
  const orders = useQuery({
    queryKey: ['orders', 'machine', id],
    queryFn: () => api<Page<OrderView>>(`/v1/orders?machineId=${encodeURIComponent(id)}&limit=20`),
  });
  const commands = useQuery({
    queryKey: ['machine-commands', id],
    queryFn: () => api<{ items: CommandView[] }>(`/v1/machines/${encodeURIComponent(id)}/commands?limit=20`),
  });
  const sites = useSites();

  if (machine.isPending) return <Loading what="Loading machine" />;
  if (machine.error || !machine.data) {
    return (
      <>
        <p>
          <Link href="/">← Fleet</Link>
        </p>
        <h1>Machine {id}</h1>
        <ErrorNote error={machine.error} />
      </>
    );
  }
  const m = machine.data;
  return (
    <>
      <p>
        <Link href="/">← Fleet</Link>
      </p>
      <h1>
        {m.name === m.id ? m.id : `${m.name} (${m.id})`} <StatusBadge status={m.status} />
      </h1>
      <dl className="facts">
        <dt>Site</dt>
        <dd>
          {sites.data?.items.find((s) => s.id === m.siteId && s.tenantId === m.tenantId)?.name ?? m.siteId}
        </dd>
        <dt>Kind</dt>
        <dd>{titleCase(m.kind)}</dd>
        <dt>Last seen</dt>
        <dd title={m.lastSeenAt ?? undefined}>{ago(m.lastSeenAt, now)}</dd>
        <dt>Connection</dt>
        <dd>{connectionText(m)}</dd>
        <dt>Currency</dt>
        <dd>{m.currency}</dd>
        <dt>Firmware</dt>
        <dd>{m.firmware ?? '—'}</dd>
        <dt>Tenant</dt>
        <dd>{m.tenantId}</dd>
      </dl>
      <div className="grid2">
        {takesQrPayments(m.kind) || m.paymentProfile ? (
          <PaymentQr machine={m} canManage={can('manageMachines') && takesQrPayments(m.kind)} />
        ) : (
          <KindPanel machine={m} />
        )}
        {can('manageMachines') && <MachineAdmin machine={m} />}
      </div>
      <Section title="Recent orders">
        <ErrorNote error={orders.error} />
        {orders.data &&
          (orders.data.items.length === 0 ? (
            <Empty>No orders yet.</Empty>
          ) : (
            <OrdersTable orders={orders.data.items} label={`Recent orders of ${m.id}`} />
          ))}
      </Section>
      {dispenses(m.kind) && (
        <Section title="Recent commands">
          <ErrorNote error={commands.error} />
          {commands.data &&
            (commands.data.items.length === 0 ? (
              <Empty>No commands yet.</Empty>
            ) : (
              <TableWrap label={`Recent commands of ${m.id}`}>
                <Columns
                  names={['Queued', 'Order', 'Status', 'Result', { name: 'Attempts', num: true }, 'Finished']}
                />
                <tbody>
                  {commands.data.items.map((c) => (
                    <tr key={c.id}>
                      <td>{dateTime(c.queuedAt)}</td>
                      <td>
                        <Link href={`/orders/${c.orderId}`}>{c.orderId.slice(-8)}</Link>
                      </td>
                      <td>{titleCase(c.status)}</td>
                      <td>
                        {c.result
                          ? `${titleCase(c.result)}${c.failureCode ? ` (${c.failureCode})` : ''}`
                          : '—'}
                      </td>
                      <td className="num">{c.attempts}</td>
                      <td>{dateTime(c.finishedAt)}</td>
                    </tr>
                  ))}
                </tbody>
              </TableWrap>
            ))}
        </Section>
      )}
    </>
  );
}

function PaymentQr({ machine, canManage }: { machine: MachineView; canManage: boolean }) {
  const profile = machine.paymentProfile;
  const client = useQueryClient();
  const qr = useQuery({
    queryKey: ['machine-qr', machine.id, profile?.qrCodeId],
    enabled: profile !== undefined,
    queryFn: async () => {
      const { blob, headers } = await apiBlob(`/v1/machines/${encodeURIComponent(machine.id)}/qr.png`);
      // A data: URL lives as long as the cache entry; nothing to revoke.
      const url = await new Promise<string>((resolve, reject) => {
        const reader = new FileReader();
        reader.onload = () => resolve(String(reader.result));
        reader.onerror = () => reject(reader.error ?? new Error('could not read the image'));
        reader.readAsDataURL(blob);
      });
      return { url, source: headers.get('x-kioskhub-qr-source') ?? 'content' };
    },
    staleTime: Infinity,
  });
  const [amount, setAmount] = useState(
    profile?.fixedAmountPaise ? String(profile.fixedAmountPaise / 100) : '20',
  );
  const [force, setForce] = useState(false);
  const [result, setResult] = useState<string | null>(null);

  return (
    <Section title="Payment QR">
      {profile ? (
        <>
          <p>
            {profile.provider} · QR <code>{profile.qrCodeId}</code> ·{' '}
            {profile.fixedAmountPaise === null
              ? 'any amount'
              : money(profile.fixedAmountPaise, machine.currency)}
          </p>
          <ErrorNote error={qr.error} />
          {qr.data && (
            <>
              <img
                className="qr"
                src={qr.data.url}
                width={220}
                height={220}
                alt={`Payment QR code of machine ${machine.id}`}
              />
              {qr.data.source !== 'content' && (
                <p className="muted small">
                  This image encodes the provider’s link ({qr.data.source}), not a UPI payment string: print
                  the provider’s own image for stickers.
                </p>
              )}
              <p>
                <a href={qr.data.url} download={`${machine.id}.png`}>
                  Download PNG
                </a>
              </p>
            </>
          )}
        </>
      ) : (
        <Empty>No payment QR yet.</Empty>
      )}
      {canManage && (
        <form
          className="inline-form"
          aria-label="Provision UPI QR"
          onSubmit={async (e) => {
            e.preventDefault();
            setResult(null);
            try {
              const r = await api<{
                status: string;
                qrCodeId: string | null;
                notes: string[];
                error: string | null;
              }>(`/v1/machines/${encodeURIComponent(machine.id)}/provision-qr`, {
                method: 'POST',
                body: { amountPaise: Math.round(Number(amount) * 100), force },
              });
              setResult(
                r.error
                  ? `Failed: ${r.error}`
                  : `${titleCase(r.status)}${r.qrCodeId ? `: ${r.qrCodeId}` : ''}${r.notes.length ? ` (${r.notes.join('; ')})` : ''}`,
              );
              await client.invalidateQueries({ queryKey: ['machine', machine.id] });
            } catch (err) {
              setResult(err instanceof Error ? err.message : String(err));
            }
          }}
        >
          <TextField
            label="Amount per vend (₹)"
            type="number"
            min="0.01"
            step="0.01"
            required
            value={amount}
            onChange={(e) => setAmount(e.target.value)}
          />
          <label className="check">
            <input type="checkbox" checked={force} onChange={(e) => setForce(e.target.checked)} /> Replace the
            existing QR
          </label>
          <button type="submit" className="secondary">
            Provision UPI QR
          </button>
          {result && <p role="status">{result}</p>}
        </form>
      )}
    </Section>
  );
}

function MachineAdmin({ machine }: { machine: MachineView }) {
  const client = useQueryClient();
  const sites = useSites();
  const [name, setName] = useState(machine.name);
  const [siteId, setSiteId] = useState(machine.siteId);
  const [saved, setSaved] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [key, setKey] = useState<string | null>(null);
  const [copied, setCopied] = useState(false);
  const siteOptions = (sites.data?.items ?? [])
    .filter((s) => s.tenantId === machine.tenantId)
    .map((s) => ({ value: s.id, label: s.name }));

  return (
    <Section title="Manage">
      <form
        className="inline-form"
        aria-label="Edit machine"
        onSubmit={async (e) => {
          e.preventDefault();
          setError(null);
          setSaved(null);
          try {
            const updated = await api<MachineView>(`/v1/machines/${encodeURIComponent(machine.id)}`, {
              method: 'PATCH',
              body: { name, siteId },
            });
            client.setQueryData(['machine', machine.id], updated);
            void client.invalidateQueries({ queryKey: ['fleet'] });
            setSaved('Saved.');
          } catch (err) {
            setError(err);
          }
        }}
      >
        <TextField
          label="Name"
          required
          maxLength={200}
          value={name}
          onChange={(e) => setName(e.target.value)}
        />
        <SelectField
          label="Site"
          value={siteId}
          onChange={(e) => setSiteId(e.target.value)}
          options={siteOptions.length ? siteOptions : [{ value: siteId, label: siteId }]}
        />
        <button type="submit" className="primary">
          Save
        </button>
        {saved && <p role="status">{saved}</p>}
        <ErrorNote error={error} />
      </form>
      <h3>Machine key</h3>
      <p className="muted small">
        Rotating makes a new key; the old one stops working at once. The new key is shown here once.
      </p>
      <ConfirmButton
        label="Rotate key"
        confirmLabel="Yes, rotate the key"
        tone="danger"
        onConfirm={async () => {
          const r = await api<{ key: string }>(`/v1/machines/${encodeURIComponent(machine.id)}/rotate-key`, {
            method: 'POST',
            body: {},
          });
          setKey(r.key);
          setCopied(false);
        }}
      />
      {key && (
        <div className="key-box" role="status">
          <TextField label="New key (shown once)" readOnly value={key} onFocus={(e) => e.target.select()} />
          <button
            type="button"
            className="secondary"
            onClick={async () => {
              await navigator.clipboard.writeText(key);
              setCopied(true);
            }}
          >
            {copied ? 'Copied' : 'Copy key'}
          </button>
        </div>
      )}
    </Section>
  );
}
