// Playback end to end, heard by real clients: a library of distinct tones
// made here, scanned with `imes scan`; a channel, rooms, devices, a user
// present through the web app's live connection (/api/events) and a
// delegate, all made with `imes`; a real imesd; and ffmpeg reading the
// device's HTTP stream as a room's player does. The audio is checked by
// content (tests/lib/live.mjs, audio.mjs): which tone plays, when it goes
// silent, whether there are holes.
//
// - the playlist's tones in order, each for its length, crossfaded;
// - pause/resume, a delegate's mute, lockout and the end of presence
//   (session_timeout) each heard within 1 s (the end of presence: ~1 s);
// - stream.opus and a second room hear the same tone at the same time, and
//   the channel is encoded once (/metrics);
// - imesd restarted mid-track goes on in that track where it was;
// - a deleted file, a file gone unnoticed, a listener that stops reading:
//   skipped or dropped, and nobody else hears a hole;
// - CouchDB stopped for 30 s across a track change: no hole, and a pause
//   written when it is back is applied.
// The figures measured (reaction times, crossfade overlap) are printed at
// the end on stderr.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import vm from 'node:vm';
import {
  ROOT, startCouch, writeConfig, imes, startImesd, waitFor, couchRequest,
} from '../lib/harness.mjs';
import { encodeTone } from '../lib/medialib.mjs';
import { toneTimeline, toneOrder } from '../lib/audio.mjs';
import {
  RATE, listen, silenceFrom, toneFrom, loudest, holes, goertzel, segments, showSegments,
} from '../lib/live.mjs';

// The web app's fractional index, loaded as a page loads it.
const fracindex = (() => {
  const g = { crypto: globalThis.crypto };
  vm.createContext(g);
  vm.runInContext(fs.readFileSync(path.join(ROOT, 'couchapp/imes/_attachments/lib/fracindex.js'), 'utf8'), g);
  return g.fracindex;
})();

// Measured figures, printed at the end (reaction times, overlaps).
const figures = {};

let couch, cfg, imesd;
const PASSWORD = 'alice secret';
const basic = (u, p) => 'Basic ' + Buffer.from(`${u}:${p}`).toString('base64');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// The library: album "Quartet" (4 × 4 s, one format each), "Vanished" (one
// track whose file is deleted later), "Marathon" (2 × 20 s, for restarts
// and CouchDB going away).
const QUARTET = [
  { title: 'One', freq: 440, format: 'flac', rate: 44100 },
  { title: 'Two', freq: 660, format: 'mp3', rate: 44100 },
  { title: 'Three', freq: 880, format: 'vorbis', rate: 48000 },
  { title: 'Four', freq: 1100, format: 'opus', rate: 48000 },
];
const GONE = { title: 'Gone', freq: 1320, format: 'mp3', rate: 44100 };
const MARATHON = [
  { title: 'Long One', freq: 523, format: 'flac', rate: 48000 },
  { title: 'Long Two', freq: 784, format: 'mp3', rate: 44100 },
];
const SHORT_S = 4, LONG_S = 20;
const Q = QUARTET.map((t) => t.freq);
const ALL = [...Q, GONE.freq, ...MARATHON.map((t) => t.freq)];
const ext = { flac: 'flac', mp3: 'mp3', vorbis: 'ogg', opus: 'opus' };
let gonePath;

const urls = {}; // speaker: {mp3, opus}, ...
const entryAt = {}; // playlist position -> entry id
const delegate = {};

