// Browser helpers: Debian's Chromium driven by playwright-core, pages that
// collect every console error, and logging in the way a person does.
import { chromium } from 'playwright-core';

export const CHROMIUM = process.env.IMES_CHROMIUM || '/usr/bin/chromium';

export function launch() {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--autoplay-policy=no-user-gesture-required'],
  });
}

/** A new page whose console errors and uncaught exceptions go to page.errors. */
export async function newPage(browser, { viewport = { width: 1440, height: 900 }, ...opts } = {}) {
  const ctx = await browser.newContext({ viewport, ...opts });
  const page = await ctx.newPage();
  page.errors = [];
  page.on('console', (m) => {
    if (m.type() === 'error') page.errors.push(`console: ${m.text()} (${m.location()?.url ?? ''})`);
  });
  page.on('pageerror', (e) => page.errors.push(`exception: ${e.message}`));
  page.ctx = ctx;
  return page;
}

/** Logs in through imesd's / (the login page a logged-out browser gets),
 * which goes on to the app; resolves once the app is ready. */
export async function login(page, imesdUrl, name, password) {
  await page.goto(`${imesdUrl}/`);
  await page.fill('input[name=name]', name);
  await page.fill('input[name=password]', password);
  await page.click('form button');
  await page.waitForSelector('body[data-ready="1"]', { timeout: 15000 });
}
