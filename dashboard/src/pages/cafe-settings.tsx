// `/staff/settings`: a cafe's settings (tip presets, tip split, bank account, card, pay-later;
// PATCH /v1/sites/:id), the tips report per day and split, and a printable sheet of the tables'
// QR codes with a rotate button per table (every earlier print of that QR stops working).
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { useEffect, useState } from 'react';
import { api, apiBlob, qs } from '../api.ts';
import { useAuth } from '../auth.tsx';
import { money } from '../format.ts';
import {
  ConfirmButton,
  Empty,
  ErrorNote,
  Loading,
  Section,
  SelectField,
  TableWrap,
  TextField,
} from '../ui.tsx';
import { CafeHeader, useCafeOverview, useCafeSite, type CafeSettings } from './cafe-common.tsx';

function SettingsForm({
  siteId,
  settings,
  tenantQs,
}: {
  siteId: string;
  settings: CafeSettings;
  tenantQs: string;
}) {
  const { can } = useAuth();
  const client = useQueryClient();
  const [presets, setPresets] = useState(settings.tipPresetsPercent.join(', '));
  const [split, setSplit] = useState(settings.tipSplit);
  const [payLater, setPayLater] = useState(settings.payLater);
  const [card, setCard] = useState(settings.cardGateway ?? '');
  const [bank, setBank] = useState({
    name: settings.bankAccount?.name ?? '',
    iban: settings.bankAccount?.iban ?? '',
    bic: settings.bankAccount?.bic ?? '',
  });
  const [error, setError] = useState<unknown>(null);
  const [saved, setSaved] = useState(false);
  const admin = can('manageCatalog');
  return (
    <form
      className="settings-form"
      onSubmit={async (e) => {
        e.preventDefault();
        setError(null);
        setSaved(false);
        const tipPresetsPercent = presets
          .split(/[,\s]+/)
          .filter(Boolean)
          .map((p) => Number(p.replace('%', '')));
        if (tipPresetsPercent.some((p) => !Number.isInteger(p) || p < 0 || p > 100))
          return setError(new Error('Tip presets are whole percents from 0 to 100, separated by commas.'));
        try {
          await api(`/v1/sites/${encodeURIComponent(siteId)}${tenantQs}`, {
            method: 'PATCH',
            body: {
              tipPresetsPercent,
              tipSplit: split,
              payLater,
              cardGateway: card || null,
              bankAccount: bank.iban.trim()
                ? {
                    name: bank.name.trim(),
                    iban: bank.iban.trim(),
                    ...(bank.bic.trim() ? { bic: bank.bic.trim() } : {}),
                  }
                : null,
            },
          });
          setSaved(true);
          await client.invalidateQueries({ queryKey: ['cafe'] });
        } catch (err) {
          setError(err);
        }
      }}
    >
      <fieldset disabled={!admin}>
        <TextField
          label="Tip presets (%)"
          value={presets}
          onChange={(e) => setPresets(e.target.value)}
          placeholder="0, 5, 10, 15"
        />
        <SelectField
          label="Tips go to"
          value={split}
          onChange={(e) => setSplit(e.target.value as CafeSettings['tipSplit'])}
          options={[
            { value: 'pool', label: 'The pool (shared by staff)' },
            { value: 'server', label: 'The table’s server' },
          ]}
        />
        <label className="check">
          <input type="checkbox" checked={payLater} onChange={(e) => setPayLater(e.target.checked)} /> Pay
          later: cash orders go to the kitchen before they are paid
        </label>
        <SelectField
          label="Card payments"
          value={card}
          onChange={(e) => setCard(e.target.value)}
          options={[
            { value: '', label: 'Off' },
            { value: 'stripe', label: 'Stripe Checkout' },
          ]}
        />
        <h3>Bank account for transfers</h3>
        <div className="grid2">
          <TextField
            label="Account holder"
            value={bank.name}
            maxLength={70}
            onChange={(e) => setBank({ ...bank, name: e.target.value })}
          />
          <TextField
            label="IBAN"
            value={bank.iban}
            onChange={(e) => setBank({ ...bank, iban: e.target.value })}
          />
          <TextField
            label="BIC (optional)"
            value={bank.bic}
            onChange={(e) => setBank({ ...bank, bic: e.target.value })}
          />
        </div>
        <p className="muted small">Leave the IBAN empty to stop offering bank transfers.</p>
        <div className="actions">
          <button type="submit" className="primary">
            Save settings
          </button>
          {saved && (
            <span role="status" className="muted">
              Saved.
            </span>
          )}
        </div>
      </fieldset>
      {!admin && <p className="muted small">Only an admin can change these settings.</p>}
      <ErrorNote error={error} />
    </form>
  );
}

interface TipsReport {
  items: {
    day: string;
    siteId: string;
    split: string;
    serverUserId: string | null;
    currency: string;
    tipMinor: number;
    orders: number;
  }[];
  totals: { currency: string; tipMinor: number }[];
  /** The zone of the days: the one sent. */
  timeZone?: string;
}

