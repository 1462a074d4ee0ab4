// Device streams, delegates and the web app's live connection, end to end:
// a real pouchdb-server, `imes` making users, a room, devices and a delegate
// over the demo library (scripts/make-demo-library's six tones), a real
// imesd, and clients nobody here wrote (ffprobe, ffmpeg, curl) next to
// node's own http.
//
// - the URLs `imes device add` prints are the ones imesd serves; a wrong
//   token, an unknown device and a malformed URL are one and the same 404;
// - stream.mp3 and stream.opus are what ffprobe says they are (MP3 and Opus,
//   48 kHz stereo), ffmpeg decodes them without an error, ICY metadata comes
//   when asked for; a HEAD is only a head;
// - a client that stops reading does not hold up another one, and is
//   dropped;
// - /api/events wants a login (401 + WWW-Authenticate), gives a logged-in
//   member a text/event-stream starting with a snapshot event, /api/whoami
//   says who that is;
// - delegate pause / pause/<seconds> / unpause answer, bad seconds are 400.
// - what the room hears: the queued tones (see HEAR below).
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import {
  ROOT, startCouch, writeConfig, imes, startImesd, waitFor,
} from '../lib/harness.mjs';
import { decode, goertzel } from '../lib/audio.mjs';

let couch, cfg, imesd, stalled;
const urls = {}; // kitchen: {mp3, opus, rtsp}, den: {...}
const delegate = {}; // {pause, pauseFor (without the number), unpause}
const PASSWORD = 'alice secret';
const basic = (u, p) => 'Basic ' + Buffer.from(`${u}:${p}`).toString('base64');
// The demo library's tones in album order (Hz): what the room should hear.
const TONES = [440, 550, 660, 220, 330, 880];

async function ok(args, opts) {
  const r = await imes(cfg, args, opts);
  assert.equal(r.code, 0, `imes ${args.join(' ')}: exit ${r.code}\n${r.stdout}\n${r.stderr}`);
  return r;
}

function urlsOf(stdout) {
  const lines = stdout.split('\n').filter((l) => /^(https?|rtsp):\/\//.test(l));
  return lines;
}

// GET (or another method) with node's http: { status, headers, body }.
function request(url, { method = 'GET', headers = {}, max = 1 << 16, ms = 3000 } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers }, (res) => {
      const chunks = [];
      let len = 0;
      const done = () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) });
        req.destroy();
      };
      const timer = setTimeout(done, ms);
      res.on('data', (c) => {
        chunks.push(c);
        len += c.length;
        if (len >= max) done();
      });
      res.on('end', done);
      res.on('error', done);
    });
    req.on('error', reject);
    req.end();
  });
}

