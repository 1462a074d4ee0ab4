// Scrobbling end to end: a real pouchdb-server and imesd, the users' web-app
// requests (/api/scrobble, /api/events) made as the app makes them, a room
// that really plays (a device's MP3 stream is read), and a stand-in for
// Last.fm and ListenBrainz (tests/lib/fakescrobbler.mjs) that checks keys,
// signatures, session keys and payloads as the real services do.
//
// - linking Last.fm through the approval flow; ListenBrainz with a token (a
//   bad one refused with a clear reason); keys only in imes_private;
// - a track heard past last.fm's rule: now playing, then exactly one
//   scrobble (artist, title, album, duration, timestamp); a second user
//   present but locked out gets nothing; a track skipped early is not
//   scrobbled; what counted is in imes_private's history:<user>:...;
// - the service down: the scrobble waits in imes_private and is delivered
//   after imesd restarts with the service back;
// - unlinked: no more now playing nor scrobbles.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import {
  startCouch, writeConfig, imes, startImesd, waitFor, couchRequest,
} from '../lib/harness.mjs';
import { encodeTone } from '../lib/medialib.mjs';
import { FakeScrobbler } from '../lib/fakescrobbler.mjs';

const API_KEY = 'imestestkey0123456789abcdef0123';
const SECRET = 'imes test shared secret';
const LB_TOKEN = '8c0a4ea5-3c1b-4a7b-9d2e-5f6a7b8c9d0e';
const PW = { alice: 'alice secret', bob: 'bob secret' };
const ARTIST = 'The Scrobblers', ALBUM = 'Signals';
const TRACKS = ['Alpha', 'Beta', 'Gamma', 'Delta'];
const SECONDS = 32; // longer than 30 s: it counts after 16 s
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const basic = (u) => 'Basic ' + Buffer.from(`${u}:${PW[u]}`).toString('base64');

let couch, cfg, imesd, fake, speakerUrl;
const open = []; // live connections to close at the end

async function ok(args, opts) {
  const r = await imes(cfg, args, opts);
  assert.equal(r.code, 0, `imes ${args.join(' ')}: exit ${r.code}\n${r.stdout}\n${r.stderr}`);
  return r;
}

