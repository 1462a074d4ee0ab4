// RTSP/RTP device streams end to end: a real pouchdb-server, `imes` making
// a user, a room and devices over the demo library (scripts/make-demo-library's
// tones), a real imesd, and clients nobody here wrote:
//
// - ffmpeg over UDP and over TCP interleaved, GStreamer's rtspsrc: each
//   plays a device for several seconds, MP3 (RFC 2250 MPA) and Opus (RFC
//   7587), and the decoded audio carries the playlist's tones;
// - VLC: Debian's VLC is built without live555, so its only "rtsp://" client
//   is the SAT>IP module (which cannot play audio RTP); here VLC decodes the
//   RTP stream itself (rtp://@port, payload type 14) after this file's own
//   client set the session up. Its RTP module has no Opus depayloader, so VLC
//   is MP3 only;
// - a muted device (a delegate holds it) gets silence over RTSP as over
//   HTTP, and its sound back when let go;
// - this file's own client (tests/lib/rtsp.mjs) checks the protocol: SDP,
//   Transport, RTP headers and timestamps, RTCP sender reports, receiver
//   reports shown in /metrics, PAUSE/PLAY, TEARDOWN, a vanished client and
//   an expired session freeing everything, 100 sessions at once, and bad
//   input answered with the right status while imesd stays up.
//
// backend.idle_timeout is 3 s here, so sessions time out after 6 s (imesd
// uses twice idle_timeout; 60 s by default).
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { ROOT, startCouch, writeConfig, imes, startImesd, waitFor } from '../lib/harness.mjs';
import { decode, toneTimeline, rms, dbfs } from '../lib/audio.mjs';
import { RtspClient, parseRtp, parseRtcp, rtcpRr, udpSocket, udpPair } from '../lib/rtsp.mjs';

let couch, cfg, imesd, events;
const urls = {}; // kitchen: rtsp URL (MP3 device), den: (Opus device)
const delegate = {}; // phone, for kitchen: { pause, unpause }
const PASSWORD = 'alice secret';
const basic = (u, p) => 'Basic ' + Buffer.from(`${u}:${p}`).toString('base64');
const TONES = [440, 550, 660, 220, 330, 880];
const sockets = new Set(); // UDP sockets to close at the end, whatever happened
const udp = async () => { const s = await udpSocket(); sockets.add(s); return s; };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function ok(args, opts) {
  const r = await imes(cfg, args, opts);
  assert.equal(r.code, 0, `imes ${args.join(' ')}: exit ${r.code}\n${r.stdout}\n${r.stderr}`);
  return r;
}

