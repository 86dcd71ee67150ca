// Ledger accounts and their entries (staff, tenant-scoped): balances are integers in the
// account's unit (minor units of its currency, or ml); entries are signed, newest first.
import { Type } from '@sinclair/typebox';
import { requireStaff, tenantFilter, type Authenticator } from '../../platform/http/auth.js';
import type { FastifyTypebox } from '../../platform/http/fastify.js';
import { Cursor, EntityId, errors, Limit } from '../../platform/http/schemas.js';
import type { LedgerService } from './ledger.service.js';

const Word = Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9_.:-]+$' });
const Unit = Type.String({ pattern: '^(ml|[A-Z]{3})$', description: '"ml" or an ISO 4217 currency' });

const AccountSchema = Type.Object({
  id: Type.String(),
  ownerType: Type.String({ description: 'tenant | site | customer' }),
  ownerId: Type.String(),
  kind: Type.String({ description: 'external | unallocated_cash | revenue | refunds_due | ...' }),
  unit: Type.String(),
  balance: Type.Integer({ description: 'the sum of the account’s entries, in its unit' }),
});

const EntrySchema = Type.Object({
  id: Type.String(),
  accountId: Type.String(),
  amount: Type.Integer({ description: 'signed: positive into the account, negative out of it' }),
  unit: Type.String(),
  cause: Type.Object({ type: Type.String(), id: Type.String() }),
  memo: Type.Optional(Type.String()),
  createdAt: Type.String(),
});

export function ledgerRoutes(
  app: FastifyTypebox,
  deps: { auth: Authenticator; ledger: LedgerService },
): void {
  const staff = async (headers: Parameters<Authenticator['fromHeaders']>[0]) => {
    const p = await deps.auth.fromHeaders(headers);
    requireStaff(p);
    return p;
  };

  app.get(
    '/v1/ledger/accounts',
    {
      schema: {
        tags: ['ledger'],
        summary: 'Ledger accounts of the caller’s tenant, by owner and kind',
        querystring: Type.Object(
          {
            ownerType: Type.Optional(Word),
            ownerId: Type.Optional(Word),
            kind: Type.Optional(Word),
            unit: Type.Optional(Unit),
            cursor: Type.Optional(Cursor),
            limit: Limit,
          },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Object({
            items: Type.Array(AccountSchema),
            nextCursor: Type.Union([Type.String(), Type.Null()]),
          }),
          ...errors(400, 401, 403),
        },
      },
    },
    async (request) => {
      const p = await staff(request.headers);
      const page = await deps.ledger.listAccounts(tenantFilter(p), request.query);
      return {
        items: page.items.map((a) => ({
          id: a.id,
          ownerType: a.ownerType,
          ownerId: a.ownerId,
          kind: a.kind,
          unit: a.unit,
          balance: a.balance,
        })),
        nextCursor: page.nextCursor,
      };
    },
  );

  app.get(
    '/v1/ledger/accounts/:id/entries',
    {
      schema: {
        tags: ['ledger'],
        summary: 'Entries of a ledger account, newest first',
        params: Type.Object({ id: EntityId }),
        querystring: Type.Object(
          { cursor: Type.Optional(Cursor), limit: Limit },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Object({
            items: Type.Array(EntrySchema),
            nextCursor: Type.Union([Type.String(), Type.Null()]),
          }),
          ...errors(400, 401, 403, 404),
        },
      },
    },
    async (request) => {
      const p = await staff(request.headers);
      const { cursor, limit } = request.query;
      const page = await deps.ledger.listEntries(tenantFilter(p), request.params.id, {
        limit,
        ...(cursor ? { cursor } : {}),
      });
      return {
        items: page.items.map(({ transferId: _transfer, ...e }) => e),
        nextCursor: page.nextCursor,
      };
    },
  );
}
