// Browser helpers: Debian's Chromium driven by playwright-core, Debian's
// Firefox ESR driven by puppeteer-core over WebDriver BiDi (playwright can
// drive only its own patched Firefox), pages that collect every console
// error and uncaught exception, and a small driver-neutral layer (ui()) so
// the same flows run in both browsers.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import puppeteer from 'puppeteer-core';

export const CHROMIUM = process.env.IMES_CHROMIUM || '/usr/bin/chromium';
export const FIREFOX = process.env.IMES_FIREFOX || '/usr/bin/firefox-esr';
export const DESKTOP = { width: 1440, height: 900 };
export const PHONE = { width: 390, height: 844 };

export function launch() {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--autoplay-policy=no-user-gesture-required'],
  });
}

/** Firefox plays sound only to a real output (Chromium fakes one), and a
 * machine without a sound card has none ("Failed to decode media"): its
 * default ALSA device here is ALSA's null device, through a HOME of its own. */
export async function launchFirefox() {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'imes-firefox-'));
  fs.writeFileSync(path.join(home, '.asoundrc'), 'pcm.!default { type null }\n');
  const browser = await puppeteer.launch({
    browser: 'firefox', executablePath: FIREFOX, headless: true,
    env: { ...process.env, HOME: home }, extraPrefsFirefox: { 'media.cubeb.backend': 'alsa' },
  });
  browser.once('disconnected', () => fs.rmSync(home, { recursive: true, force: true }));
  return browser;
}

let focused = null; // the Firefox page whose window is in front

/**
 * A new page in a new context (its own cookies: another user) whose console
 * errors and uncaught exceptions go to page.errors. browser is either
 * launch()'s or launchFirefox()'s; opts beyond viewport are playwright's.
 */
export async function newPage(browser, { viewport = DESKTOP, ...opts } = {}) {
  const playwright = typeof browser.newContext === 'function';
  const ctx = playwright ? await browser.newContext({ viewport, ...opts }) : await browser.createBrowserContext();
  // Firefox: each page in a window of its own, as two people's would be (a
  // background tab has its timers and animation frames throttled)
  const page = playwright ? await ctx.newPage() : await ctx.newPage({ type: 'window' });
  if (!playwright) {
    await page.setViewport(viewport);
    focused = page; // a new window comes to the front
  }
  page.errors = [];
  page.on('console', (m) => {
    if (m.type() === 'error') page.errors.push(`console: ${m.text()} (${m.location()?.url ?? ''})`);
  });
  page.on('pageerror', (e) => page.errors.push(`exception: ${e.message}`));
  page.ctx = ctx;
  return page;
}

/**
 * The same few actions for a playwright or a puppeteer page, the way a
 * person does them (real clicks and keys). Selectors are CSS.
 */
export function ui(page) {
  if (page.ui) return page.ui;
  const playwright = typeof page.fill === 'function';
  const common = {
    page,
    goto: (url) => page.goto(url),
    url: () => page.url(),
    click: (sel) => page.click(sel),
    evaluate: (fn, arg) => page.evaluate(fn, arg),
    all: (sel, fn) => page.$$eval(sel, fn),
    text: (sel) => page.$eval(sel, (e) => e.textContent),
    attr: (sel, name) => page.$eval(sel, (e, n) => e.getAttribute(n), name),
    value: (sel) => page.$eval(sel, (e) => e.value),
    /** Whether sel is rendered (exists and takes up room). */
    visible: (sel) => page.evaluate((s) => {
      const e = document.querySelector(s);
      return !!e && e.getClientRects().length > 0 && getComputedStyle(e).visibility !== 'hidden';
    }, sel),
  };
  if (playwright) {
    page.ui = {
      ...common,
      fill: (sel, v) => page.fill(sel, v),
      select: (sel, v) => page.selectOption(sel, v),
      press: (keys) => page.keyboard.press(keys),
      type: (text) => page.keyboard.type(text),
      clickAt: (sel, x, y) => page.locator(sel).click({ position: { x, y } }),
      waitFor: (sel, { hidden = false, timeout = 5000 } = {}) =>
        page.waitForSelector(sel, { state: hidden ? 'hidden' : 'visible', timeout }),
      until: (fn, arg, { timeout = 5000 } = {}) => page.waitForFunction(fn, arg, { timeout }),
      viewport: (v) => page.setViewportSize(v),
    };
  } else {
    // Firefox gives focus (and so change and blur events) to one window at
    // a time: act in a page's window only after bringing it to the front,
    // as a person switching windows does.
    const front = async () => {
      if (focused === page) return;
      await page.bringToFront();
      focused = page;
    };
    page.ui = {
      ...common,
      async click(sel) {
        await front();
        await page.click(sel);
      },
      /** As a person: select what the field holds, type over it (or delete it). */
      async fill(sel, v) {
        await front();
        await page.$eval(sel, (e) => { e.focus(); e.select(); });
        if (v === '') await page.keyboard.press('Backspace');
        else await page.keyboard.type(v);
      },
      async select(sel, v) {
        await front();
        await page.select(sel, v);
      },
      /** 'Control+f', 'Alt+ArrowUp', 'F1': modifiers held around the key. */
      async press(keys) {
        await front();
        const parts = keys.split('+');
        const key = parts.pop() || '+';
        for (const m of parts) await page.keyboard.down(m);
        await page.keyboard.press(key);
        for (const m of parts.reverse()) await page.keyboard.up(m);
      },
      async type(text) {
        await front();
        await page.keyboard.type(text);
      },
      async clickAt(sel, x, y) {
        await front();
        const box = await (await page.$(sel)).boundingBox();
        await page.mouse.click(box.x + x, box.y + y);
      },
      waitFor: (sel, { hidden = false, timeout = 5000 } = {}) =>
        page.waitForSelector(sel, { visible: !hidden, hidden, timeout }),
      until: (fn, arg, { timeout = 5000 } = {}) => page.waitForFunction(fn, { timeout, polling: 100 }, arg),
      viewport: (v) => page.setViewport(v),
    };
  }
  return page.ui;
}

/** Logs in through imesd's / (the login page a logged-out browser gets),
 * which goes on to the app; resolves once the app is ready. */
export async function login(page, imesdUrl, name, password) {
  const u = ui(page);
  await u.goto(`${imesdUrl}/`);
  await u.fill('input[name=name]', name);
  await u.fill('input[name=password]', password);
  await u.click('form button');
  await u.waitFor('body[data-ready="1"]', { timeout: 15000 });
}
