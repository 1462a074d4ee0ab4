// "Listen here" in real headless Chromium against a real pouchdb-server and
// imesd (tests/browser/setup.mjs): a member turns it on and the page's
// <audio> element plays her room through her personal device web-<name>,
// whose stream (/listen/stream.mp3) imesd gives to her session cookie only.
// The same URL fetched by ffmpeg with her cookie decodes to the tone her
// room plays; without a session, or with another user's, it does not play.
// Lockout and leaving the room silence it (the room's rules apply to it as to
// any device), an imesd restart does not stop it for long, an admin sees it
// in the room's devices, and turning it off closes the stream. No page may
// log a console error.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { couchRequest, startImesd, waitFor } from '../lib/harness.mjs';
import { listen, silenceFrom, toneFrom, loudest, RATE } from '../lib/live.mjs';
import { startImes, USERS } from './setup.mjs';
import { launch, newPage, login } from './lib.mjs';

// The album alice queues: its tones, one after the other (setup.mjs).
const SINE = [440, 550, 660];

let env, browser, alice, owner, ear, imesd2;
const pages = () => [alice, owner].filter(Boolean);

before(async () => {
  env = await startImes();
  browser = await launch();
});

after(async () => {
  await ear?.stop();
  await browser?.close();
  await imesd2?.stop();
  await env?.stop();
});

function noConsoleErrors() {
  for (const p of pages()) assert.deepEqual(p.errors, [], 'console errors');
}

async function deviceDoc(name) {
  return (await couchRequest(env.couch, 'GET', `/imes/device:${name}`, { user: 'admin' })).body;
}

async function statusDevice(name) {
  return (await couchRequest(env.couch, 'GET', `/imes/status:device:${name}`, { user: 'admin' })).body;
}

// The <audio> element plays: not paused, and its time moves on.
async function audioPlays(page, { timeout = 15000 } = {}) {
  const t0 = await page.evaluate(() => document.querySelector('#audio').currentTime);
  await page.waitForFunction((t) => {
    const a = document.querySelector('#audio');
    return a && !a.paused && a.getAttribute('src') && a.currentTime > t + 1.5;
  }, t0, { timeout });
}

async function cookieOf(page) {
  const c = (await page.ctx.cookies()).find((x) => x.name === 'AuthSession');
  assert.ok(c, 'the page has a session cookie');
  return `AuthSession=${c.value}`;
}

test('a member clicks Listen here: her personal device joins her room and the <audio> element plays', async () => {
  alice = await newPage(browser);
  await login(alice, env.imesdUrl, 'alice', USERS.alice.password);
  // something to hear: the sine album on the room's channel
  await alice.fill('#q', 'sine');
  await alice.waitForFunction(() => document.querySelector('#results').dataset.complete === 'sine');
  await alice.click('#results article.album .add-album');
  // nothing is connected to the room yet: its channel waits
  await alice.waitForSelector('#now[data-state=auto-paused]', { timeout: 20000 });

  await alice.click('.tabs a[data-tab=rooms]');
  assert.equal(await alice.textContent('#listen-device'), 'web-alice');
  await alice.click('#listen');
  await alice.waitForSelector('#listen-state[data-state=playing]', { timeout: 15000 });
  await audioPlays(alice);
  // a device of the room is connected now: the channel plays
  await alice.waitForSelector('#now[data-state=playing]', { timeout: 20000 });
  assert.equal(await alice.textContent('#listen'), 'Stop listening');
  assert.equal(await alice.getAttribute('#now-listen', 'aria-pressed'), 'true');
  const src = await alice.evaluate(() => document.querySelector('#audio').src);
  assert.equal(src, `${env.imesdUrl}/listen/stream.mp3`, 'no token in the URL');

  const dev = await deviceDoc('web-alice');
  assert.equal(dev.aggregate, 'livingroom');
  assert.equal(dev.personal, true);
  assert.equal(dev.owner, 'alice');
  // in the room's device list, connected and not muted
  await alice.waitForSelector('#room-devices li[data-device=web-alice] .dot.on', { timeout: 10000 });
  await waitFor(async () => (await statusDevice('web-alice')).listeners >= 1, { what: 'status:device:web-alice connected' });
  noConsoleErrors();
});

test('the same URL with her cookie (ffmpeg) decodes to the room\'s tone; without it, or with another session, it does not play', async () => {
  const url = `${env.imesdUrl}/listen/stream.mp3`;
  ear = listen(url, { inputArgs: ['-headers', `Cookie: ${await cookieOf(alice)}\r\n`] });
  await ear.until(3 * RATE, 15000);
  const s = ear.samples();
  const at = toneFrom(s, 0, SINE);
  assert.ok(at >= 0, `a tone of the album is heard (${ear.errors})`);
  const l = loudest(s, at, RATE / 2, [...SINE, 220, 330, 880, 990]);
  assert.ok(SINE.includes(l.freq) && l.amp > 0.05, `the room's tone: ${JSON.stringify(l)}`);

  // no session
  let r = await fetch(url);
  assert.equal(r.status, 401);
  assert.match(await r.text(), /Log in to IMES to listen here/);
  assert.equal(r.headers.get('www-authenticate'), null, 'no browser login dialog');
  // a made-up session
  r = await fetch(url, { headers: { Cookie: 'AuthSession=YWxpY2U6MTIzNDU2OmZha2U' } });
  assert.equal(r.status, 401);
  await r.arrayBuffer();
  // bob's own session gets bob's personal device (he has none), never alice's
  const s2 = await fetch(`${env.couch.url}/_session`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ name: 'bob', password: USERS.bob.password }),
  });
  assert.equal(s2.status, 200);
  const bobCookie = s2.headers.get('set-cookie').split(';')[0];
  r = await fetch(url, { headers: { Cookie: bobCookie } });
  assert.equal(r.status, 404);
  assert.match(await r.text(), /no personal device web-bob yet: turn on Listen here/);
  // nor may bob make himself alice's device
  const put = await fetch(`${env.couch.url}/imes/device:web-alice`, {
    method: 'PUT', headers: { 'Content-Type': 'application/json', Cookie: bobCookie },
    body: JSON.stringify({ ...(await deviceDoc('web-alice')), owner: 'bob' }),
  });
  assert.equal(put.status, 403);
  noConsoleErrors();
});

