// Small shared pieces: status badges, labelled fields, error and empty states, a confirm button.
import { useId, useState, type ReactNode, type SelectHTMLAttributes, type InputHTMLAttributes } from 'react';
import { ApiError } from './api.ts';
import { titleCase } from './format.ts';

const TONES: Record<string, string> = {
  IDLE: 'ok',
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
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
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
      onSubmit={async (e) => {
        e.preventDefault();
        setBusy(true);
        setError(null);
        try {
          await onConfirm(note);
          setOpen(false);
          setNote('');
        } catch (err) {
          setError(err);
        } finally {
          setBusy(false);
        }
      }}
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
