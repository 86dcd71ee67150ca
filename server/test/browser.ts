// The one rig every browser test (`*.browser.test.ts`) shares: Debian's Chromium through
// playwright-core (no browser is ever downloaded), the built dashboard, screenshots under
// artifacts/screenshots/ for a person to look at, and the dashboard's two ways to sign in.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type BrowserContextOptions, type Locator, type Page } from 'playwright-core';
import { PASSWORD } from './dashboard-fixtures.js';

export const CHROMIUM = '/usr/bin/chromium';
export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const SHOTS = `${ROOT}artifacts/screenshots`;

/** Whether Chromium is installed; when it is not, says aloud which tests are skipped. */
export function hasChromium(what: string): boolean {
  if (existsSync(CHROMIUM)) return true;
  console.warn(`NOTICE: ${CHROMIUM} is missing (apt-get install chromium); the ${what} are SKIPPED.`);
  return false;
}

/** Builds the dashboard (operator app and guest app) when dist/ lacks either. */
export function ensureDashboardBuilt(): void {
  const dist = `${ROOT}dashboard/dist`;
  if (existsSync(`${dist}/index.html`) && existsSync(`${dist}/guest.html`)) return;
  execFileSync('npm', ['run', 'build', '-w', 'dashboard'], { cwd: ROOT, stdio: 'inherit' });
}

// Headless, and quiet: nothing in the background reaches for the network.
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Builds the dashboard if needed, makes the screenshot folder, launches headless Chromium. */
export async function launchChromium(): Promise<Browser> {
  ensureDashboardBuilt();
  mkdirSync(SHOTS, { recursive: true });
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
}

/** A page in a context of its own (a laptop screen unless `options` says otherwise), 15 s per action. */
export async function openPage(browser: Browser, options: BrowserContextOptions = {}): Promise<Page> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, ...options });
  context.setDefaultTimeout(15_000);
  return context.newPage();
}

/** The whole page to artifacts/screenshots/<name>.png. */
export async function screenshot(page: Page, name: string, options: { animations?: 'disabled' } = {}) {
  await page.screenshot({ path: `${SHOTS}/${name}.png`, fullPage: true, ...options });
}

/** Signs in on the dashboard with an email and password and waits for the Fleet page. */
export async function signIn(page: Page, url: string, email: string, password = PASSWORD): Promise<void> {
  await page.goto(`${url}/`);
  await page.getByLabel('Email', { exact: true }).fill(email);
  await page.getByLabel('Password', { exact: true }).fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Fleet' }).waitFor();
}

/** Signs in on the dashboard with a bearer token (the admin token) and waits for the Fleet page. */
export async function signInWithToken(page: Page, url: string, token: string): Promise<void> {
  await page.goto(`${url}/`);
  await page.getByLabel('Admin token').fill(token);
  await page.getByRole('button', { name: 'Use token' }).click();
  await page.getByRole('heading', { name: 'Fleet' }).waitFor();
}

/** A page that starts signed in: the staff token is in localStorage before any script runs. */
export async function openSignedInPage(
  browser: Browser,
  token: string,
  options: BrowserContextOptions = {},
): Promise<Page> {
  const page = await openPage(browser, options);
  await page.context().addInitScript(`localStorage.setItem('kioskhub.token', ${JSON.stringify(token)})`);
  return page;
}

// In-page scripts are strings: the tests are type-checked for Node, without the DOM.
/** Marks the page; `notReloaded` still finding the mark afterwards means it was not reloaded. */
export async function markPage(page: Page): Promise<void> {
  await page.evaluate('window.__noReload = true');
}

export function notReloaded(page: Page): Promise<boolean> {
  return page.evaluate<boolean>('window.__noReload === true');
}

/** Whether an image has loaded: complete, with a width (a broken image has none). */
export function imageLoaded(img: Locator): Promise<boolean> {
  return img.evaluate((el) => {
    const image = el as unknown as { complete: boolean; naturalWidth: number };
    return image.complete && image.naturalWidth > 0;
  });
}
