// The foundation end to end: a real pouchdb-server, `imes init`, a real imesd.
// imesd sees documents written by others; survives CouchDB going away and
// reconnects by itself; after its own restart applies every change made
// meanwhile exactly once; reopens its log on SIGHUP; refuses a bad config.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import {
  startCouch, writeConfig, imes, startImesd, waitFor, couchRequest,
} from '../lib/harness.mjs';

const BIN = path.join(process.env.IMES_BUILD_DIR || 'build', 'bin');
let couch, cfg, imesd;

// Every "applied <id> <rev>" line imesd logged, across all of its runs.
function appliedLines(text) {
  const out = [];
  for (const m of text.matchAll(/\bapplied (\S+) (\S+)/g)) out.push(`${m[1]} ${m[2]}`);
  return out;
}
const logText = () => fs.readFileSync(cfg.logPath, 'utf8');

async function healthz() {
  try {
    const r = await fetch(`${imesd.url}/healthz`);
    return { status: r.status, body: await r.json() };
  } catch (e) {
    return { status: 0, body: null };
  }
}

async function put(id, body) {
  const cur = await couchRequest(couch, 'GET', `/imes/${encodeURIComponent(id)}`, { user: 'admin' });
  const doc = { ...body, _id: id };
  if (cur.status === 200) doc._rev = cur.body._rev;
  const r = await couchRequest(couch, 'PUT', `/imes/${encodeURIComponent(id)}`, { body: doc, user: 'admin' });
  assert.ok(r.status === 201 || r.status === 202, `PUT ${id}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body.rev;
}

async function statusDoc() {
  const r = await couchRequest(couch, 'GET', '/imes/status%3Abackend%3Aimesd', { user: 'admin' });
  return r.status === 200 ? r.body : null;
}

before(async () => {
  couch = await startCouch();
  cfg = await writeConfig(couch);
  const init = await imes(cfg, ['init']);
  assert.equal(init.code, 0, `imes init failed: ${init.stderr}`);
  imesd = await startImesd(cfg);
});

after(async () => {
  if (imesd) await imesd.stop();
  if (couch) await couch.stop();
});

test('healthz reports CouchDB reachable and the feed live', async () => {
  const h = await waitFor(async () => {
    const x = await healthz();
    return x.status === 200 && x;
  }, { timeout: 15000, what: 'healthz 200' });
  assert.equal(h.body.couchdb, 'reachable');
  assert.equal(h.body.feed, 'live');
  const m = await (await fetch(`${imesd.url}/metrics`)).text();
  assert.match(m, /^imes_couchdb_up 1$/m);
  assert.match(m, /^imes_changes_feed_live 1$/m);
});

test('the feed stays open while nothing happens (heartbeats keep it alive)', async () => {
  // Three heartbeat periods (2 s each) and more with no change at all: an
  // idle feed must not be taken for a dead one.
  await new Promise((r) => setTimeout(r, 8000));
  const m = await (await fetch(`${imesd.url}/metrics`)).text();
  assert.match(m, /^imes_changes_reconnects_total 0$/m);
  assert.doesNotMatch(logText(), /feed ended/);
  assert.match(m, /^imes_changes_feed_live 1$/m);
});

test('a document written by someone else is seen by imesd', async () => {
  const rev = await put('channel:lounge', { type: 'channel', paused: false });
  await waitFor(() => appliedLines(logText()).includes(`channel:lounge ${rev}`),
    { what: 'imesd to apply channel:lounge' });
  // and it says so in its own status document, within the throttle period
  const st = await waitFor(async () => {
    const s = await statusDoc();
    return s && s.changes_applied >= 1 && s.feed === 'live' && s;
  }, { what: 'status:backend:imesd to count the change' });
  assert.equal(st.state, 'running');
  assert.ok(st.last_seq !== null && st.last_seq !== undefined);
});

test('a document imesd cannot understand is logged and skipped; the feed goes on', async () => {
  const badRev = await put('mystery:thing', { hello: 'world' });
  const goodRev = await put('channel:after-bad', { paused: true });
  await waitFor(() => appliedLines(logText()).includes(`channel:after-bad ${goodRev}`),
    { what: 'the change after the bad one' });
  const log = logText();
  const mentions = log.split('\n').filter((l) => l.includes(`mystery:thing ${badRev}`));
  assert.equal(mentions.length, 1, `logged once: ${mentions.join('\n')}`);
  assert.match(mentions[0], /not understood/);
});

test('CouchDB gone for 10 s: imesd stays up, says so, and reconnects by itself', async () => {
  await couch.stop();
  // The feed notices at once, the liveness probe within its 2 s period.
  const down = await waitFor(async () => {
    const x = await healthz();
    return x.status === 503 && x.body.couchdb === 'unreachable' && x;
  }, { timeout: 8000, what: 'healthz to report CouchDB down' });
  assert.notEqual(down.body.feed, 'live');
  await new Promise((r) => setTimeout(r, 10000));
  assert.equal(imesd.proc.exitCode, null, 'imesd is still running');
  assert.equal((await healthz()).status, 503);
  await couch.start();
  await waitFor(async () => (await healthz()).status === 200,
    { timeout: 15000, what: 'healthz back to 200 after CouchDB returned' });
  const rev = await put('channel:after-outage', { paused: false });
  await waitFor(() => appliedLines(logText()).includes(`channel:after-outage ${rev}`),
    { what: 'a change after the outage' });
});

test('imesd restarted: every change made meanwhile is applied exactly once', async () => {
  const before = appliedLines(logText());
  const code = await imesd.stop();
  assert.equal(code, 0, 'clean exit on SIGTERM');
  assert.match(logText(), /stopped/);
  const st = await statusDoc();
  assert.equal(st.state, 'stopped', 'the final status document says stopped');

  const written = [];
  for (let i = 0; i < 5; i++) written.push(`channel:meanwhile-${i} ${await put(`channel:meanwhile-${i}`, { paused: false })}`);
  written.push(`channel:lounge ${await put('channel:lounge', { paused: true })}`); // an update
  const delRev = (await couchRequest(couch, 'GET', '/imes/channel%3Aafter-bad', { user: 'admin' })).body._rev;
  const del = await couchRequest(couch, 'DELETE', `/imes/channel%3Aafter-bad?rev=${delRev}`, { user: 'admin' });
  assert.equal(del.status, 200);
  written.push(`channel:after-bad ${del.body.rev}`);

  imesd = await startImesd(cfg);
  await waitFor(() => {
    const now = appliedLines(logText());
    return written.every((w) => now.includes(w));
  }, { timeout: 15000, what: 'every change made while imesd was down' });
  await new Promise((r) => setTimeout(r, 1500)); // give duplicates a chance to show
  const all = appliedLines(logText());
  const counts = new Map();
  for (const a of all) counts.set(a, (counts.get(a) || 0) + 1);
  for (const [k, n] of counts) assert.equal(n, 1, `${k} applied ${n} times`);
  // and nothing from before the restart was applied again
  assert.equal(all.length, before.length + written.length);
});

test('SIGHUP reopens the log file', async () => {
  const moved = `${cfg.logPath}.1`;
  fs.renameSync(cfg.logPath, moved);
  imesd.proc.kill('SIGHUP');
  await waitFor(() => fs.existsSync(cfg.logPath) && /log reopened/.test(logText()),
    { what: 'a new log file after SIGHUP' });
  // append the rotated part back so later tests read one history
  fs.writeFileSync(cfg.logPath, fs.readFileSync(moved, 'utf8') + logText());
});

test('a bad configuration is refused with file, line and key, exit status 2', () => {
  const bad = path.join(cfg.dir, 'bad.yaml');
  fs.writeFileSync(bad, 'database:\n  name: imes\nbackend:\n  bind_port: lots\n');
  const r = spawnSync(path.join(BIN, 'imesd'), ['-c', bad], { encoding: 'utf8' });
  assert.equal(r.status, 2);
  assert.match(r.stderr, new RegExp(`${bad.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:4: backend\\.bind_port: "lots" must be a whole number`));
  fs.writeFileSync(bad, 'media:\n  - /nonexistent/music\n');
  const r2 = spawnSync(path.join(BIN, 'imesd'), ['-c', bad], { encoding: 'utf8' });
  assert.equal(r2.status, 2);
  assert.match(r2.stderr, /bad\.yaml:2: media: \/nonexistent\/music: No such file or directory/);
});
