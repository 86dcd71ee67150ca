// Table tokens: the signed part of a cafe table's QR link (`/t/<token>`). A JWT with the server's
// signing key naming tenant, site and table, `scope: 'table'` (so it is never a staff, order or
// customer token) and the table's token version: rotating a table's QR bumps the version and
// every earlier token of that table is refused. Printed QR codes do not expire.
import { jwtVerify, SignJWT } from 'jose';

export interface TableTokenClaims {
  tenantId: string;
  siteId: string;
  tableId: string;
  version: number;
}

export function createTableTokens(secret: Uint8Array) {
  return {
    sign(claims: TableTokenClaims): Promise<string> {
      return new SignJWT({
        scope: 'table',
        tenantId: claims.tenantId,
        siteId: claims.siteId,
        v: claims.version,
      })
        .setProtectedHeader({ alg: 'HS256' })
        .setSubject(claims.tableId)
        .setIssuedAt()
        .sign(secret);
    },

    /** The claims of a well-signed table token, or null (its version is checked by the caller). */
    async read(token: string): Promise<TableTokenClaims | null> {
      if (token.length > 2048 || token.split('.').length !== 3) return null;
      try {
        const { payload } = await jwtVerify(token, secret, {
          algorithms: ['HS256'],
          requiredClaims: ['sub'],
        });
        const { scope, tenantId, siteId, v } = payload as Record<string, unknown>;
        if (scope !== 'table' || typeof tenantId !== 'string' || typeof siteId !== 'string') return null;
        if (typeof v !== 'number' || !Number.isSafeInteger(v) || typeof payload.sub !== 'string') return null;
        return { tenantId, siteId, tableId: payload.sub, version: v };
      } catch {
        return null;
      }
    },
  };
}

export type TableTokens = ReturnType<typeof createTableTokens>;
