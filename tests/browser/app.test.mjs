// The web app in real headless Chromium against a real pouchdb-server and
// imesd (tests/browser/setup.mjs): log in, search with the query syntax,
// enqueue and hear it start (ffmpeg on the room's device stream), progress,
// pause/resume, reorder by keys and by dragging, a second user seeing it
// live, lockout silencing the room, an admin's new device streaming
// (ffprobe), and a Fauxton-style edit of a channel document taking effect in
// imesd and in the open app. No page may log a console error.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { couchRequest, waitFor } from '../lib/harness.mjs';
import { listen, silenceFrom, toneFrom, RATE } from '../lib/live.mjs';
import { startImes, USERS } from './setup.mjs';
import { launch, newPage, login } from './lib.mjs';
import {
  albumsShown, entryTitles, loungeOrder, searchShowsTheRightAlbums, keyboardWorks, screensOverflowing, changesShowLive,
  enqueueAndSeeItPlay,
} from './flows.mjs';

let env, browser, alice, bob, owner, speaker;
const pages = () => [alice, bob, owner].filter(Boolean);

before(async () => {
  env = await startImes();
  browser = await launch();
});

after(async () => {
  await speaker?.stop();
  await browser?.close();
  await env?.stop();
});

function noConsoleErrors() {
  for (const p of pages()) assert.deepEqual(p.errors, [], 'console errors');
}

const couchOrder = () => loungeOrder(env);

test('log in through imesd\'s / and land in the app', async () => {
  alice = await newPage(browser);
  await login(alice, env.imesdUrl, 'alice', USERS.alice.password);
  assert.equal(await alice.textContent('#me'), 'alice');
  assert.match(alice.url(), /\/imes\/_design\/imes\/index\.html/);
  // members see no admin screen
  assert.equal(await alice.isVisible('.tabs a[data-tab=admin]'), false);
  // live: the events connection is open
  await alice.waitForSelector('body[data-live="1"]', { timeout: 10000 });
  noConsoleErrors();
});

test('search: words, field prefixes, exact tags, dates and ranges, paths, MusicBrainz ids, combined', async () => {
  await searchShowsTheRightAlbums(alice, env);
  // disc and track order, durations, the ReplayGain mark
  await albumsShown(alice, 'night music');
  const night = await alice.$$eval('#results article.album li', (els) => els.map((e) => e.textContent));
  assert.match(night[0], /Disc 1/);
  assert.match(night[1], /Eight Eighty/);
  assert.match(night[2], /Disc 2/);
  await albumsShown(alice, 'low end');
  assert.equal(await alice.locator('#results .norg').count(), 2, 'Low End has no ReplayGain');
  await albumsShown(alice, 'sine');
  assert.equal(await alice.locator('#results .norg').count(), 0);
  assert.match(await alice.textContent('#results li.track .dur'), /^0:08$/);
  // the track info view
  await alice.click('#results li.track .info-btn');
  await alice.waitForSelector('#info:not([hidden])');
  const info = await alice.textContent('#info-body');
  assert.match(info, /musicbrainz_albumid/);
  assert.match(info, /track -3\.5 dB/);
  await alice.keyboard.press('Escape');
  await alice.waitForSelector('#info', { state: 'hidden' });
  // keyboard: F1 help, / clears, Ctrl+F focuses the filter, typing anywhere searches
  await keyboardWorks(alice);
  noConsoleErrors();
});

test('enqueue an album; it plays in the room, the progress moves; pause and resume', async () => {
  speaker = listen(env.urls.speaker.mp3);
  await enqueueAndSeeItPlay(alice);
  // heard: 440 Hz on the device
  const m = speaker.mark();
  await speaker.until(m + RATE);
  assert.ok(toneFrom(speaker.samples(), Math.max(0, m - RATE), [440]) >= 0, 'Concert A is heard');

  await alice.click('#now-pause');
  await alice.waitForSelector('#now[data-state=paused]', { timeout: 5000 });
  const m2 = speaker.mark();
  await speaker.until(m2 + 2 * RATE);
  assert.ok(silenceFrom(speaker.samples(), m2) >= 0, 'paused: silence');
  await alice.click('#now-pause');
  await alice.waitForSelector('#now[data-state=playing]', { timeout: 5000 });
  noConsoleErrors();
});

