// Screenshots of every screen of the web app at phone (390x844) and desktop
// (1440x900) size, into docs/screenshots/ (committed, shown in README.md).
//
//   IMES_BUILD_DIR=build node tests/browser/screenshots.mjs
// Runs its own pouchdb-server and imesd (setup.mjs) with the test library,
// a room playing (ffmpeg listening to its device), an admin logged in.
import fs from 'node:fs';
import path from 'node:path';
import { ROOT } from '../lib/harness.mjs';
import { listen } from '../lib/live.mjs';
import { startImes, USERS } from './setup.mjs';
import { launch, newPage, login } from './lib.mjs';

const OUT = path.join(ROOT, 'docs', 'screenshots');
fs.mkdirSync(OUT, { recursive: true });
const SIZES = { phone: { width: 390, height: 844 }, desktop: { width: 1440, height: 900 } };

const env = await startImes();
const browser = await launch();
const speaker = listen(env.urls.speaker.mp3);
const errors = [];
try {
  // something in the channel and a user playlist
  await env.imes(['enqueue', 'lounge', 'Concert Pitch']);
  await env.imes(['enqueue', 'lounge', 'Night Music']);
  for (const [size, viewport] of Object.entries(SIZES)) {
    const page = await newPage(browser, { viewport, colorScheme: 'dark', isMobile: size === 'phone', hasTouch: size === 'phone', deviceScaleFactor: 1 });
    const shot = async (name) => {
      await page.waitForTimeout(400);
      await page.screenshot({ path: path.join(OUT, `${name}-${size}.png`) });
    };
    await page.goto(`${env.imesdUrl}/`);
    await page.waitForSelector('form');
    await shot('login');
    await login(page, env.imesdUrl, 'owner', USERS.owner.password);
    await page.waitForSelector('#now[data-state=playing]', { timeout: 15000 });
    await page.fill('#q', 'date:1970~1999');
    await page.waitForSelector('#results article.album');
    await page.waitForFunction(() => [...document.querySelectorAll('#results img.cover')].every((i) => !i.dataset.src || i.src.endsWith(i.dataset.src.replace(/^.*\//, '')) && i.complete));
    await shot('search');
    await page.evaluate(() => document.querySelector('#results li.track .info-btn').click());
    await page.waitForSelector('#info:not([hidden])');
    await shot('track-info');
    await page.keyboard.press('Escape');
    await page.click('.tabs a[data-tab=playlist]');
    await page.waitForSelector('#entries li.current');
    await page.waitForTimeout(1200);
    await shot('playlist');
    await page.click('.tabs a[data-tab=rooms]');
    await page.waitForSelector('#room-devices li[data-device]');
    await page.click('#listen');
    await page.waitForSelector('#listen-state[data-state=playing]', { timeout: 15000 });
    await page.waitForSelector('#room-devices li[data-device=web-owner] .dot.on', { timeout: 10000 });
    await shot('rooms');
    await page.click('.tabs a[data-tab=settings]');
    await shot('settings');
    await page.click('.tabs a[data-tab=admin]');
    await page.waitForSelector('#adm-devices code.url');
    await shot('admin');
    await page.keyboard.press('F1');
    await page.waitForSelector('#help:not([hidden])');
    await shot('help');
    await page.keyboard.press('Escape');
    await page.keyboard.press('Control+l');
    await page.waitForSelector('#lockout:not([hidden])');
    await shot('lockout');
    await page.click('#unlock');
    await page.waitForSelector('#lockout', { state: 'hidden' });
    errors.push(...page.errors);
    await page.ctx.close();
  }
} finally {
  await speaker.stop();
  await browser.close();
  await env.stop();
}
if (errors.length) {
  process.stderr.write(`console errors:\n${errors.join('\n')}\n`);
  process.exit(1);
}
process.stdout.write(`screenshots in ${OUT}\n`);