test('lockout (Ctrl+L) silences it and the app says muted; unlocking brings the tone back', async () => {
  await alice.keyboard.press('Control+l');
  await alice.waitForSelector('#lockout:not([hidden])');
  const m = ear.mark();
  await ear.until(m + 3 * RATE);
  const at = silenceFrom(ear.samples(), m, { holdMs: 300 });
  assert.ok(at >= 0, 'silence after lockout');
  assert.ok((at - m) / RATE < 3, `silent after ${(at - m) / RATE} s`);
  await alice.waitForSelector('#listen-state[data-state=muted]', { timeout: 10000 });
  assert.match(await alice.textContent('#listen-state'), /muted: /);
  assert.equal((await statusDevice('web-alice')).muted, true);
  // the element goes on (it plays the silence): nothing to restart
  assert.equal(await alice.evaluate(() => document.querySelector('#audio').paused), false);

  await alice.click('#unlock');
  await alice.waitForSelector('#lockout', { state: 'hidden' });
  const m2 = ear.mark();
  await ear.until(m2 + 3 * RATE);
  assert.ok(toneFrom(ear.samples(), m2, SINE) >= 0, 'the tone is back');
  await alice.waitForSelector('#listen-state[data-state=playing]', { timeout: 10000 });
  noConsoleErrors();
});

test('it follows her to another room (patio plays nothing: silence) and back', async () => {
  await alice.selectOption('#room-select', 'patio');
  await waitFor(async () => (await deviceDoc('web-alice')).aggregate === 'patio', { what: 'web-alice in patio' });
  const m = ear.mark();
  await ear.until(m + 3 * RATE);
  assert.ok(silenceFrom(ear.samples(), m, { holdMs: 300 }) >= 0, 'patio\'s channel plays nothing');
  await alice.waitForSelector('#room-devices li[data-device=web-alice]');
  await alice.selectOption('#room-select', 'livingroom');
  await waitFor(async () => (await deviceDoc('web-alice')).aggregate === 'livingroom', { what: 'web-alice back in livingroom' });
  const m2 = ear.mark();
  await ear.until(m2 + 3 * RATE);
  assert.ok(toneFrom(ear.samples(), m2, SINE) >= 0, 'the tone again in livingroom');
  await audioPlays(alice);
  noConsoleErrors();
});

test('an admin sees the personal device in the room\'s devices and in Admin', async () => {
  owner = await newPage(browser);
  await login(owner, env.imesdUrl, 'owner', USERS.owner.password);
  await owner.click('.tabs a[data-tab=rooms]');
  await owner.waitForSelector('#room-devices li[data-device=web-alice] .dot.on', { timeout: 10000 });
  assert.match(await owner.textContent('#room-devices li[data-device=web-alice]'), /connected \(\d\)/);
  await owner.click('.tabs a[data-tab=admin]');
  await owner.waitForSelector('#adm-devices tr[data-device=web-alice]', { timeout: 10000 });
  await owner.close();
  owner = null;
  noConsoleErrors();
});

test('it survives an imesd restart: the element reconnects by itself', async () => {
  await ear.stop();
  ear = null;
  assert.equal(await env.imesd.stop(), 0);
  await alice.waitForSelector('#listen-state:not([data-state=playing])', { timeout: 15000 });
  imesd2 = await startImesd(env.cfg);
  await alice.waitForSelector('#listen-state[data-state=playing]', { timeout: 30000 });
  await audioPlays(alice);
  await waitFor(async () => (await statusDevice('web-alice')).listeners >= 1, { what: 'web-alice connected again', timeout: 15000 });
  noConsoleErrors();
});

test('turning it off stops the element and closes its stream', async () => {
  await alice.click('#now-listen');
  await alice.waitForFunction(() => {
    const a = document.querySelector('#audio');
    return a.paused && !a.getAttribute('src');
  });
  assert.equal(await alice.textContent('#listen'), 'Listen here');
  assert.equal(await alice.getAttribute('#now-listen', 'aria-pressed'), 'false');
  await waitFor(async () => (await statusDevice('web-alice')).listeners === 0, { what: 'web-alice disconnected' });
  await alice.waitForSelector('#room-devices li[data-device=web-alice] .dot:not(.on)', { timeout: 10000 });
  noConsoleErrors();
});