async function metric(name) {
  const text = await (await fetch(`${imesd.url}/metrics`)).text();
  const esc = name.replace(/[{}"[\]().*+?^$|\\]/g, '\\$&');
  const m = new RegExp(`^${esc} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : undefined;
}

function ffprobe(url) {
  const r = spawnSync('ffprobe', ['-v', 'error', '-show_streams', '-show_format', '-of', 'json', url], {
    encoding: 'utf8', timeout: 20000,
  });
  assert.equal(r.status, 0, `ffprobe ${url}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

before(async () => {
  couch = await startCouch();
  cfg = await writeConfig(couch);
  await ok(['init']);
  await ok(['user', 'add', 'alice'], { input: `${PASSWORD}\n` });
  const made = spawnSync(path.join(ROOT, 'scripts', 'make-demo-library'), [cfg.mediaDir], { encoding: 'utf8' });
  assert.equal(made.status, 0, `make-demo-library: ${made.stderr}`);
  await ok(['scan', '--quiet'], { timeout: 120000 });
  await ok(['channel', 'add', 'jazz']);
  await ok(['aggregate', 'add', 'home', '--channel', 'jazz']);
  await ok(['aggregate', 'join', 'home', 'alice']);
  for (const [name, codec] of [['kitchen', 'mp3'], ['den', 'opus']]) {
    const r = await ok(['device', 'add', name, '--aggregate', 'home', '--codec', codec]);
    const [mp3, opus, rtsp] = urlsOf(r.stdout);
    urls[name] = { mp3, opus, rtsp };
  }
  const d = await ok(['delegate', 'add', 'phone', '--device', 'kitchen']);
  const [pause, pauseFor, unpause] = urlsOf(d.stdout);
  Object.assign(delegate, { pause, pauseFor: pauseFor.replace(/<seconds>$/, ''), unpause });
  imesd = await startImesd(cfg);
  // The player has loaded the devices once a stream attaches.
  await waitFor(async () => (await request(urls.kitchen.mp3, { max: 1, ms: 2000 })).status === 200,
    { timeout: 20000, what: 'the kitchen stream to answer 200' });
  // A listener that asks for the stream and never reads a byte, there for
  // the whole file (see "a client that stops reading" at the end).
  const u = new URL(urls.kitchen.mp3);
  stalled = net.connect({ host: u.hostname, port: Number(u.port) });
  stalled.on('error', () => {});
  await new Promise((r) => stalled.once('connect', r));
  stalled.pause();
  stalled.write(`GET ${u.pathname} HTTP/1.1\r\nHost: ${u.host}\r\n\r\n`);
});

after(async () => {
  stalled?.destroy();
  if (imesd) await imesd.stop();
  if (couch) await couch.stop();
});

describe('URLs and tokens', () => {
  test('imes device add prints the stream URLs imesd serves', () => {
    const token = /^[0-9a-f]{32}$/;
    for (const name of ['kitchen', 'den']) {
      const m = /\/device\/([^/]+)\/([^/]+)\/stream\.mp3$/.exec(urls[name].mp3);
      assert.ok(m, urls[name].mp3);
      assert.equal(m[1], name);
      assert.match(m[2], token);
      assert.ok(urls[name].mp3.startsWith(imesd.url));
      assert.equal(urls[name].opus, urls[name].mp3.replace(/mp3$/, 'opus'));
    }
  });

  test('a wrong token, an unknown device and a malformed URL are the same 404', async () => {
    const good = urls.kitchen.mp3;
    const token = /\/device\/kitchen\/([0-9a-f]+)\//.exec(good)[1];
    const wrong = token.replace(/^./, (c) => (c === '0' ? '1' : '0'));
    const cases = [
      good.replace(token, wrong), // wrong token
      good.replace('/kitchen/', '/garage/'), // no such device
      good.replace('/kitchen/', '/den/'), // another device's token
      good.replace(token, token.slice(0, 20)), // malformed token
      good.replace('stream.mp3', 'stream.wav'), // no such stream
      good.replace('/kitchen/', '/_users/'), // malformed name
      `${imesd.url}/device/kitchen`, // too short
    ];
    const answers = [];
    for (const u of cases) {
      const r = await request(u);
      answers.push({ status: r.status, body: r.body.toString(), type: r.headers['content-type'] });
    }
    for (const a of answers) assert.deepEqual(a, answers[0]);
    assert.equal(answers[0].status, 404);
  });

  test('HEAD answers the head of a stream and nothing else', async () => {
    const r = await request(urls.kitchen.mp3, { method: 'HEAD' });
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-type'], 'audio/mpeg');
    assert.equal(r.body.length, 0);
  });
});

describe('streams', () => {
  test('stream.mp3: headers, and ffprobe sees MP3 at 48 kHz stereo', async () => {
    const r = await request(urls.kitchen.mp3, { max: 20000 });
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-type'], 'audio/mpeg');
    assert.equal(r.headers['content-length'], undefined);
    assert.match(r.headers['cache-control'], /no-cache/);
    assert.equal(r.headers['icy-name'], 'kitchen');
    assert.equal(r.headers['icy-metaint'], undefined);
    // The burst: about a second of audio at once.
    assert.ok(r.body.length >= 10000, `got ${r.body.length} bytes`);
    const info = ffprobe(urls.kitchen.mp3);
    const s = info.streams[0];
    assert.equal(s.codec_name, 'mp3');
    assert.equal(Number(s.sample_rate), 48000);
    assert.equal(s.channels, 2);
  });

  test('stream.opus: Ogg Opus at 48 kHz stereo', async () => {
    const r = await request(urls.den.opus, { max: 4096 });
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-type'], 'audio/ogg');
    assert.equal(r.body.subarray(0, 4).toString(), 'OggS');
    assert.equal(r.body.subarray(28, 36).toString(), 'OpusHead');
    const info = ffprobe(urls.den.opus);
    const s = info.streams[0];
    assert.equal(s.codec_name, 'opus');
    assert.equal(Number(s.sample_rate), 48000);
    assert.equal(s.channels, 2);
    // Every listener gets its own logical stream (its own serial).
    const r2 = await request(urls.den.opus, { max: 4096 });
    assert.notEqual(r2.body.readUInt32LE(14), r.body.readUInt32LE(14));
  });

  for (const codec of ['mp3', 'opus']) {
    test(`ffmpeg decodes 3 s of stream.${codec} without an error`, async () => {
      const t0 = Date.now();
      const { samples, errors } = await decode(urls.kitchen[codec], { seconds: 3 });
      assert.equal(errors, '');
      // 3 s at 48 kHz (the decoder may stop a frame short or long).
      assert.ok(Math.abs(samples.length - 3 * 48000) < 4800, `${samples.length} samples`);
      // A second of it came at once (the burst), the rest in real time.
      assert.ok(Date.now() - t0 < 6000);
    });
  }

  test('curl reads the stream with ICY metadata when it asks', async () => {
    const r = spawnSync('curl', ['-s', '-D', '-', '-o', '/dev/null', '--max-time', '2', '-H', 'Icy-MetaData: 1',
      urls.kitchen.mp3], { encoding: 'utf8' });
    // curl exits 28 (timeout): the stream does not end.
    assert.equal(r.status, 28, r.stderr);
    assert.match(r.stdout, /^HTTP\/1\.1 200 OK\r$/m);
    assert.match(r.stdout, /^icy-metaint: 16000\r$/im);
    // 32 kB to see at least one block after 16000 bytes of audio.
    const got = await request(urls.kitchen.mp3, { headers: { 'Icy-MetaData': '1' }, max: 33000, ms: 8000 });
    const n = got.body[16000];
    const block = got.body.subarray(16001, 16001 + n * 16).toString();
    assert.ok(n === 0 || /^StreamTitle='.*';\0*$/.test(block), `metadata block: ${JSON.stringify(block)}`);
    assert.ok(got.body.length > 16001 + n * 16);
  });

  test('the streams count in /metrics', async () => {
    const before = await metric('imes_stream_connects_total{codec="mp3"}');
    assert.ok(before >= 1);
    const bytes = await metric('imes_stream_bytes_sent_total{codec="mp3"}');
    assert.ok(bytes > 10000);
    const r = await request(urls.kitchen.mp3, { max: 1000 });
    assert.equal(r.status, 200);
    assert.equal(await metric('imes_stream_connects_total{codec="mp3"}'), before + 1);
    // Only the stalled listener is left.
    await waitFor(async () => (await metric('imes_stream_listeners{codec="mp3"}')) === 1,
      { what: 'one MP3 listener left' });
  });

  test('a client that stops reading does not hold up the others', async () => {
    // Four seconds of another listener while the stalled one sits there:
    // its burst at once, the rest in real time.
    const t0 = Date.now();
    const { samples, errors } = await decode(urls.kitchen.mp3, { seconds: 4 });
    assert.equal(errors, '');
    assert.ok(samples.length >= 3.9 * 48000);
    const took = (Date.now() - t0) / 1000;
    assert.ok(took > 2 && took < 6, `4 s with a 1 s burst took ${took} s`);
  });
});

describe('/api/events and /api/whoami', () => {
  test('without credentials: 401 with WWW-Authenticate', async () => {
    const r = await request(`${imesd.url}/api/events`);
    assert.equal(r.status, 401);
    assert.equal(r.headers['www-authenticate'], 'Basic realm="IMES"');
    const w = await request(`${imesd.url}/api/whoami`);
    assert.equal(w.status, 401);
    const bad = await request(`${imesd.url}/api/events`, { headers: { Authorization: basic('alice', 'nope') } });
    assert.equal(bad.status, 401);
    const cookie = await request(`${imesd.url}/api/events`, { headers: { Cookie: 'AuthSession=YWxpY2U6MDox' } });
    assert.equal(cookie.status, 401);
  });

  test('a member gets text/event-stream, a snapshot first', async () => {
    const r = await request(`${imesd.url}/api/events`, {
      headers: { Authorization: basic('alice', PASSWORD) }, ms: 1500,
    });
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-type'], 'text/event-stream');
    assert.match(r.headers['cache-control'], /no-cache/);
    const text = r.body.toString();
    const m = /^event: snapshot\ndata: (.*)\n\n/.exec(text);
    assert.ok(m, `first event: ${JSON.stringify(text.slice(0, 200))}`);
    const snap = JSON.parse(m[1]);
    assert.equal(snap.type, 'snapshot');
    assert.ok(snap.devices && snap.devices.kitchen, JSON.stringify(snap));
    for (const ev of text.slice(m[0].length).split('\n\n').filter(Boolean)) {
      if (ev.startsWith(':')) continue;
      assert.match(ev, /^event: state\ndata: \{.*\}$/);
    }
  });

  test('with a CouchDB session cookie too', async () => {
    const login = await fetch(`${couch.url}/_session`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ name: 'alice', password: PASSWORD }),
    });
    assert.equal(login.status, 200);
    const cookie = (login.headers.get('set-cookie') || '').split(';')[0];
    assert.match(cookie, /^AuthSession=./);
    const r = await request(`${imesd.url}/api/whoami`, { headers: { Cookie: `theme=x; ${cookie}` } });
    assert.equal(r.status, 200);
    const me = JSON.parse(r.body.toString());
    assert.equal(me.name, 'alice');
    assert.ok(me.roles.includes('imes_user'));
  });

  test('whoami with Basic', async () => {
    const r = await request(`${imesd.url}/api/whoami`, { headers: { Authorization: basic('alice', PASSWORD) } });
    assert.equal(r.status, 200);
    assert.deepEqual(JSON.parse(r.body.toString()), { name: 'alice', roles: ['imes_user'] });
  });
});

describe('delegates', () => {
  const post = (u) => request(u, { method: 'POST' });

  test('pause, pause for a while, unpause', async () => {
    let r = await request(delegate.pause);
    assert.equal(r.status, 200);
    assert.deepEqual(JSON.parse(r.body.toString()), { delegate: 'phone', paused: true, until: null });
    r = await post(`${delegate.pauseFor}90`);
    assert.equal(r.status, 200);
    const j = JSON.parse(r.body.toString());
    assert.equal(j.paused, true);
    const until = Date.parse(j.until);
    assert.ok(Math.abs(until - (Date.now() + 90000)) < 5000, j.until);
    r = await request(delegate.unpause);
    assert.equal(r.status, 200);
    assert.deepEqual(JSON.parse(r.body.toString()), { delegate: 'phone', paused: false, until: null });
  });

  test('bad seconds: 400 saying what is allowed', async () => {
    for (const s of ['0', '3601', 'abc', '1.5', '-3']) {
      const r = await request(`${delegate.pauseFor}${s}`);
      assert.equal(r.status, 400, s);
      assert.match(JSON.parse(r.body.toString()).reason, /1 to 3600/);
    }
  });

  test('a wrong token is 404, like an unknown delegate', async () => {
    const token = /\/delegate\/phone\/([0-9a-f]+)\//.exec(delegate.pause)[1];
    const wrong = delegate.pause.replace(token, token.split('').reverse().join(''));
    const a = await request(wrong);
    const b = await request(delegate.pause.replace('/phone/', '/tablet/'));
    const c = await request(`${delegate.pauseFor.replace(token, token.split('').reverse().join(''))}abc`);
    assert.equal(a.status, 404);
    assert.deepEqual([b.status, b.body.toString()], [404, a.body.toString()]);
    assert.deepEqual([c.status, c.body.toString()], [404, a.body.toString()]);
  });
});

// What the room hears. With alice present (her web app's live connection
// open) and the demo tones queued, the kitchen plays them in album order.
// Extend here: the same for stream.opus, a delegate's pause turning the
// stream silent, a skip.
const HEAR = process.env.IMES_EXPECT_AUDIO !== '0';
describe('what the room hears', () => {
  let events;
  before(async () => {
    await ok(['enqueue', 'jazz', 'sine', 'waves']);
    events = http.get(`${imesd.url}/api/events`, { headers: { Authorization: basic('alice', PASSWORD) } });
    events.on('error', () => {});
  });
  after(() => events?.destroy());

  test('the first queued tone: Concert A', { skip: !HEAR && 'IMES_EXPECT_AUDIO=0' }, async () => {
    // 12 s of a track of 24 s that fades in over 1 s; judged from 3 s on
    // (the burst may hold silence from before it started). The demo tones
    // carry their fifth on the right channel: 440 Hz comes with 660 Hz.
    const { samples, errors } = await decode(urls.kitchen.mp3, { seconds: 12 });
    assert.equal(errors, '');
    const start = 3 * 48000, len = samples.length - start;
    const level = Object.fromEntries(TONES.map((f) => [f, goertzel(samples, start, len, f)]));
    assert.ok(level[440] > 0.03, `440 Hz at ${level[440].toFixed(4)}: ${JSON.stringify(level)}`);
    for (const f of [550, 220, 330, 880]) assert.ok(level[f] < level[440] / 5, JSON.stringify(level));
  });
});

// Last, so that the stalled listener (opened in before()) has had the whole
// file's time. Its drop needs the kernel's send buffer of that connection
// full first: httpd caps SO_SNDBUF of stream connections (else Linux grows
// it to some MB, minutes of MP3); then imesd's own queue fills (0.5 s) and
// the listener is dropped 10 s later.
describe('a client that stops reading', () => {
  test('is dropped', async () => {
    await waitFor(async () => (await metric('imes_stream_drops_total{reason="stalled"}')) >= 1,
      { timeout: 20000, interval: 1000, what: 'the stalled listener to be dropped' });
    assert.equal(await metric('imes_stream_listeners{codec="mp3"}'), 0);
  });
});
