// One way for a form or a button to act: busy while it runs, its error kept to show beside it.
import { useState, type FormEvent } from 'react';

export interface Action {
  error: unknown;
  busy: boolean;
  /**
   * A handler that runs `fn` (given the submitted form, if any): clears the last error, marks busy,
   * keeps what `fn` throws. A form passes it as `onSubmit`; a button calls `run(fn)()`.
   */
  run(
    fn: (form: HTMLFormElement | null) => Promise<unknown>,
  ): (e?: FormEvent<HTMLFormElement>) => Promise<void>;
}

export function useAction(): Action {
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const run: Action['run'] = (fn) => async (e) => {
    e?.preventDefault();
    const form = e?.currentTarget ?? null; // read now: React clears it after the handler returns
    setBusy(true);
    setError(null);
    try {
      await fn(form);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return { error, busy, run };
}
