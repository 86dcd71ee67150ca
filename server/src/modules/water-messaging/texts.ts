// What USSD screens and SMS replies say about a customer's account and the plans on sale, kept
// short: a USSD screen holds at most 182 characters, and plain ASCII renders on every handset.
import type { Executor } from '../../platform/db/database.js';
import type { CustomerRow, PlanRow } from '../../platform/db/schema.js';
import { formatMinor } from '../../platform/money.js';
import type { CustomersService } from '../customers/customers.service.js';
import { litres } from '../mobile-money/plan-settlement.js';
import { homeSite, usedTodayMl } from '../water/usage.js';

/** Africa's Talking's limit for one USSD screen, prefix included. */
export const USSD_MAX_CHARS = 182;

export const price = (plan: Pick<PlanRow, 'price_minor' | 'currency'>): string =>
  `${plan.currency} ${formatMinor(Number(plan.price_minor), plan.currency)}`;

export const cut = (text: string, max: number): string =>
  text.length <= max ? text : `${text.slice(0, max - 1)}.`;

/**
 * A name as a USSD screen shows it: plain ASCII (accents dropped, typographic dashes and quotes
 * made plain, anything else left out), so no handset shows a box and no cut splits a character.
 * `fallback` when nothing is left (a name in a script without Latin letters).
 */
export function asciiName(name: string, fallback: string): string {
  const plain = name
    .normalize('NFKD')
    .replace(/[\u2018\u2019\u201a\u2032]/g, "'")
    .replace(/[\u201c\u201d\u201e\u2033]/g, '"')
    .replace(/[\u2010-\u2015\u2212]/g, '-')
    .replace(/\u2026/g, '...')
    .replace(/[^\x20-\x7e]/g, '')
    .replace(/ {2,}/g, ' ')
    .trim();
  return plain === '' ? fallback : plain;
}

/** "30 days, 20.0 L/day" or "100.0 L of water". */
export function planTerms(plan: PlanRow): string {
  const terms: string[] = [];
  if (plan.days !== null && Number(plan.days) > 0) {
    terms.push(`${Number(plan.days)} day${Number(plan.days) === 1 ? '' : 's'}`);
    if (plan.daily_limit_ml !== null) terms.push(`${litres(Number(plan.daily_limit_ml))}/day`);
  }
  if (plan.credit_ml !== null && Number(plan.credit_ml) > 0)
    terms.push(`${litres(Number(plan.credit_ml))} of water`);
  return terms.join(', ');
}

/** The plans a customer may buy, cheapest first. */
export async function plansOnSale(
  customers: Pick<CustomersService, 'plans'>,
  tenantId: string,
  ex: Executor,
): Promise<PlanRow[]> {
  return (await customers.plans(tenantId, ex)).filter((p) => p.active === 1);
}

/** Registration, subscription, credit and today's remaining water, one fact a line. */
export async function accountFacts(
  customers: Pick<CustomersService, 'waterCredit'>,
  ex: Executor,
  customer: CustomerRow,
  now = new Date(),
): Promise<string[]> {
  const lines = [
    `Account: ${customer.account_id}`,
    `Registered: ${customer.pin_hash !== null ? 'Yes' : 'No'}`,
  ];
  if (customer.active !== 1) lines.push('Status: suspended');
  const expires = customer.subscription_expires_at;
  if (expires === null) lines.push('Plan: none');
  else if (Date.parse(expires) > now.getTime())
    lines.push(`Plan until: ${expires.slice(0, 16).replace('T', ' ')} UTC`);
  else lines.push(`Plan expired: ${expires.slice(0, 10)}`);
  const credit = await customers.waterCredit(ex, customer.tenant_id, customer.id);
  lines.push(`Credit: ${litres(credit.balance)}`);
  if (customer.daily_limit_ml === null) {
    lines.push('Today: no daily limit');
  } else {
    const used = await usedTodayMl(ex, customer.tenant_id, customer.id, homeSite(customer), now);
    const left = Math.max(0, Number(customer.daily_limit_ml) - used);
    lines.push(`Today left: ${litres(left)} of ${litres(Number(customer.daily_limit_ml))}`);
  }
  return lines;
}
