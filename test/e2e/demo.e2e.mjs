// Browser end-to-end test of the sessiongate demo page, with the system
// Chromium driven by playwright-core.
//
//   BASE_URL=http://127.0.0.1:3000 DEMO_EMAIL=... DEMO_PASSWORD=... node demo.e2e.mjs
//
// Against a running `sessiongate serve --demo`: page 1 signs in, sees the
// socket connected, sends itself a test incident and sees it in the feed;
// page 2 (same browser context, so the same session cookie) logs out; page 1
// then shows the session-expired banner.
//
// Then the incident room, with one browser context (one session) per user,
// all signed in with DEMO_PASSWORD: alice (DEMO_EMAIL) and carol
// (WATCHER_EMAIL) watch incident:7 and each sees the other among its
// watchers; an update alice posts to the room arrives on both pages; alice
// acknowledges the incident and sees the application's reply; bob
// (OUTSIDER_EMAIL) is refused with a clear message; carol closes her page
// and alice sees her leave (after the server's PRESENCE_LEAVE_DELAY: run it
// with a short one). E2E_PRESENCE=0 leaves the watcher steps out, for a
// server without presence.
//
// SCREENSHOTS=1 saves docs/screenshots/demo-connected.png, demo-expired.png,
// demo-incident.png and demo-forbidden.png. Prints one "e2e: PASS" or
// "e2e: FAIL" line; exits 0 only on success.

import { mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const BASE_URL = process.env.BASE_URL ?? 'http://127.0.0.1:3000';
const DEMO_EMAIL = process.env.DEMO_EMAIL;
const DEMO_PASSWORD = process.env.DEMO_PASSWORD;
const WATCHER_EMAIL = process.env.WATCHER_EMAIL ?? 'carol@example.com';
const OUTSIDER_EMAIL = process.env.OUTSIDER_EMAIL ?? 'bob@example.com';
const ROOM = process.env.INCIDENT_ROOM ?? 'incident:7';
const PRESENCE = process.env.E2E_PRESENCE !== '0';
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

/** Signs page in as email and waits for the signed-in view. */
async function signIn(page, email) {
  await page.locator('#login-form').waitFor();
  await page.locator('#email').fill(email);
  await page.locator('#password').fill(DEMO_PASSWORD);
  await page.locator('#login-form button[type="submit"]').click();
  await Promise.race([
    page.locator('#session-section').waitFor({ state: 'visible' }),
    page
      .locator('#login-error')
      .waitFor({ state: 'visible' })
      .then(async () => {
        throw new Error(`login of ${email} refused: ${await page.locator('#login-error').textContent()}`);
      }),
  ]);
}

/** Waits until #status says connected. */
async function connected(page) {
  await page.locator('#status[data-state="connected"]').waitFor();
  const text = (await page.locator('#status').textContent())?.trim();
  if (text !== 'connected') throw new Error(`#status shows "${text}"`);
}

/** Opens the demo in a new browser context (a session of its own) as email; returns the page and the user id. */
async function userPage(browser, label, email) {
  const context = await browser.newContext({ baseURL: BASE_URL, viewport: { width: 1100, height: 900 } });
  context.setDefaultTimeout(STEP_TIMEOUT_MS);
  const page = await context.newPage();
  watch(page, label);
  await openDemo(page);
  await signIn(page, email);
  await connected(page);
  const id = (await page.locator('#user-id').textContent())?.trim();
  if (!id) throw new Error(`${label}: no user id shown`);
  return { page, id, context };
}

/** Asks to watch ROOM and waits for the answer, a status or an error. */
async function watchRoom(page) {
  await page.locator('#incident-room').fill(ROOM);
  await page.locator('#incident-open').click();
  await Promise.race([
    page.locator('#incident-status', { hasText: `watching ${ROOM}` }).waitFor(),
    page.locator('#incident-error').waitFor({ state: 'visible' }),
  ]);
}

/** Waits until page's watchers list holds exactly ids, and its count says so. */
async function watchersAre(page, ids) {
  const want = [...ids].sort().join(',');
  await page.waitForFunction(
    ({ want, n }) => {
      const got = [...document.querySelectorAll('#watchers [data-user]')].map((li) => li.dataset.user);
      return got.sort().join(',') === want && document.getElementById('watcher-count')?.textContent === String(n);
    },
    { want, n: ids.length },
  );
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

  await run('page 1: sign in', () => signIn(page1, DEMO_EMAIL));

  await run('page 1: socket connected', () => connected(page1));

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

  const alice = await run(`alice: sign in anew (${DEMO_EMAIL})`, () => userPage(browser, 'alice', DEMO_EMAIL));
  failedPage = alice.page;
  await run(`alice: watch ${ROOM}`, async () => {
    await watchRoom(alice.page);
    if (await alice.page.locator('#incident-error').isVisible())
      throw new Error(`refused: ${await alice.page.locator('#incident-error').textContent()}`);
  });
  const carol = await run(`carol: sign in (${WATCHER_EMAIL}) and watch ${ROOM}`, async () => {
    const u = await userPage(browser, 'carol', WATCHER_EMAIL);
    failedPage = u.page;
    await watchRoom(u.page);
    if (await u.page.locator('#incident-error').isVisible())
      throw new Error(`refused: ${await u.page.locator('#incident-error').textContent()}`);
    return u;
  });

  if (PRESENCE) {
    await run('alice and carol: each sees both watchers', async () => {
      failedPage = alice.page;
      await watchersAre(alice.page, [alice.id, carol.id]);
      failedPage = carol.page;
      await watchersAre(carol.page, [alice.id, carol.id]);
      const you = await carol.page.locator(`#watchers [data-user="${carol.id}"]`).textContent();
      if (!you?.includes(WATCHER_EMAIL) || !you.includes('(you)')) throw new Error(`carol's own entry reads "${you}"`);
      // Named by email (GET /api/demo/users), which may come after the list.
      await alice.page.locator(`#watchers [data-user="${carol.id}"]`, { hasText: WATCHER_EMAIL }).waitFor();
    });
  } else {
    console.log('      presence steps left out (E2E_PRESENCE=0)');
  }

  await run('alice: post an update; it arrives on both pages', async () => {
    failedPage = alice.page;
    const before = await Promise.all([alice.page, carol.page].map((p) => p.locator('#room-events [data-kind="incident"]').count()));
    await alice.page.locator('#incident-post').click();
    await alice.page.locator('#room-events [data-kind="incident"]').nth(before[0]).waitFor();
    failedPage = carol.page;
    const item = carol.page.locator('#room-events [data-kind="incident"]').nth(before[1]);
    await item.waitFor();
    const text = await item.textContent();
    if (!text?.includes(ROOM) || !text.includes(DEMO_EMAIL)) throw new Error(`carol's room event reads "${text}"`);
    // The room's incident is not the user's own: it stays out of the feed.
    if ((await carol.page.locator('#feed [data-kind="incident"]').count()) !== 0) throw new Error("the room's update is in carol's own feed too");
  });

  await run('alice: acknowledge; the application answers', async () => {
    failedPage = alice.page;
    await alice.page.locator('#incident-ack').click();
    await alice.page.locator('#incident-ack-result', { hasText: `acknowledged by ${DEMO_EMAIL}` }).waitFor();
    await screenshot(alice.page, 'demo-incident.png');
  });

  await run(`bob: sign in (${OUTSIDER_EMAIL}); watching ${ROOM} is refused`, async () => {
    const bob = await userPage(browser, 'bob', OUTSIDER_EMAIL);
    failedPage = bob.page;
    await watchRoom(bob.page);
    const want = `You are not allowed to watch ${ROOM} (FORBIDDEN)`;
    const got = (await bob.page.locator('#incident-error').textContent())?.trim();
    if (got !== want) throw new Error(`#incident-error reads "${got}", want "${want}"`);
    if (await bob.page.locator('#incident-body').isVisible()) throw new Error('the room is shown to bob');
    await screenshot(bob.page, 'demo-forbidden.png');
    await bob.context.close();
  });

  if (PRESENCE) {
    await run('carol closes her page; alice sees her leave', async () => {
      await carol.context.close();
      failedPage = alice.page;
      await watchersAre(alice.page, [alice.id]);
    });
  }

  exitCode = 0;
  console.log(`e2e: PASS (${Date.now() - started} ms; session ended with reason "${reason}"; presence ${PRESENCE ? 'checked' : 'left out'}) against ${BASE_URL}`);
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
