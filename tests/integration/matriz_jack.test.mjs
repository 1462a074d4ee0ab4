// Matriz under JACK (issue 7): two peers with the JACK backend on one jackd
// (dummy driver, 48 kHz, 128 frames), each fed a tone of its own into its
// capture ports by a JACK client; each peer's output ports for the other
// carry the other's tone and not its own; when one is killed, the other's
// ports for it go away within 1 s, and come back when it returns. When
// jackd itself goes, the peers stay up (and in the roster); when it is back
// their ports and connections are too, carrying the tones again.
import { spawnSync } from 'node:child_process';
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  startCouch, writeConfig, imes, startImesd, couchRequest, waitFor, freePort, startProcess,
  binPath, toYaml,
} from '../lib/harness.mjs';
import { startJackd, startJtool, runJtool, jackPorts } from '../lib/jack.mjs';
import { sanitized } from '../lib/build.mjs';

// -12 dBFS is 0.25; a concealed frame now and then on a busy machine costs
// some level, not the tone (under AddressSanitizer, more of them).
const HEARD = sanitized() ? 0.03 : 0.1;

let couch, cfg, imesd, jack;
const peers = {};
const tones = [];
const TONE = { lisboa: 440, porto: 660 };

async function startPeer(name, rtpMin) {
  const p = peers[name] ?? {};
  if (!p.dir) {
    const r = await imes(cfg, ['peer', 'add', name]);
    assert.equal(r.code, 0, r.stderr);
    p.key = /^key ([0-9a-f]+)$/m.exec(r.stdout)[1];
    p.dir = fs.mkdtempSync(path.join(os.tmpdir(), `imes-test-matriz-jack-${name}-`));
    p.rtspPort = await freePort();
    p.logPath = path.join(p.dir, 'matriz.log');
  }
  const conf = {
    peer: { name, key: p.key, imesd: imesd.url },
    roster: { couchdb: couch.url },
    net: { bind_host: '127.0.0.1', rtsp_port: p.rtspPort, rtp_min: rtpMin, rtp_max: rtpMin + 60 },
    audio: { backend: 'jack', jack_server: jack.name, connect_capture: '' },
    log: { level: 'debug', file: p.logPath },
  };
  fs.writeFileSync(path.join(p.dir, 'peer.yaml'), toYaml(conf));
  p.proc = startProcess(binPath('matriz'), ['-c', path.join(p.dir, 'peer.yaml')], {
    name: `matriz-${name}`,
    cwd: p.dir,
  });
  peers[name] = p;
  return p;
}

before(async () => {
  jack = await startJackd({ period: 128 });
  couch = await startCouch();
  cfg = await writeConfig(couch);
  assert.equal((await imes(cfg, ['init'])).code, 0);
  imesd = await startImesd(cfg);
});

after(async () => {
  for (const t of tones) await t.stop();
  for (const p of Object.values(peers)) if (p.proc) await p.proc.stop();
  if (imesd) await imesd.stop();
  if (couch) await couch.stop();
  if (jack) await jack.stop();
});

function checkLevels() {
  const lv = runJtool(jack, ['meter', 'levels', '1.5', '440,660',
    'porto:lisboa_L', 'porto:lisboa_R', 'porto:mix_L', 'lisboa:porto_L', 'lisboa:mix_R']);
  process.stderr.write(`levels: ${JSON.stringify(lv)}\n`);
  for (const port of ['porto:lisboa_L', 'porto:lisboa_R', 'porto:mix_L']) {
    assert.ok(lv[port]['440'] > HEARD, `${port}: ${JSON.stringify(lv[port])}`);
    assert.ok(lv[port]['660'] < 0.01, `${port} carries porto's own tone`);
  }
  for (const port of ['lisboa:porto_L', 'lisboa:mix_R']) {
    assert.ok(lv[port]['660'] > HEARD, `${port}: ${JSON.stringify(lv[port])}`);
    assert.ok(lv[port]['440'] < 0.01, `${port} carries lisboa's own tone`);
  }
}