async function metrics() {
  return (await fetch(`${imesd.url}/metrics`)).text();
}
function metricIn(text, name) {
  const esc = name.replace(/[{}"[\]().*+?^$|\\]/g, '\\$&');
  const m = new RegExp(`^${esc} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : undefined;
}
const metric = async (name) => metricIn(await metrics(), name);
const sessions = async () => {
  const t = await metrics();
  return metricIn(t, 'imes_rtsp_sessions{transport="udp"}') + metricIn(t, 'imes_rtsp_sessions{transport="tcp"}');
};

// The share of 100 ms windows in which a playlist tone sounds.
function toneShare(samples) {
  const tl = toneTimeline(samples, TONES);
  return tl.length ? tl.filter((w) => w.tones.length > 0).length / tl.length : 0;
}
function checkTones(name, samples, seconds) {
  assert.ok(samples.length >= (seconds - 1) * 48000, `${name}: only ${(samples.length / 48000).toFixed(2)} s of audio`);
  const share = toneShare(samples.subarray(48000)); // from 1 s on: past a start-up fade
  assert.ok(share >= 0.8, `${name}: tones in ${(share * 100).toFixed(0)}% of the windows`);
}

// Runs a program for `seconds`, collecting its stdout as 48 kHz mono f32.
function collect(cmd, args, { seconds, env } = {}) {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: env ?? process.env });
    const chunks = [];
    let err = '';
    p.stdout.on('data', (c) => chunks.push(c));
    p.stderr.on('data', (c) => { err += c; });
    const timer = setTimeout(() => p.kill('SIGKILL'), seconds * 1000);
    p.on('close', () => {
      clearTimeout(timer);
      const b = Buffer.concat(chunks);
      resolve({ samples: new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + (b.length & ~3))), errors: err });
    });
  });
}

const gst = (url, seconds, extra = []) => collect('gst-launch-1.0', ['-q', 'rtspsrc', `location=${url}`, 'latency=300', ...extra,
  '!', 'decodebin', '!', 'audioconvert', '!', 'audioresample', '!',
  'audio/x-raw,format=F32LE,rate=48000,channels=1', '!', 'fdsink', 'fd=1'], { seconds });

// VLC refuses to run as root; as nobody it needs a writable HOME.
async function vlcRtp(url, seconds) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'imes-vlc-'));
  fs.chmodSync(dir, 0o777);
  const out = path.join(dir, 'out.raw');
  const pair = await udpPair(); // reserve the port pair, then hand it to VLC
  const port = pair.port;
  pair.rtp.close();
  pair.rtcp.close();
  const c = new RtspClient(url);
  await c.connect();
  const vlcArgs = ['-q', '--intf', 'dummy', '--no-video', `rtp://@127.0.0.1:${port}`,
    '--sout', `#transcode{acodec=f32l,channels=1,samplerate=48000}:std{access=file,mux=raw,dst=${out}}`];
  const asRoot = process.getuid?.() === 0;
  const cmd = asRoot ? 'setpriv' : 'cvlc';
  const args = asRoot ? ['--reuid=65534', '--regid=65534', '--clear-groups', 'cvlc', ...vlcArgs] : vlcArgs;
  const p = spawn(cmd, args, { stdio: 'ignore', env: { ...process.env, HOME: dir } });
  await sleep(500); // VLC binds its port
  await c.start(`RTP/AVP;unicast;client_port=${port}-${port + 1}`);
  await sleep(seconds * 1000);
  p.kill('SIGKILL');
  await new Promise((r) => p.once('close', r));
  c.close();
  const b = fs.existsSync(out) ? fs.readFileSync(out) : Buffer.alloc(0);
  fs.rmSync(dir, { recursive: true, force: true });
  return { samples: new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + (b.length & ~3))) };
}

before(async () => {
  couch = await startCouch();
  cfg = await writeConfig(couch, { backend: { idle_timeout: 3 } });
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
    urls[name] = r.stdout.split('\n').find((l) => l.startsWith('rtsp://'));
  }
  const d = await ok(['delegate', 'add', 'phone', '--device', 'kitchen']);
  const [pause, , unpause] = d.stdout.split('\n').filter((l) => /^https?:\/\//.test(l));
  Object.assign(delegate, { pause, unpause });
  await ok(['enqueue', 'jazz', 'sine', 'waves']);
  imesd = await startImesd(cfg);
  events = http.get(`${imesd.url}/api/events`, { headers: { Authorization: basic('alice', PASSWORD) } });
  events.on('error', () => {});
  events.on('response', (res) => res.on('data', () => {}));
  // The player knows the devices once a stream attaches.
  const http1 = urls.kitchen.replace(/^rtsp:/, 'http:') + '/stream.mp3';
  await waitFor(() => new Promise((resolve) => {
    const req = http.get(http1, (res) => { resolve(res.statusCode === 200); req.destroy(); });
    req.on('error', () => resolve(false));
  }), { timeout: 20000, what: 'the kitchen stream' });
});

after(async () => {
  RtspClient.closeAll();
  for (const s of sockets) try { s.close(); } catch { /* closed already */ }
  events?.destroy();
  if (imesd) await imesd.stop();
  if (couch) await couch.stop();
});

test('imes device add prints the RTSP URL imesd serves', () => {
  const port = new URL(imesd.url).port;
  assert.match(urls.kitchen, new RegExp(`^rtsp://127\\.0\\.0\\.1:${port}/device/kitchen/[0-9a-f]{32}$`));
  assert.match(urls.den, /\/device\/den\/[0-9a-f]{32}$/);
});

