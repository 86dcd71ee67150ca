// Firmware over the air (docs/firmware.md): signed artifacts (list, upload), staged campaigns
// (list, create) and one campaign's waves, counts per device state, devices and actions, live.
import type { CampaignStatus, OtaDeviceState, Page, WaveStatus } from '@kioskhub/protocol';
import { OTA_DEVICE_STATES } from '@kioskhub/protocol';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { Link } from 'wouter';
import { useAction } from '../action.ts';
import { api } from '../api.ts';
import { useAuth } from '../auth.tsx';
import { fetchAllPages } from '../data.ts';
import { ago, dateTime, titleCase } from '../format.ts';
import {
  Columns,
  ConfirmButton,
  Empty,
  ErrorNote,
  Listing,
  Loading,
  Section,
  SelectField,
  StatusBadge,
  TableWrap,
  TextField,
} from '../ui.tsx';

interface Artifact {
  id: string;
  sha256: string;
  size: number;
  product: string;
  version: string;
  hwModels: string[];
  keyId: string;
  createdAt: string;
}
interface Wave {
  percent: number;
  soakMinutes: number;
  approval: 'auto' | 'manual';
  status: WaveStatus;
  soakUntil: string | null;
  devices?: number;
}
interface CampaignSummary {
  id: string;
  name: string | null;
  status: CampaignStatus;
  artifactId: string;
  currentWave: number;
  pauseReason: string | null;
  createdAt: string;
  counts: Partial<Record<OtaDeviceState, number>>;
}
interface DeviceRow {
  deploymentId: string;
  machineId: string;
  wave: number;
  state: OtaDeviceState;
  code: string | null;
  currentVersion: string | null;
  fromVersion: string | null;
  bytes: number | null;
  total: number | null;
  retries: number;
  updatedAt: string;
  /** PENDING behind another campaign's deployment of the same machine. */
  waitingFor?: { campaignId: string; deploymentId: string } | null;
}
interface Campaign extends CampaignSummary {
  artifact: { version: string; sha256: string; product: string } | null;
  target: { machineIds?: string[]; siteIds?: string[]; kinds?: string[]; hwModel: string };
  waves: Wave[];
  maxConcurrent: number;
  failureThresholdPercent: number;
  minFinishedForThreshold: number;
  deviceTimeoutMinutes: number;
  allowDowngrade: boolean;
  devices: DeviceRow[];
}

const size = (n: number) =>
  n >= 1_048_576 ? `${(n / 1_048_576).toFixed(1)} MB` : `${Math.ceil(n / 1024)} KB`;

function UploadForm() {
  const client = useQueryClient();
  const upload = useAction();
  const [done, setDone] = useState<string | null>(null);
  const submit = upload.run(async (formEl) => {
    const data = new FormData(formEl!);
    setDone(null);
    // The manifest and signature files are sent as text: their exact bytes are what is signed.
    const form = new FormData();
    form.append('manifest', await (data.get('manifest') as File).text());
    form.append('signature', (await (data.get('signature') as File).text()).trim());
    form.append('keyId', String(data.get('keyId') ?? ''));
    form.append('image', data.get('image') as File);
    const created = await api<Artifact>('/v1/firmware', { method: 'POST', body: form });
    setDone(`Stored ${created.product} ${created.version}`);
    formEl!.reset();
    await client.invalidateQueries({ queryKey: ['firmware'] });
  });
  return (
    <form className="fw-upload" onSubmit={(e) => void submit(e)} aria-label="Upload firmware">
      <TextField label="Image" name="image" type="file" required />
      <TextField
        label="Manifest (manifest.json)"
        name="manifest"
        type="file"
        accept=".json,application/json"
        required
      />
      <TextField label="Signature (manifest.sig)" name="signature" type="file" required />
      <TextField label="Key id" name="keyId" required maxLength={64} placeholder="k1" />
      <button type="submit" disabled={upload.busy}>
        {upload.busy ? 'Uploading…' : 'Upload'}
      </button>
      {done && (
        <p className="muted" role="status">
          {done}
        </p>
      )}
      <ErrorNote error={upload.error} />
    </form>
  );
}

/** `10:0:auto, 50:60:manual, 100:0:auto` → waves (percent : soak minutes : approval). */
function parseWaves(text: string) {
  return text
    .split(',')
    .map((w) => w.trim())
    .filter(Boolean)
    .map((w) => {
      const [percent = '', soak = '0', approval = 'auto'] = w.split(':').map((x) => x.trim());
      return { percent: Number(percent), soakMinutes: Number(soak), approval };
    });
}
const list = (text: string) =>
  text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);