function startTones() {
  for (const [name, hz] of Object.entries(TONE))
    tones.push(startJtool(jack, `tone-${name}`, ['tone', String(hz), '-12', `${name}:in_1`, `${name}:in_2`]));
}

const logOf = (name) => fs.readFileSync(peers[name].logPath, 'utf8');

test('two peers on JACK hear each other through their ports', async () => {
  await startPeer('lisboa', 49000);
  await startPeer('porto', 49400);
  await waitFor(() => {
    const ports = jackPorts(jack);
    return ports.includes('lisboa:porto_L') && ports.includes('porto:lisboa_R') && ports.includes('porto:in_2');
  }, { timeout: 10000, what: 'the peers and their ports for each other' });
  startTones();
  // The jitter buffers settle in their first seconds (start-up bursts).
  await new Promise((r) => setTimeout(r, 4000));
  const st = await couchRequest(couch, 'GET', '/imes/peer:porto', { user: 'admin' });
  process.stderr.write(`porto's stats: ${JSON.stringify(st.body.stats)}\n`);
  checkLevels();
});

test('a peer killed: its ports at the other go within 1 s; back when it returns', async () => {
  const t0 = Date.now();
  peers.porto.proc.proc.kill('SIGKILL');
  await waitFor(() => !jackPorts(jack).includes('lisboa:porto_L'), {
    timeout: 1000,
    interval: 20,
    what: "lisboa's porto ports gone within 1 s",
  });
  process.stderr.write(`porto killed -> lisboa's ports for it gone in ${Date.now() - t0} ms\n`);
  await peers.porto.proc.exited;
  await startPeer('porto', 49400);
  await waitFor(() => jackPorts(jack).includes('lisboa:porto_L') && jackPorts(jack).includes('porto:in_1'), {
    timeout: 5000,
    what: 'porto back',
  });
  const doc = await couchRequest(couch, 'GET', '/imes/peer:porto', { user: 'admin' });
  assert.equal(doc.body.online, true);
});

test('jackd goes and comes back: the peers stay up; their ports, connections and tones return', async () => {
  const jackConnect = (a, b) => spawnSync('jack_connect', [a, b], { env: jack.env, encoding: 'utf8' });
  const connections = () => spawnSync('jack_lsp', ['-c'], { env: jack.env, encoding: 'utf8' }).stdout;
  assert.equal(jackConnect('lisboa:mix_L', 'system:playback_1').status, 0);
  assert.equal(jackConnect('porto:lisboa_R', 'system:playback_2').status, 0);
  await new Promise((r) => setTimeout(r, 1500)); // (the peers note their connections every second)
  for (const t of tones.splice(0)) await t.stop();
  await jack.stop();
  await waitFor(() => ['lisboa', 'porto'].every((n) => logOf(n).includes('the JACK server shut us down')), {
    timeout: 5000,
    what: 'both peers told of the shutdown',
  });
  await new Promise((r) => setTimeout(r, 2000));
  for (const name of ['lisboa', 'porto']) {
    assert.equal(peers[name].proc.proc.exitCode, null, `${name} is still running`);
    const doc = await couchRequest(couch, 'GET', `/imes/peer:${name}`, { user: 'admin' });
    assert.equal(doc.body.online, true, `${name} stays in the roster`);
  }
  const t0 = Date.now();
  jack = await startJackd({ period: 128, name: jack.name });
  await waitFor(() => {
    const ports = jackPorts(jack);
    return ['lisboa:porto_L', 'lisboa:in_1', 'lisboa:mix_L', 'porto:lisboa_R', 'porto:in_2'].every((p) => ports.includes(p));
  }, { timeout: 15000, what: 'the peers and their ports back' });
  process.stderr.write(`jackd back -> the peers' ports back in ${Date.now() - t0} ms\n`);
  await waitFor(() => /lisboa:mix_L\n\s+system:playback_1/.test(connections()) &&
    /porto:lisboa_R\n\s+system:playback_2/.test(connections()), { timeout: 3000, what: 'connections made again' });
  startTones();
  await new Promise((r) => setTimeout(r, 3000));
  checkLevels();
  for (const name of ['lisboa', 'porto']) assert.match(logOf(name), /the JACK server is back/);
});
