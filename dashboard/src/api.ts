// The one way the dashboard talks to the API: JSON over fetch with the signed-in bearer token.
// Errors carry the contract's stable `code` (CONTRACTS.md §2).
const TOKEN_KEY = 'kioskhub.token';

export const storedToken = (): string | null => localStorage.getItem(TOKEN_KEY);
export const storeToken = (token: string | null): void => {
  if (token === null) localStorage.removeItem(TOKEN_KEY);
  else localStorage.setItem(TOKEN_KEY, token);
};

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** Called when the server says the token is no longer good (sign-out). */
let onUnauthorized: () => void = () => undefined;
export const setUnauthorizedHandler = (fn: () => void): void => {
  onUnauthorized = fn;
};

async function send(
  path: string,
  init: { method?: string; body?: unknown; token?: string | null } = {},
): Promise<Response> {
  const token = init.token === undefined ? storedToken() : init.token;
  const headers: Record<string, string> = {};
  if (token) headers['authorization'] = `Bearer ${token}`;
  // A form (file upload) sets its own multipart Content-Type with the boundary.
  const form = init.body instanceof FormData;
  if (init.body !== undefined && !form) headers['content-type'] = 'application/json';
  const res = await fetch(path, {
    method: init.method ?? 'GET',
    headers,
    ...(init.body !== undefined ? { body: form ? (init.body as FormData) : JSON.stringify(init.body) } : {}),
  });
  if (!res.ok) {
    let code = 'HTTP_' + res.status;
    let message = res.statusText || 'request failed';
    try {
      const body = (await res.json()) as { error?: { code?: string; message?: string } };
      code = body.error?.code ?? code;
      message = body.error?.message ?? message;
    } catch {
      /* not JSON */
    }
    if (res.status === 401 && token) onUnauthorized();
    throw new ApiError(res.status, code, message);
  }
  return res;
}

export async function api<T>(
  path: string,
  init: { method?: string; body?: unknown; token?: string | null } = {},
): Promise<T> {
  const res = await send(path, init);
  return (await res.json()) as T;
}

/** A write answered `204 No Content` (nothing to parse). */
export async function apiNoContent(
  path: string,
  init: { method?: string; body?: unknown; token?: string | null } = {},
): Promise<void> {
  await send(path, init);
}

export async function apiBlob(
  path: string,
): Promise<{ blob: Blob; filename: string | null; headers: Headers }> {
  const res = await send(path);
  const disposition = res.headers.get('content-disposition') ?? '';
  const filename = /filename="([^"]+)"/.exec(disposition)?.[1] ?? null;
  return { blob: await res.blob(), filename, headers: res.headers };
}

/** `?a=1&b=2` from an object, leaving out empty values. */
export function qs(params: Record<string, string | number | boolean | undefined | null>): string {
  const search = new URLSearchParams();
  for (const [k, v] of Object.entries(params))
    if (v !== undefined && v !== null && v !== '') search.set(k, String(v));
  const text = search.toString();
  return text ? `?${text}` : '';
}

/**
 * Downloads what a same-origin URL answers (a one-time export link) through a temporary link: the
 * browser streams it to disk under the server's Content-Disposition name, never into the page.
 */
export function followDownload(url: string): void {
  const a = document.createElement('a');
  a.href = url;
  a.download = '';
  document.body.append(a);
  a.click();
  a.remove();
}