test('reorder with keys and by dragging', async () => {
  const third = alice.locator('#entries li[data-id]').nth(2);
  await third.click();
  await third.focus();
  await alice.keyboard.press('Alt+ArrowUp');
  await alice.waitForFunction(() => document.querySelectorAll('#entries li[data-id]')[1]?.dataset.title === 'Six Sixty');
  assert.deepEqual(await entryTitles(alice), ['Concert A', 'Six Sixty', 'Five Fifty']);
  assert.deepEqual(await couchOrder(), ['Concert A', 'Six Sixty', 'Five Fifty']);
  // drag Five Fifty (last) before Six Sixty
  await alice.dragAndDrop('#entries li[data-title="Five Fifty"]', '#entries li[data-title="Six Sixty"]');
  await alice.waitForFunction(() => document.querySelectorAll('#entries li[data-id]')[1]?.dataset.title === 'Five Fifty');
  assert.deepEqual(await couchOrder(), ['Concert A', 'Five Fifty', 'Six Sixty']);
  noConsoleErrors();
});

test('lockout (Ctrl+L) silences the room\'s stream, with an overlay; unlocking brings it back', async () => {
  await alice.keyboard.press('Control+l');
  await alice.waitForSelector('#lockout:not([hidden])');
  const m = speaker.mark();
  await speaker.until(m + 3 * RATE);
  const at = silenceFrom(speaker.samples(), m, { holdMs: 300 });
  assert.ok(at >= 0, 'silence after lockout');
  assert.ok((at - m) / RATE < 3, `silent after ${(at - m) / RATE} s`);
  const u = await couchRequest(env.couch, 'GET', '/imes/user:alice', { user: 'admin' });
  assert.equal(u.body.lockout, true);
  await alice.click('#unlock');
  await alice.waitForSelector('#lockout', { state: 'hidden' });
  const m2 = speaker.mark();
  await speaker.until(m2 + 3 * RATE);
  assert.ok(toneFrom(speaker.samples(), m2, [440, 550, 660]) >= 0, 'heard again after unlocking');
  noConsoleErrors();
});