async function ok(args, opts) {
  const r = await imes(cfg, args, opts);
  assert.equal(r.code, 0, `imes ${args.join(' ')}: exit ${r.code}\n${r.stdout}\n${r.stderr}`);
  return r;
}
const urlLines = (stdout) => stdout.split('\n').filter((l) => /^(https?|rtsp):\/\//.test(l));

async function doc(id, user = 'admin', password) {
  const r = await couchRequest(couch, 'GET', `/imes/${encodeURIComponent(id)}`, { user, password });
  return r.status === 200 ? r.body : null;
}
async function putDoc(d, user = 'admin', password) {
  const r = await couchRequest(couch, 'PUT', `/imes/${encodeURIComponent(d._id)}`, { body: d, user, password });
  assert.ok(r.status === 201 || r.status === 202, `PUT ${d._id} as ${user}: ${r.status} ${JSON.stringify(r.body)}`);
}
// alice changes her own settings, as her web app would.
async function aliceSets(fields) {
  const cur = await doc('user:alice', 'alice', PASSWORD);
  await putDoc({ ...cur, ...fields }, 'alice', PASSWORD);
}

async function metrics() {
  return (await fetch(`${imesd.url}/metrics`)).text();
}
function metric(text, name) {
  const esc = name.replace(/[{}"[\]().*+?^$|\\]/g, '\\$&');
  const m = new RegExp(`^${esc} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : undefined;
}

// The web app's live connection for `user`: resolves once the snapshot
// event came; close() ends it.
function presence(user, password) {
  return new Promise((resolve, reject) => {
    const req = http.get(`${imesd.url}/api/events`, { headers: { Authorization: basic(user, password) } }, (res) => {
      if (res.statusCode !== 200) {
        reject(new Error(`/api/events for ${user}: ${res.statusCode}`));
        req.destroy();
        return;
      }
      let text = '';
      const p = { events: [], closed: false, close: () => { p.closed = true; req.destroy(); } };
      res.on('close', () => {
        p.closed = true;
        reject(new Error(`/api/events for ${user} closed before its snapshot`)); // no-op once resolved
      });
      res.on('data', (c) => {
        text += c;
        let i;
        while ((i = text.indexOf('\n\n')) >= 0) {
          const ev = text.slice(0, i);
          text = text.slice(i + 2);
          const data = /^data: (.*)$/m.exec(ev);
          if (data) p.events.push(JSON.parse(data[1]));
          if (/^event: snapshot$/m.test(ev)) resolve(p);
        }
      });
      res.on('error', () => {});
    });
    req.on('error', reject);
  });
}
let alice; // alice's live connection

// seconds -> samples
const S = (s) => Math.round(s * RATE);

// Reaction of a listener to an action: marks the stream, runs act, waits
// `wait` s of audio, and returns the seconds from the mark to where
// find(samples, mark) says it reacted (Infinity if it did not).
async function reaction(l, act, find, wait = 2.5) {
  const m = l.mark();
  await act();
  await l.until(m + S(wait));
  const at = find(l.samples(), m);
  return at < 0 ? Infinity : (at - m) / RATE;
}
const silent = (samples, m) => silenceFrom(samples, m, { holdMs: 300 });
const audible = (freqs) => (samples, m) => toneFrom(samples, m, freqs);

async function channelStatus(name = 'lounge') {
  return doc(`status:channel:${name}`);
}

before(async () => {
  couch = await startCouch();
  cfg = await writeConfig(couch);
  await ok(['init']);
  await ok(['user', 'add', 'alice'], { input: `${PASSWORD}\n` });
  await ok(['user', 'add', 'bob'], { input: 'bob secret\n' });

  const artist = 'Testers';
  const make = async (dir, album, tracks, seconds) => {
    fs.mkdirSync(path.join(cfg.mediaDir, dir), { recursive: true });
    const paths = [];
    for (const [i, t] of tracks.entries()) {
      const p = path.join(cfg.mediaDir, dir, `${String(i + 1).padStart(2, '0')} ${t.title}.${ext[t.format]}`);
      await encodeTone(p, {
        format: t.format, freq: t.freq, seconds, rate: t.rate,
        tags: { title: t.title, artists: [artist], album, albumartist: artist, track: i + 1, tracktotal: tracks.length },
      });
      paths.push(p);
    }
    return paths;
  };
  await make('Quartet', 'Quartet', QUARTET, SHORT_S);
  [gonePath] = await make('Vanished', 'Vanished', [GONE], SHORT_S);
  await make('Marathon', 'Marathon', MARATHON, LONG_S);
  await ok(['scan', '--quiet'], { timeout: 120000 });

  await ok(['channel', 'add', 'lounge', '--crossfade', '0.5']);
  await ok(['aggregate', 'add', 'room', '--channel', 'lounge']);
  await ok(['aggregate', 'join', 'room', 'alice']);
  const dev = await ok(['device', 'add', 'speaker', '--aggregate', 'room']);
  const [mp3, opus] = urlLines(dev.stdout);
  urls.speaker = { mp3, opus };
  assert.match(mp3, /\/device\/speaker\/[0-9a-f]+\/stream\.mp3$/);
  assert.match(opus, /\/device\/speaker\/[0-9a-f]+\/stream\.opus$/);
  const d = await ok(['delegate', 'add', 'phone', '--device', 'speaker']);
  const [pause, , unpause] = urlLines(d.stdout);
  Object.assign(delegate, { pause, unpause });
  assert.match(pause, /\/delegate\/phone\/[0-9a-f]+\/pause$/);

  // The playlist: positions 1-4 and 5-8 Quartet, 9 Vanished, 10-13
  // Quartet, 14-15 and 16-17 Marathon.
  for (const q of ['quartet', 'quartet', 'vanished', 'quartet', 'marathon', 'marathon'])
    await ok(['enqueue', 'lounge', q]);
  const pl = await ok(['playlist', 'lounge']);
  for (const l of pl.stdout.split('\n')) {
    const m = /^(\d+) {2}(entry:\S+) {2}/.exec(l);
    if (m) entryAt[Number(m[1])] = m[2];
  }
  assert.equal(Object.keys(entryAt).length, 17, pl.stdout);

  imesd = await startImesd(cfg);
  alice = await presence('alice', PASSWORD);
});

after(async () => {
  process.stderr.write(`playback figures: ${JSON.stringify(figures)}\n`);
  alice?.close();
  if (imesd) await imesd.stop();
  if (couch) await couch.stop();
});

describe('a room hears its channel', () => {
  test('the tones of the playlist, in order, each for its length, crossfaded', async () => {
    const l = listen(urls.speaker.mp3);
    try {
      // 4 tracks of 4 s and the start of the fifth, after a burst of about
      // a second from before the channel started.
      await l.more(19.5);
      const samples = await l.stop();
      assert.equal(l.errors, '');
      const tl = toneTimeline(samples, ALL, { windowMs: 100, threshold: 0.02 });
      const segs = segments(tl);
      const shown = showSegments(segs);
      const order = toneOrder(tl);
      assert.deepEqual(order.slice(0, 5), [...Q, Q[0]], `tone order ${order}: ${shown}`);
      // From the first tone on: each alone for about its length less the
      // crossfades, both at once around each change, no silence between.
      const from = segs.findIndex((s) => s.tones !== '-');
      const played = segs.slice(from);
      assert.ok(!played.some((s) => s.tones === '-'), `a silent hole: ${shown}`);
      const soloAt = played.map((s, i) => [s, i]).filter(([s]) => !s.tones.includes('+')).map(([, i]) => i);
      const solo = soloAt.map((i) => played[i]);
      assert.ok(solo.length >= 5, shown);
      for (let i = 0; i < 4; i++) {
        assert.equal(solo[i].tones, String(Q[i]), shown);
        assert.ok(solo[i].seconds >= SHORT_S - 1.2 && solo[i].seconds <= SHORT_S, `${Q[i]} Hz alone for ${solo[i].seconds} s: ${shown}`);
      }
      const fades = [];
      for (let i = 0; i < 4; i++) {
        const [a, b] = [Q[i], Q[(i + 1) % 4]];
        const between = played.slice(soloAt[i] + 1, soloAt[i + 1]);
        const both = between.filter((s) => s.tones === [a, b].sort((x, y) => x - y).join('+'));
        const seconds = Math.round(both.reduce((x, s) => x + s.seconds, 0) * 100) / 100;
        assert.ok(seconds >= 0.2 && seconds <= 0.8, `${a} → ${b}: both heard for ${seconds} s: ${shown}`);
        fades.push({ seconds, center: both[0].t + seconds / 2 });
      }
      // Crossfade to crossfade: a track's length less one crossfade.
      for (let i = 1; i < 4; i++) {
        const gap = fades[i].center - fades[i - 1].center;
        assert.ok(Math.abs(gap - (SHORT_S - 0.5)) < 0.25, `crossfades ${gap.toFixed(2)} s apart: ${shown}`);
      }
      figures.crossfade = fades.map((f) => f.seconds);
      figures.segments = shown;
    } finally {
      await l.stop();
    }
  });
});

// The loudest tone of two listeners on a common clock (live.mjs timeOf),
// 100 ms windows over the time both were listening after their bursts:
// { windows, same (windows with the same loudest tone, both audible),
//   changes: [[ta, tb]] (when each heard the loudest tone change, ms) }.
function compare(la, sa, lb, sb, freqs) {
  const start = Math.max(la.timeOf(S(1.5)), lb.timeOf(S(1.5)));
  const end = Math.min(la.timeOf(sa.length), lb.timeOf(sb.length)) - 100;
  const len = S(0.1);
  const idx = (l, t) => Math.round(((t - l.timeOf(0)) / 1000) * RATE);
  let windows = 0, same = 0;
  const seq = [[], []];
  for (let t = start; t + 100 <= end; t += 100) {
    const a = loudest(sa, idx(la, t), len, freqs), b = loudest(sb, idx(lb, t), len, freqs);
    windows++;
    if (a.amp > 0.02 && b.amp > 0.02 && a.freq === b.freq) same++;
    seq[0].push([t, a.amp > 0.02 ? a.freq : 0]);
    seq[1].push([t, b.amp > 0.02 ? b.freq : 0]);
  }
  const changesOf = (q) => q.filter((x, i) => i > 0 && x[1] !== q[i - 1][1]).map((x) => x[0]);
  return { windows, same, changes: [changesOf(seq[0]), changesOf(seq[1])] };
}

describe('the rules, heard: pause, delegates, lockout, presence', () => {
  let l;
  before(async () => {
    l = listen(urls.speaker.mp3);
    await l.more(2);
    await waitFor(() => toneFrom(l.samples(), 0, ALL) >= 0, { timeout: 10000, what: 'a tone on the speaker' });
  });
  after(async () => {
    await l.stop();
    assert.equal(l.errors, '');
  });

  test('imes pause: silent within 1 s; imes resume: the tone is back within 1 s', async () => {
    const p = await reaction(l, () => ok(['pause', 'lounge']), silent);
    assert.ok(p <= 1, `silent ${p} s after imes pause`);
    const r = await reaction(l, () => ok(['resume', 'lounge']), audible(ALL));
    assert.ok(r <= 1, `a tone ${r} s after imes resume`);
    figures.pause = p;
    figures.resume = r;
  });

  test('a delegate mutes the device and lets go, each within 1 s', async () => {
    let answer;
    const p = await reaction(l, async () => { answer = await fetch(delegate.pause); }, silent);
    assert.equal(answer.status, 200);
    assert.ok(p <= 1, `silent ${p} s after the delegate's pause`);
    const u = await reaction(l, async () => { answer = await fetch(delegate.unpause); }, audible(ALL));
    assert.equal(answer.status, 200);
    assert.ok(u <= 1, `a tone ${u} s after the delegate's unpause`);
    figures.delegatePause = p;
    figures.delegateUnpause = u;
  });

  test('lockout: the only user of the room locked out is silence within 1 s; back within 1 s', async () => {
    const p = await reaction(l, () => aliceSets({ lockout: true }), silent);
    assert.ok(p <= 1, `silent ${p} s after lockout`);
    const u = await reaction(l, () => aliceSets({ lockout: false }), audible(ALL));
    assert.ok(u <= 1, `a tone ${u} s after lockout ended`);
    figures.lockout = p;
    figures.unlock = u;
  });

  test('the web app closed: silence once session_timeout (1 s) is over; open again: back', async () => {
    await aliceSets({ session_timeout: 1 });
    // The change reaches imesd through the feed: give it a moment.
    await sleep(1000);
    try {
      // imesd publishes presence in status:user:alice (the web app shows who is here)
      const userStatus = async () => (await doc('status:user:alice')) ?? {};
      await waitFor(async () => (await userStatus()).present === true, { what: 'status:user:alice present' });
      const p = await reaction(l, () => alice.close(), silent, 3);
      assert.ok(p >= 0.8 && p <= 2, `silent ${p} s after the web app closed (session_timeout 1 s)`);
      figures.sessionTimeout = p;
      await waitFor(async () => (await userStatus()).present === false, { what: 'status:user:alice no longer present' });
      assert.equal((await userStatus()).connections, 0);
      const u = await reaction(l, async () => { alice = await presence('alice', PASSWORD); }, audible(ALL));
      assert.ok(u <= 1, `a tone ${u} s after the web app opened again`);
      figures.presenceBack = u;
      await waitFor(async () => (await userStatus()).present === true, { what: 'status:user:alice present again' });
    } finally {
      if (alice.closed) alice = await presence('alice', PASSWORD);
      await aliceSets({ session_timeout: 300 });
    }
  });
});

describe('one channel, many listeners', () => {
  test('stream.opus carries the same tones as stream.mp3, at the same time', async () => {
    const a = listen(urls.speaker.mp3), b = listen(urls.speaker.opus);
    try {
      await Promise.all([a.more(6.5), b.more(6.5)]);
      const [sa, sb] = [await a.stop(), await b.stop()];
      assert.equal(b.errors, '');
      const c = compare(a, sa, b, sb, ALL);
      assert.ok(c.windows >= 40, JSON.stringify(c));
      assert.ok(c.same >= 0.9 * c.windows, `same tone in ${c.same} of ${c.windows} windows: ${JSON.stringify(c.changes)}`);
      const tl = toneTimeline(sb.subarray(S(1.5)), ALL);
      assert.ok(tl.filter((w) => w.tones.length).length >= 0.9 * tl.length, showSegments(segments(tl)));
    } finally {
      await a.stop();
      await b.stop();
    }
  });

  test('two rooms on one channel: the same tone at the same time, encoded once', async () => {
    await ok(['aggregate', 'add', 'patio', '--channel', 'lounge']);
    await ok(['aggregate', 'join', 'patio', 'bob']);
    const dev = await ok(['device', 'add', 'porch', '--aggregate', 'patio', '--codec', 'opus']);
    urls.porch = { mp3: urlLines(dev.stdout)[0], opus: urlLines(dev.stdout)[1] };
    const bob = await presence('bob', 'bob secret');
    const a = listen(urls.speaker.mp3), b = listen(urls.porch.mp3);
    try {
      await Promise.all([a.more(7), b.more(7)]);
      const m = await metrics();
      const [sa, sb] = [await a.stop(), await b.stop()];
      assert.equal(b.errors, '');
      const c = compare(a, sa, b, sb, ALL);
      assert.ok(c.same >= 0.9 * c.windows, `same tone in ${c.same} of ${c.windows} windows: ${JSON.stringify(c.changes)}`);
      // A track change (3.5 s apart at most) heard by both at the same moment.
      assert.ok(c.changes[0].length >= 1, JSON.stringify(c.changes));
      for (const t of c.changes[0]) {
        const near = c.changes[1].some((u) => Math.abs(u - t) <= 150);
        assert.ok(near, `a change at ${t} in the speaker, not the porch: ${JSON.stringify(c.changes)}`);
      }
      figures.roomsApartMs = Math.max(...c.changes[0].map((t) => Math.min(...c.changes[1].map((u) => Math.abs(u - t)))));
      assert.equal(metric(m, 'imes_channel_encoders{channel="lounge"}'), 2, m);
      assert.equal(metric(m, 'imes_channels_running'), 1, m);
      assert.equal(metric(m, 'imes_channel_listeners{channel="lounge"}'), 2, m);
    } finally {
      await a.stop();
      await b.stop();
      bob.close();
    }
  });
});

describe('a channel waiting for its playlist', () => {
  test('an album queued while a room waits starts with its first track', async () => {
    // A room with a listener and a user present, on a channel with nothing
    // queued. An album's entries reach imesd in the order the database's
    // feed gives them, which need not be the playlist's (pouchdb-server
    // shuffles a _bulk_docs write): written here one by one, last track
    // first, in a burst, to make that order certain. Playback must still
    // begin at track 1.
    await ok(['user', 'add', 'carol'], { input: 'carol secret\n' });
    await ok(['channel', 'add', 'fresh']);
    await ok(['aggregate', 'add', 'attic', '--channel', 'fresh']);
    await ok(['aggregate', 'join', 'attic', 'carol']);
    const dev = await ok(['device', 'add', 'shelf', '--aggregate', 'attic']);
    const quartet = [];
    for (let i = 1; i <= 4; i++) quartet.push((await doc(entryAt[i])).file);
    const keys = fracindex.nBetween(null, null, 4);
    const added = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    const carol = await presence('carol', 'carol secret');
    const l = listen(urlLines(dev.stdout)[0]);
    try {
      await l.more(1.5);
      assert.equal(toneFrom(l.samples(), 0, ALL), -1, 'a tone before anything was queued');
      for (let i = 3; i >= 0; i--) {
        await putDoc({
          _id: `entry:c~fresh:${crypto.randomBytes(8).toString('hex')}`, type: 'entry', playlist: 'c~fresh',
          file: quartet[i], key: keys[i], added_by: 'carol', added,
        });
      }
      await l.more(5.5);
      const samples = await l.stop();
      const tl = toneTimeline(samples, ALL);
      assert.deepEqual(toneOrder(tl).slice(0, 2), [Q[0], Q[1]], showSegments(segments(tl)));
    } finally {
      await l.stop();
      carol.close();
    }
  });
});

// Hears the speaker until `freq` plays alone; returns the listener.
async function hearing(freq, { timeout = 15000 } = {}) {
  const l = listen(urls.speaker.mp3);
  await waitFor(() => {
    const s = l.samples();
    return s.length > S(1.3) && loudest(s, s.length - S(0.3), S(0.3), ALL).freq === freq
      && goertzel(s, s.length - S(0.3), S(0.3), freq) > 0.05;
  }, { timeout, interval: 100, what: `${freq} Hz on the speaker` });
  return l;
}

describe('imesd restarts', () => {
  test('mid-track: playback goes on in the same track near where it was', async () => {
    const LONG1 = MARATHON[0].freq;
    await ok(['play', 'lounge', entryAt[14]]);
    let l = await hearing(LONG1);
    await l.more(4);
    await l.stop();
    // Where it is, as imesd saves it: entry and position.
    await waitFor(async () => {
      const st = await channelStatus();
      return st && st.entry === entryAt[14] && st.position >= 2;
    }, { timeout: 8000, what: 'status:channel:lounge at the marathon, 2 s in' });
    assert.equal(await imesd.stop(), 0);
    const saved = await channelStatus();
    assert.equal(saved.entry, entryAt[14]);
    assert.ok(saved.position >= 3 && saved.position < LONG_S - 6, `saved at ${saved.position} s`);

    imesd = await startImesd(cfg);
    alice = await presence('alice', PASSWORD);
    l = listen(urls.speaker.mp3);
    try {
      await l.more(4);
      const samples = l.samples();
      const first = toneFrom(samples, 0, ALL);
      assert.ok(first >= 0, 'no tone after the restart');
      const tl = toneTimeline(samples.subarray(first), ALL);
      assert.equal(toneOrder(tl)[0], LONG1, showSegments(segments(tl)));
      // Where it is now, as a new web app sees it: the saved position plus
      // what was heard since the tone came back (not from the track's
      // start).
      const heard = (samples.length - first) / RATE;
      const look = await presence('alice', PASSWORD);
      look.close();
      const now = look.events[0].channels.lounge;
      assert.equal(now.entry, entryAt[14]);
      assert.ok(now.position >= saved.position + heard - 1 && now.position <= saved.position + heard + 1.5,
        `at ${now.position} s, ${heard.toFixed(2)} s of tone after a restart at ${saved.position} s`);
      // The status goes on from the saved position.
      const st = await waitFor(async () => {
        const d = await channelStatus();
        return d && d.position > saved.position + 0.5 && d;
      }, { timeout: 8000, what: 'the position to move on from where it was saved' });
      assert.equal(st.entry, entryAt[14]);
      assert.ok(st.position < saved.position + 8, `at ${st.position} s after a restart at ${saved.position} s`);
      figures.restart = { saved: saved.position, heard, live: now.position, status: st.position };
    } finally {
      await l.stop();
    }
  });
});

describe('bad input', () => {
  test('an entry whose file was deleted is skipped and the next one plays', async () => {
    fs.rmSync(gonePath);
    await ok(['scan', '--quiet'], { timeout: 60000 });
    // Position 8 (the fourth tone), 9 the deleted file, 10 the first tone.
    await ok(['play', 'lounge', entryAt[8]]);
    const l = await hearing(Q[3]);
    try {
      await l.more(5);
      const samples = l.samples();
      const from = toneFrom(samples, 0, [Q[3]]);
      const tl = toneTimeline(samples.subarray(from), ALL);
      const shown = showSegments(segments(tl));
      assert.deepEqual(toneOrder(tl).slice(0, 2), [Q[3], Q[0]], shown);
      assert.ok(!tl.some((w) => w.tones.includes(GONE.freq)), shown);
      assert.deepEqual(holes(samples, from), [], shown);
    } finally {
      await l.stop();
    }
  });

  test('an entry whose file vanished unnoticed (its document still there) is skipped too', async () => {
    // A file document pointing at nothing, as after a disk went away with
    // no scan since, queued between positions 12 and 13 (880 and 1100 Hz).
    const [e12, e13] = [await doc(entryAt[12]), await doc(entryAt[13])];
    const model = await doc(e13.file);
    const fileId = `file:${crypto.randomBytes(8).toString('hex')}`;
    const { _rev, ...rest } = model; // eslint-disable-line no-unused-vars
    await putDoc({ ...rest, _id: fileId, path: path.join(cfg.mediaDir, 'Quartet', 'ghost.flac') });
    await putDoc({
      _id: `entry:c~lounge:${crypto.randomBytes(8).toString('hex')}`, type: 'entry', playlist: 'c~lounge',
      file: fileId, key: fracindex.between(e12.key, e13.key), added_by: 'admin',
      added: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    });
    await ok(['play', 'lounge', entryAt[12]]);
    const l = await hearing(Q[2]);
    try {
      await l.more(5);
      const samples = l.samples();
      const from = toneFrom(samples, 0, [Q[2]]);
      const tl = toneTimeline(samples.subarray(from), ALL);
      const shown = showSegments(segments(tl));
      assert.deepEqual(toneOrder(tl).slice(0, 2), [Q[2], Q[3]], shown);
      assert.deepEqual(holes(samples, from), [], shown);
    } finally {
      await l.stop();
    }
  });

  test('a listener that stops reading is dropped; another goes on without a gap', async () => {
    const before = await metrics();
    const drops0 = ['stalled', 'overflow', 'behind']
      .reduce((x, r) => x + (metric(before, `imes_stream_drops_total{reason="${r}"}`) ?? 0), 0);
    const u = new URL(urls.speaker.mp3);
    const stalled = net.connect({ host: u.hostname, port: Number(u.port) });
    await new Promise((r) => stalled.once('connect', r));
    stalled.pause();
    stalled.on('error', () => {});
    stalled.write(`GET ${u.pathname} HTTP/1.1\r\nHost: ${u.host}\r\n\r\n`);
    await ok(['play', 'lounge', entryAt[1]]);
    const l = await hearing(Q[0]);
    try {
      const t0 = Date.now();
      await waitFor(async () => {
        const m = await metrics();
        return ['stalled', 'overflow', 'behind']
          .reduce((x, r) => x + (metric(m, `imes_stream_drops_total{reason="${r}"}`) ?? 0), 0) > drops0;
      }, { timeout: 40000, interval: 500, what: 'the listener that stopped reading to be dropped' });
      figures.stalledDropped = (Date.now() - t0) / 1000;
      await l.more(1);
      const samples = await l.stop();
      const from = toneFrom(samples, 0, ALL);
      assert.deepEqual(holes(samples, from), [], 'holes in the audio of the listener that reads');
      assert.equal(l.errors, '');
    } finally {
      stalled.destroy();
      await l.stop();
    }
  });
});

describe('CouchDB goes away', () => {
  test('for 30 s while a stream plays: no gap; a change made when it is back is applied', async () => {
    // Marathon twice from position 14: 80 s of long tones, with a track
    // change while CouchDB is down.
    const LONG = MARATHON.map((t) => t.freq);
    await ok(['play', 'lounge', entryAt[14]]);
    const l = await hearing(LONG[0]);
    try {
      await l.more(3);
      const from = l.mark();
      await couch.stop();
      await l.more(30, 40000);
      await couch.start();
      const back = l.mark();
      // imes writes as soon as CouchDB answers; imesd applies it once its
      // feed is back.
      await ok(['pause', 'lounge']);
      await waitFor(() => silenceFrom(l.samples(), back, { holdMs: 300 }) >= 0,
        { timeout: 30000, interval: 200, what: 'the pause written after CouchDB came back to be heard' });
      const samples = l.samples();
      const quiet = silenceFrom(samples, back, { holdMs: 300 });
      figures.pauseAfterCouch = (quiet - back) / RATE;
      const tl = toneTimeline(samples.subarray(from, quiet), ALL);
      const shown = showSegments(segments(tl));
      assert.deepEqual(holes(samples, from, quiet - S(0.3)), [], `holes while CouchDB was away: ${shown}`);
      assert.ok(tl.every((w) => w.tones.some((f) => LONG.includes(f)) || w === tl.at(-1)), shown);
      assert.ok(toneOrder(tl).includes(LONG[1]), `no track change while CouchDB was away: ${shown}`);
      // The status documents that could not be written meanwhile catch up:
      // the track that began while CouchDB was away, paused.
      await waitFor(async () => {
        const st = await channelStatus();
        return st && st.entry === entryAt[15] && st.state === 'paused';
      }, { timeout: 15000, what: 'status:channel:lounge: the second marathon track, paused' });
    } finally {
      await l.stop();
      if (!couch.running()) await couch.start();
      await ok(['resume', 'lounge']);
    }
  });
});
