// Matriz peers on this machine (issue 7): three `matriz` processes with the
// file/tone backend join imesd's roster, follow it through CouchDB and keep a
// link (an output per remote peer) to each other; one is killed and comes
// back. Against a real pouchdb-server and imesd.
//
// Each peer sends a tone of its own (440, 660, 880 Hz) over RTSP/RTP (Opus,
// 5 ms frames) and writes what it hears into WAV files: its mix must carry
// the two other tones and not its own.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
import { startImesd, waitFor, startProcess, binPath } from '../lib/harness.mjs';
import { goertzel } from '../lib/audio.mjs';
import { readWavLeft as readWav } from '../lib/wav.mjs';
import { sanitized } from '../lib/build.mjs';
import { Mesh } from '../lib/matriz.mjs';

// A tone at -12 dBFS measures 0.25. On two cores shared with other test
// runs, a peer's first seconds may lose some frames (0.18 seen); under
// AddressSanitizer three peers' Opus work may not keep up in real time:
// there the tones are only checked to be there. Continuity under loss is
// matriz_loss's to judge.
const HEARD = sanitized() ? 0.03 : 0.1;

const NAMES = ['lisboa', 'porto', 'faro'];
const TONES = { lisboa: 440, porto: 660, faro: 880 };
const mesh = new Mesh(NAMES);
const { peers } = mesh;
const peerDoc = (name) => mesh.peerDoc(name);
const logOf = (name) => mesh.logOf(name);
const startPeer = (name) => mesh.startPeer(name, { audio: { tone_hz: TONES[name] } });

const count = (text, re) => (text.match(re) ?? []).length;

/** Tone levels over the last `seconds` of a peer's file. */
function levels(name, file, seconds = 1) {
  const x = readWav(path.join(peers[name].outDir, file));
  const len = Math.min(x.length, Math.round(seconds * 48000));
  const out = {};
  for (const [n, f] of Object.entries(TONES)) out[n] = goertzel(x, x.length - len, len, f);
  return out;
}

before(() => mesh.start());
after(() => mesh.stop());