describe('clients nobody here wrote', () => {
  const SECONDS = 6;
  const runs = {};
  before(() => {
    // All at once: a few seconds of wall time for all of them.
    const ff = (url, transport) => decode(url, { seconds: SECONDS, inputArgs: ['-rtsp_transport', transport] });
    runs.ffUdpMp3 = ff(urls.kitchen, 'udp');
    runs.ffTcpMp3 = ff(urls.kitchen, 'tcp');
    runs.ffUdpOpus = ff(`${urls.kitchen}/opus`, 'udp');
    runs.ffTcpOpus = ff(`${urls.kitchen}/opus`, 'tcp');
    runs.gstMp3 = gst(urls.kitchen, SECONDS + 2);
    runs.gstOpusTcp = gst(`${urls.den}/opus`, SECONDS + 2, ['protocols=tcp']);
    runs.vlcMp3 = vlcRtp(urls.den, SECONDS);
    for (const p of Object.values(runs)) p.catch(() => {});
  });
  // Also when a name pattern skipped the tests: the clients must be done
  // before imesd stops (an ffmpeg over UDP would wait for it forever).
  after(() => Promise.allSettled(Object.values(runs)));

  test('ffprobe sees MP3 (UDP) and Opus (TCP) at 48 kHz', () => {
    for (const [url, transport, codec] of [[urls.kitchen, 'udp', 'mp3'], [`${urls.den}/opus`, 'tcp', 'opus']]) {
      const r = spawnSync('ffprobe', ['-v', 'error', '-rtsp_transport', transport, '-show_streams', '-of', 'json', url],
        { encoding: 'utf8', timeout: 20000 });
      assert.equal(r.status, 0, `ffprobe ${transport}: ${r.stderr}`);
      const s = JSON.parse(r.stdout).streams[0];
      assert.equal(s.codec_name, codec);
      assert.equal(Number(s.sample_rate), 48000);
    }
  });
  for (const [name, what] of [['ffUdpMp3', 'ffmpeg, UDP, MP3'], ['ffTcpMp3', 'ffmpeg, TCP, MP3'],
    ['ffUdpOpus', 'ffmpeg, UDP, Opus'], ['ffTcpOpus', 'ffmpeg, TCP, Opus'],
    ['gstMp3', 'GStreamer rtspsrc, UDP, MP3'], ['gstOpusTcp', 'GStreamer rtspsrc, TCP, Opus'],
    ['vlcMp3', 'VLC, RTP over UDP, MP3']]) {
    test(`${what}: the playlist's tones`, async () => {
      const { samples } = await runs[name];
      checkTones(what, samples, name.startsWith('ff') || name.startsWith('vlc') ? SECONDS : SECONDS + 1);
    });
  }
});

