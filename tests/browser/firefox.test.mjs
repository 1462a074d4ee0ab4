// The web app in real headless Firefox (Debian's firefox-esr, driven by
// puppeteer-core over WebDriver BiDi) against the same real pouchdb-server
// and imesd as app.test.mjs (setup.mjs): log in and out, search, enqueue and
// see it play with the progress moving, pause and resume, reorder, a second
// user (another Firefox context, phone-sized) seeing it live, settings and
// the lockout overlay, the keyboard, Listen here (<audio> playing), phone
// and desktop layouts (an admin's too) without horizontal overflow. No
// console error or uncaught exception in any page.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { couchRequest, waitFor } from '../lib/harness.mjs';
import { listen, toneFrom, RATE } from '../lib/live.mjs';
import { startImes, USERS } from './setup.mjs';
import { launchFirefox, newPage, login, ui, PHONE, DESKTOP } from './lib.mjs';
import {
  entryTitles, loungeOrder, searchShowsTheRightAlbums, keyboardWorks, enqueueAndSeeItPlay, changesShowLive,
  screensOverflowing, TABS,
} from './flows.mjs';

let env, browser, alice, bob, owner, speaker;
const pages = () => [alice, bob, owner].filter(Boolean);
const userDoc = async (name) => (await couchRequest(env.couch, 'GET', `/imes/user:${name}`, { user: 'admin' })).body;

before(async () => {
  [env, browser] = await Promise.all([startImes(), launchFirefox()]);
});

after(async () => {
  await speaker?.stop();
  await browser?.close();
  await env?.stop();
});

function noConsoleErrors() {
  for (const p of pages()) assert.deepEqual(p.errors, [], 'console errors');
}

test('Firefox: log in through imesd\'s /, log out, log in again', async () => {
  assert.match(await browser.version(), /firefox/i);
  alice = await newPage(browser);
  const a = ui(alice);
  await login(alice, env.imesdUrl, 'alice', USERS.alice.password);
  assert.equal(await a.text('#me'), 'alice');
  assert.match(a.url(), /\/imes\/_design\/imes\/index\.html/);
  assert.equal(await a.visible('.tabs a[data-tab=admin]'), false);
  await a.waitFor('body[data-live="1"]', { timeout: 10000 });
  await a.click('#logout');
  await a.until((u) => location.href === `${u}/`, env.imesdUrl, { timeout: 10000 });
  await a.waitFor('input[name=password]');
  await login(alice, env.imesdUrl, 'alice', USERS.alice.password);
  await a.waitFor('body[data-live="1"]', { timeout: 10000 });
  noConsoleErrors();
});

test('Firefox: search syntaxes and the keyboard (F1, /, Ctrl+F, typing anywhere)', async () => {
  await searchShowsTheRightAlbums(alice, env);
  await keyboardWorks(alice);
  noConsoleErrors();
});

test('Firefox: enqueue an album; it plays with the progress moving; pause and resume', async () => {
  const a = ui(alice);
  speaker = listen(env.urls.speaker.mp3); // the room plays while one of its devices is connected
  await enqueueAndSeeItPlay(alice);
  const m = speaker.mark();
  await speaker.until(m + RATE);
  assert.ok(toneFrom(speaker.samples(), Math.max(0, m - RATE), [440]) >= 0, 'Concert A is heard');
  await a.click('#now-pause');
  await a.waitFor('#now[data-state=paused]');
  await a.click('#now-pause');
  await a.waitFor('#now[data-state=playing]');
  noConsoleErrors();
});

test('Firefox: reorder with Alt+↑', async () => {
  const a = ui(alice);
  await a.click('#entries li[data-title="Six Sixty"]');
  await a.press('Alt+ArrowUp');
  await a.until(() => document.querySelectorAll('#entries li[data-id]')[1]?.dataset.title === 'Six Sixty');
  assert.deepEqual(await entryTitles(alice), ['Concert A', 'Six Sixty', 'Five Fifty']);
  await waitFor(async () => (await loungeOrder(env))[1] === 'Six Sixty', { what: 'the new order in CouchDB' });
  assert.deepEqual(await loungeOrder(env), ['Concert A', 'Six Sixty', 'Five Fifty']);
  noConsoleErrors();
});

test('Firefox: a second user in another context (phone-sized) sees changes live', async () => {
  bob = await newPage(browser, { viewport: PHONE });
  await login(bob, env.imesdUrl, 'bob', USERS.bob.password);
  assert.deepEqual(await entryTitles(alice), ['Concert A', 'Six Sixty', 'Five Fifty']);
  await changesShowLive(alice, bob);
  noConsoleErrors();
});

test('Firefox: settings, and the lockout overlay with Ctrl+L', async () => {
  const a = ui(alice);
  await a.click('.tabs a[data-tab=settings]');
  await a.fill('#set-timeout', '60');
  await a.press('Tab');
  await waitFor(async () => (await userDoc('alice')).session_timeout === 60, { what: 'session_timeout 60' });
  // Ctrl+L: the overlay, and alice is away in CouchDB
  await a.press('Control+l');
  await a.waitFor('#lockout:not([hidden])');
  await waitFor(async () => (await userDoc('alice')).lockout === true, { what: 'lockout true' });
  await a.click('#unlock');
  await a.waitFor('#lockout', { hidden: true });
  await waitFor(async () => (await userDoc('alice')).lockout === false, { what: 'lockout false' });
  // the settings checkbox does the same
  await a.click('#set-lockout');
  await a.waitFor('#lockout:not([hidden])');
  await a.press('Control+l');
  await a.waitFor('#lockout', { hidden: true });
  await waitFor(async () => (await userDoc('alice')).lockout === false, { what: 'lockout false again' });
  assert.equal(await a.evaluate(() => document.querySelector('#set-lockout').checked), false);
  noConsoleErrors();
});

test('Firefox: Listen here plays the room in the browser (<audio>)', async () => {
  const a = ui(alice);
  await a.click('.tabs a[data-tab=rooms]');
  await a.click('#listen');
  await a.waitFor('#listen-state[data-state=playing]', { timeout: 15000 });
  const t0 = await a.evaluate(() => document.querySelector('#audio').currentTime);
  await a.until((t) => document.querySelector('#audio').currentTime > t + 1, t0, { timeout: 10000 });
  await a.click('#listen');
  await a.until(() => document.querySelector('#audio').paused);
  noConsoleErrors();
});

test('Firefox: phone and desktop layouts have no horizontal overflow on any screen', async () => {
  assert.deepEqual(await screensOverflowing(bob), [], 'phone (390 px)');
  assert.deepEqual(await screensOverflowing(alice), [], 'desktop (1440 px)');
  owner = await newPage(browser);
  await login(owner, env.imesdUrl, 'owner', USERS.owner.password);
  assert.deepEqual(await screensOverflowing(owner, [...TABS, 'admin']), [], 'an admin\'s, desktop');
  await ui(owner).viewport(PHONE);
  assert.deepEqual(await screensOverflowing(owner, [...TABS, 'admin']), [], 'an admin\'s, phone-sized');
  await ui(alice).viewport(PHONE);
  assert.deepEqual(await screensOverflowing(alice), [], 'desktop window made phone-sized');
  await ui(alice).viewport(DESKTOP);
  noConsoleErrors();
});
