// The USSD menu (Africa's Talking): 1. Register (PIN, PIN again, confirm), 2. Status, 3. Purchase
// (plan, confirm, mobile-money request). Each hop is one transaction over the session's row, so a
// restart between hops continues the session, and the same hop delivered twice gets the same
// answer, also when both copies arrive at once (PostgreSQL: the row is locked, or claimed by the
// first hop of a new session, and the second copy waits for the first to commit). The PIN is
// never stored in the session nor shown back: the session remembers only where it sits in
// `text`, which Africa's Talking sends whole on every hop.
import { SqliteAdapter } from 'kysely';
import type { Logger } from 'pino';
import { AppError } from '../../platform/errors.js';
import { nowIso, type Db, type Executor } from '../../platform/db/database.js';
import type { PlanRow } from '../../platform/db/schema.js';
import type { CustomersService } from '../customers/customers.service.js';
import { PurchaseRefused, type MobileMoney } from '../mobile-money/mobile-money.service.js';
import { WALLET_NAMES } from '../mobile-money/network.js';
import type { WaterNotices } from './notices.js';
import { accountFacts, asciiName, cut, plansOnSale, planTerms, price, USSD_MAX_CHARS } from './texts.js';

export interface UssdHop {
  tenantId: string;
  sessionId: string;
  serviceCode: string;
  phoneNumber: string;
  text: string;
  networkCode?: string | undefined;
}

type State =
  | 'menu'
  | 'register_pin'
  | 'register_pin2'
  | 'register_confirm'
  | 'purchase_plan'
  | 'purchase_confirm'
  | 'ended';

interface SessionData {
  pinAt?: number;
  pin2At?: number;
  page?: number;
  planId?: string;
}

interface Step {
  state: State;
  data: SessionData;
  screen: string;
}

const PIN = /^\d{4}$/;
const PLANS_PER_PAGE = 3;
/** Sessions idle this long are deleted (Africa's Talking ends a session after a few minutes). */
const SESSION_RETENTION_MS = 86_400_000;

const MENU = 'Welcome to the water kiosk\n1. Register\n2. Status\n3. Purchase';
const con = (body: string): string => `CON ${body}`;
const end = (body: string): string => `END ${body}`;

/** Never more than one screen: a longer text is cut (tests keep every screen well below). */
export const fitScreen = (screen: string): string => cut(screen, USSD_MAX_CHARS);

export interface UssdDeps {
  db: Db;
  customers: Pick<
    CustomersService,
    'phoneOf' | 'findByPhone' | 'findOrCreate' | 'setPin' | 'plan' | 'plans' | 'waterCredit'
  >;
  mobileMoney: Pick<MobileMoney, 'walletFor' | 'startPlanPurchase'>;
  notices: Pick<WaterNotices, 'registered'>;
  /** The keyed digest a session keeps of its last hop's text (never the text: it holds PINs). */
  hopDigest(text: string): string;
  logger: Logger;
}

