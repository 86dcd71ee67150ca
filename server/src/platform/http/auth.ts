// Who is calling: the ADMIN_TOKEN, a staff user (JWT) or a machine (its own key).
// Routes call `authenticate` and the small guards below; services never see headers.
// A staff token is honoured only while its user exists, is enabled and still has the token's
// role, tenant and version, and its own id (`jti`) has not been signed out (checked per request,
// cached for TOKEN_CHECK_CACHE_MS).
import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import { jwtVerify, SignJWT } from 'jose';
import { AppError, forbidden } from '../errors.js';

export const STAFF_ROLES = ['admin', 'technician', 'customer_service', 'staff'] as const;
export type StaffRole = (typeof STAFF_ROLES)[number];

/** A staff user or ADMIN_TOKEN: what `requireStaff` lets through. */
export type StaffPrincipal = Exclude<Principal, { kind: 'machine' }>;

export type Principal =
  | { kind: 'admin'; tenantId: null; actor: string }
  | {
      kind: 'user';
      userId: string;
      tenantId: string;
      role: StaffRole;
      actor: string;
      /** The sign-in's version (the token's `ver`): a later sign-out or change is a newer one. */
      tokenVersion: number;
      /**
       * This sign-in alone: the token's id (`jti`) and expiry, what `DELETE /v1/auth/session`
       * ends. Absent on tokens issued before sign-ins had ids (they end with POST /v1/auth/logout).
       */
      session?: StaffSession;
    }
  | {
      kind: 'machine';
      machineId: string;
      tenantId: string;
      siteId: string;
      /** The machine's kind (`vending`, `water`, `kiosk`, `table`…), read with its key. */
      machineKind: string;
      actor: string;
    };

export interface MachineIdentity {
  machineId: string;
  tenantId: string;
  siteId: string;
  machineKind: string;
}

export interface Authenticator {
  fromHeaders(headers: Record<string, string | string[] | undefined>): Promise<Principal>;
  fromToken(token: string): Promise<Principal | null>;
  issueStaffToken(user: StaffTokenSubject): Promise<string>;
  /** Drops this process's cached state of a user (after a change that revokes its tokens). */
  forgetUser(userId: string): void;
  /** True for a credential that authenticated on this process lately (rate limits key by it). */
  knownCredential(token: string): boolean;
  /** A token that lets a customer screen follow one order room (`order:<orderNumber>`). */
  issueOrderToken(scope: OrderTokenScope): Promise<string>;
  verifyOrderToken(token: string): Promise<OrderTokenScope | null>;
  /** A customer's token (wallet sign-in): never a staff token, never an order token. */
  issueCustomerToken(subject: CustomerTokenSubject): Promise<string>;
  verifyCustomerToken(token: string): Promise<CustomerTokenSubject | null>;
}

export interface CustomerTokenSubject {
  tenantId: string;
  customerId: string;
  /** The cafe table where the customer signed in: the token pays that table's orders only. */
  tableId?: string;
}

export interface StaffTokenSubject {
  id: string;
  tenantId: string;
  role: StaffRole;
  email: string;
  /** The user's token version: bumped by logout and by every change that revokes its tokens. */
  tokenVersion: number;
}

export interface StaffSession {
  /** The token's `jti`. */
  id: string;
  /** When the token expires (ISO UTC): an ended session's row is kept until then. */
  expiresAt: string;
}

export interface OrderTokenScope {
  tenantId: string;
  room: string;
}

export const sha256 = (value: string): string => createHash('sha256').update(value).digest('hex');

export function constantTimeEqual(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}

const unauthorized = (message = 'missing or invalid credentials'): AppError =>
  new AppError('UNAUTHORIZED', message);

/** What a staff token is checked against on each request. */
export interface StaffState {
  tenantId: string;
  role: string;
  tokenVersion: number;
  disabled: boolean;
  /** Ids (`jti`) of this user's tokens signed out one by one and not yet expired. */
  endedSessions: ReadonlySet<string>;
}

const KNOWN_MAX = 10_000;
const KNOWN_TTL_MS = 10 * 60_000;

