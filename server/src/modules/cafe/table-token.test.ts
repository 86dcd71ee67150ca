import { SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { createTableTokens } from './table-token.js';

const secret = new TextEncoder().encode('a-table-token-test-secret-of-32-chars!');
const tokens = createTableTokens(secret);

describe('table tokens', () => {
  it('round-trips tenant, site, table and version', async () => {
    const token = await tokens.sign({ tenantId: 't', siteId: 's', tableId: 'T1', version: 3 });
    expect(await tokens.read(token)).toEqual({ tenantId: 't', siteId: 's', tableId: 'T1', version: 3 });
  });

  it('refuses another key, another scope, a missing version and garbage', async () => {
    const other = createTableTokens(new TextEncoder().encode('another-secret-another-secret-xx'));
    expect(
      await tokens.read(await other.sign({ tenantId: 't', siteId: 's', tableId: 'T1', version: 1 })),
    ).toBeNull();
    const order = await new SignJWT({ scope: 'order', tenantId: 't', siteId: 's', v: 1 })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject('T1')
      .sign(secret);
    expect(await tokens.read(order)).toBeNull();
    const noVersion = await new SignJWT({ scope: 'table', tenantId: 't', siteId: 's' })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject('T1')
      .sign(secret);
    expect(await tokens.read(noVersion)).toBeNull();
    expect(await tokens.read('not.a.token')).toBeNull();
    expect(await tokens.read('x'.repeat(3000))).toBeNull();
  });
});