describe('the protocol, with our own client', () => {
  test('OPTIONS lists the methods and echoes CSeq', async () => {
    const c = new RtspClient(urls.kitchen);
    await c.connect();
    const r = await c.raw(`OPTIONS * RTSP/1.0\r\nCSeq: 77\r\n\r\n`);
    assert.equal(r.version, 'RTSP/1.0');
    assert.equal(r.status, 200);
    assert.equal(r.headers.cseq, '77');
    for (const m of ['DESCRIBE', 'SETUP', 'PLAY', 'PAUSE', 'GET_PARAMETER', 'TEARDOWN'])
      assert.match(r.headers.public, new RegExp(`\\b${m}\\b`));
    c.close();
  });

  test('DESCRIBE: SDP for MPA (PT 14, 90 kHz) and Opus (dynamic PT, 48 kHz)', async () => {
    const c = new RtspClient(urls.kitchen);
    await c.connect();
    const r = await c.request('DESCRIBE', urls.kitchen, { Accept: 'application/sdp' });
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-type'], 'application/sdp');
    assert.equal(r.headers['content-base'], `${urls.kitchen}/`);
    assert.match(r.body, /^v=0\r\n/);
    assert.match(r.body, /\r\nm=audio 0 RTP\/AVP 14\r\n/);
    assert.match(r.body, /\r\na=rtpmap:14 MPA\/90000\r\n/);
    assert.match(r.body, /\r\na=control:trackID=0\r\n/);
    const o = await c.request('DESCRIBE', `${urls.kitchen}/opus`);
    assert.equal(o.status, 200);
    assert.match(o.body, /\r\nm=audio 0 RTP\/AVP (9[6-9]|1[01]\d|12[0-7])\r\n/);
    assert.match(o.body, /\r\na=rtpmap:\d+ opus\/48000\/2\r\n/);
    c.close();
  });

  test('a wrong token, an unknown device and a malformed URL are the same 404', async () => {
    const token = /\/device\/kitchen\/([0-9a-f]+)$/.exec(urls.kitchen)[1];
    const wrong = token.replace(/^./, (ch) => (ch === '0' ? '1' : '0'));
    const cases = [urls.kitchen.replace(token, wrong), urls.kitchen.replace('/kitchen/', '/garage/'),
      urls.kitchen.replace('/kitchen/', '/den/'), urls.kitchen.replace(token, token.slice(0, 20)),
      `${urls.kitchen}/flac`, urls.kitchen.replace(`/${token}`, '')];
    const c = new RtspClient(urls.kitchen);
    await c.connect();
    const answers = [];
    for (const u of cases) {
      const r = await c.request('DESCRIBE', u);
      answers.push({ status: r.status, reason: r.reason, body: r.body });
    }
    for (const a of answers) assert.deepEqual(a, answers[0]);
    assert.equal(answers[0].status, 404);
    c.close();
  });

  test('UDP: RTP from rtp_port (PT 14, MPA header, 90 kHz), sender reports from rtp_port+1, receiver reports in /metrics', async () => {
    const { rtp, rtcp, port } = await udpPair();
    sockets.add(rtp);
    sockets.add(rtcp);
    const pkts = [], reports = [];
    rtp.on('message', (m, from) => pkts.push({ p: parseRtp(m), from, t: performance.now() }));
    rtcp.on('message', (m, from) => reports.push({ r: parseRtcp(m), from }));
    const c = new RtspClient(urls.kitchen);
    await c.connect();
    const s = await c.start(`RTP/AVP;unicast;client_port=${port}-${port + 1}`);
    assert.match(s.transport, new RegExp(`client_port=${port}-${port + 1}`));
    assert.match(s.transport, new RegExp(`server_port=${cfg.rtpPort}-${cfg.rtpPort + 1}`));
    const ssrc = parseInt(/ssrc=([0-9A-Fa-f]+)/.exec(s.transport)[1], 16);
    assert.match(s.setup.headers.session, /^[0-9A-F]{16};timeout=6$/);
    assert.match(s.play.headers['rtp-info'], /url=.*;seq=\d+;rtptime=\d+/);
    await waitFor(() => reports.length > 0 && pkts.length > 60, { timeout: 5000, what: 'RTP and an SR' });
    for (const { p, from } of pkts) {
      assert.equal(from.port, cfg.rtpPort);
      assert.equal(p.pt, 14);
      assert.equal(p.ssrc, ssrc);
      assert.equal(p.payload.readUInt16BE(0), 0, 'MBZ');
      assert.equal(p.payload.readUInt16BE(2), 0, 'Frag_offset (frames fit a packet)');
      assert.equal(p.payload[4], 0xff, 'an MP3 frame follows');
    }
    for (let i = 1; i < pkts.length; i++) {
      assert.equal(pkts[i].p.seq, (pkts[i - 1].p.seq + 1) & 0xffff);
      assert.equal((pkts[i].p.ts - pkts[i - 1].p.ts) >>> 0, 2160, '1152 samples at 48 kHz on a 90 kHz clock');
    }
    const play = /seq=(\d+);rtptime=(\d+)/.exec(s.play.headers['rtp-info']);
    assert.equal(pkts[0].p.seq, Number(play[1]));
    assert.equal(pkts[0].p.ts, Number(play[2]));
    // Paced: after the start-up burst (0.1 s), no more than real time.
    const span = (pkts.at(-1).t - pkts[10].t) / 1000, media = (pkts.length - 11) * 0.024;
    assert.ok(span > media - 0.15, `${media.toFixed(2)} s of audio came in ${span.toFixed(2)} s`);
    const { r: sr, from } = reports[0];
    assert.equal(from.port, cfg.rtpPort + 1);
    assert.equal(sr[0].type, 200);
    assert.equal(sr[0].ssrc, ssrc);
    assert.equal(sr[1].type, 202, 'SDES CNAME');
    const ntpSec = sr[0].body.readUInt32BE(8) - 2208988800;
    assert.ok(Math.abs(ntpSec - Date.now() / 1000) < 5, 'NTP time is wall-clock time');
    // A receiver report comes back: its loss and jitter show in /metrics.
    const sid = s.session;
    rtcp.send(rtcpRr(0x1234, ssrc, { fraction: 64, lost: 3, highest: pkts.at(-1).p.seq, jitter: 900 }),
      cfg.rtpPort + 1, '127.0.0.1');
    await waitFor(async () => (await metric(`imes_rtsp_rr_cumulative_lost{session="${sid}"}`)) === 3,
      { timeout: 5000, what: 'the receiver report in /metrics' });
    assert.equal(await metric(`imes_rtsp_rr_jitter_seconds{session="${sid}"}`), 0.01);
    assert.equal(await metric(`imes_rtsp_rr_fraction_lost{session="${sid}"}`), 0.25);
    const t = await c.request('TEARDOWN', s.base, { Session: sid });
    assert.equal(t.status, 200);
    c.close();
    rtp.close();
    rtcp.close();
  });

  test('TCP interleaved: PAUSE stops the packets, PLAY resumes them in sequence', async () => {
    const c = new RtspClient(urls.kitchen);
    await c.connect();
    const pkts = [];
    c.onFrame = (ch, data) => { if (ch === 0) pkts.push(parseRtp(data)); };
    const s = await c.start('RTP/AVP/TCP;unicast;interleaved=0-1');
    assert.match(s.transport, /^RTP\/AVP\/TCP;unicast;interleaved=0-1/);
    await waitFor(() => pkts.length > 30, { timeout: 5000, what: 'interleaved RTP' });
    assert.equal((await metric('imes_rtsp_sessions_playing')) >= 1, true);
    const p = await c.request('PAUSE', s.base, { Session: s.session });
    assert.equal(p.status, 200);
    await sleep(300);
    const paused = pkts.length;
    const last = pkts.at(-1);
    await sleep(1000);
    assert.equal(pkts.length, paused, 'nothing while paused');
    const r = await c.request('PLAY', s.base, { Session: s.session });
    assert.equal(r.status, 200);
    await waitFor(() => pkts.length > paused + 20, { timeout: 5000, what: 'RTP after PLAY' });
    const next = pkts[paused];
    assert.equal(next.seq, (last.seq + 1) & 0xffff, 'the sequence goes on');
    const gap = ((next.ts - last.ts) >>> 0) / 90000;
    assert.ok(gap > 1.0 && gap < 3, `the RTP clock ran on through the pause (${gap.toFixed(2)} s)`);
    assert.equal((await c.request('TEARDOWN', s.base, { Session: s.session })).status, 200);
    c.close();
  });

  test('TEARDOWN, a vanished client and a silent one all free their session', async () => {
    const before = await metrics();
    const closed = (t, why) => metricIn(t, `imes_rtsp_sessions_closed_total{reason="${why}"}`);
    // TEARDOWN
    const a = new RtspClient(urls.kitchen);
    await a.connect();
    const sa = await a.start('RTP/AVP/TCP;unicast;interleaved=0-1');
    // vanished: the connection just goes
    const b = new RtspClient(urls.kitchen);
    await b.connect();
    await b.start('RTP/AVP/TCP;unicast;interleaved=0-1');
    // silent: UDP to nowhere, the connection stays open, no keep-alive, no RTCP
    const sink = await udp();
    const c = new RtspClient(urls.kitchen);
    await c.connect();
    c.session = (await c.start(`RTP/AVP;unicast;client_port=${sink.address().port}-${sink.address().port + 1}`)).session;
    const n0 = await sessions();
    assert.ok(n0 >= 3, `${n0} sessions`);
    await a.request('TEARDOWN', sa.base, { Session: sa.session });
    b.close();
    await waitFor(async () => (await sessions()) <= n0 - 2, { timeout: 5000, what: 'two sessions gone' });
    const mid = await metrics();
    assert.equal(closed(mid, 'teardown') - closed(before, 'teardown'), 1);
    assert.ok(closed(mid, 'connection') - closed(before, 'connection') >= 1);
    // The silent one: 6 s timeout, checked every 0.25 s (its connection,
    // idle as long, is closed with it).
    await waitFor(async () => closed(await metrics(), 'timeout') > closed(before, 'timeout'),
      { timeout: 12000, interval: 500, what: 'the silent session to expire' });
    // A keep-alive naming the expired session: it is gone.
    const k = new RtspClient(urls.kitchen);
    await k.connect();
    assert.equal((await k.request('GET_PARAMETER', urls.kitchen, { Session: c.session })).status, 454);
    k.close();
    a.close();
    c.close();
    sink.close();
  });

  test('100 sessions at once', async () => {
    const sink = await udp();
    const port = sink.address().port;
    const n0 = await sessions();
    const ssrcs = new Set();
    sink.on('message', (m) => { const p = parseRtp(m); if (p) ssrcs.add(p.ssrc); });
    const clients = [];
    for (let i = 0; i < 100; i++) {
      const c = new RtspClient(urls.kitchen);
      clients.push(c);
    }
    await Promise.all(clients.map(async (c, i) => {
      await c.connect();
      if (i % 2) await c.start(`RTP/AVP;unicast;client_port=${port}-${port + 1}`);
      else await c.start('RTP/AVP/TCP;unicast;interleaved=0-1');
    }));
    assert.equal(await sessions(), n0 + 100);
    assert.ok((await metric('imes_rtsp_sessions_playing')) >= 100);
    await waitFor(() => ssrcs.size === 50 && clients.every((c, i) => i % 2 || c.frames > 20),
      { timeout: 8000, what: 'RTP from all 100 sessions' });
    for (const c of clients) c.close();
    await waitFor(async () => (await sessions()) === n0, { timeout: 5000, what: 'all 100 freed' });
    sink.close();
  });
});

