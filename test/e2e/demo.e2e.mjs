// Browser end-to-end test of the sessiongate demo page, with the system
// Chromium driven by playwright-core.
//
//   BASE_URL=http://127.0.0.1:3000 DEMO_EMAIL=... DEMO_PASSWORD=... node demo.e2e.mjs
//
// Against a running `sessiongate serve --demo`: page 1 signs in, sees the
// socket connected, sends itself a test incident and sees it in the feed;
// page 2 (same browser context, so the same session cookie) logs out; page 1
// then shows the session-expired banner. SCREENSHOTS=1 saves
// docs/screenshots/demo-connected.png and demo-expired.png. Prints one
// "e2e: PASS" or "e2e: FAIL" line; exits 0 only on success.

import { mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const BASE_URL = process.env.BASE_URL ?? 'http://127.0.0.1:3000';
const DEMO_EMAIL = process.env.DEMO_EMAIL;
const DEMO_PASSWORD = process.env.DEMO_PASSWORD;
const SCREENSHOTS = process.env.SCREENSHOTS === '1';
const STEP_TIMEOUT_MS = Number(process.env.E2E_STEP_TIMEOUT_MS ?? 15_000);
const TOTAL_TIMEOUT_MS = Number(process.env.E2E_TIMEOUT_MS ?? 120_000);
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';

const here = dirname(fileURLToPath(import.meta.url));
const screenshotDir = resolve(here, '../../docs/screenshots');
const EXPIRED_REASONS = ['revoked', 'expired', 'logged_out'];

let step = 'start';
const started = Date.now();
const pageErrors = [];

function fail(message) {
  const ms = Date.now() - started;
  console.error(`e2e: FAIL at "${step}" after ${ms} ms: ${message}`);
  for (const e of pageErrors.slice(-10)) console.error(`  page: ${e}`);
}

if (!DEMO_EMAIL || !DEMO_PASSWORD) {
  step = 'configuration';
  fail('set DEMO_EMAIL and DEMO_PASSWORD (the demo account of `sessiongate serve --demo`)');
  process.exit(2);
}

// A hard stop whatever hangs (browser launch, a stuck page).
const watchdog = setTimeout(() => {
  fail(`the whole run took more than ${TOTAL_TIMEOUT_MS} ms`);
  process.exit(1);
}, TOTAL_TIMEOUT_MS);

/** Runs one named step; the name appears in the FAIL line. */
async function run(name, fn) {
  step = name;
  const t0 = Date.now();
  const result = await fn();
  console.log(`  ok  ${name} (${Date.now() - t0} ms)`);
  return result;
}

function watch(page, label) {
  page.on('pageerror', (err) => pageErrors.push(`${label}: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error') pageErrors.push(`${label} console: ${msg.text()}`);
  });
}

/** Opens the demo page and waits until its script has run. */
async function openDemo(page) {
  const res = await page.goto('/', { waitUntil: 'domcontentloaded' });
  if (!res || res.status() !== 200) throw new Error(`GET / answered ${res?.status()}`);
  await page.locator('body[data-ready="true"]').waitFor({ state: 'attached' });
  const notice = page.locator('#notice');
  if (await notice.isVisible()) {
    const text = (await notice.textContent())?.trim();
    if (text?.includes('client library')) throw new Error(`the page says: ${text}`);
  }
}

async function screenshot(page, name) {
  if (!SCREENSHOTS) return;
  await mkdir(screenshotDir, { recursive: true });
  const path = join(screenshotDir, name);
  await page.screenshot({ path, fullPage: true });
  console.log(`      screenshot ${path}`);
}

let browser;
let failedPage;
let exitCode = 1;
try {
  browser = await run('launch chromium', () =>
    chromium.launch({
      executablePath: CHROMIUM,
      timeout: 30_000,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    }),
  );
  const context = await browser.newContext({ baseURL: BASE_URL, viewport: { width: 1100, height: 760 } });
  context.setDefaultTimeout(STEP_TIMEOUT_MS);

  const page1 = await context.newPage();
  failedPage = page1;
  watch(page1, 'page 1');

  await run('page 1: open the demo page', () => openDemo(page1));

  await run('page 1: sign in', async () => {
    await page1.locator('#login-form').waitFor();
    await page1.locator('#email').fill(DEMO_EMAIL);
    await page1.locator('#password').fill(DEMO_PASSWORD);
    await page1.locator('#login-form button[type="submit"]').click();
    await Promise.race([
      page1.locator('#session-section').waitFor({ state: 'visible' }),
      page1
        .locator('#login-error')
        .waitFor({ state: 'visible' })
        .then(async () => {
          throw new Error(`login refused: ${await page1.locator('#login-error').textContent()}`);
        }),
    ]);
  });

  await run('page 1: socket connected', async () => {
    await page1.locator('#status[data-state="connected"]').waitFor();
    const text = (await page1.locator('#status').textContent())?.trim();
    if (text !== 'connected') throw new Error(`#status shows "${text}"`);
  });

  await run('page 1: send a test incident and see it in the feed', async () => {
    const before = await page1.locator('#feed [data-kind="incident"]').count();
    await page1.locator('#send-incident').click();
    await page1.locator('#feed [data-kind="incident"]').nth(before).waitFor();
    await screenshot(page1, 'demo-connected.png');
  });

  const page2 = await context.newPage();
  watch(page2, 'page 2');
  await run('page 2: open the page with the same session and log out', async () => {
    failedPage = page2;
    await openDemo(page2);
    await page2.locator('#logout').waitFor({ state: 'visible' });
    await page2.locator('#logout').click();
    await page2.locator('#login-form').waitFor({ state: 'visible' });
    failedPage = page1;
  });

  const reason = await run('page 1: session-expired banner', async () => {
    await page1.bringToFront();
    await page1.locator('#expired-banner').waitFor({ state: 'visible' });
    const r = (await page1.locator('#expired-reason').textContent())?.trim() ?? '';
    if (!EXPIRED_REASONS.includes(r)) throw new Error(`banner reason "${r}", want one of ${EXPIRED_REASONS}`);
    const banner = (await page1.locator('#expired-banner').textContent())?.replace(/\s+/g, ' ').trim();
    if (!banner?.includes(`Your session has expired (${r})`)) throw new Error(`banner text "${banner}"`);
    const state = await page1.locator('#status').getAttribute('data-state');
    if (state !== 'expired') throw new Error(`#status is "${state}", want expired`);
    await screenshot(page1, 'demo-expired.png');
    return r;
  });

  exitCode = 0;
  console.log(`e2e: PASS (${Date.now() - started} ms; session ended with reason "${reason}") against ${BASE_URL}`);
} catch (err) {
  fail(err instanceof Error ? err.message.split('\n')[0] : String(err));
  if (failedPage && !failedPage.isClosed()) {
    const path = join(tmpdir(), 'sessiongate-e2e-failure.png');
    try {
      await failedPage.screenshot({ path, fullPage: true, timeout: 5000 });
      console.error(`  failure screenshot: ${path}`);
    } catch {
      // The page is gone; the FAIL line says enough.
    }
  }
} finally {
  await browser?.close().catch(() => {});
  clearTimeout(watchdog);
}
process.exit(exitCode);