// A campaign's limits: each field is named after the API field it fills.
const LIMITS = [
  { label: 'Max at once', name: 'maxConcurrent', min: 1, defaultValue: 10 },
  { label: 'Pause at failures %', name: 'failureThresholdPercent', min: 0, max: 100, defaultValue: 20 },
  { label: '…once finished', name: 'minFinishedForThreshold', min: 1, defaultValue: 5 },
  { label: 'Device timeout (min)', name: 'deviceTimeoutMinutes', min: 1, defaultValue: 60 },
];

function CampaignForm({ artifacts }: { artifacts: Artifact[] }) {
  const client = useQueryClient();
  const create = useAction();
  const [artifactId, setArtifactId] = useState('');
  const chosen = artifacts.find((a) => a.id === artifactId) ?? artifacts[0];
  const submit = create.run(async (formEl) => {
    const d = new FormData(formEl!);
    const text = (k: string) => String(d.get(k) ?? '');
    const target: Record<string, unknown> = { hwModel: text('hwModel') };
    for (const k of ['machineIds', 'siteIds', 'kinds']) if (list(text(k)).length) target[k] = list(text(k));
    const c = await api<Campaign>('/v1/firmware/campaigns', {
      method: 'POST',
      body: {
        artifactId: chosen?.id,
        ...(text('name') ? { name: text('name') } : {}),
        target,
        waves: parseWaves(text('waves')),
        ...Object.fromEntries(LIMITS.map((f) => [f.name, Number(text(f.name))])),
        ...(d.get('allowDowngrade') ? { allowDowngrade: true } : {}),
      },
    });
    await client.invalidateQueries({ queryKey: ['firmware'] });
    window.history.pushState(null, '', `/firmware/campaigns/${c.id}`);
    window.dispatchEvent(new PopStateEvent('popstate'));
  });
  if (!chosen) return <Empty>Upload a signed image first.</Empty>;
  return (
    <form className="fw-campaign-form" onSubmit={(e) => void submit(e)} aria-label="New campaign">
      <SelectField
        label="Firmware"
        value={chosen.id}
        onChange={(e) => setArtifactId(e.target.value)}
        options={artifacts.map((a) => ({ value: a.id, label: `${a.product} ${a.version}` }))}
      />
      <SelectField
        label="Hardware model"
        name="hwModel"
        key={chosen.id}
        options={chosen.hwModels.map((h) => ({ value: h, label: h }))}
      />
      <TextField label="Name" name="name" maxLength={200} placeholder="optional" />
      <TextField label="Machines (ids, comma-separated)" name="machineIds" placeholder="M01, M02" />
      <TextField label="Sites" name="siteIds" placeholder="default" />
      <TextField label="Kinds" name="kinds" placeholder="kiosk, water" />
      <TextField
        label="Waves (percent:soak min:approval)"
        name="waves"
        required
        defaultValue="10:30:auto, 50:60:manual, 100:0:auto"
      />
      {LIMITS.map((f) => (
        <TextField key={f.name} type="number" required {...f} />
      ))}
      <label className="check">
        <input type="checkbox" name="allowDowngrade" /> Allow downgrade (rollback)
      </label>
      <button type="submit">Create campaign</button>
      <ErrorNote error={create.error} />
    </form>
  );
}

function Counts({ counts }: { counts: Partial<Record<string, number>> }) {
  const present = OTA_DEVICE_STATES.filter((s) => (counts[s] ?? 0) > 0);
  if (present.length === 0) return <span className="muted">no devices</span>;
  return (
    <span className="fw-counts">
      {present.map((s) => (
        <span key={s} className="fw-count" data-state={s}>
          <StatusBadge status={s} /> {counts[s]}
        </span>
      ))}
    </span>
  );
}