function Tips({ siteId, tenantQs }: { siteId: string; tenantQs: string }) {
  const { can } = useAuth();
  const [days, setDays] = useState('7');
  // Local days of the browser's zone: the server counts tips per day of the zone it is sent.
  const timeZone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  const to = new Date();
  to.setHours(24, 0, 0, 0);
  const from = new Date(to);
  from.setDate(from.getDate() - Number(days));
  // Back to the first day's midnight: `to` is 01:00 when the next midnight does not exist (Cairo).
  from.setHours(0, 0, 0, 0);
  const tenantId = new URLSearchParams(tenantQs).get('tenantId') ?? undefined;
  const report = useQuery({
    queryKey: ['cafe', 'tips', siteId, days, tenantId],
    queryFn: () =>
      api<TipsReport>(
        `/v1/cafe/tips${qs({ siteId, from: from.toISOString(), to: to.toISOString(), tenantId, timeZone })}`,
      ),
    enabled: can('refundDue'),
  });
  if (!can('refundDue')) return <Empty>The tips report is for admins and customer service.</Empty>;
  return (
    <>
      <SelectField
        label="Period"
        value={days}
        onChange={(e) => setDays(e.target.value)}
        options={[
          { value: '1', label: 'Today' },
          { value: '7', label: 'Last 7 days' },
          { value: '31', label: 'Last 31 days' },
        ]}
      />
      {report.isPending ? (
        <Loading />
      ) : report.error ? (
        <ErrorNote error={report.error} />
      ) : report.data.items.length === 0 ? (
        <Empty>No tips in this period.</Empty>
      ) : (
        <TableWrap label="Tips per day and split">
          <thead>
            <tr>
              <th>Day ({report.data.timeZone ?? 'UTC'})</th>
              <th>Split</th>
              <th className="num">Orders</th>
              <th className="num">Tips</th>
            </tr>
          </thead>
          <tbody>
            {report.data.items.map((r) => (
              <tr key={`${r.day}-${r.split}-${r.serverUserId ?? ''}-${r.currency}`}>
                <td>{r.day}</td>
                <td>{r.split === 'pool' ? 'Pool' : `Server ${r.serverUserId ?? '(none assigned)'}`}</td>
                <td className="num">{r.orders}</td>
                <td className="num">{money(r.tipMinor, r.currency)}</td>
              </tr>
            ))}
            {report.data.totals.map((t) => (
              <tr key={t.currency}>
                <th colSpan={3}>Total</th>
                <th className="num">{money(t.tipMinor, t.currency)}</th>
              </tr>
            ))}
          </tbody>
        </TableWrap>
      )}
    </>
  );
}

function TableQr({ table, version }: { table: { id: string; name: string }; version: number }) {
  const [src, setSrc] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    let url: string | null = null;
    apiBlob(`/v1/machines/${encodeURIComponent(table.id)}/table-qr`).then(
      ({ blob }) => setSrc((url = URL.createObjectURL(blob))),
      setError,
    );
    return () => {
      if (url) URL.revokeObjectURL(url);
    };
  }, [table.id, version]);
  if (error) return <ErrorNote error={error} />;
  return src ? (
    <img src={src} alt={`QR code of ${table.name}`} width={200} height={200} />
  ) : (
    <Loading what="QR code" />
  );
}

function QrSheet({ siteName, tables }: { siteName: string; tables: { id: string; name: string }[] }) {
  const { can } = useAuth();
  const [versions, setVersions] = useState<Record<string, number>>({});
  return (
    <section className="card qr-sheet" aria-labelledby="qr-title">
      <div className="section-head print-hide">
        <h2 id="qr-title">Table QR codes</h2>
        <button
          type="button"
          className="primary"
          onClick={() => window.print()}
          disabled={tables.length === 0}
        >
          Print QR codes
        </button>
      </div>
      <p className="muted small print-hide">
        Guests scan these to see the menu and order. Rotate a table’s code when a copy was taken: every
        earlier print of it stops working, so print it again.
      </p>
      {tables.length === 0 && <Empty>No tables: add machines of kind “table” to this site.</Empty>}
      <div className="qr-grid">
        {tables.map((t) => (
          <figure key={t.id} data-table-id={t.id}>
            <TableQr table={t} version={versions[t.id] ?? 0} />
            <figcaption>
              <strong>{t.name}</strong>
              <span>{siteName}: scan to see the menu and order</span>
            </figcaption>
            {can('manageMachines') && (
              <div className="print-hide">
                <ConfirmButton
                  label="Rotate"
                  tone="danger"
                  confirmLabel="Yes, new QR code"
                  onConfirm={() =>
                    api(`/v1/machines/${encodeURIComponent(t.id)}/table-qr/rotate`, { method: 'POST' }).then(
                      () => setVersions((v) => ({ ...v, [t.id]: (v[t.id] ?? 0) + 1 })),
                    )
                  }
                />
              </div>
            )}
          </figure>
        ))}
      </div>
    </section>
  );
}

export function CafeSettingsPage() {
  const { site, sites, tenantQs } = useCafeSite();
  const overview = useCafeOverview(site, tenantQs);
  const o = overview.data;
  return (
    <>
      <div className="print-hide">
        <CafeHeader title="Cafe settings" site={site} sites={sites} />
      </div>
      {!site ? (
        <Empty>No sites yet.</Empty>
      ) : overview.isPending ? (
        <Loading />
      ) : !o ? (
        <ErrorNote error={overview.error} />
      ) : (
        <>
          <div className="grid2 print-hide">
            <Section title="Settings">
              <SettingsForm key={site.id} siteId={site.id} settings={o.settings} tenantQs={tenantQs} />
            </Section>
            <Section title="Tips">
              <Tips siteId={site.id} tenantQs={tenantQs} />
            </Section>
          </div>
          <QrSheet siteName={site.name} tables={o.tables} />
        </>
      )}
    </>
  );
}
