// Small shared pieces: status badges, labelled fields, error and empty states, table headings,
// a "load more" button, a confirm button.
import { useId, useState, type ReactNode, type SelectHTMLAttributes, type InputHTMLAttributes } from 'react';
import { useAction } from './action.ts';
import { ApiError } from './api.ts';
import { isoToLocalInput, localInputToIso, titleCase } from './format.ts';

const TONES: Record<string, string> = {
  IDLE: 'ok',
  ONLINE: 'ok',
  VERIFIED: 'ok',
  DENIED: 'bad',
  COMPLETED: 'ok',
  SUCCEEDED: 'ok',
  PRINTED: 'ok',
  PAID: 'info',
  DISPATCHED: 'info',
  BUSY: 'info',
  LEASED: 'info',
  PENDING: 'info',
  CREATED: 'muted',
  OFFLINE: 'muted',
  CANCELLED: 'muted',
  REFUNDED: 'warn',
  NEEDS_REVIEW: 'warn',
  ERROR: 'bad',
  FAILED: 'bad',
  // Firmware campaigns and devices (docs/firmware.md).
  RUNNING: 'info',
  SOAKING: 'info',
  NOTIFIED: 'info',
  DOWNLOADING: 'info',
  DOWNLOADED: 'info',
  INSTALLING: 'info',
  REBOOTING: 'info',
  PAUSED: 'warn',
  AWAITING_APPROVAL: 'warn',
  DRAFT: 'muted',
  SKIPPED: 'muted',
  ABORTED: 'bad',
  TIMED_OUT: 'bad',
  ROLLED_BACK: 'bad',
};

export function StatusBadge({ status }: { status: string }) {
  return (
    <span className={`badge badge-${TONES[status] ?? 'muted'}`} data-status={status}>
      {titleCase(status)}
    </span>
  );
}

export function ErrorNote({ error }: { error: unknown }) {
  if (!error) return null;
  const message =
    error instanceof ApiError
      ? `${error.message} (${error.code})`
      : error instanceof Error
        ? error.message
        : String(error);
  return (
    <p className="error" role="alert">
      {message}
    </p>
  );
}

export function Loading({ what = 'Loading' }: { what?: string }) {
  return (
    <p className="muted" role="status">
      {what}…
    </p>
  );
}

export function Empty({ children }: { children: ReactNode }) {
  return <p className="muted empty">{children}</p>;
}

export function TextField({ label, ...input }: { label: string } & InputHTMLAttributes<HTMLInputElement>) {
  const id = useId();
  return (
    <div className="field">
      <label htmlFor={id}>{label}</label>
      <input id={id} {...input} />
    </div>
  );
}

export function SelectField({
  label,
  options,
  ...select
}: { label: string; options: { value: string; label: string }[] } & SelectHTMLAttributes<HTMLSelectElement>) {
  const id = useId();
  return (
    <div className="field">
      <label htmlFor={id}>{label}</label>
      <select id={id} {...select}>
        {options.map((o) => (
          <option key={o.value} value={o.value}>
            {o.label}
          </option>
        ))}
      </select>
    </div>
  );
}

export function Section({
  title,
  actions,
  children,
}: {
  title: string;
  actions?: ReactNode;
  children: ReactNode;
}) {
  const id = useId();
  return (
    <section aria-labelledby={id} className="card">
      <div className="section-head">
        <h2 id={id}>{title}</h2>
        {actions}
      </div>
      {children}
    </section>
  );
}

export function TableWrap({ label, children }: { label: string; children: ReactNode }) {
  return (
    <div className="table-wrap" role="region" aria-label={label} tabIndex={0}>
      <table>{children}</table>
    </div>
  );
}

/** A column heading: a name, or a name with `num` (right-aligned), `hideSm` or `srOnly`. */
export type Column = string | { name: string; num?: boolean; hideSm?: boolean; srOnly?: boolean };

/** A table's head: one row of column headings. */
export function Columns({ names }: { names: Column[] }) {
  return (
    <thead>
      <tr>
        {names.map((c) => {
          const col = typeof c === 'string' ? { name: c } : c;
          const className = [col.num && 'num', col.hideSm && 'hide-sm'].filter(Boolean).join(' ');
          return (
            <th key={col.name} scope="col" className={className || undefined}>
              {col.srOnly ? <span className="sr-only">{col.name}</span> : col.name}
            </th>
          );
        })}
      </tr>
    </thead>
  );
}

/**
 * A query's list: its error, then "loading" while it is pending, `empty` when it has no items,
 * or `children` (rendered only once there are items).
 */
export function Listing({
  query,
  count,
  loading,
  empty,
  children,
}: {
  query: { error: unknown; isPending: boolean };
  count: number;
  loading?: string;
  empty: ReactNode;
  children: () => ReactNode;
}) {
  return (
    <>
      <ErrorNote error={query.error} />
      {query.isPending ? <Loading what={loading} /> : count === 0 ? <Empty>{empty}</Empty> : children()}
    </>
  );
}

/** A "load more" button under a paged list, shown while the query has a next page. */
export function LoadMore({
  query,
  label,
}: {
  query: { hasNextPage: boolean; isFetchingNextPage: boolean; fetchNextPage(): Promise<unknown> };
  label: string;
}) {
  if (!query.hasNextPage) return null;
  return (
    <button
      type="button"
      className="secondary"
      onClick={() => void query.fetchNextPage()}
      disabled={query.isFetchingNextPage}
    >
      {label}
    </button>
  );
}

/** "From" and "To" pickers of a period kept as ISO UTC strings (empty: open-ended). */
export function PeriodFields({
  from,
  to,
  onChange,
}: {
  from: string;
  to: string;
  onChange(changes: { from?: string; to?: string }): void;
}) {
  return (
    <>
      <TextField
        label="From"
        type="datetime-local"
        value={isoToLocalInput(from || undefined)}
        onChange={(e) => onChange({ from: localInputToIso(e.target.value) })}
      />
      <TextField
        label="To"
        type="datetime-local"
        value={isoToLocalInput(to || undefined)}
        onChange={(e) => onChange({ to: localInputToIso(e.target.value) })}
      />
    </>
  );
}

/** A button that asks "are you sure?" in place, with an optional note, before it acts. */
export function ConfirmButton({
  label,
  confirmLabel,
  onConfirm,
  withNote,
  tone = 'primary',
  disabled,
}: {
  label: string;
  confirmLabel: string;
  onConfirm(note: string): Promise<unknown>;
  withNote?: boolean;
  tone?: 'primary' | 'danger';
  disabled?: boolean;
}) {
  const [open, setOpen] = useState(false);
  const [note, setNote] = useState('');
  const { busy, error, run } = useAction();
  if (!open) {
    return (
      <button type="button" className={tone} disabled={disabled} onClick={() => setOpen(true)}>
        {label}
      </button>
    );
  }
  return (
    <form
      className="confirm"
      onSubmit={run(async () => {
        await onConfirm(note);
        setOpen(false);
        setNote('');
      })}
    >
      {withNote && (
        <TextField
          label="Note (optional)"
          value={note}
          maxLength={500}
          onChange={(e) => setNote(e.target.value)}
        />
      )}
      <button type="submit" className={tone} disabled={busy}>
        {confirmLabel}
      </button>
      <button type="button" className="secondary" onClick={() => setOpen(false)}>
        Cancel
      </button>
      <ErrorNote error={error} />
    </form>
  );
}
