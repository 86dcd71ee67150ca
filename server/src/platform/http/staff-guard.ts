// The one staff guard: `await request.staff(roles?)` authenticates the caller and requires a staff
// user (or ADMIN_TOKEN), optionally with one of `roles`, answering 401/403 otherwise. Installed
// once on the app as a request decorator, so routes never copy their own.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { requireStaff, type Authenticator, type StaffPrincipal, type StaffRole } from './auth.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The staff principal of this request; throws UNAUTHORIZED / FORBIDDEN otherwise. */
    staff(roles?: readonly StaffRole[]): Promise<StaffPrincipal>;
  }
}

export function installStaffGuard(app: FastifyInstance, auth: Pick<Authenticator, 'fromHeaders'>): void {
  app.decorateRequest('staff', async function staff(this: FastifyRequest, roles?: readonly StaffRole[]) {
    const principal = await auth.fromHeaders(this.headers);
    requireStaff(principal, roles);
    return principal as StaffPrincipal;
  });
}
