// The cafe wallet: guests sign in with their phone and a one-time code sent by SMS (hashed at
// rest, 5 minutes, single use, few attempts, rate limited per phone and per address), then pay
// from their wallet; staff add credit (audited). Balances are ledger accounts: a top-up by staff
// moves money from the outside world into the wallet, so every balance is the sum of its entries.
import { AppError, notFound, validation } from '../../platform/errors.js';
import { newId, type Db } from '../../platform/db/database.js';
import { isKnownCurrency } from '../../platform/money.js';
import { recordAudit } from '../audit/audit.service.js';
import type { CustomersService } from '../customers/customers.service.js';
import type { LedgerService } from '../ledger/ledger.service.js';
import type { Sms } from '../messaging/sms.js';
import type { CatalogService } from '../catalog/catalog.service.js';
import { OTP_TTL_MS } from '../customers/sign-in-codes.js';

/** Wallet amounts are converted with the currency's ISO 4217 exponent: the code must be one. */
function checkCurrency(currency: string | undefined): void {
  if (currency !== undefined && !isKnownCurrency(currency))
    throw validation(`currency "${currency}" is not an ISO 4217 code`);
}

/**
 * What the guest reads of an entry of their wallet: the memos the server writes (an order paid, a
 * surplus kept) as they are; a refund or a staff credit by its kind only, since their memo is the
 * staff's reason (or a provider's error), which staff read on their own screens.
 */
function guestMemo(e: { cause: { type: string }; memo?: string | null }): string | null {
  if (e.cause.type === 'refund') return 'refund';
  if (e.cause.type === 'wallet_credit') return 'credit added by staff';
  return e.memo ?? null;
}

export function createWallet(deps: {
  db: Db;
  customers: Pick<CustomersService, 'phoneOf' | 'findOrCreate' | 'get' | 'wallet' | 'signInCodes'>;
  ledger: Pick<LedgerService, 'external' | 'transfer' | 'listEntries' | 'listAccounts'>;
  sms: Pick<Sms, 'queue' | 'configured'>;
  catalog: Pick<CatalogService, 'tenantCurrency'>;
  issueCustomerToken(s: { tenantId: string; customerId: string; tableId?: string }): Promise<string>;
}) {
  const { db } = deps;

  /** The tenant's money currency when none is named: its `default` site's, else its first site's. */
  const tenantCurrency = (tenantId: string): Promise<string> => deps.catalog.tenantCurrency(tenantId);

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
      // A code nobody can receive would leave the guest waiting for an SMS that never comes.
      if (!deps.sms.configured)
        throw new AppError(
          'PROVIDER_NOT_CONFIGURED',
          'wallet sign-in codes cannot be sent here: no SMS API is configured (the operator sets AT_USERNAME and AT_API_KEY); pay another way',
        );
      const phone = await deps.customers.phoneOf(tenantId, phoneInput);
      return db.transaction().execute(async (tx) => {
        const code = await deps.customers.signInCodes.issue(tx, tenantId, phone, address);
        await deps.sms.queue(tx, {
          tenantId,
          to: phone,
          text: `${code} is your ${siteName} wallet code. It expires in 5 minutes. Never share it.`,
          kind: 'wallet_otp',
        });
        return { expiresInSeconds: OTP_TTL_MS / 1000 };
      });
    },

    /** Exchanges a right, fresh, unused code for a customer token bound to the table it was asked at. */
    async signIn(tenantId: string, phoneInput: string, code: string, currency: string, tableId: string) {
      const phone = await deps.customers.phoneOf(tenantId, phoneInput);
      const wrong = () => new AppError('UNAUTHORIZED', 'the code is wrong or has expired; ask for a new one');
      const outcome = await db.transaction().execute(async (tx) => {
        const check = await deps.customers.signInCodes.redeem(tx, tenantId, phone, code);
        if (check !== 'right') return check;
        const customer = await deps.customers.findOrCreate(tenantId, phone, 'wallet', tx);
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
      const token = await deps.issueCustomerToken({ tenantId, customerId: outcome.customerId, tableId });
      return { token, customerId: outcome.customerId };
    },

    /** A read: a wallet not opened yet in `currency` answers 0 and stays unopened. */
    async balance(tenantId: string, customerId: string, currencyInput?: string) {
      checkCurrency(currencyInput);
      const currency = currencyInput ?? (await walletCurrency(tenantId, customerId));
      const found = await deps.ledger.listAccounts(tenantId, {
        ownerType: 'customer',
        ownerId: customerId,
        kind: 'wallet',
        unit: currency,
        limit: 1,
      });
      const wallet = found.items[0];
      const entries = wallet ? (await deps.ledger.listEntries(tenantId, wallet.id, { limit: 50 })).items : [];
      return {
        customerId,
        accountId: wallet?.id ?? null,
        balanceMinor: wallet?.balance ?? 0,
        currency,
        history: entries.map((e) => ({
          id: e.id,
          amountMinor: e.amount,
          cause: e.cause,
          memo: guestMemo(e),
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
      checkCurrency(input.currency);
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