// The web app's request: text/plain JSON (no CORS preflight), its session.
async function api(user, body) {
  const res = await fetch(`${imesd.url}/api/scrobble`, {
    method: body ? 'POST' : 'GET',
    headers: { Authorization: basic(user), ...(body ? { 'Content-Type': 'text/plain' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: res.status, body: await res.json() };
}

async function setUser(user, fields) {
  const p = `/imes/${encodeURIComponent(`user:${user}`)}`;
  const cur = (await couchRequest(couch, 'GET', p, { user, password: PW[user] })).body;
  const r = await couchRequest(couch, 'PUT', p, { body: { ...cur, ...fields }, user, password: PW[user] });
  assert.equal(r.status, 201, JSON.stringify(r.body));
}

// The web app's live connection: resolves once its snapshot came.
function presence(user) {
  return new Promise((resolve, reject) => {
    const req = http.get(`${imesd.url}/api/events`, { headers: { Authorization: basic(user) } }, (res) => {
      if (res.statusCode !== 200) return reject(new Error(`/api/events for ${user}: ${res.statusCode}`));
      const p = { close: () => req.destroy() };
      open.push(p);
      res.on('data', (c) => { if (/event: snapshot/.test(String(c))) resolve(p); });
      res.on('error', () => {});
    });
    req.on('error', () => {});
  });
}

// A room's player: reads the device's MP3 stream (so the channel plays).
function speaker() {
  const req = http.get(speakerUrl, (res) => res.on('data', () => {}).on('error', () => {}));
  req.on('error', () => {});
  const p = { close: () => req.destroy() };
  open.push(p);
  return p;
}

async function privateDocs(prefix) {
  const q = `startkey=${encodeURIComponent(JSON.stringify(prefix))}&endkey=${encodeURIComponent(JSON.stringify(prefix + '\ufff0'))}&include_docs=true`;
  const r = await couchRequest(couch, 'GET', `/imes_private/_all_docs?${q}`, { user: 'admin' });
  assert.equal(r.status, 200);
  return r.body.rows.map((x) => x.doc);
}

const lfmScrobbles = (user, title) => fake.scrobbles.filter((s) => s.user === user && s.track === title);
const lbListens = (user, title) => fake.listens.filter((s) => s.user === user && s.track === title);
const nowPlaying = (user, title) => fake.nowPlaying.filter((s) => s.user === user && s.track === title);

before(async () => {
  fake = await new FakeScrobbler({ apps: { [API_KEY]: SECRET }, lbTokens: { [LB_TOKEN]: 'alice-lb' } }).start();
  couch = await startCouch();
  cfg = await writeConfig(couch, {
    scrobbler: {
      lastfm_key: API_KEY,
      lastfm_secret: SECRET,
      lastfm_api: `${fake.url}/2.0/`,
      lastfm_auth: `${fake.url}/api/auth/`,
      listenbrainz_api: fake.url,
    },
  });
  await ok(['init']);
  await ok(['user', 'add', 'alice'], { input: `${PW.alice}\n` });
  await ok(['user', 'add', 'bob'], { input: `${PW.bob}\n` });
  fs.mkdirSync(path.join(cfg.mediaDir, ALBUM));
  for (const [i, title] of TRACKS.entries()) {
    await encodeTone(path.join(cfg.mediaDir, ALBUM, `${i + 1} ${title}.flac`), {
      format: 'flac', freq: 440 + 110 * i, seconds: SECONDS, rate: 48000,
      tags: { title, artists: [ARTIST], album: ALBUM, albumartist: ARTIST, track: i + 1, tracktotal: 4 },
    });
  }
  await ok(['scan', '--quiet'], { timeout: 120000 });
  await ok(['channel', 'add', 'lounge', '--crossfade', '0.5']);
  await ok(['aggregate', 'add', 'room', '--channel', 'lounge']);
  await ok(['aggregate', 'join', 'room', 'alice']);
  await ok(['aggregate', 'join', 'room', 'bob']);
  const dev = await ok(['device', 'add', 'speaker', '--aggregate', 'room']);
  speakerUrl = dev.stdout.split('\n').find((l) => /^http:.*stream\.mp3$/.test(l));
  assert.ok(speakerUrl, dev.stdout);
  await ok(['enqueue', 'lounge', ALBUM.toLowerCase()]);
  await setUser('alice', { scrobbling: true });
  await setUser('bob', { scrobbling: true, lockout: true });
  imesd = await startImesd(cfg);
});

after(async () => {
  for (const p of open) p.close();
  if (imesd) await imesd.stop();
  if (couch) await couch.stop();
  await fake?.stop();
});

// The approval flow, as the Settings page walks it.
async function linkLastfm(user, serviceUser) {
  const start = await api(user, { action: 'link', service: 'lastfm' });
  assert.equal(start.status, 200, JSON.stringify(start.body));
  assert.equal(start.body.state, 'approve');
  const url = new URL(start.body.url);
  assert.equal(`${url.origin}${url.pathname}`, `${fake.url}/api/auth/`);
  assert.equal(url.searchParams.get('api_key'), API_KEY);
  const early = await api(user, { action: 'complete', service: 'lastfm' });
  assert.equal(early.status, 409, JSON.stringify(early.body));
  assert.equal(early.body.error, 'not_approved');
  assert.match(early.body.reason, /approve/i);
  const page = await fetch(url, { headers: { Cookie: `fakeuser=${serviceUser}` } });
  assert.equal(page.status, 200);
  const done = await api(user, { action: 'complete', service: 'lastfm' });
  assert.equal(done.status, 200, JSON.stringify(done.body));
  assert.deepEqual(done.body, { service: 'lastfm', linked: true, name: serviceUser });
}

test('link Last.fm through its approval page; the key stays in imes_private', async () => {
  await linkLastfm('alice', 'alice-lfm');
  await linkLastfm('bob', 'bob-lfm');
  const list = await api('alice');
  const lfm = list.body.services.find((s) => s.service === 'lastfm');
  assert.deepEqual(lfm, { service: 'lastfm', label: 'Last.fm', enabled: true, kind: 'approve', linked: true, name: 'alice-lfm' });
  assert.equal(list.body.services.find((s) => s.service === 'librefm').enabled, false);
  assert.equal(JSON.stringify(list.body).includes(fake.sessions.keys().next().value), false, 'no session key in the answer');
  const [doc] = await privateDocs('scrobble:session:alice:lastfm');
  assert.equal(doc.name, 'alice-lfm');
  assert.equal(fake.sessions.get(doc.key), 'alice-lfm');
  const asAlice = await couchRequest(couch, 'GET', `/imes_private/${encodeURIComponent(doc._id)}`, { user: 'alice', password: PW.alice });
  assert.ok(asAlice.status === 401 || asAlice.status === 403, `alice reads imes_private: ${asAlice.status}`);
  // Every call imesd made was signed as the spec says (the fake checks).
  assert.ok(fake.calls.filter((c) => c.params).every((c) => c.params.api_sig), 'unsigned calls');
  const anon = await fetch(`${imesd.url}/api/scrobble`);
  assert.equal(anon.status, 401);
});

test('link ListenBrainz with a token; a bad token is refused with a clear reason', async () => {
  const bad = await api('alice', { action: 'link', service: 'listenbrainz', token: 'not-a-token' });
  assert.equal(bad.status, 400);
  assert.equal(bad.body.error, 'bad_token');
  assert.match(bad.body.reason, /ListenBrainz did not accept this token/);
  const empty = await api('alice', { action: 'link', service: 'listenbrainz', token: '' });
  assert.equal(empty.status, 400);
  const junk = await api('alice', { action: 'dance', service: 'nowhere' });
  assert.equal(junk.status, 400);
  const good = await api('alice', { action: 'link', service: 'listenbrainz', token: LB_TOKEN });
  assert.equal(good.status, 200, JSON.stringify(good.body));
  assert.deepEqual(good.body, { service: 'listenbrainz', linked: true, name: 'alice-lb' });
  const [doc] = await privateDocs('scrobble:session:alice:listenbrainz');
  assert.equal(doc.key, LB_TOKEN);
});

test('a track heard past the rule: now playing, then exactly one scrobble; a locked-out user gets none', async () => {
  open.push(await presence('alice'), await presence('bob'));
  speaker();
  const started = Date.now() / 1000;
  await waitFor(() => nowPlaying('alice-lfm', 'Alpha').length && nowPlaying('alice-lb', 'Alpha').length,
    { timeout: 15000, what: 'now playing Alpha on Last.fm and ListenBrainz' });
  const np = nowPlaying('alice-lfm', 'Alpha')[0];
  assert.deepEqual(np, { user: 'alice-lfm', artist: ARTIST, track: 'Alpha', album: ALBUM, duration: SECONDS });
  const lbNp = nowPlaying('alice-lb', 'Alpha')[0];
  assert.equal(lbNp.listened_at, undefined);
  assert.equal(lbNp.duration_ms, SECONDS * 1000);
  const npAt = Date.now() / 1000;
  await sleep(10000);
  assert.equal(lfmScrobbles('alice-lfm', 'Alpha').length, 0, 'scrobbled before half the track');
  await waitFor(() => lfmScrobbles('alice-lfm', 'Alpha').length && lbListens('alice-lb', 'Alpha').length,
    { timeout: 15000, what: 'the scrobble of Alpha' });
  const heardFor = Date.now() / 1000 - npAt;
  assert.ok(heardFor >= SECONDS / 2 - 2.5, `scrobbled after ${heardFor.toFixed(1)} s`);
  process.stderr.write(`scrobble figures: now playing ${(npAt - started).toFixed(2)} s after the room started, ` +
    `scrobble ${heardFor.toFixed(2)} s after now playing (rule: ${SECONDS / 2} s of a ${SECONDS} s track)\n`);
  await sleep(3000);
  const [s] = lfmScrobbles('alice-lfm', 'Alpha');
  assert.equal(lfmScrobbles('alice-lfm', 'Alpha').length, 1);
  assert.equal(lbListens('alice-lb', 'Alpha').length, 1);
  assert.equal(s.artist, ARTIST);
  assert.equal(s.album, ALBUM);
  assert.equal(s.duration, SECONDS);
  assert.ok(Math.abs(s.timestamp - started) <= 5, `timestamp ${s.timestamp} vs started ${started}`);
  assert.equal(lbListens('alice-lb', 'Alpha')[0].listened_at, s.timestamp);
  const history = await privateDocs('history:alice:');
  assert.deepEqual(history.map((d) => [d.track.title, d.track.timestamp, d.channel]), [['Alpha', s.timestamp, 'lounge']]);
  // bob was present all along, locked out: nothing for him.
  assert.deepEqual(await privateDocs('history:bob:'), []);
  assert.equal(fake.nowPlaying.filter((x) => x.user === 'bob-lfm').length, 0);
  assert.equal(fake.scrobbles.filter((x) => x.user === 'bob-lfm').length, 0);
});

test('a track skipped before the rule is not scrobbled', async () => {
  await ok(['skip', 'lounge']);
  await waitFor(() => nowPlaying('alice-lfm', 'Beta').length, { timeout: 10000, what: 'now playing Beta' });
  await sleep(5000);
  await ok(['skip', 'lounge']);
  await waitFor(() => nowPlaying('alice-lfm', 'Gamma').length, { timeout: 10000, what: 'now playing Gamma' });
  assert.equal(lfmScrobbles('alice-lfm', 'Beta').length, 0);
  assert.equal(lbListens('alice-lb', 'Beta').length, 0);
});

test('the services down: the scrobble waits in imes_private and is delivered after a restart', async () => {
  const port = fake.port;
  await fake.stop();
  await waitFor(async () => (await privateDocs('scrobble:queue:')).length === 2,
    { timeout: 25000, what: 'two queued scrobbles (Last.fm, ListenBrainz) for Gamma' });
  const queued = await privateDocs('scrobble:queue:');
  assert.deepEqual(queued.map((d) => d.service).sort(), ['lastfm', 'listenbrainz']);
  assert.ok(queued.every((d) => d.user === 'alice' && d.track.title === 'Gamma' && d.track.artist === ARTIST));
  // Stop before Gamma would count again after the restart: pause, leave.
  await ok(['pause', 'lounge']);
  for (const p of open.splice(0)) p.close();
  assert.equal(await imesd.stop(), 0, 'imesd exit status (sanitizers report through it)');
  await fake.start(port);
  imesd = await startImesd(cfg);
  await waitFor(() => lfmScrobbles('alice-lfm', 'Gamma').length && lbListens('alice-lb', 'Gamma').length,
    { timeout: 15000, what: 'the queued Gamma delivered' });
  await waitFor(async () => (await privateDocs('scrobble:queue:')).length === 0,
    { timeout: 10000, what: 'the queue emptied' });
  const [g] = lfmScrobbles('alice-lfm', 'Gamma');
  assert.equal(g.timestamp, queued.find((d) => d.service === 'lastfm').track.timestamp);
  assert.equal(lfmScrobbles('alice-lfm', 'Gamma').length, 1);
  assert.equal(lbListens('alice-lb', 'Gamma').length, 1);
});

test('unlinked: no more now playing nor scrobbles', async () => {
  for (const service of ['lastfm', 'listenbrainz']) {
    const r = await api('alice', { action: 'unlink', service });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(r.body, { service, linked: false });
  }
  assert.equal((await privateDocs('scrobble:session:alice:')).length, 0);
  const list = await api('alice');
  assert.ok(list.body.services.every((s) => !s.linked));
  const before = { np: fake.nowPlaying.length, s: fake.scrobbles.length, l: fake.listens.length };
  open.push(await presence('alice'));
  speaker();
  await ok(['skip', 'lounge']);
  await ok(['resume', 'lounge']);
  await waitFor(async () => {
    const st = await couchRequest(couch, 'GET', '/imes/status%3Achannel%3Alounge', { user: 'admin' });
    return st.body.state === 'playing' && /Delta/.test(st.body.title ?? '');
  }, { timeout: 10000, what: 'Delta playing' });
  await sleep(SECONDS / 2 * 1000 + 2000);
  assert.deepEqual({ np: fake.nowPlaying.length, s: fake.scrobbles.length, l: fake.listens.length }, before);
});

test('imesd stops cleanly with a request to a service that never answers', async () => {
  // What is out when imesd stops is dropped and freed (LeakSanitizer checks
  // the exit status in build-asan).
  fake.hang = true;
  const calls = fake.calls.length;
  const pending = api('alice', { action: 'link', service: 'listenbrainz', token: LB_TOKEN }).catch((e) => e);
  await waitFor(() => fake.calls.length > calls, { what: 'the request at the service' });
  for (const p of open.splice(0)) p.close();
  assert.equal(await imesd.stop(), 0, 'imesd exit status');
  imesd = null;
  await pending;
});
