// Small pieces of the guest page: navigation without reload, money, problems and banners.
import type { ReactNode } from 'react';
import { money } from '../format.ts';
import { GuestError } from './api.ts';

/** Moves to another guest page without reloading (the app listens to popstate). */
export function go(path: string): void {
  history.pushState(null, '', path);
  dispatchEvent(new PopStateEvent('popstate'));
}

/** Minor units in the cafe's currency with its ISO 4217 decimals. */
export const fmt = money;

export function Problem({ title, children }: { title: string; children?: ReactNode }) {
  return (
    <main className="guest" id="main">
      <div className="problem" role="alert">
        <h1>{title}</h1>
        <div className="problem-body">{children}</div>
      </div>
    </main>
  );
}

/** Part of a transfer has arrived (the server's refusal to start another payment says how much). */
function partlyPaid(details: unknown): { receivedMinor: number; missingMinor: number } | undefined {
  const d = details as { receivedMinor?: unknown; missingMinor?: unknown } | null | undefined;
  return typeof d?.receivedMinor === 'number' && typeof d.missingMinor === 'number'
    ? { receivedMinor: d.receivedMinor, missingMinor: d.missingMinor }
    : undefined;
}

/**
 * An error as a guest should read it: what happened and what to do, never a stack. `currency`:
 * the order's, for refusals that name amounts (the server's own text has minor units and ids).
 */
export function errorText(error: unknown, currency?: string): string {
  if (error instanceof GuestError) {
    if (error.code === 'NETWORK') return error.message;
    const part = partlyPaid(error.details);
    if (error.code === 'INVALID_STATE' && part && currency)
      return (
        `${fmt(part.receivedMinor, currency)} of your bank transfer has already arrived. Send the remaining ` +
        `${fmt(part.missingMinor, currency)} with the same reference, or ask a member of staff.`
      );
    if (error.code === 'PROVIDER_NOT_CONFIGURED')
      return `This payment method is not available here yet (${error.message}). Please choose another one.`;
    if (error.status === 503)
      return `This payment method is not available right now (${error.message}). Please try again or choose another one.`;
    if (error.code === 'RATE_LIMITED') return `Too many tries: ${error.message}. Please wait a few minutes.`;
    if (error.status >= 500) return 'Something went wrong on our side. Please try again in a moment.';
    return error.message.charAt(0).toUpperCase() + error.message.slice(1) + '.';
  }
  return error instanceof Error ? error.message : String(error);
}

export function ErrorBox({ error, currency }: { error: unknown; currency?: string }) {
  if (!error) return null;
  return (
    <p className="error-box" role="alert">
      {errorText(error, currency)}
    </p>
  );
}