describe('bad input', () => {
  let c;
  before(async () => {
    c = new RtspClient(urls.kitchen);
    await c.connect();
  });
  after(() => c.close());

  const status = async (method, headers = {}, url = urls.kitchen) => (await c.request(method, url, headers)).status;

  test('unknown and unsupported methods, missing CSeq, Require', async () => {
    assert.equal(await status('FROB'), 501);
    assert.equal(await status('RECORD'), 405);
    assert.equal(await status('ANNOUNCE'), 405);
    const r = await c.request('OPTIONS', urls.kitchen, { Require: 'com.example.magic' });
    assert.equal(r.status, 551);
    assert.equal(r.reason, 'Option not supported');
    assert.equal(r.headers.unsupported, 'com.example.magic');
    const n = await c.raw(`OPTIONS ${urls.kitchen} RTSP/1.0\r\n\r\n`);
    assert.equal(n.status, 400);
  });

  test('bad transports: 461 for what we do not serve, 400 for nonsense', async () => {
    const setup = (t) => status('SETUP', t === null ? {} : { Transport: t }, `${urls.kitchen}/trackID=0`);
    assert.equal(await setup('RTP/AVP;multicast;destination=224.2.0.1;port=5000-5001'), 461);
    assert.equal(await setup('RTP/SAVP;unicast;client_port=5000-5001'), 461);
    assert.equal(await setup('RAW/RAW/UDP;unicast;client_port=5000-5001'), 461);
    assert.equal(await setup('RTP/AVP;unicast'), 461);
    assert.equal(await setup('RTP/AVP;unicast;client_port=abc'), 400);
    assert.equal(await setup('RTP/AVP;unicast;client_port=70000-70001'), 400);
    assert.equal(await setup('RTP/AVP/TCP;interleaved=1-2-3'), 400);
    assert.equal(await setup(null), 400);
    assert.equal(await status('SETUP', { Transport: 'RTP/AVP/TCP;interleaved=0-1' }, `${urls.kitchen}/trackID=7`), 404);
  });

  test('wrong, missing and stale session ids', async () => {
    assert.equal(await status('PLAY', { Session: 'DEADBEEFDEADBEEF' }), 454);
    assert.equal(await status('PLAY'), 454);
    assert.equal(await status('PAUSE', { Session: 'nope' }), 454);
    assert.equal(await status('TEARDOWN', { Session: 'DEADBEEFDEADBEEF' }), 454);
    assert.equal(await status('GET_PARAMETER', { Session: 'x'.repeat(200) }), 454);
    // A second SETUP into a session (one stream each), a PLAY on another URL,
    // a bad Range, then its own TEARDOWN.
    const s = await c.request('SETUP', `${urls.kitchen}/trackID=0`, { Transport: 'RTP/AVP/TCP;interleaved=0-1' });
    assert.equal(s.status, 200);
    const sid = s.headers.session.split(';')[0];
    assert.equal(await status('SETUP', { Session: sid, Transport: 'RTP/AVP/TCP;interleaved=2-3' }, `${urls.kitchen}/trackID=0`), 459);
    assert.equal(await status('PLAY', { Session: sid }, `${urls.den}`), 404);
    assert.equal(await status('PLAY', { Session: sid, Range: 'bogus' }), 457);
    assert.equal(await status('GET_PARAMETER', { Session: sid }), 200);
    assert.equal(await status('TEARDOWN', { Session: sid }), 200);
    assert.equal(await status('TEARDOWN', { Session: sid }), 454);
  });

  test('a request split across many TCP segments', async () => {
    const d = new RtspClient(urls.kitchen);
    await d.connect();
    const text = `DESCRIBE ${urls.kitchen} RTSP/1.0\r\nCSeq: 9\r\nAccept: application/sdp\r\n\r\n`;
    const answer = new Promise((resolve, reject) => d.waiting.push({ resolve, reject }));
    for (const ch of text) {
      d.sock.write(ch);
      await sleep(2);
    }
    const r = await answer;
    assert.equal(r.status, 200);
    assert.equal(r.headers.cseq, '9');
    assert.match(r.body, /MPA\/90000/);
    d.close();
  });

  test('oversized headers, a malformed request line, junk RTCP: answered or ignored, imesd stays up', async () => {
    const big = new RtspClient(urls.kitchen);
    await big.connect();
    const r = await big.raw(`OPTIONS ${urls.kitchen} RTSP/1.0\r\nCSeq: 1\r\nX-Big: ${'a'.repeat(20000)}\r\n\r\n`);
    assert.ok([400, 413, 431].includes(r.status), `got ${r.status}`);
    big.close();
    const bad = new RtspClient(urls.kitchen);
    await bad.connect();
    const m = await bad.raw('SETUP  RTSP/1.0 extra\r\nCSeq: 1\r\n\r\n');
    assert.equal(m.status, 400);
    bad.close();
    const v = new RtspClient(urls.kitchen);
    await v.connect();
    assert.equal((await v.raw(`OPTIONS ${urls.kitchen} RTSP/2.0\r\nCSeq: 1\r\n\r\n`)).status, 505);
    v.close();
    // Junk on the RTCP channel of a TCP session, and junk at the RTCP port.
    const j = new RtspClient(urls.kitchen);
    await j.connect();
    const s = await j.start('RTP/AVP/TCP;unicast;interleaved=0-1');
    const badBefore = await metric('imes_rtsp_rtcp_bad_total');
    const junk = Buffer.from([0x24, 1, 0, 8, 0x81, 201, 0, 9, 1, 2, 3, 4]);
    j.sock.write(junk);
    const u = await udp();
    u.send(Buffer.from('not rtcp at all'), cfg.rtpPort + 1, '127.0.0.1');
    await waitFor(async () => (await metric('imes_rtsp_rtcp_bad_total')) >= badBefore + 2,
      { timeout: 3000, what: 'junk RTCP counted' });
    assert.equal((await j.request('GET_PARAMETER', s.base, { Session: s.session })).status, 200);
    j.close();
    u.close();
    const h = await fetch(`${imesd.url}/healthz`);
    assert.equal(h.status, 200);
  });
});

describe('a muted device', () => {
  test('gets silence over RTSP, as over HTTP, and its sound back when let go', async () => {
    assert.equal((await fetch(delegate.pause)).status, 200);
    await sleep(1500); // past the fade, and past what a new session's burst holds
    const muted = (await decode(urls.kitchen, { seconds: 3, inputArgs: ['-rtsp_transport', 'tcp'] })).samples;
    assert.ok(muted.length >= 2 * 48000, `${muted.length} samples`);
    const level = dbfs(rms(muted, 0, muted.length));
    assert.ok(level < -50, `muted: ${level.toFixed(1)} dBFS`);
    assert.equal((await fetch(delegate.unpause)).status, 200);
    await sleep(1500);
    const back = (await decode(urls.kitchen, { seconds: 4, inputArgs: ['-rtsp_transport', 'udp'] })).samples;
    checkTones('unmuted', back, 4);
  });
});