export function FirmwarePage() {
  const { can } = useAuth();
  const artifacts = useQuery({
    queryKey: ['firmware', 'artifacts'],
    // Every image (a campaign names its image by id): follow the pages.
    queryFn: async (): Promise<Page<Artifact>> => ({
      items: await fetchAllPages<Artifact>('/v1/firmware'),
      nextCursor: null,
    }),
  });
  const campaigns = useQuery({
    queryKey: ['firmware', 'campaigns'],
    queryFn: () => api<Page<CampaignSummary>>('/v1/firmware/campaigns?limit=200'),
  });
  const version = (id: string) => artifacts.data?.items.find((a) => a.id === id)?.version ?? '…';
  return (
    <>
      <div className="page-head">
        <h1>Firmware</h1>
      </div>
      <Section title="Campaigns">
        <Listing
          query={campaigns}
          count={campaigns.data?.items.length ?? 0}
          loading="Loading campaigns"
          empty="No campaigns yet."
        >
          {() => (
            <TableWrap label="Firmware campaigns, newest first">
              <Columns names={['Campaign', 'Version', 'Status', 'Wave', 'Devices', 'Created']} />
              <tbody>
                {campaigns.data?.items.map((c) => (
                  <tr key={c.id} data-campaign={c.id}>
                    <td>
                      <Link href={`/firmware/campaigns/${c.id}`}>{c.name ?? `…${c.id.slice(-8)}`}</Link>
                    </td>
                    <td>{version(c.artifactId)}</td>
                    <td>
                      <StatusBadge status={c.status} />
                    </td>
                    <td>{c.currentWave + 1}</td>
                    <td>
                      <Counts counts={c.counts} />
                    </td>
                    <td>{dateTime(c.createdAt)}</td>
                  </tr>
                ))}
              </tbody>
            </TableWrap>
          )}
        </Listing>
      </Section>
      {can('manageFirmware') && (
        <Section title="New campaign">
          <CampaignForm artifacts={artifacts.data?.items ?? []} />
        </Section>
      )}
      <Section title="Signed images">
        <Listing
          query={artifacts}
          count={artifacts.data?.items.length ?? 0}
          loading="Loading images"
          empty="No firmware uploaded."
        >
          {() => (
            <TableWrap label="Firmware images">
              <Columns names={['Product', 'Version', 'Hardware', 'Size', 'sha256', 'Key', 'Uploaded']} />
              <tbody>
                {artifacts.data?.items.map((a) => (
                  <tr key={a.id}>
                    <td>{a.product}</td>
                    <td>{a.version}</td>
                    <td>{a.hwModels.join(', ')}</td>
                    <td>{size(a.size)}</td>
                    <td>
                      <code title={a.sha256}>{a.sha256.slice(0, 12)}…</code>
                    </td>
                    <td>{a.keyId}</td>
                    <td>{dateTime(a.createdAt)}</td>
                  </tr>
                ))}
              </tbody>
            </TableWrap>
          )}
        </Listing>
        {can('manageFirmware') && (
          <>
            <h3 className="fw-subhead">Upload a signed image</h3>
            <p className="muted small">
              Sign offline with <code>npm run firmware:sign</code>; the server checks the signature, the
              sha256 and the size before it keeps anything.
            </p>
            <UploadForm />
          </>
        )}
      </Section>
    </>
  );
}

const ACTIONS: { action: string; label: string; when: (c: Campaign) => boolean; tone?: 'danger' }[] = [
  { action: 'start', label: 'Start', when: (c) => c.status === 'DRAFT' },
  {
    action: 'approve',
    label: 'Approve next wave',
    when: (c) =>
      (c.status === 'RUNNING' || c.status === 'PAUSED') &&
      c.waves[c.currentWave]?.status === 'AWAITING_APPROVAL',
  },
  { action: 'pause', label: 'Pause', when: (c) => c.status === 'RUNNING' },
  { action: 'resume', label: 'Resume', when: (c) => c.status === 'PAUSED' },
  {
    action: 'retry-failed',
    label: 'Retry failed',
    when: (c) =>
      ['RUNNING', 'PAUSED', 'COMPLETED'].includes(c.status) &&
      (c.counts.FAILED ?? 0) + (c.counts.TIMED_OUT ?? 0) + (c.counts.ROLLED_BACK ?? 0) > 0,
  },
  {
    action: 'abort',
    label: 'Abort',
    tone: 'danger',
    when: (c) => ['DRAFT', 'RUNNING', 'PAUSED'].includes(c.status),
  },
];

function progress(d: DeviceRow): string {
  if (d.state === 'DOWNLOADING' && d.total) return `${Math.floor(((d.bytes ?? 0) * 100) / d.total)} %`;
  return '';
}