test('a second user (another browser context) sees changes live', async () => {
  bob = await newPage(browser, { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  await login(bob, env.imesdUrl, 'bob', USERS.bob.password);
  await changesShowLive(alice, bob);
  assert.deepEqual(await screensOverflowing(bob), [], 'no horizontal scrolling on a phone');
  noConsoleErrors();
});

test('a "now playing" notification with the cover when the track changes (Skip)', async () => {
  await alice.ctx.grantPermissions(['notifications']);
  await alice.evaluate(() => {
    window.shown = [];
    const Real = window.Notification;
    window.Notification = class extends Real {
      constructor(title, opts) { super(title, opts); window.shown.push({ title, ...opts }); }
    };
  });
  await alice.click('.tabs a[data-tab=settings]');
  await alice.check('#set-notify');
  await alice.click('.tabs a[data-tab=playlist]');
  const before = await alice.textContent('#now-title');
  await alice.click('#pl-skip');
  // (The tracks are short: one may also end by itself around the skip, so
  // the notification to check is the latest, for what plays now.)
  await alice.waitForFunction((t) => {
    const title = document.querySelector('#now-title').textContent;
    return title !== t && window.shown.at(-1)?.title === title;
  }, before, { timeout: 10000 });
  const n = await alice.evaluate(() => window.shown.at(-1));
  assert.equal(n.title, await alice.textContent('#now-title'));
  assert.match(n.body, /The Sine Waves/);
  assert.match(n.icon, /\/imes\/picture%3A[0-9a-f]{40}\/128\.jpg$/);
  noConsoleErrors();
});

test('play now; a user playlist: create, add to it, append it to the channel, delete it; settings', async () => {
  await alice.click('.tabs a[data-tab=playlist]');
  await alice.selectOption('#pl-select', 'c~lounge');
  await alice.click('#entries li[data-title="Six Sixty"] .play-now');
  await alice.waitForFunction(() => document.querySelector('#now-title').textContent === 'Six Sixty' &&
    document.querySelector('#entries li.current')?.dataset.title === 'Six Sixty', null, { timeout: 10000 });

  alice.once('dialog', (d) => d.accept('roadtrip'));
  await alice.click('#pl-new');
  await alice.waitForFunction(() => document.querySelector('#pl-select').value === 'u~alice~roadtrip');
  await alice.click('.tabs a[data-tab=search]');
  await alice.selectOption('#target', 'u~alice~roadtrip');
  await albumsShown(alice, 'low end');
  await alice.click('#results article.album .add-album');
  await alice.click('.tabs a[data-tab=playlist]');
  await alice.selectOption('#pl-select', 'u~alice~roadtrip');
  await alice.waitForFunction(() => document.querySelectorAll('#entries li[data-id]').length === 2);
  const r = await couchRequest(env.couch, 'GET', `/imes/_all_docs?startkey=${encodeURIComponent('"entry:u~alice~roadtrip:"')}&endkey=${encodeURIComponent('"entry:u~alice~roadtrip:\ufff0"')}`, { user: 'admin' });
  assert.equal(r.body.rows.length, 2);
  const before = (await couchOrder()).length;
  await alice.click('#pl-append');
  await waitFor(async () => (await couchOrder()).length === before + 2, { what: 'roadtrip appended to lounge' });
  assert.deepEqual((await couchOrder()).slice(-2), ['Low Hum', 'Three Thirty']);
  alice.once('dialog', (d) => d.accept());
  await alice.click('#pl-delete');
  await alice.waitForFunction(() => document.querySelector('#pl-select').value === 'c~lounge');
  await waitFor(async () => (await couchRequest(env.couch, 'GET', `/imes/_all_docs?startkey=${encodeURIComponent('"entry:u~alice~roadtrip:"')}&endkey=${encodeURIComponent('"entry:u~alice~roadtrip:\ufff0"')}`, { user: 'admin' })).body.rows.length === 0, { what: 'roadtrip deleted' });

  await alice.click('.tabs a[data-tab=settings]');
  await alice.fill('#set-timeout', '60');
  await alice.press('#set-timeout', 'Tab');
  await waitFor(async () => (await couchRequest(env.couch, 'GET', '/imes/user:alice', { user: 'admin' })).body.session_timeout === 60, { what: 'session_timeout 60' });
  noConsoleErrors();
});

function ffprobe(url) {
  return new Promise((resolve) => {
    const p = spawn('ffprobe', ['-v', 'error', '-rw_timeout', '5000000', '-show_entries', 'stream=codec_name,sample_rate,channels', '-of', 'json', url]);
    let out = '', err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    const t = setTimeout(() => p.kill('SIGKILL'), 20000);
    p.on('close', (code) => { clearTimeout(t); resolve({ code, out, err }); });
  });
}

test('an admin creates a device in a room; its stream URL plays (ffprobe)', async () => {
  owner = await newPage(browser);
  await login(owner, env.imesdUrl, 'owner', USERS.owner.password);
  await owner.click('.tabs a[data-tab=admin]');
  await owner.fill('#add-device input[name=name]', 'bedside');
  await owner.click('#add-device button');
  const row = '#adm-devices tr[data-device=bedside]';
  await owner.waitForSelector(`${row} code.url`);
  await owner.selectOption(`${row} select[aria-label="bedside room"]`, 'livingroom');
  await waitFor(async () => (await couchRequest(env.couch, 'GET', '/imes/device:bedside', { user: 'admin' })).body.aggregate === 'livingroom', { what: 'device:bedside in livingroom' });
  const urls = await owner.$$eval(`${row} code.url`, (els) => els.map((e) => e.textContent));
  assert.match(urls[0], /\/device\/bedside\/[0-9a-f]{32}\/stream\.mp3$/);
  assert.match(urls[2], /^rtsp:\/\/.*\/device\/bedside\/[0-9a-f]{32}$/);
  const probe = await waitFor(async () => {
    const r = await ffprobe(urls[0]);
    return r.code === 0 && r;
  }, { timeout: 20000, interval: 500, what: 'ffprobe of the new device' });
  const streams = JSON.parse(probe.out).streams;
  assert.equal(streams[0].codec_name, 'mp3');
  const opus = await ffprobe(urls[1]);
  assert.equal(JSON.parse(opus.out).streams[0].codec_name, 'opus', opus.err);
  noConsoleErrors();
});

test('Listen here plays the room in the browser (<audio>)', async () => {
  await owner.click('.tabs a[data-tab=rooms]');
  await owner.click('#listen');
  await owner.waitForFunction(() => {
    const a = document.querySelector('#audio');
    return a && !a.paused && a.currentTime > 0.5;
  }, null, { timeout: 15000 });
  const dev = await couchRequest(env.couch, 'GET', '/imes/device:web-owner', { user: 'admin' });
  assert.equal(dev.body.aggregate, 'livingroom');
  assert.equal(dev.body.personal, true);
  await owner.waitForSelector('#room-devices li[data-device=web-owner] .dot.on', { timeout: 10000 }).catch(async (e) => {
    const li = await owner.$eval('#room-devices', (el) => el.outerHTML).catch(() => 'none');
    const st = await couchRequest(env.couch, 'GET', '/imes/status:device:web-owner', { user: 'admin' });
    throw new Error(`${e.message}\n${li}\n${JSON.stringify(st.body)}`);
  });
  await owner.click('#listen');
  noConsoleErrors();
});

test('an admin\'s edit of channel:lounge in Fauxton (/_utils) takes effect in imesd and in the open app', async () => {
  // The real Fauxton that pouchdb-server serves: log in, open the document,
  // change it in the editor, Save Changes (a PUT of the whole document).
  const faux = await owner.ctx.newPage(); // Fauxton's own console is not ours to judge
  const couch = env.couch.url;
  await faux.goto(`${couch}/_utils/#login`);
  await faux.waitForSelector('#username');
  await faux.fill('#username', 'owner');
  await faux.fill('#password', USERS.owner.password);
  const loggedIn = faux.waitForResponse((r) => r.url().endsWith('/_session') && r.request().method() === 'POST');
  await faux.click('button[type=submit]');
  assert.equal((await loggedIn).status(), 200);
  // Fauxton leaves its login page by itself; then open the document
  await faux.waitForFunction(() => !location.hash.startsWith('#login'), null, { timeout: 10000 });
  await faux.goto(`${couch}/_utils/#database/imes/channel%3Alounge`);
  await faux.waitForFunction(() => window.ace && document.querySelector('.ace_editor') &&
    window.ace.edit(document.querySelector('.ace_editor')).getValue().includes('channel:lounge'), null, { timeout: 15000 });
  const text = await faux.evaluate(() => window.ace.edit(document.querySelector('.ace_editor')).getValue());
  const edited = { ...JSON.parse(text), paused: true, crossfade: 1 };
  await faux.evaluate((t) => window.ace.edit(document.querySelector('.ace_editor')).setValue(t, -1), JSON.stringify(edited, null, 2));
  const saved = faux.waitForResponse((r) => r.request().method() === 'PUT' && r.url().includes('/imes/channel:lounge'));
  await faux.click('button.save-doc');
  assert.equal((await saved).status(), 201);
  await faux.close();

  // imesd: the channel pauses (its status document and the stream)
  await waitFor(async () => (await couchRequest(env.couch, 'GET', '/imes/status:channel:lounge', { user: 'admin' })).body.state === 'paused', { what: 'imesd pauses lounge' });
  const m = speaker.mark();
  await speaker.until(m + 2 * RATE);
  assert.ok(silenceFrom(speaker.samples(), m) >= 0, 'silence');
  // the open apps: alice's bar, the admin's channel table
  await alice.waitForSelector('#now[data-state=paused]', { timeout: 10000 });
  await owner.click('.tabs a[data-tab=admin]');
  await owner.waitForFunction(() => document.querySelector('#adm-channels tr[data-channel=lounge] input[type=number]')?.value === '1', null, { timeout: 10000 });
  assert.equal(await owner.isChecked('#adm-channels tr[data-channel=lounge] input[type=checkbox]'), true);
  assert.equal(await alice.textContent('#now-pause'), '▶');

  // The same write without the UI (GET, then PUT the whole document back
  // with its _rev, as Fauxton does): resumes.
  const cur = await couchRequest(env.couch, 'GET', '/imes/channel:lounge', { user: 'owner', password: USERS.owner.password });
  const put = await couchRequest(env.couch, 'PUT', '/imes/channel:lounge', {
    user: 'owner', password: USERS.owner.password, body: { ...cur.body, paused: false },
  });
  assert.equal(put.status, 201, JSON.stringify(put.body));
  await alice.waitForSelector('#now[data-state=playing]', { timeout: 10000 });
  noConsoleErrors();
});

test('rooms: choose the room you are in and the channel it plays', async () => {
  await owner.click('.tabs a[data-tab=rooms]');
  await owner.selectOption('#room-select', 'patio');
  await waitFor(async () => (await couchRequest(env.couch, 'GET', '/imes/user:owner', { user: 'admin' })).body.aggregate === 'patio', { what: 'owner in patio' });
  await owner.waitForFunction(() => document.querySelector('#room-channel').value === 'kitchen');
  await owner.selectOption('#room-channel', 'lounge');
  await waitFor(async () => (await couchRequest(env.couch, 'GET', '/imes/aggregate:patio', { user: 'admin' })).body.channel === 'lounge', { what: 'patio plays lounge' });
  // the now-playing bar follows the room's channel
  await owner.waitForFunction(() => document.querySelector('#now-title').textContent !== 'kitchen: nothing playing');
  await owner.selectOption('#room-select', 'livingroom');
  await waitFor(async () => (await couchRequest(env.couch, 'GET', '/imes/user:owner', { user: 'admin' })).body.aggregate === 'livingroom', { what: 'owner back in livingroom' });
  noConsoleErrors();
});

test('an admin makes a delegate for the speaker; its pause and unpause URLs work', async () => {
  await owner.click('.tabs a[data-tab=admin]');
  await owner.fill('#add-delegate input[name=name]', 'phone');
  await owner.click('#add-delegate button');
  const row = '#adm-delegates tr[data-delegate=phone]';
  await owner.waitForSelector(`${row} code.url`);
  await owner.fill(`${row} input[aria-label="phone devices"]`, 'speaker');
  await owner.press(`${row} input[aria-label="phone devices"]`, 'Tab');
  await waitFor(async () => (await couchRequest(env.couch, 'GET', '/imes/delegate:phone', { user: 'admin' })).body.devices?.[0] === 'speaker', { what: 'delegate:phone for speaker' });
  const [pause, , unpause] = await owner.$$eval(`${row} code.url`, (els) => els.map((e) => e.textContent));
  assert.match(pause, /\/delegate\/phone\/[0-9a-f]{32}\/pause$/);
  // imesd learns the delegate from the feed: retry until it knows it
  await waitFor(async () => (await fetch(pause)).status === 200, { what: 'the pause URL answers 200' });
  await owner.click('.tabs a[data-tab=rooms]');
  await owner.waitForSelector('#room-devices li[data-device=speaker] .dot.muted', { timeout: 10000 });
  assert.match(await owner.textContent('#room-devices li[data-device=speaker]'), /muted: delegate.*phone/);
  assert.equal((await fetch(unpause)).status, 200);
  await owner.waitForSelector('#room-devices li[data-device=speaker] .dot.on', { timeout: 10000 });
  noConsoleErrors();
});

test('an admin adds a channel, a room playing it, and a user who can log in and sees the music', async () => {
  await owner.click('.tabs a[data-tab=admin]');
  await owner.fill('#add-channel input[name=name]', 'terrace');
  await owner.click('#add-channel button');
  await owner.fill('#add-aggregate input[name=name]', 'deck');
  await owner.click('#add-aggregate button');
  await waitFor(async () => (await couchRequest(env.couch, 'GET', '/imes/channel:terrace', { user: 'admin' })).status === 200, { what: 'channel:terrace' });
  await waitFor(async () => (await couchRequest(env.couch, 'GET', '/imes/aggregate:deck', { user: 'admin' })).status === 200, { what: 'aggregate:deck' });
  await owner.selectOption('#adm-aggregates select[aria-label="deck channel"]', 'terrace');
  await waitFor(async () => (await couchRequest(env.couch, 'GET', '/imes/aggregate:deck', { user: 'admin' })).body.channel === 'terrace', { what: 'deck plays terrace' });
  await owner.fill('#add-user input[name=name]', 'carol');
  await owner.fill('#add-user input[name=password]', 'carol secret');
  await owner.click('#add-user button');
  const u = await waitFor(async () => {
    const r = await couchRequest(env.couch, 'GET', '/_users/org.couchdb.user:carol', { user: 'admin' });
    return r.status === 200 && r.body;
  }, { what: 'the _users doc of carol' }).catch((e) => {
    throw new Error(`${e.message}; the admin's page: ${JSON.stringify(owner.errors)}`);
  });
  assert.deepEqual(u.roles, ['imes_user']);
  assert.equal(u.password, undefined, 'the password is kept hashed, not in clear');
  // Adding her again is refused with a clear message, her password unchanged.
  // (First the form is done with the first add: it clears itself then.)
  await owner.waitForSelector('text=/User carol saved/', { timeout: 5000 });
  await owner.waitForFunction(() => document.querySelector('#add-user input[name=name]').value === '');
  await owner.fill('#add-user input[name=name]', 'carol');
  await owner.fill('#add-user input[name=password]', 'another');
  await owner.click('#add-user button');
  await owner.waitForSelector('text=/There is a user carol already/', { timeout: 5000 });
  await owner.waitForSelector('#adm-users tr:has-text("carol")', { timeout: 5000 });
  // carol logs in with that password and searches the library.
  const carol = await newPage(browser);
  await login(carol, env.imesdUrl, 'carol', 'carol secret');
  assert.deepEqual(await albumsShown(carol, 'artist:sine'), ['Concert Pitch']);
  // A wrong password is refused with a clear message.
  const mallory = await newPage(browser);
  await mallory.goto(env.imesdUrl + '/');
  await mallory.fill('input[name=name]', 'carol');
  await mallory.fill('input[name=password]', 'not it');
  await mallory.click('form button');
  await mallory.waitForFunction(() => /wrong/.test(document.querySelector('#e')?.textContent ?? ''), null, { timeout: 5000 });
  assert.equal(await mallory.$('body[data-ready="1"]'), null, 'not let in');
  assert.deepEqual(carol.errors, [], 'console errors');
  noConsoleErrors();
  await carol.close();
  await mallory.close();
});
