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

/** An error as a guest should read it: what happened and what to do, never a stack. */
export function errorText(error: unknown): string {
  if (error instanceof GuestError) {
    if (error.code === 'NETWORK') return error.message;
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

export function ErrorBox({ error }: { error: unknown }) {
  if (!error) return null;
  return (
    <p className="error-box" role="alert">
      {errorText(error)}
    </p>
  );
}
