// Matriz's optional recording (issue 7, peer.yaml `record`): three peers
// with the file/tone backend (440, 660, 880 Hz at -12 dBFS, L16); lisboa
// records its mix, its own input and each other peer into WAV files named
// with their UTC start time. After SIGTERM every file is a complete WAV
// (header sizes match the file), the mix holds porto's and faro's tones at
// their level for as long as the links played and not lisboa's own, and
// each peer's file holds that peer only. A folder it cannot write to is
// reported and the peer plays on.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { waitFor } from '../lib/harness.mjs';
import { goertzel } from '../lib/audio.mjs';
import { readWavLeft } from '../lib/wav.mjs';
import { sanitized } from '../lib/build.mjs';
import { Mesh } from '../lib/matriz.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const HEARD = sanitized() ? 0.03 : 0.15; // -12 dBFS measures 0.25
const NAMES = ['lisboa', 'porto', 'faro'];
const TONES = { lisboa: 440, porto: 660, faro: 880 };
const STAMP = /^\d{8}T\d{6}Z$/;

const mesh = new Mesh(NAMES);
const { peers } = mesh;
const logOf = (name) => mesh.logOf(name);
const startPeer = (name, record) =>
  mesh.startPeer(name, {
    audio: { tone_hz: TONES[name] },
    send: { codec: 'L16' },
    log: { level: 'info' },
    ...(record ? { record } : {}),
  });

/** A 16-bit stereo WAV whose header agrees with the file: its seconds. */
function checkWav(file) {
  const b = fs.readFileSync(file);
  assert.ok(b.length >= 44, `${file}: ${b.length} bytes`);
  assert.equal(b.toString('ascii', 0, 4), 'RIFF');
  assert.equal(b.toString('ascii', 8, 12), 'WAVE');
  assert.equal(b.readUInt32LE(4), b.length - 8, `${file}: RIFF size`);
  assert.equal(b.readUInt16LE(22), 2, 'channels');
  assert.equal(b.readUInt32LE(24), 48000, 'rate');
  assert.equal(b.readUInt16LE(34), 16, 'bits');
  assert.equal(b.toString('ascii', 36, 40), 'data');
  assert.equal(b.readUInt32LE(40), b.length - 44, `${file}: data size`);
  return (b.length - 44) / 4 / 48000;
}

/** Each tone's level over the last `seconds` of a file: the median of its
 * 100 ms windows (a concealed frame on a busy machine shifts the tone's
 * phase, which a single long window would read as a lower level). */
function tones(file, seconds = 2) {
  const x = readWavLeft(file);
  const W = 4800;
  const out = {};
  for (const [n, f] of Object.entries(TONES)) {
    const v = [];
    for (let o = x.length - W; o >= 0 && o >= x.length - seconds * 48000; o -= W) v.push(goertzel(x, o, W, f));
    v.sort((a, b) => a - b);
    out[n] = v.length ? v[v.length >> 1] : 0;
  }
  return out;
}

before(() => mesh.start());
after(() => mesh.stop());

describe('recording', () => {
  test('the mix, our input and each peer, complete WAV files after SIGTERM', async () => {
    const recDir = fs.mkdtempSync(path.join(os.tmpdir(), 'imes-test-matriz-recording-'));
    const t0 = Date.now();
    await startPeer('lisboa', { dir: recDir, what: ['mix', 'self', 'peers'] });
    await startPeer('porto');
    await startPeer('faro');
    for (const o of ['porto', 'faro'])
      await waitFor(() => logOf('lisboa').includes(`link to ${o} opened`), { timeout: 15000, what: `lisboa's link to ${o}` });
    const linked = Date.now();
    await sleep(3000);
    assert.equal(await peers.lisboa.proc.stop(), 0);
    const ran = (Date.now() - t0) / 1000, played = (Date.now() - linked) / 1000;

    const files = fs.readdirSync(recDir).sort();
    process.stderr.write(`recorded: ${files.join(', ')}\n`);
    const find = (prefix) => {
      const f = files.filter((n) => n.startsWith(prefix) && n.endsWith('.wav'));
      assert.equal(f.length, 1, `one ${prefix}*.wav in ${files}`);
      assert.match(f[0].slice(prefix.length, -4), STAMP);
      return path.join(recDir, f[0]);
    };
    const mix = find('mix-'), self = find('self-'), porto = find('peer-porto-'), faro = find('peer-faro-');
    assert.equal(files.length, 4);

    const mixS = checkWav(mix), selfS = checkWav(self);
    // mix and self run from the audio start to the stop; a peer's file from
    // when its link opened.
    assert.ok(mixS > played && mixS <= ran + 0.5, `mix ${mixS} s (ran ${ran} s, linked ${played} s)`);
    assert.ok(Math.abs(selfS - mixS) < 0.05, `self ${selfS} s, mix ${mixS} s`);
    for (const f of [porto, faro]) {
      const s = checkWav(f);
      assert.ok(s > played - 1 && s <= mixS, `${f}: ${s} s (linked ${played} s)`);
    }

    const m = tones(mix);
    process.stderr.write(`mix: ${JSON.stringify(m)}\n`);
    assert.ok(m.porto > HEARD && m.faro > HEARD, `the mix holds both others: ${JSON.stringify(m)}`);
    assert.ok(m.porto < 0.3 && m.faro < 0.3, `at their level: ${JSON.stringify(m)}`);
    assert.ok(m.lisboa < 0.01, `and not lisboa's own: ${JSON.stringify(m)}`);
    const s = tones(self);
    assert.ok(s.lisboa > 0.2 && s.lisboa < 0.3 && s.porto < 0.01, `self: ${JSON.stringify(s)}`);
    const p = tones(porto), f = tones(faro);
    assert.ok(p.porto > HEARD && p.faro < 0.01, `porto's file: ${JSON.stringify(p)}`);
    assert.ok(f.faro > HEARD && f.porto < 0.01, `faro's file: ${JSON.stringify(f)}`);
    assert.match(logOf('lisboa'), /recording: .*mix-\d{8}T\d{6}Z\.wav closed/);
  });

  test('a folder it cannot write to is reported; the peer plays on', async () => {
    const missing = path.join(os.tmpdir(), `imes-test-no-such-folder-${process.pid}`);
    await startPeer('lisboa', { dir: missing });
    await waitFor(async () => (await mesh.peerDoc('lisboa'))?.online === true, { timeout: 10000, what: 'lisboa online' });
    await waitFor(() => logOf('lisboa').includes('link to porto opened'), { timeout: 10000, what: 'link to porto' });
    assert.match(logOf('lisboa'), new RegExp(`recording off: ${missing}: No such file or directory`));
    assert.equal(peers.lisboa.proc.proc.exitCode, null);
  });
});
