// Who is signed in: a staff JWT from email + password, or a pasted admin token, kept in
// localStorage so a reload stays signed in. Roles decide which actions the screens offer.
import type { MeView } from '@kioskhub/protocol';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { createContext, useCallback, useContext, useEffect, useMemo, useState, type ReactNode } from 'react';
import { api, setUnauthorizedHandler, storedToken, storeToken } from './api.ts';

export type Action =
  | 'manageMachines'
  | 'manageCatalog'
  | 'markDispensed'
  | 'refundDue'
  | 'retryPrint'
  | 'ackAlerts'
  | 'resolveCash'
  | 'manageCustomers'
  | 'manageFirmware';

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
  signOut(): void;
  can(action: Action): boolean;
}

const AuthContext = createContext<Auth | null>(null);

export function AuthProvider({ children }: { children: ReactNode }) {
  const [token, setToken] = useState<string | null>(storedToken);
  const client = useQueryClient();

  const signOut = useCallback(() => {
    storeToken(null);
    setToken(null);
    client.clear();
  }, [client]);
  useEffect(() => setUnauthorizedHandler(signOut), [signOut]);

  const me = useQuery({
    queryKey: ['me', token],
    queryFn: () => api<MeView>('/v1/auth/me'),
    enabled: token !== null,
    staleTime: 5 * 60_000,
  });

  const value = useMemo<Auth>(() => {
    const role = me.data?.kind === 'admin' ? 'admin' : me.data?.role;
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
      },
      async signInWithToken(candidate) {
        const who = await api<MeView>('/v1/auth/me', { token: candidate });
        if (who.kind !== 'admin' && who.kind !== 'user')
          throw new Error('that is a machine key, not an operator token');
        storeToken(candidate);
        setToken(candidate);
      },
      signOut,
      can: (action) => role !== undefined && ROLES_FOR[action].includes(role),
    };
  }, [token, me.data, me.error, signOut]);

  return <AuthContext.Provider value={value}>{children}</AuthContext.Provider>;
}

export function useAuth(): Auth {
  const auth = useContext(AuthContext);
  if (!auth) throw new Error('useAuth outside AuthProvider');
  return auth;
}
