// The cafe wallet: guests sign in with their phone and a one-time code sent by SMS (hashed at
// rest, 5 minutes, single use, few attempts, rate limited per phone and per address), then pay
// from their wallet; staff add credit (audited). Balances are ledger accounts: a top-up by staff
// moves money from the outside world into the wallet, so every balance is the sum of its entries.
import { createHmac, randomInt, timingSafeEqual } from 'node:crypto';
import { AppError, notFound, validation } from '../../platform/errors.js';
import { newId, nowIso, type Db } from '../../platform/db/database.js';
import { recordAudit } from '../audit/audit.service.js';
import type { CustomersService } from '../customers/customers.service.js';
import type { LedgerService } from '../ledger/ledger.service.js';
import type { Sms } from '../messaging/sms.js';

export const OTP_TTL_MS = 5 * 60_000;
export const OTP_MAX_ATTEMPTS = 5;
/** Codes per phone, and per client address, in OTP_WINDOW_MS. */
export const OTP_PER_PHONE = 3;
export const OTP_PER_ADDRESS = 10;
export const OTP_WINDOW_MS = 15 * 60_000;

export function createWallet(deps: {
  db: Db;
  customers: Pick<CustomersService, 'phoneOf' | 'findOrCreate' | 'get' | 'wallet'>;
  ledger: Pick<LedgerService, 'external' | 'transfer' | 'listEntries' | 'listAccounts'>;
  sms: Pick<Sms, 'queue'>;
  issueCustomerToken(s: { tenantId: string; customerId: string }): Promise<string>;
  /** Keys the code hashes: a copy of the database alone does not reveal codes. */
  otpKey: Buffer;
}) {
  const { db } = deps;
  const hash = (id: string, code: string) =>
    createHmac('sha256', deps.otpKey).update(`${id}:${code}`).digest('hex');

  /** The tenant's money currency when none is named: its `default` site's, else its first site's. */
  async function tenantCurrency(tenantId: string): Promise<string> {
    const sites = await db
      .selectFrom('sites')
      .select(['id', 'currency'])
      .where('tenant_id', '=', tenantId)
      .orderBy('id')
      .execute();
    return (sites.find((s) => s.id === 'default') ?? sites[0])?.currency ?? 'INR';
  }

  /** A customer's wallet currency when none is named: their (first) wallet's, else the tenant's. */
  async function walletCurrency(tenantId: string, customerId: string): Promise<string> {
    const wallets = await deps.ledger.listAccounts(tenantId, {
      ownerType: 'customer',
      ownerId: customerId,
      kind: 'wallet',
      limit: 1,
    });
    return wallets.items[0]?.unit ?? tenantCurrency(tenantId);
  }

  return {
    tenantCurrency,

    /** Sends a fresh code by SMS; earlier unused codes of that phone stop working. */
    async requestCode(tenantId: string, phoneInput: string, address: string, siteName: string) {
      const phone = await deps.customers.phoneOf(tenantId, phoneInput);
      const since = new Date(Date.now() - OTP_WINDOW_MS).toISOString();
      return db.transaction().execute(async (tx) => {
        const perPhone = await tx
          .selectFrom('customer_otps')
          .select((eb) => eb.fn.countAll<number>().as('n'))
          .where('tenant_id', '=', tenantId)
          .where('phone', '=', phone)
          .where('created_at', '>', since)
          .executeTakeFirstOrThrow();
        const perAddress = await tx
          .selectFrom('customer_otps')
          .select((eb) => eb.fn.countAll<number>().as('n'))
          .where('address', '=', address)
          .where('created_at', '>', since)
          .executeTakeFirstOrThrow();
        if (Number(perPhone.n) >= OTP_PER_PHONE || Number(perAddress.n) >= OTP_PER_ADDRESS) {
          throw new AppError('RATE_LIMITED', 'too many codes asked for; wait a few minutes and try again');
        }
        const now = nowIso();
        await tx
          .updateTable('customer_otps')
          .set({ used_at: now })
          .where('tenant_id', '=', tenantId)
          .where('phone', '=', phone)
          .where('used_at', 'is', null)
          .execute();
        const id = newId();
        const code = String(randomInt(0, 1_000_000)).padStart(6, '0');
        await tx
          .insertInto('customer_otps')
          .values({
            id,
            tenant_id: tenantId,
            phone,
            address,
            code_hash: hash(id, code),
            attempts: 0,
            expires_at: new Date(Date.now() + OTP_TTL_MS).toISOString(),
            used_at: null,
            created_at: now,
          })
          .execute();
        await deps.sms.queue(tx, {
          tenantId,
          to: phone,
          text: `${code} is your ${siteName} wallet code. It expires in 5 minutes. Never share it.`,
          kind: 'wallet_otp',
        });
        return { expiresInSeconds: OTP_TTL_MS / 1000 };
      });
    },

    /** Exchanges a right, fresh, unused code for a customer token. */
    async signIn(tenantId: string, phoneInput: string, code: string, currency: string) {
      const phone = await deps.customers.phoneOf(tenantId, phoneInput);
      const wrong = () => new AppError('UNAUTHORIZED', 'the code is wrong or has expired; ask for a new one');
      const outcome = await db.transaction().execute(async (tx) => {
        const otp = await tx
          .selectFrom('customer_otps')
          .selectAll()
          .where('tenant_id', '=', tenantId)
          .where('phone', '=', phone)
          .where('used_at', 'is', null)
          .where('expires_at', '>', nowIso())
          .orderBy('created_at', 'desc')
          .executeTakeFirst();
        if (!otp) return 'wrong' as const;
        // Counted before the comparison, conditionally, so parallel guesses cannot pass the limit.
        const counted = await tx
          .updateTable('customer_otps')
          .set((eb) => ({ attempts: eb('attempts', '+', 1) }))
          .where('id', '=', otp.id)
          .where('attempts', '<', OTP_MAX_ATTEMPTS)
          .where('used_at', 'is', null)
          .returning('attempts')
          .executeTakeFirst();
        if (!counted) {
          await tx.updateTable('customer_otps').set({ used_at: nowIso() }).where('id', '=', otp.id).execute();
          return 'locked' as const;
        }
        const right =
          /^\d{6}$/.test(code) &&
          timingSafeEqual(Buffer.from(hash(otp.id, code)), Buffer.from(otp.code_hash));
        if (!right) return 'wrong' as const;
        const used = await tx
          .updateTable('customer_otps')
          .set({ used_at: nowIso() })
          .where('id', '=', otp.id)
          .where('used_at', 'is', null)
          .returning('id')
          .executeTakeFirst();
        if (!used) return 'wrong' as const;
        const customer = await deps.customers.findOrCreate(tenantId, phone, 'wallet-otp', tx);
        // The wallet is opened in the currency of the cafe where the guest signed in.
        await deps.customers.wallet(tx, tenantId, customer.id, currency);
        await recordAudit(tx, {
          tenantId,
          actor: `customer:${customer.id}`,
          action: 'customer.wallet_sign_in',
          subjectType: 'customer',
          subjectId: customer.id,
        });
        return { customerId: customer.id };
      });
      if (outcome === 'wrong') throw wrong();
      if (outcome === 'locked') throw new AppError('RATE_LIMITED', 'too many wrong codes; ask for a new one');
      const token = await deps.issueCustomerToken({ tenantId, customerId: outcome.customerId });
      return { token, customerId: outcome.customerId };
    },

    async balance(tenantId: string, customerId: string, currencyInput?: string) {
      const currency = currencyInput ?? (await walletCurrency(tenantId, customerId));
      const wallet = await db
        .transaction()
        .execute((tx) => deps.customers.wallet(tx, tenantId, customerId, currency));
      const entries = await deps.ledger.listEntries(tenantId, wallet.id, { limit: 50 });
      return {
        customerId,
        accountId: wallet.id,
        balanceMinor: wallet.balance,
        currency,
        history: entries.items.map((e) => ({
          id: e.id,
          amountMinor: e.amount,
          cause: e.cause,
          memo: e.memo ?? null,
          createdAt: e.createdAt,
        })),
      };
    },

    /** Staff credit a wallet (a goodwill gesture, cash taken at the counter): external → wallet. */
    async add(
      tenantId: string | null,
      input: { customerId: string; amountMinor: number; reason: string; currency?: string },
      actor: string,
    ) {
      if (!Number.isSafeInteger(input.amountMinor) || input.amountMinor <= 0)
        throw validation('amountMinor must be a positive whole number of minor units');
      const customer = await deps.customers.get(tenantId, input.customerId).catch(() => {
        throw notFound('customer', input.customerId);
      });
      const currency = input.currency ?? (await walletCurrency(customer.tenant_id, customer.id));
      const creditId = newId();
      await db.transaction().execute(async (tx) => {
        const wallet = await deps.customers.wallet(tx, customer.tenant_id, customer.id, currency);
        const external = await deps.ledger.external(tx, customer.tenant_id, currency);
        await deps.ledger.transfer(tx, {
          tenantId: customer.tenant_id,
          from: external.id,
          to: wallet.id,
          amount: input.amountMinor,
          unit: currency,
          cause: { type: 'wallet_credit', id: creditId },
          memo: input.reason,
        });
        await recordAudit(tx, {
          tenantId: customer.tenant_id,
          actor,
          action: 'wallet.credit_add',
          subjectType: 'customer',
          subjectId: customer.id,
          before: { balanceMinor: wallet.balance },
          after: {
            balanceMinor: wallet.balance + input.amountMinor,
            amountMinor: input.amountMinor,
            currency,
            reason: input.reason,
            creditId,
          },
        });
      });
      return { creditId, ...(await this.balance(customer.tenant_id, customer.id, currency)) };
    },
  };
}

export type Wallet = ReturnType<typeof createWallet>;