export function CampaignPage({ id }: { id: string }) {
  const { can } = useAuth();
  const client = useQueryClient();
  const action = useAction();
  const campaign = useQuery({
    queryKey: ['firmware', 'campaign', id],
    queryFn: () => api<Campaign>(`/v1/firmware/campaigns/${id}`),
    refetchInterval: 30_000,
  });
  const act = (name: string) =>
    action.run(async () => {
      try {
        await api(`/v1/firmware/campaigns/${id}/${name}`, { method: 'POST', body: {} });
      } finally {
        await client.invalidateQueries({ queryKey: ['firmware'] });
      }
    })();
  if (campaign.isPending) return <Loading what="Loading the campaign" />;
  const c = campaign.data;
  if (!c) return <ErrorNote error={campaign.error} />;
  return (
    <>
      <p className="crumbs">
        <Link href="/firmware">Firmware</Link> /
      </p>
      <div className="page-head">
        <h1>
          {c.name ?? 'Campaign'} · {c.artifact ? `${c.artifact.product} ${c.artifact.version}` : c.artifactId}
        </h1>
        <StatusBadge status={c.status} />
        {c.pauseReason && <span className="muted small">paused: {titleCase(c.pauseReason)}</span>}
      </div>
      {can('manageFirmware') && (
        <div className="fw-actions" role="group" aria-label="Campaign actions">
          {ACTIONS.filter((a) => a.when(c)).map((a) =>
            a.tone === 'danger' ? (
              <ConfirmButton
                key={a.action}
                label={a.label}
                confirmLabel={`Yes, ${a.label.toLowerCase()}`}
                tone="danger"
                onConfirm={() => act(a.action)}
              />
            ) : (
              <button key={a.action} type="button" onClick={() => void act(a.action)}>
                {a.label}
              </button>
            ),
          )}
        </div>
      )}
      <ErrorNote error={action.error} />
      <Section title="Waves">
        <ol className="fw-waves">
          {c.waves.map((w, i) => (
            <li key={i} className={i === c.currentWave ? 'current' : undefined} data-wave-status={w.status}>
              <strong>Wave {i + 1}</strong> up to {w.percent} % · {w.devices ?? 0} device
              {w.devices === 1 ? '' : 's'} · soak {w.soakMinutes} min ·{' '}
              {w.approval === 'manual' ? 'manual approval' : 'automatic'} <StatusBadge status={w.status} />
              {w.status === 'SOAKING' && w.soakUntil && (
                <span className="muted small"> until {dateTime(w.soakUntil)}</span>
              )}
            </li>
          ))}
        </ol>
        <p className="muted small">
          Target {c.target.hwModel}
          {c.target.machineIds ? ` · machines ${c.target.machineIds.join(', ')}` : ''}
          {c.target.siteIds ? ` · sites ${c.target.siteIds.join(', ')}` : ''}
          {c.target.kinds ? ` · kinds ${c.target.kinds.join(', ')}` : ''} · at most {c.maxConcurrent} at once
          · pauses at {c.failureThresholdPercent} % failed once {c.minFinishedForThreshold} finished · device
          timeout {c.deviceTimeoutMinutes} min{c.allowDowngrade ? ' · downgrade allowed' : ''}
        </p>
      </Section>
      <Section title="Devices">
        <p className="fw-summary" data-testid="fw-counts">
          <Counts counts={c.counts} />
        </p>
        <TableWrap label="Devices of this campaign">
          <Columns names={['Machine', 'Wave', 'State', 'Progress', 'Version', 'Code', 'Updated']} />
          <tbody>
            {c.devices.map((d) => (
              <tr key={d.deploymentId} data-machine={d.machineId} data-state={d.state}>
                <td>
                  <Link href={`/machines/${encodeURIComponent(d.machineId)}`}>{d.machineId}</Link>
                </td>
                <td>{d.wave + 1}</td>
                <td>
                  <StatusBadge status={d.state} />
                </td>
                <td>
                  {progress(d)}
                  {d.waitingFor ? (
                    <span className="muted small" data-testid="fw-waiting-for">
                      waits for campaign{' '}
                      <Link href={`/firmware/campaigns/${d.waitingFor.campaignId}`}>
                        …{d.waitingFor.campaignId.slice(-8)}
                      </Link>
                    </span>
                  ) : null}
                </td>
                <td>
                  {d.currentVersion ?? '—'}
                  {d.fromVersion && d.fromVersion !== d.currentVersion ? (
                    <span className="muted small"> (was {d.fromVersion})</span>
                  ) : null}
                </td>
                <td>
                  {d.code ?? ''}
                  {d.retries > 0 ? <span className="muted small"> · {d.retries} retries</span> : null}
                </td>
                <td title={dateTime(d.updatedAt)}>{ago(d.updatedAt)}</td>
              </tr>
            ))}
          </tbody>
        </TableWrap>
      </Section>
    </>
  );
}
