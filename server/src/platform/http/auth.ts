// Who is calling: the ADMIN_TOKEN, a staff user (JWT) or a machine (its own key).
// Routes call `authenticate` and the small guards below; services never see headers.
import { createHash, timingSafeEqual } from 'node:crypto';
import { jwtVerify, SignJWT } from 'jose';
import { AppError, forbidden } from '../errors.js';

export const STAFF_ROLES = ['admin', 'technician', 'customer_service', 'staff'] as const;
export type StaffRole = (typeof STAFF_ROLES)[number];

export type Principal =
  | { kind: 'admin'; tenantId: null; actor: string }
  | { kind: 'user'; userId: string; tenantId: string; role: StaffRole; actor: string }
  | { kind: 'machine'; machineId: string; tenantId: string; siteId: string; actor: string };

export interface MachineIdentity {
  machineId: string;
  tenantId: string;
  siteId: string;
}

export interface Authenticator {
  fromHeaders(headers: Record<string, string | string[] | undefined>): Promise<Principal>;
  fromToken(token: string): Promise<Principal | null>;
  issueStaffToken(user: { id: string; tenantId: string; role: StaffRole; email: string }): Promise<string>;
  /** A token that lets a customer screen follow one order room (`order:<orderNumber>`). */
  issueOrderToken(scope: OrderTokenScope): Promise<string>;
  verifyOrderToken(token: string): Promise<OrderTokenScope | null>;
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

export function createAuthenticator(deps: {
  adminTokenHash: string;
  jwtSecret: Uint8Array;
  findMachineByKeyHash(hash: string): Promise<MachineIdentity | undefined>;
}): Authenticator {
  const looksLikeJwt = (token: string) => token.split('.').length === 3;

  async function fromToken(token: string): Promise<Principal | null> {
    if (token.length === 0 || token.length > 4096) return null;
    if (constantTimeEqual(sha256(token), deps.adminTokenHash)) {
      return { kind: 'admin', tenantId: null, actor: 'admin-token' };
    }
    if (looksLikeJwt(token)) {
      try {
        const { payload } = await jwtVerify(token, deps.jwtSecret, { algorithms: ['HS256'] });
        const role = payload['role'];
        const tenantId = payload['tenantId'];
        if (payload['scope'] !== undefined) return null; // order tokens are not staff tokens
        if (typeof payload.sub !== 'string' || typeof tenantId !== 'string') return null;
        if (!STAFF_ROLES.includes(role as StaffRole)) return null;
        return {
          kind: 'user',
          userId: payload.sub,
          tenantId,
          role: role as StaffRole,
          actor: `user:${String(payload['email'] ?? payload.sub)}`,
        };
      } catch {
        return null;
      }
    }
    const machine = await deps.findMachineByKeyHash(sha256(token));
    return machine ? { kind: 'machine', ...machine, actor: `machine:${machine.machineId}` } : null;
  }

  return {
    fromToken,
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
      return new SignJWT({ tenantId: user.tenantId, role: user.role, email: user.email })
        .setProtectedHeader({ alg: 'HS256' })
        .setSubject(user.id)
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
    async verifyOrderToken(token) {
      if (!looksLikeJwt(token)) return null;
      try {
        const { payload } = await jwtVerify(token, deps.jwtSecret, { algorithms: ['HS256'] });
        const { scope, tenantId, room } = payload as { scope?: unknown; tenantId?: unknown; room?: unknown };
        return scope === 'order' && typeof tenantId === 'string' && typeof room === 'string' ? { tenantId, room } : null;
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
    throw forbidden('that tenant is not yours');
  }
  return principal.tenantId;
}

/** Tenant filter for reads: null means all tenants (ADMIN_TOKEN). */
export const tenantFilter = (principal: Principal): string | null => principal.tenantId;