export function createAuthenticator(deps: {
  adminTokenHash: string;
  jwtSecret: Uint8Array;
  findMachineByKeyHash(hash: string): Promise<MachineIdentity | undefined>;
  findStaffState(userId: string): Promise<StaffState | undefined>;
  staffCacheMs: number;
}): Authenticator {
  const looksLikeJwt = (token: string) => token.split('.').length === 3;
  const staffCache = new Map<string, { state: Promise<StaffState | undefined>; until: number }>();
  const known = new Map<string, number>();

  function staffState(userId: string): Promise<StaffState | undefined> {
    const now = Date.now();
    const cached = staffCache.get(userId);
    if (cached && cached.until > now) return cached.state;
    const state = deps.findStaffState(userId);
    if (deps.staffCacheMs > 0) {
      if (staffCache.size >= KNOWN_MAX) staffCache.clear();
      staffCache.set(userId, { state, until: now + deps.staffCacheMs });
      state.catch(() => staffCache.delete(userId));
    }
    return state;
  }

  /** `hash`: the token's sha256 (hex). */
  function remember(hash: string): void {
    if (known.size >= KNOWN_MAX && !known.has(hash)) known.delete(known.keys().next().value!);
    known.delete(hash);
    known.set(hash, Date.now() + KNOWN_TTL_MS);
  }

  async function staffPrincipal(token: string): Promise<Principal | null> {
    let payload;
    try {
      // Every staff token expires: one without `exp` is refused, however it was signed.
      const options = { algorithms: ['HS256'], requiredClaims: ['exp', 'sub'] };
      ({ payload } = await jwtVerify(token, deps.jwtSecret, options));
    } catch {
      return null;
    }
    const role = payload['role'];
    const tenantId = payload['tenantId'];
    const version = payload['ver'] ?? 0;
    const { jti, exp } = payload;
    if (payload['scope'] !== undefined) return null; // order tokens are not staff tokens
    if (typeof payload.sub !== 'string' || typeof tenantId !== 'string') return null;
    if (typeof version !== 'number') return null;
    if (!STAFF_ROLES.includes(role as StaffRole)) return null;
    // No `jti`: a token issued before sign-ins had ids, valid until it expires or a logout.
    if (jti !== undefined && (typeof jti !== 'string' || jti.length === 0 || jti.length > 64)) return null;
    const state = await staffState(payload.sub);
    if (!state || state.disabled || state.tokenVersion !== version) return null;
    if (state.role !== role || state.tenantId !== tenantId) return null;
    if (jti !== undefined && state.endedSessions.has(jti)) return null;
    return {
      kind: 'user',
      userId: payload.sub,
      tenantId,
      role: role as StaffRole,
      actor: `user:${String(payload['email'] ?? payload.sub)}`,
      tokenVersion: version,
      // `exp` is a required claim, checked by jwtVerify above.
      ...(jti !== undefined ? { session: { id: jti, expiresAt: new Date(exp! * 1000).toISOString() } } : {}),
    };
  }

  async function fromToken(token: string): Promise<Principal | null> {
    if (token.length === 0 || token.length > 4096) return null;
    let principal: Principal | null;
    const hash = sha256(token);
    if (constantTimeEqual(hash, deps.adminTokenHash)) {
      principal = { kind: 'admin', tenantId: null, actor: 'admin-token' };
    } else if (looksLikeJwt(token)) {
      principal = await staffPrincipal(token);
    } else {
      const machine = await deps.findMachineByKeyHash(hash);
      principal = machine ? { kind: 'machine', ...machine, actor: `machine:${machine.machineId}` } : null;
    }
    if (principal) remember(hash);
    return principal;
  }

  return {
    fromToken,
    forgetUser: (userId) => void staffCache.delete(userId),
    knownCredential(token) {
      const hash = sha256(token);
      const until = known.get(hash);
      if (until === undefined) return false;
      if (until > Date.now()) return true;
      known.delete(hash);
      return false;
    },
    async fromHeaders(headers) {
      const apiKey = headers['x-api-key'];
      const authorization = headers['authorization'];
      let token: string | undefined;
      if (typeof apiKey === 'string' && apiKey.length > 0) token = apiKey;
      else if (typeof authorization === 'string') {
        const match = /^Bearer\s+(.+)$/i.exec(authorization.trim());
        token = match?.[1];
      }
      if (token === undefined) throw unauthorized('send Authorization: Bearer <token> or X-API-Key');
      const principal = await fromToken(token);
      if (!principal) throw unauthorized();
      return principal;
    },
    issueStaffToken(user) {
      const claims = { tenantId: user.tenantId, role: user.role, email: user.email, ver: user.tokenVersion };
      return new SignJWT(claims)
        .setProtectedHeader({ alg: 'HS256' })
        .setSubject(user.id)
        .setJti(randomUUID())
        .setIssuedAt()
        .setExpirationTime('12h')
        .sign(deps.jwtSecret);
    },
    issueOrderToken(scope) {
      return new SignJWT({ scope: 'order', tenantId: scope.tenantId, room: scope.room })
        .setProtectedHeader({ alg: 'HS256' })
        .setIssuedAt()
        .setExpirationTime('24h')
        .sign(deps.jwtSecret);
    },
    issueCustomerToken(subject) {
      const table = subject.tableId !== undefined ? { tableId: subject.tableId } : {};
      return new SignJWT({ scope: 'customer', tenantId: subject.tenantId, ...table })
        .setProtectedHeader({ alg: 'HS256' })
        .setSubject(subject.customerId)
        .setIssuedAt()
        .setExpirationTime('12h')
        .sign(deps.jwtSecret);
    },
    async verifyCustomerToken(token) {
      if (!looksLikeJwt(token)) return null;
      try {
        const options = { algorithms: ['HS256'], requiredClaims: ['exp', 'sub'] };
        const { payload } = await jwtVerify(token, deps.jwtSecret, options);
        const { scope, tenantId, tableId } = payload as {
          scope?: unknown;
          tenantId?: unknown;
          tableId?: unknown;
        };
        if (scope !== 'customer' || typeof tenantId !== 'string' || typeof payload.sub !== 'string')
          return null;
        return { tenantId, customerId: payload.sub, ...(typeof tableId === 'string' ? { tableId } : {}) };
      } catch {
        return null;
      }
    },
    async verifyOrderToken(token) {
      if (!looksLikeJwt(token)) return null;
      try {
        const options = { algorithms: ['HS256'], requiredClaims: ['exp'] };
        const { payload } = await jwtVerify(token, deps.jwtSecret, options);
        const { scope, tenantId, room } = payload as { scope?: unknown; tenantId?: unknown; room?: unknown };
        return scope === 'order' && typeof tenantId === 'string' && typeof room === 'string'
          ? { tenantId, room }
          : null;
      } catch {
        return null;
      }
    },
  };
}