describe('three peers', () => {
  test('matriz --help and --check-config', async () => {
    const help = await startProcess(binPath('matriz'), ['--help'], { name: 'matriz-help' });
    assert.equal(await help.exited, 0);
    assert.match(fs.readFileSync(help.outPath, 'utf8'), /Usage: matriz -c PEER\.YAML/);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'imes-test-matriz-bad-'));
    fs.writeFileSync(path.join(dir, 'peer.yaml'), 'peer:\n  name: x\n');
    const bad = startProcess(binPath('matriz'), ['-c', path.join(dir, 'peer.yaml'), '--check-config'], { name: 'matriz-bad' });
    assert.equal(await bad.exited, 2);
    assert.match(fs.readFileSync(bad.outPath, 'utf8'), /peer\.key: required/);
  });

  test('join, and each keeps a link to the two others (an output file each, none for itself)', async () => {
    for (const name of NAMES) await startPeer(name);
    for (const name of NAMES)
      await waitFor(async () => (await peerDoc(name))?.online === true, { timeout: 10000, what: `${name} online` });
    for (const name of NAMES) {
      const others = NAMES.filter((n) => n !== name);
      await waitFor(() => others.every((o) => logOf(name).includes(`link to ${o} opened`)), {
        timeout: 5000,
        what: `${name}'s links to ${others}`,
      });
      const files = fs.readdirSync(peers[name].outDir).sort();
      assert.deepEqual(files, [...others.map((o) => `${o}.wav`), 'mix.wav'].sort());
      assert.doesNotMatch(logOf(name), new RegExp(`link to ${name} `));
    }
    const doc = await peerDoc('porto');
    assert.equal(doc.rtsp_url, `rtsp://127.0.0.1:${peers.porto.rtspPort}/stream`);
    assert.equal(doc.codec, 'opus');
    assert.equal(doc.reachable, true);
  });

  test("every peer hears the two others' tones and not its own", async () => {
    await sleep(4000);
    for (const name of NAMES) {
      const mix = levels(name, 'mix.wav');
      const show = Object.entries(mix).map(([n, v]) => `${n} ${v.toFixed(3)}`).join(', ');
      process.stderr.write(`${name} hears: ${show}\n`);
      if (!(mix[name] < 0.01) || Object.entries(mix).some(([n, v]) => n !== name && v <= HEARD))
        process.stderr.write(`${name}'s stats: ${JSON.stringify((await peerDoc(name))?.stats)}\n`);
      for (const other of NAMES.filter((n) => n !== name)) {
        // -12 dBFS is 0.25; Opus at 96 kbit/s keeps a tone's level.
        assert.ok(mix[other] > HEARD, `${name} does not hear ${other}: ${show}`);
        const own = levels(name, `${other}.wav`);
        assert.ok(own[other] > HEARD && own[name] < 0.01, `${name}'s ${other}.wav: ${JSON.stringify(own)}`);
      }
      assert.ok(mix[name] < 0.01, `${name} hears itself: ${show}`);
    }
  });

  test('link stats reach the peer documents', async () => {
    const doc = await waitFor(async () => {
      const d = await peerDoc('lisboa');
      // (the first post has no rate yet: it needs two samples)
      return d?.stats?.links?.porto?.kbps > 0 && d?.stats?.links?.faro ? d : null;
    }, { timeout: 6000, what: "lisboa's link stats" });
    const s = doc.stats.links.porto;
    process.stderr.write(`lisboa <- porto: ${JSON.stringify(s)}\n`);
    assert.equal(s.playing, true);
    assert.equal(s.frame, 240);
    if (!sanitized()) assert.ok(s.target_ms < 30, `jitter buffer target ${s.target_ms} ms on loopback`);
    assert.equal(s.lost, 0);
    assert.ok(s.kbps > 50 && s.kbps < 200, `${s.kbps} kbit/s`);
  });

  test('a peer killed: the others see it offline and close its link within 1 s', async () => {
    const t0 = Date.now();
    peers.faro.proc.proc.kill('SIGKILL');
    await waitFor(async () => (await peerDoc('faro'))?.online === false, { timeout: 1000, interval: 20, what: 'faro offline' });
    for (const name of ['lisboa', 'porto'])
      await waitFor(() => logOf(name).includes('link to faro closed (it left)'), {
        timeout: 1000 - (Date.now() - t0),
        interval: 20,
        what: `${name} closing its link to faro within 1 s`,
      });
    const took = Date.now() - t0;
    process.stderr.write(`faro killed -> links closed in ${took} ms\n`);
    assert.ok(took < 1000);
  });

  test('it rejoins: back in the roster and linked again within 2 s', async () => {
    await peers.faro.proc.exited;
    const t0 = Date.now();
    await startPeer('faro');
    await waitFor(async () => (await peerDoc('faro'))?.online === true, { timeout: 2000, interval: 20, what: 'faro online again' });
    for (const name of ['lisboa', 'porto'])
      await waitFor(() => count(logOf(name), /link to faro opened/g) === 2, {
        timeout: 2000 - (Date.now() - t0),
        interval: 20,
        what: `${name} linked to faro again within 2 s`,
      });
    await waitFor(() => ['lisboa', 'porto'].every((o) => count(logOf('faro'), new RegExp(`link to ${o} opened`, 'g')) >= 1), {
      timeout: 2000 - (Date.now() - t0),
      interval: 20,
      what: 'faro linked to the others',
    });
    process.stderr.write(`faro restarted -> linked again in ${Date.now() - t0} ms\n`);
  });

  test('imesd killed and restarted: the peers join again by themselves, links kept', async () => {
    mesh.imesd.kill();
    await mesh.imesd.exited;
    const t0 = Date.now();
    mesh.imesd = await startImesd(mesh.cfg);
    for (const name of NAMES)
      await waitFor(async () => (await peerDoc(name))?.online === true, {
        timeout: 10000,
        interval: 50,
        what: `${name} back in the roster`,
      });
    process.stderr.write(`imesd restarted -> all peers joined again in ${Date.now() - t0} ms\n`);
    // Each rejoin is a new session: links are replaced, and audio flows again.
    await sleep(2000);
    const mix = levels('lisboa', 'mix.wav', 0.5);
    assert.ok(mix.porto > 0.03 && mix.faro > 0.03, `lisboa after the restart: ${JSON.stringify(mix)}`);
  });

  test('a peer stopped cleanly leaves the roster at once', async () => {
    const t0 = Date.now();
    const code = await peers.porto.proc.stop();
    assert.equal(code, 0, logOf('porto'));
    await waitFor(async () => (await peerDoc('porto'))?.online === false, { timeout: 1000, interval: 20, what: 'porto offline' });
    await waitFor(() => logOf('lisboa').includes('link to porto closed (it left)'), { timeout: 1000, what: 'lisboa unlinks porto' });
    assert.ok(Date.now() - t0 < 2000);
    peers.porto.proc = null;
  });
});
