// SMS commands from water customers (Africa's Talking incoming messages): MENU/HELP/START,
// REGISTER, STATUS/BALANCE, BUY [planId], in any case. Each message counts once (by Africa's
// Talking's `id`, in the inbox, in the same transaction as its effects and its reply); replies
// go out through the SMS job table. A PIN is never asked for or sent by SMS: REGISTER points to
// the USSD menu, where the PIN is typed on the phone itself.
import type { Logger } from 'pino';
import { type Db, type Executor } from '../../platform/db/database.js';
import { AppError } from '../../platform/errors.js';
import type { CustomerRow, PlanRow } from '../../platform/db/schema.js';
import type { CustomersService } from '../customers/customers.service.js';
import { needsCountryCode } from '../customers/phone.js';
import type { Sms } from '../messaging/sms.js';
import { PurchaseRefused, type MobileMoney } from '../mobile-money/mobile-money.service.js';
import type { PaymentsService } from '../payments/payments.service.js';
import { WALLET_NAMES } from '../mobile-money/network.js';
import { accountFacts, plansOnSale, planTerms, price } from './texts.js';

/** Fewer digits than this without a country code: a short code, not a phone (mobile numbers have 9–10). */
const MIN_NATIONAL_DIGITS = 8;

export interface IncomingSms {
  tenantId: string;
  id: string;
  from: string;
  to?: string | undefined;
  text: string;
  date?: string | undefined;
  networkCode?: string | undefined;
}

export type SmsOutcome = 'replied' | 'duplicate' | 'ignored';

const HELP = 'Commands: STATUS - your account, BUY - plans, BUY <plan id> - buy a plan, REGISTER.';

export function createSmsCommands(deps: {
  db: Db;
  customers: Pick<
    CustomersService,
    'phoneOf' | 'findByPhone' | 'findOrCreate' | 'plan' | 'plans' | 'waterCredit'
  >;
  mobileMoney: Pick<MobileMoney, 'startPlanPurchase'>;
  sms: Pick<Sms, 'queue'>;
  /** The payments inbox: each inbound message is answered once. */
  inbox: Pick<PaymentsService, 'claimDelivery'>;
  ussdCode?: string | undefined;
  logger: Logger;
}) {
  const { customers } = deps;
  const dial = deps.ussdCode ? `dial ${deps.ussdCode}` : 'dial our USSD code';

  async function findPlan(tenantId: string, wanted: string, ex: Executor): Promise<PlanRow | undefined> {
    const exact = await customers.plan(tenantId, wanted, ex);
    if (exact?.active === 1) return exact;
    const plans = await plansOnSale(customers, tenantId, ex);
    return plans.find((p) => p.id.toLowerCase() === wanted.toLowerCase());
  }

  /** An account with no PIN yet (made by REGISTER by SMS) is finished on USSD, not by REGISTER again. */
  const notRegistered = (customer: CustomerRow | undefined): string =>
    customer
      ? `Your account ${customer.account_id} has no PIN yet. To set it, ${dial} and choose 1. Register.`
      : 'Please register first. Reply REGISTER.';

  async function reply(ex: Executor, msg: IncomingSms, phone: string, customer: CustomerRow | undefined) {
    const [word = '', ...rest] = msg.text.trim().split(/\s+/);
    const command = word.toUpperCase();
    const registered = customer?.pin_hash != null;
    switch (command) {
      case 'MENU':
      case 'HELP':
      case 'START':
        return registered
          ? `Water account ${customer!.account_id}. ${HELP}`
          : `Welcome to the water kiosk! Reply REGISTER to create your account, or ${dial} and choose 1.`;
      case 'REGISTER': {
        if (registered)
          return `You are already registered. Account ID: ${customer!.account_id}. Reply STATUS for your balance.`;
        const created = customer ?? (await customers.findOrCreate(msg.tenantId, phone, 'sms', ex));
        return `Account ${created.account_id} is ready. To set your 4-digit PIN, ${dial} and choose 1. Register.`;
      }
      case 'STATUS':
      case 'BALANCE':
        if (!registered) return notRegistered(customer);
        return (await accountFacts(customers, ex, customer!)).join('\n');
      case 'BUY': {
        if (!registered) return notRegistered(customer);
        const wanted = rest[0];
        if (!wanted) {
          const plans = await plansOnSale(customers, msg.tenantId, ex);
          if (plans.length === 0) return 'No plans are on sale right now.';
          const list = plans
            .slice(0, 6)
            .map((p) => `${p.id}: ${p.name} ${price(p)}${planTerms(p) ? ` (${planTerms(p)})` : ''}`);
          return `Plans: ${list.join('; ')}. Reply BUY <plan id>.`;
        }
        const plan = await findPlan(msg.tenantId, wanted, ex);
        if (!plan) return `There is no plan "${wanted.slice(0, 20)}". Reply BUY for the list.`;
        try {
          const { payment, wallet } = await deps.mobileMoney.startPlanPurchase(ex, {
            customer: customer!,
            plan,
            networkCode: msg.networkCode ?? null,
            channel: 'sms',
          });
          const amount = price({ price_minor: payment.amount_minor, currency: payment.currency });
          return `Approve the payment of ${amount} for ${plan.name} on your phone (${WALLET_NAMES[wallet]} prompt). We will SMS you when it is received.`;
        } catch (err) {
          if (err instanceof PurchaseRefused) return err.message;
          throw err;
        }
      }
      default:
        return `Sorry, we did not understand that. ${HELP}`;
    }
  }

  return {
    /** One incoming message: answered once, whatever number of times it is delivered. */
    async receive(msg: IncomingSms): Promise<SmsOutcome> {
      // A short code (a few digits, no country code) is no phone we can answer, nor register: it
      // would become a made-up number once the tenant's calling code is put in front of it.
      if (needsCountryCode(msg.from) && msg.from.replace(/\D/g, '').length < MIN_NATIONAL_DIGITS)
        return 'ignored';
      let phone: string;
      try {
        phone = await customers.phoneOf(msg.tenantId, msg.from);
      } catch (err) {
        // Not a number after all. Anything else (the database) is an error: the provider gets no
        // 200 and delivers the message again, rather than it being lost.
        if (err instanceof AppError && err.code === 'VALIDATION_FAILED') return 'ignored';
        throw err;
      }
      return deps.db.transaction().execute(async (tx) => {
        const fresh = await deps.inbox.claimDelivery(
          'africastalking_sms',
          `${msg.tenantId}:${msg.id}`,
          { from: phone, to: msg.to ?? null, date: msg.date ?? null },
          tx,
        );
        if (!fresh) return 'duplicate' as const;
        const customer = await customers.findByPhone(msg.tenantId, phone, tx);
        const text = await reply(tx, msg, phone, customer);
        await deps.sms.queue(tx, { tenantId: msg.tenantId, to: phone, text, kind: 'sms_reply' });
        return 'replied' as const;
      });
    },
  };
}

export type SmsCommands = ReturnType<typeof createSmsCommands>;