// ---- guards ----------------------------------------------------------------------------

export function requireStaff(principal: Principal, roles?: readonly StaffRole[]): void {
  if (principal.kind === 'admin') return;
  if (principal.kind !== 'user') throw forbidden('a staff or admin credential is required');
  if (roles && !roles.includes(principal.role)) {
    throw forbidden(`this needs one of the roles: ${roles.join(', ')}`);
  }
}

export const requireAdmin = (principal: Principal): void => requireStaff(principal, ['admin']);

export function requireAdminToken(principal: Principal): void {
  if (principal.kind !== 'admin') throw forbidden('only ADMIN_TOKEN may do that');
}

/** The tenant a request acts in: its own, or for ADMIN_TOKEN the one it names (default `default`). */
export function actingTenant(principal: Principal, requested?: string): string {
  if (principal.kind === 'admin') return requested ?? 'default';
  if (requested !== undefined && requested !== principal.tenantId) {
    throw forbidden('that tenant is not yours: leave tenantId out to act in your own');
  }
  return principal.tenantId;
}

/**
 * `actingTenant` for a write that creates rows in that tenant: a tenant ADMIN_TOKEN names must
 * exist (`404`), as a mistyped `tenantId` would otherwise fail on the database's reference (a 500)
 * or leave rows of a tenant nobody can sign in to.
 */
export async function actingExistingTenant(
  principal: Principal,
  requested: string | undefined,
  tenantExists: (tenantId: string) => Promise<boolean>,
): Promise<string> {
  const tenantId = actingTenant(principal, requested);
  if (principal.kind === 'admin' && requested !== undefined && !(await tenantExists(tenantId)))
    throw new AppError('NOT_FOUND', `tenant "${tenantId}" does not exist`);
  return tenantId;
}

/** Tenant filter for reads: null means all tenants (ADMIN_TOKEN). */
export const tenantFilter = (principal: Principal): string | null => principal.tenantId;

/**
 * Tenant filter for a read that may name a tenant: ADMIN_TOKEN reads the one it names, or all
 * (null); anyone else reads its own, and naming another tenant is `403`.
 */
export function readTenant(principal: Principal, requested?: string): string | null {
  if (principal.kind === 'admin') return requested ?? null;
  return actingTenant(principal, requested);
}
