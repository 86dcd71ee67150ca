// Who is signed in: a staff JWT from email + password, or a pasted admin token, kept in
// localStorage so a reload stays signed in. Roles decide which actions the screens offer. Signing
// out ends this session on the server (DELETE /v1/auth/session) before the browser forgets it.
import type { MeView } from '@kioskhub/protocol';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { createContext, useCallback, useContext, useEffect, useMemo, useState, type ReactNode } from 'react';
import { api, ApiError, apiNoContent, setUnauthorizedHandler, storedToken, storeToken } from './api.ts';

export type Action =
  | 'manageMachines'
  | 'manageCatalog'
  | 'markDispensed'
  | 'refundDue'
  | 'retryPrint'
  | 'ackAlerts'
  | 'resolveCash'
  | 'manageCustomers'
  | 'manageFirmware'
  | 'serveCafe';

// Mirrors the server's guards (docs/dashboard.md): the server decides, the UI only hides.
const ROLES_FOR: Record<Action, readonly string[]> = {
  manageMachines: ['admin'],
  manageCatalog: ['admin'],
  markDispensed: ['admin', 'customer_service', 'technician'],
  refundDue: ['admin', 'customer_service'],
  retryPrint: ['admin', 'technician', 'customer_service', 'staff'],
  ackAlerts: ['admin', 'technician', 'customer_service', 'staff'],
  resolveCash: ['admin', 'customer_service', 'staff'],
  manageCustomers: ['admin', 'customer_service'],
  manageFirmware: ['admin'],
  // Confirming a cafe's cash and transfers, and moving kitchen tickets.
  serveCafe: ['admin', 'customer_service', 'staff'],
};

interface Auth {
  token: string | null;
  me: MeView | undefined;
  /** Why `me` could not be loaded (server unreachable…); a 401 signs out instead. */
  meError: unknown;
  /** True for ADMIN_TOKEN: every tenant. */
  allTenants: boolean;
  signIn(email: string, password: string): Promise<void>;
  signInWithToken(token: string): Promise<void>;
  /** Ends this session on the server, then forgets the token (also when the server is away). */
  signOut(): Promise<void>;
  /** Ends every session of the signed-in user (POST /v1/auth/logout); throws if it could not. */
  signOutEverywhere(): Promise<void>;
  /** Why the last sign-out could not end the session on the server (shown on the sign-in page). */
  signOutNotice: string | null;
  can(action: Action): boolean;
}

const AuthContext = createContext<Auth | null>(null);

const UNREACHABLE =
  'Signed out in this browser only: the server could not be reached, so the session stays valid ' +
  'on the server until it expires (12 h after sign-in). To end it now, sign in and use ' +
  '"Sign out everywhere".';
const OLD_TOKEN =
  'Signed out in this browser only: this sign-in dates from before single sign-out and stays ' +
  'valid on the server until it expires (12 h after sign-in). To end it now, sign in and use ' +
  '"Sign out everywhere".';

export function AuthProvider({ children }: { children: ReactNode }) {
  const [token, setToken] = useState<string | null>(storedToken);
  const [signOutNotice, setSignOutNotice] = useState<string | null>(null);
  const client = useQueryClient();

  /** Forgets the token in this browser only (the server said it is no longer good, or sign-out). */
  const forget = useCallback(() => {
    storeToken(null);
    setToken(null);
    client.clear();
  }, [client]);
  useEffect(() => setUnauthorizedHandler(forget), [forget]);

  const me = useQuery({
    queryKey: ['me', token],
    queryFn: () => api<MeView>('/v1/auth/me'),
    enabled: token !== null,
    staleTime: 5 * 60_000,
  });

  const value = useMemo<Auth>(() => {
    const role = me.data?.kind === 'admin' ? 'admin' : me.data?.role;
    const signOut = async () => {
      setSignOutNotice(null);
      // ADMIN_TOKEN is no session: it is only forgotten here.
      if (token !== null && me.data?.kind !== 'admin') {
        try {
          await apiNoContent('/v1/auth/session', { method: 'DELETE' });
        } catch (err) {
          // 401: ended already; 403: not a staff token. Anything else left the token valid.
          if (!(err instanceof ApiError)) setSignOutNotice(UNREACHABLE);
          else if (err.status === 409) setSignOutNotice(OLD_TOKEN);
          else if (err.status >= 500) setSignOutNotice(UNREACHABLE);
        }
      }
      forget();
    };
    return {
      token,
      me: me.data,
      meError: me.error,
      allTenants: me.data?.kind === 'admin',
      async signIn(email, password) {
        const { token: jwt } = await api<{ token: string }>('/v1/auth/login', {
          method: 'POST',
          body: { email, password },
          token: null,
        });
        storeToken(jwt);
        setToken(jwt);
        setSignOutNotice(null);
      },
      async signInWithToken(candidate) {
        const who = await api<MeView>('/v1/auth/me', { token: candidate });
        if (who.kind !== 'admin' && who.kind !== 'user')
          throw new Error('that is a machine key, not an operator token');
        storeToken(candidate);
        setToken(candidate);
        setSignOutNotice(null);
      },
      signOut,
      async signOutEverywhere() {
        await apiNoContent('/v1/auth/logout', { method: 'POST' });
        setSignOutNotice(null);
        forget();
      },
      signOutNotice,
      can: (action) => role !== undefined && ROLES_FOR[action].includes(role),
    };
  }, [token, me.data, me.error, forget, signOutNotice]);

  return <AuthContext.Provider value={value}>{children}</AuthContext.Provider>;
}

export function useAuth(): Auth {
  const auth = useContext(AuthContext);
  if (!auth) throw new Error('useAuth outside AuthProvider');
  return auth;
}
