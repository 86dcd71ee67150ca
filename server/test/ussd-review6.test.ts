// Sixth review of the water kiosk's USSD menu (server/src/modules/water-messaging/ussd.ts and
// POST /webhooks/africastalking/ussd), against docs/water-payments.md "USSD menu". Africa's
// Talking posts sessionId, serviceCode, phoneNumber, text (the inputs joined with '*') and
// networkCode, and shows the answer's `CON …`/`END …` on the phone. Each test here fails on the
// code as reviewed, because of the bug its comment names.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { engines, startServer, type TestServer } from './harness.js';
import {
  AT_KEY,
  providerEnv,
  startProviderFakes,
  type ProviderFakes,
} from './fixtures/mobile-money-fakes.js';

const digits = () => String(randomBytes(3).readUIntBE(0, 3) % 10_000_000).padStart(7, '0');
const MTN_PHONE = () => `+25677${digits()}`;
const uid = (p: string) => `${p}${randomBytes(4).toString('hex')}`;

describe.each(engines())('USSD menu review 6 (%s)', (engine) => {
  let server: TestServer;
  let fakes: ProviderFakes;

  beforeAll(async () => {
    fakes = await startProviderFakes();
    server = await startServer({ engine, env: providerEnv(fakes) });
  });
  afterAll(async () => {
    await server?.close();
    await fakes?.close();
  });

  async function ussd(hop: { sessionId: string; phone: string; text: string; tenant: string }) {
    const query = new URLSearchParams({ key: AT_KEY, tenant: hop.tenant });
    const res = await fetch(`${server.url}/webhooks/africastalking/ussd?${query}`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        sessionId: hop.sessionId,
        serviceCode: '*384*7#',
        phoneNumber: hop.phone,
        text: hop.text,
        networkCode: '64110',
      }).toString(),
    });
    return { status: res.status, type: res.headers.get('content-type') ?? '', text: await res.text() };
  }

  /** A tenant of its own (Ugandan numbers), with these plans on sale, made through the staff API. */
  async function tenantWithPlans(plans: { id: string; name: string; priceMinor: number }[]) {
    const tenant = uid('t');
    expect((await server.request('POST', '/v1/tenants', { body: { id: tenant, name: 'USSD' } })).status).toBe(
      201,
    );
    await server.kioskhub.services.tenants.setDefaultCountryCode(tenant, '256');
    for (const p of plans) {
      const made = await server.request('POST', `/v1/water/plans?tenantId=${tenant}`, {
        body: { ...p, kind: 'credit', currency: 'UGX', creditMl: 100_000 },
      });
      expect(made.status, JSON.stringify(made.body)).toBe(201);
    }
    return tenant;
  }

  /** A registered customer of `tenant` (staff-made, with a PIN). */
  async function registered(tenant: string) {
    const phone = MTN_PHONE();
    const made = await server.request('POST', `/v1/customers?tenantId=${tenant}`, {
      body: { phone, pin: '1357' },
    });
    expect(made.status, JSON.stringify(made.body)).toBe(201);
    return phone;
  }

  // Promise (docs/water-payments.md, USSD menu): "Every screen is at most 182 characters of plain
  // ASCII." (texts.ts: "plain ASCII renders on every handset"). A plan's name is any 1-80
  // characters (customers.schema.ts CreatePlanBody, plans.ts:64 keeps it as typed), and
  // ussd.ts:82 (the plan list, `cut(p.name, 20)`) and ussd.ts:207 (the confirm screen,
  // `cut(plan.name, 30)`) put it on the screen as it is: an en dash or an emoji reaches the
  // handset, and texts.ts:17 `cut` slices UTF-16 units, so a name cut inside an emoji sends half
  // of a surrogate pair (the phone gets U+FFFD). Fix: make plan names ASCII on the screen (fold
  // or drop other characters before cutting, e.g. a `screenText()` in texts.ts), or refuse
  // non-ASCII plan names when they are created.
  it('a plan whose name is not ASCII is still shown in plain ASCII on the plan list and confirm screen', async () => {
    const tenant = await tenantWithPlans([
      { id: 'mwezi', name: 'Maji – mwezi mzima', priceMinor: 15_000 },
      { id: 'familia', name: 'Familia ya watu 12💧 kila mwezi', priceMinor: 20_000 },
    ]);
    const phone = await registered(tenant);
    const sessionId = uid('ATUid_');
    const seen: string[] = [];
    for (const text of ['', '3', '3*1', '3*1*2']) {
      const res = await ussd({ sessionId, phone, text, tenant });
      expect(res.status).toBe(200);
      expect(res.text).toMatch(/^(CON|END) /);
      seen.push(res.text);
    }
    expect(seen[1]).toContain('Choose a plan:');
    expect(seen[2]).toContain('Price: UGX 15000');
    for (const screen of seen) {
      expect(screen.length).toBeLessThanOrEqual(182);
      expect(screen, 'every screen is plain ASCII').toMatch(/^[\x20-\x7e\n]*$/);
    }
  });

  // Promise (docs/water-payments.md, USSD menu): "nothing a phone sends makes the callback fail
  // (an unexpected error answers `END Sorry, something went wrong…`)"; the Errors table gives 400
  // only for "a USSD or SMS callback without its required fields". Each USSD reply may be up to
  // 182 characters and Africa's Talking sends them all, joined with '*', on every hop; at.routes.ts:24
  // caps `text` at 1000 characters, so a sixth long reply in one session is answered
  // `400 application/json` (which the phone shows as a failed session), not a CON/END screen.
  // The body limit of the route is already 64 KB. Fix: accept `text` up to the body limit (or,
  // for a longer one, answer `END` with a short message), never a JSON 400.
  it('a session whose text grew past 1000 characters still gets a CON/END screen, not a JSON 400', async () => {
    const tenant = await tenantWithPlans([{ id: 'month', name: 'Monthly water', priceMinor: 15_000 }]);
    const phone = await registered(tenant);
    const sessionId = uid('ATUid_');
    expect((await ussd({ sessionId, phone, text: '', tenant })).text).toMatch(/^CON Welcome/);
    const typed: string[] = [];
    for (let i = 0; i < 6; i += 1) {
      typed.push(`${i}`.repeat(170)); // one reply, within a USSD screen
      const res = await ussd({ sessionId, phone, text: typed.join('*'), tenant });
      expect(res.status, `hop ${i + 1}, text of ${typed.join('*').length} characters: ${res.text}`).toBe(200);
      expect(res.type).toMatch(/^text\/plain/);
      expect(res.text).toMatch(/^CON Invalid choice\./);
    }
  });

  // Promise (docs/water-payments.md, USSD menu): "Any other input answers `Invalid choice.` with the
  // same choices again"; plans taken off sale are no longer listed (customers.md, PATCH
  // /v1/water/plans/:id). ussd.ts:189-196: when the customer's page of the list no longer exists
  // (plans were taken off sale while they looked at page 2), the Invalid-choice screen shows the
  // last page that exists (page 1 here), but the session keeps `page: 1`: every number the screen
  // offers is then looked up on the vanished page and answered "Invalid choice." again, for ever.
  // Fix: store the page shown (`data: { page: shownPage }`) with that screen, not the old one.
  it('after the page being viewed vanished, a choice on the list shown instead is taken', async () => {
    const plans = [1, 2, 3, 4, 5].map((n) => ({ id: `p${n}`, name: `Plan ${n}`, priceMinor: n * 1000 }));
    const tenant = await tenantWithPlans(plans);
    const phone = await registered(tenant);
    const sessionId = uid('ATUid_');
    const hop = (text: string) => ussd({ sessionId, phone, text, tenant });
    await hop('');
    expect((await hop('3')).text).toContain('9. More');
    expect((await hop('3*9')).text).toContain('1. Plan 4 UGX 4000');
    // Staff take plans 4 and 5 off sale while the customer reads page 2.
    for (const id of ['p4', 'p5']) {
      const off = await server.request('PATCH', `/v1/water/plans/${id}?tenantId=${tenant}`, {
        body: { active: false },
      });
      expect(off.status).toBe(200);
    }
    const again = await hop('3*9*1');
    expect(again.text).toBe(
      'CON Invalid choice. Choose a plan:\n1. Plan 1 UGX 1000\n2. Plan 2 UGX 2000\n3. Plan 3 UGX 3000\n0. Back',
    );
    // The customer picks "1. Plan 1" from the screen they were just shown.
    const picked = await hop('3*9*1*1');
    expect(picked.text).toMatch(/^CON Plan 1\n/);
    expect(picked.text).toContain('Price: UGX 1000');
  });
});