export function createUssd(deps: UssdDeps) {
  const { db, customers } = deps;
  // SQLite runs one transaction at a time; PostgreSQL runs hops of one session at once.
  const onPostgres = !(db.getExecutor().adapter instanceof SqliteAdapter);

  function planList(plans: PlanRow[], page: number, prefix = ''): string {
    const shown = plans.slice(page * PLANS_PER_PAGE, (page + 1) * PLANS_PER_PAGE);
    const lines = shown.map((p, i) => `${i + 1}. ${cut(asciiName(p.name, p.id), 20)} ${price(p)}`);
    if ((page + 1) * PLANS_PER_PAGE < plans.length) lines.push('9. More');
    lines.push('0. Back');
    return con(`${prefix}Choose a plan:\n${lines.join('\n')}`);
  }

  async function step(
    ex: Executor,
    hop: UssdHop & { phone: string },
    state: State,
    data: SessionData,
    input: string,
    parts: string[],
  ): Promise<Step> {
    const at = parts.length - 1;
    const stay = (screen: string): Step => ({ state, data, screen });
    switch (state) {
      case 'menu': {
        if (input === '1') {
          const customer = await customers.findByPhone(hop.tenantId, hop.phone, ex);
          if (customer?.pin_hash) {
            return {
              state: 'ended',
              data: {},
              screen: end(`You are already registered.\nAccount ID: ${customer.account_id}`),
            };
          }
          return { state: 'register_pin', data: {}, screen: con('Registration\nCreate a 4-digit PIN:') };
        }
        if (input === '2') {
          const customer = await customers.findByPhone(hop.tenantId, hop.phone, ex);
          if (!customer) {
            return {
              state: 'ended',
              data: {},
              screen: end('No account for this number.\nDial again and choose 1 to register.'),
            };
          }
          const facts = await accountFacts(customers, ex, customer);
          return { state: 'ended', data: {}, screen: end(facts.join('\n')) };
        }
        if (input === '3') {
          const customer = await customers.findByPhone(hop.tenantId, hop.phone, ex);
          if (!customer?.pin_hash) {
            return { state: 'ended', data: {}, screen: end('Please register first (option 1).') };
          }
          const plans = await plansOnSale(customers, hop.tenantId, ex);
          if (plans.length === 0)
            return { state: 'ended', data: {}, screen: end('No plans are on sale right now.') };
          return { state: 'purchase_plan', data: { page: 0 }, screen: planList(plans, 0) };
        }
        return stay(con(`Invalid choice.\n${MENU.split('\n').slice(1).join('\n')}`));
      }
      case 'register_pin':
        if (!PIN.test(input)) return stay(con('A PIN is exactly 4 digits.\nCreate a 4-digit PIN:'));
        return { state: 'register_pin2', data: { pinAt: at }, screen: con('Enter the PIN again:') };
      case 'register_pin2':
        if (data.pinAt === undefined || parts[data.pinAt] !== input) {
          return {
            state: 'register_pin',
            data: {},
            screen: con('The PINs did not match.\nCreate a 4-digit PIN:'),
          };
        }
        return {
          state: 'register_confirm',
          data: { ...data, pin2At: at },
          screen: con(`Register ${hop.phone}?\n1. Confirm\n2. Cancel`),
        };
      case 'register_confirm': {
        if (input === '2') return { state: 'ended', data: {}, screen: end('Registration cancelled.') };
        if (input !== '1') return stay(con('Invalid choice.\n1. Confirm\n2. Cancel'));
        const pin = data.pinAt !== undefined ? parts[data.pinAt] : undefined;
        const again = data.pin2At !== undefined ? parts[data.pin2At] : undefined;
        if (pin === undefined || pin !== again || !PIN.test(pin)) {
          return {
            state: 'register_pin',
            data: {},
            screen: con('Please create your PIN again.\nCreate a 4-digit PIN:'),
          };
        }
        const found = await customers.findOrCreate(hop.tenantId, hop.phone, 'ussd', ex);
        if (found.pin_hash !== null) {
          return {
            state: 'ended',
            data: {},
            screen: end(`You are already registered.\nAccount ID: ${found.account_id}`),
          };
        }
        const customer = await customers.setPin(found, pin, `customer:${found.id}`, ex);
        await deps.notices.registered(ex, customer);
        return {
          state: 'ended',
          data: {},
          screen: end(
            `Registration complete!\nAccount ID: ${customer.account_id}\nUse your phone number and PIN at the kiosk.`,
          ),
        };
      }
      case 'purchase_plan': {
        const plans = await plansOnSale(customers, hop.tenantId, ex);
        const page = data.page ?? 0;
        if (input === '0') return { state: 'menu', data: {}, screen: con(MENU) };
        if (input === '9' && (page + 1) * PLANS_PER_PAGE < plans.length) {
          return { state, data: { page: page + 1 }, screen: planList(plans, page + 1) };
        }
        const index = /^[1-9]$/.test(input) ? Number(input) - 1 : -1;
        const plan = index >= 0 && index < PLANS_PER_PAGE ? plans[page * PLANS_PER_PAGE + index] : undefined;
        if (!plan) {
          // The page shown is kept: plans taken off sale meanwhile may have removed the one read.
          const shown = Math.min(page, Math.max(0, Math.ceil(plans.length / PLANS_PER_PAGE) - 1));
          return { state, data: { page: shown }, screen: planList(plans, shown, 'Invalid choice. ') };
        }
        let wallet;
        try {
          wallet = deps.mobileMoney.walletFor(hop.phone, hop.networkCode, plan);
        } catch (err) {
          if (err instanceof PurchaseRefused) return { state: 'ended', data: {}, screen: end(err.message) };
          throw err;
        }
        const terms = planTerms(plan);
        const screen = con(
          `${cut(asciiName(plan.name, plan.id), 30)}\n${terms ? `${terms}\n` : ''}Price: ${price(plan)}\nPay with ${WALLET_NAMES[wallet]}\n1. Confirm\n2. Cancel`,
        );
        return { state: 'purchase_confirm', data: { planId: plan.id }, screen };
      }
      case 'purchase_confirm': {
        if (input === '2') return { state: 'ended', data: {}, screen: end('Purchase cancelled.') };
        if (input !== '1') return stay(con('Invalid choice.\n1. Confirm\n2. Cancel'));
        const customer = await customers.findByPhone(hop.tenantId, hop.phone, ex);
        const plan = data.planId ? await customers.plan(hop.tenantId, data.planId, ex) : undefined;
        if (!customer?.pin_hash || !plan)
          return { state: 'ended', data: {}, screen: end('Please dial again and start over.') };
        try {
          const { payment, wallet } = await deps.mobileMoney.startPlanPurchase(ex, {
            customer,
            plan,
            networkCode: hop.networkCode ?? null,
            channel: 'ussd',
          });
          const amount = price({ price_minor: payment.amount_minor, currency: payment.currency });
          return {
            state: 'ended',
            data: {},
            screen: end(
              `Approve the payment of ${amount} on your phone (${WALLET_NAMES[wallet]} prompt). We will SMS you when it is received.`,
            ),
          };
        } catch (err) {
          if (err instanceof PurchaseRefused) return { state: 'ended', data: {}, screen: end(err.message) };
          throw err;
        }
      }
      case 'ended':
        return stay(end('This session has ended. Please dial again.'));
    }
  }

  /** One hop: the screen to answer with (`CON …` or `END …`), never more than 182 characters. */
  async function handle(hop: UssdHop): Promise<string> {
    let phone: string;
    try {
      phone = await customers.phoneOf(hop.tenantId, hop.phoneNumber);
    } catch {
      return end('Sorry, this phone number cannot use the service.');
    }
    const text = hop.text.trim();
    const parts = text === '' ? [] : text.split('*');
    const screen = await db.transaction().execute(async (tx) => {
      const read = () => {
        let q = tx
          .selectFrom('ussd_sessions')
          .selectAll()
          .where('tenant_id', '=', hop.tenantId)
          .where('session_id', '=', hop.sessionId);
        if (onPostgres) q = q.forUpdate();
        return q.executeTakeFirst();
      };
      let session = await read();
      if (!session && onPostgres) {
        // A new session: claim its row before acting, so a copy of this hop arriving at the same
        // moment waits here for this one to commit, then finds the hop answered (or, if this one
        // rolled back, claims the row itself). The row is written with the answer below.
        const stamp = nowIso();
        const claimed = await tx
          .insertInto('ussd_sessions')
          .values({
            tenant_id: hop.tenantId,
            session_id: hop.sessionId,
            phone,
            state: 'menu',
            data: '{}',
            created_at: stamp,
            updated_at: stamp,
          })
          .onConflict((oc) => oc.columns(['tenant_id', 'session_id']).doNothing())
          .returning('session_id')
          .executeTakeFirst();
        if (!claimed) session = await read();
      }
      // Another phone in this session learns nothing of it, not even its last screen.
      if (session && session.phone !== phone) return end('This session belongs to another phone.');
      // The same hop again (a gateway retry): the same answer, and nothing done twice.
      const digest = deps.hopDigest(text);
      if (session && session.last_text === digest && session.last_response !== null)
        return session.last_response;
      let current: Step;
      if (parts.length === 0) {
        current = { state: 'menu', data: {}, screen: con(MENU) };
      } else if (session) {
        current = await step(
          tx,
          { ...hop, phone },
          session.state as State,
          JSON.parse(session.data) as SessionData,
          parts.at(-1)!.trim(),
          parts,
        );
      } else {
        // A session we never saw (a dial with the choices in the code, e.g. *384*1#): replay them.
        current = { state: 'menu', data: {}, screen: con(MENU) };
        for (let i = 0; i < parts.length && current.state !== 'ended'; i += 1) {
          current = await step(
            tx,
            { ...hop, phone },
            current.state,
            current.data,
            parts[i]!.trim(),
            parts.slice(0, i + 1),
          );
        }
      }
      const answer = fitScreen(current.screen);
      const now = nowIso();
      const row = {
        phone,
        state: current.state,
        data: JSON.stringify(current.data),
        last_text: digest,
        last_response: answer,
        updated_at: now,
      };
      if (session) {
        await tx
          .updateTable('ussd_sessions')
          .set(row)
          .where('tenant_id', '=', hop.tenantId)
          .where('session_id', '=', hop.sessionId)
          .execute();
      } else {
        await tx
          .insertInto('ussd_sessions')
          .values({ tenant_id: hop.tenantId, session_id: hop.sessionId, created_at: now, ...row })
          .onConflict((oc) => oc.columns(['tenant_id', 'session_id']).doUpdateSet(row))
          .execute();
        const stale = new Date(Date.now() - SESSION_RETENTION_MS).toISOString();
        await tx.deleteFrom('ussd_sessions').where('updated_at', '<', stale).execute();
      }
      return answer;
    });
    return screen;
  }

  return {
    /** Answers one hop; an unexpected error becomes a polite END screen (never a 500 to the phone). */
    async answer(hop: UssdHop): Promise<string> {
      try {
        return await handle(hop);
      } catch (err) {
        if (err instanceof AppError && err.code === 'VALIDATION_FAILED') {
          return end('Sorry, that did not work. Please dial again.');
        }
        deps.logger.error({ err, tenantId: hop.tenantId, sessionId: hop.sessionId }, 'USSD hop failed');
        return end('Sorry, something went wrong. Please try again later.');
      }
    },
  };
}

export type Ussd = ReturnType<typeof createUssd>;
