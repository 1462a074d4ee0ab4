// The playback commands of `imes` against a real pouchdb-server and a real
// scanned library (scripts/make-demo-library's six tones, plus a second
// album made here whose file names sort against its disc/track order):
// channel add, aggregate add/join, enqueue by query and by path, playlist,
// play by position and by id, skip, pause, resume, and a move made with the
// web app's fracindex.js — checking the documents
// each writes field by field (backend/state/docs.h), and the errors.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import vm from 'node:vm';
import { ROOT, startCouch, writeConfig, imes, couchRequest } from '../lib/harness.mjs';

let couch, cfg, demoDir, sidesDir;

// The web app's fractional index, loaded as a page loads it.
const fracindex = (() => {
  const g = { crypto: globalThis.crypto };
  vm.createContext(g);
  vm.runInContext(fs.readFileSync(path.join(ROOT, 'couchapp/imes/_attachments/lib/fracindex.js'), 'utf8'), g);
  return g.fracindex;
})();
const ENTRY_ID = /^entry:c~jazz:[0-9a-f]{16}$/;
const NONCE = /^[0-9a-f]{16}$/;
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/;
const DEMO = ['Concert A', 'Five Fifty', 'Six Sixty', 'Low Hum', 'Three Thirty', 'Eight Eighty'];

const docPath = (id) => `/imes/${encodeURIComponent(id)}`;
async function doc(id) {
  const r = await couchRequest(couch, 'GET', docPath(id), { user: 'admin' });
  return r.status === 200 ? r.body : null;
}
const strip = ({ _rev, ...rest }) => rest; // eslint-disable-line no-unused-vars

async function ok(args) {
  const r = await imes(cfg, args);
  assert.equal(r.code, 0, `imes ${args.join(' ')}: exit ${r.code}\n${r.stdout}\n${r.stderr}`);
  return r;
}
async function fails(args, code, message) {
  const r = await imes(cfg, args);
  assert.equal(r.code, code, `imes ${args.join(' ')}: exit ${r.code}, want ${code}\n${r.stdout}\n${r.stderr}`);
  if (message) assert.match(r.stderr, message);
  return r;
}

// The channel's entries as stored, in play order (key, then _id).
async function entries(channel = 'jazz') {
  const q = `startkey=${encodeURIComponent(JSON.stringify(`entry:c~${channel}:`))}` +
    `&endkey=${encodeURIComponent(JSON.stringify(`entry:c~${channel}:\ufff0`))}&include_docs=true`;
  const r = await couchRequest(couch, 'GET', `/imes/_all_docs?${q}`, { user: 'admin' });
  assert.equal(r.status, 200);
  const docs = r.body.rows.map((x) => x.doc);
  docs.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : a._id < b._id ? -1 : 1));
  return docs;
}

// file id -> file doc, for every scanned file.
async function files() {
  const r = await couchRequest(couch, 'GET',
    `/imes/_all_docs?include_docs=true&startkey=${encodeURIComponent('"file:"')}&endkey=${encodeURIComponent('"file:\ufff0"')}`,
    { user: 'admin' });
  return Object.fromEntries(r.body.rows.map((x) => [x.id, x.doc]));
}
const title = (f) => f.tags.title[0];

// "POS  ENTRYID  ARTIST – TITLE" lines.
function lines(stdout) {
  return stdout.split('\n').filter((l) => /^\d+ {2}entry:/.test(l)).map((l) => {
    const m = /^(\d+) {2}(\S+) {2}(.*) \u2013 (.*)$/.exec(l);
    assert.ok(m, `line: ${l}`);
    return { pos: Number(m[1]), id: m[2], artist: m[3], title: m[4] };
  });
}

function ffmpeg(args) {
  const r = spawnSync('ffmpeg', ['-nostdin', '-hide_banner', '-loglevel', 'error', '-y', ...args]);
  assert.equal(r.status, 0, `ffmpeg ${args.join(' ')}: ${r.stderr}`);
}

before(async () => {
  couch = await startCouch();
  cfg = await writeConfig(couch);
  await ok(['init']);
  for (const u of ['alice', 'bob']) {
    const r = await imes(cfg, ['user', 'add', u], { input: `${u} secret\n` });
    assert.equal(r.code, 0, r.stderr);
  }
  const made = spawnSync(path.join(ROOT, 'scripts', 'make-demo-library'), [cfg.mediaDir], { encoding: 'utf8' });
  assert.equal(made.status, 0, `make-demo-library: ${made.stderr}`);
  demoDir = path.join(cfg.mediaDir, 'The Sine Waves', 'IMES Demo Tones');
  assert.ok(fs.existsSync(demoDir));
  // A second album: file names a, b, c hold disc 2 track 1, disc 1 track 2,
  // disc 1 track 1, so name order is the reverse of play order.
  sidesDir = path.join(cfg.mediaDir, 'Other Band', 'B Sides');
  fs.mkdirSync(sidesDir, { recursive: true });
  for (const [file, t, disc, track] of [['a.mp3', 'Zeta', 2, 1], ['b.mp3', 'Beta', 1, 2], ['c.mp3', 'Alpha', 1, 1]]) {
    ffmpeg(['-f', 'lavfi', '-i', 'sine=frequency=330:duration=1', '-c:a', 'libmp3lame', '-q:a', '6',
      '-id3v2_version', '3', '-metadata', `title=${t}`, '-metadata', 'artist=Other Band',
      '-metadata', 'album=B Sides', '-metadata', `disc=${disc}/2`, '-metadata', `track=${track}`,
      path.join(sidesDir, file)]);
  }
  const scan = await imes(cfg, ['scan', '--quiet'], { timeout: 120000 });
  assert.equal(scan.code, 0, `imes scan: ${scan.stderr}`);
  assert.equal(Object.keys(await files()).length, 9);
});

after(async () => {
  if (couch) await couch.stop();
});

describe('imes channel add', () => {
  test('creates channel:NAME with every default written out', async () => {
    const r = await ok(['channel', 'add', 'jazz']);
    assert.match(r.stdout, /^channel jazz created \(replaygain album, crossfade 0\.5 s\)$/m);
    assert.deepEqual(strip(await doc('channel:jazz')),
      { _id: 'channel:jazz', type: 'channel', paused: false, replaygain: 'album', crossfade: 0.5 });
  });

  test('re-adding changes what the options name, and nothing else', async () => {
    let r = await ok(['channel', 'add', 'jazz', '--replaygain', 'track', '--crossfade', '2']);
    assert.match(r.stdout, /channel jazz updated \(replaygain track, crossfade 2 s\)/);
    assert.deepEqual(strip(await doc('channel:jazz')),
      { _id: 'channel:jazz', type: 'channel', paused: false, replaygain: 'track', crossfade: 2 });
    r = await ok(['channel', 'add', 'jazz', '--crossfade', '0.5']);
    assert.equal((await doc('channel:jazz')).replaygain, 'track');
    r = await ok(['channel', 'add', 'jazz', '--crossfade', '0.5']);
    assert.match(r.stdout, /unchanged/);
    await ok(['channel', 'add', 'blues', '--replaygain', 'off', '--crossfade', '0']);
    assert.deepEqual(strip(await doc('channel:blues')),
      { _id: 'channel:blues', type: 'channel', paused: false, replaygain: 'off', crossfade: 0 });
  });

  test('refuses bad values and names before touching the database', async () => {
    await fails(['channel', 'add', 'jazz', '--crossfade', '11'], 2, /--crossfade 11/);
    await fails(['channel', 'add', 'jazz', '--crossfade', 'x'], 2, /--crossfade/);
    await fails(['channel', 'add', 'jazz', '--replaygain', 'loud'], 2, /album, track or off/);
    await fails(['channel', 'add', 'ja~zz'], 2, /'~' is not allowed/);
    await fails(['channel', 'add'], 2, /NAME missing/);
    await fails(['channel', 'remove', 'jazz'], 2, /unknown subcommand/);
    assert.equal(await doc('channel:ja~zz'), null);
    const h = await ok(['channel', 'add', '--help']);
    assert.match(h.stdout, /^usage: imes \[-c FILE\] channel add NAME/);
  });
});

describe('imes aggregate', () => {
  test('add: a room playing a channel', async () => {
    const r = await ok(['aggregate', 'add', 'home', '--channel', 'jazz']);
    assert.match(r.stdout, /aggregate home created \(channel jazz\)/);
    assert.deepEqual(strip(await doc('aggregate:home')), { _id: 'aggregate:home', type: 'aggregate', channel: 'jazz' });
    await ok(['aggregate', 'add', 'attic']);
    assert.deepEqual(strip(await doc('aggregate:attic')), { _id: 'aggregate:attic', type: 'aggregate', channel: null });
    await ok(['aggregate', 'add', 'attic', '--channel', 'blues']);
    assert.equal((await doc('aggregate:attic')).channel, 'blues');
    await ok(['aggregate', 'add', 'attic', '--channel', '']);
    assert.equal((await doc('aggregate:attic')).channel, null);
  });

  test('add: the channel must exist', async () => {
    await fails(['aggregate', 'add', 'cellar', '--channel', 'nope'], 1, /no channel nope \(make it with: imes channel add nope\)/);
    assert.equal(await doc('aggregate:cellar'), null);
  });

  test('join: sets user:USER.aggregate and nothing else', async () => {
    const before1 = await doc('user:alice');
    const r = await ok(['aggregate', 'join', 'home', 'alice']);
    assert.match(r.stdout, /user alice joined aggregate home \(channel jazz\)/);
    assert.deepEqual(strip(await doc('user:alice')), { ...strip(before1), aggregate: 'home' });
    const again = await ok(['aggregate', 'join', 'home', 'alice']);
    assert.match(again.stdout, /already in aggregate home/);
  });

  test('join: unknown user or aggregate', async () => {
    await fails(['aggregate', 'join', 'home', 'zed'], 1, /no user zed \(make it with: imes user add zed\)/);
    await fails(['aggregate', 'join', 'nowhere', 'bob'], 1, /no aggregate nowhere/);
    assert.equal((await doc('user:bob')).aggregate, null);
    await fails(['aggregate', 'join', 'home'], 2, /AGGREGATE and USER/);
    const h = await ok(['aggregate', '--help']);
    assert.match(h.stdout, /aggregate join AGGREGATE USER/);
  });
});

describe('imes enqueue', () => {
  test('by query: every word a prefix, all words must match, album/disc/track order', async () => {
    const r = await ok(['enqueue', 'jazz', 'SINE', 'wav']);
    assert.match(r.stdout, /^channel jazz: 6 added \(positions 1-6\)$/m);
    const printed = lines(r.stdout);
    assert.deepEqual(printed.map((x) => x.title), DEMO);
    assert.deepEqual(printed.map((x) => x.pos), [1, 2, 3, 4, 5, 6]);
    assert.ok(printed.every((x) => x.artist === 'The Sine Waves'));

    const es = await entries();
    const fs_ = await files();
    assert.deepEqual(es.map((e) => e._id), printed.map((x) => x.id));
    let prev = '';
    for (const e of es) {
      assert.match(e._id, ENTRY_ID);
      assert.deepEqual(Object.keys(strip(e)).sort(), ['_id', 'added', 'added_by', 'file', 'key', 'playlist', 'type']);
      assert.equal(e.type, 'entry');
      assert.equal(e.playlist, 'c~jazz');
      assert.equal(e.added_by, 'admin');
      assert.match(e.added, ISO);
      assert.match(e.key, /^[0-9A-Za-z]+$/);
      assert.ok(e.key > prev, `${e.key} after ${prev}`);
      prev = e.key;
      assert.ok(fs_[e.file], `${e.file} is a scanned file`);
    }
    assert.deepEqual(es.map((e) => title(fs_[e.file])), DEMO);
  });

  test('by query: one word narrows to one track', async () => {
    const r = await ok(['enqueue', 'jazz', 'sine', 'conc']);
    assert.match(r.stdout, /^channel jazz: 1 added \(position 7\)$/m);
    assert.deepEqual(lines(r.stdout).map((x) => [x.pos, x.title]), [[7, 'Concert A']]);
  });

  test('by path: a folder, in disc/track order (not name order), appended at the end', async () => {
    const r = await ok(['enqueue', 'jazz', sidesDir]);
    assert.match(r.stdout, /channel jazz: 3 added \(positions 8-10\)/);
    assert.deepEqual(lines(r.stdout).map((x) => [x.pos, x.artist, x.title]),
      [[8, 'Other Band', 'Alpha'], [9, 'Other Band', 'Beta'], [10, 'Other Band', 'Zeta']]);
    const fs_ = await files();
    const es = await entries();
    assert.deepEqual(es.slice(7).map((e) => path.basename(fs_[e.file].path)), ['c.mp3', 'b.mp3', 'a.mp3']);
  });

  test('by path: one file, and a folder above two albums (album order)', async () => {
    let r = await ok(['enqueue', 'jazz', path.join(demoDir, '04 - Low Hum.opus')]);
    assert.deepEqual(lines(r.stdout).map((x) => [x.pos, x.title]), [[11, 'Low Hum']]);
    r = await ok(['enqueue', 'blues', cfg.mediaDir]);
    assert.match(r.stdout, /channel blues: 9 added \(positions 1-9\)/);
    assert.deepEqual(lines(r.stdout).map((x) => x.title), ['Alpha', 'Beta', 'Zeta', ...DEMO]);
    // relative paths work too (the CLI runs in cfg.dir, media/ is below it)
    r = await ok(['enqueue', 'blues', 'media/Other Band/B Sides/b.mp3']);
    assert.deepEqual(lines(r.stdout).map((x) => [x.pos, x.title]), [[10, 'Beta']]);
  });

  test('by query: words are folded as the search view folds them (case, accents, dashes)', async () => {
    await ok(['channel', 'add', 'folk']);
    const r = await ok(['enqueue', 'folk', 'Sïne-WÄVES', 'CONCÈRT']);
    assert.deepEqual(lines(r.stdout).map((x) => [x.pos, x.title]), [[1, 'Concert A']]);
  });

  test('nothing matched, or a wrong request: refused, nothing written', async () => {
    const n = (await entries()).length;
    await fails(['enqueue', 'jazz', 'sine', 'nonexistentword'], 1, /nothing matched sine nonexistentword/);
    await fails(['enqueue', 'jazz', 'zzzz'], 1, /nothing matched/);
    await fails(['enqueue', 'jazz', '/etc/hostname'], 1, /not inside a media folder/);
    const empty = path.join(cfg.mediaDir, 'empty');
    fs.mkdirSync(empty);
    await fails(['enqueue', 'jazz', empty], 1, /no scanned file there/);
    await fails(['enqueue', 'jazz', sidesDir, 'sine'], 2, /either PATHs .* or QUERY words/);
    await fails(['enqueue', 'jazz', '--'], 2, /missing/);
    await fails(['enqueue', 'jazz', '...'], 2, /the query has no words/);
    await fails(['enqueue', 'nochannel', 'sine'], 1, /no channel nochannel/);
    await fails(['enqueue', 'jazz'], 2, /what to add is missing/);
    assert.equal((await entries()).length, n);
    const h = await ok(['enqueue', '--help']);
    assert.match(h.stdout, /^usage: imes \[-c FILE\] enqueue CHANNEL QUERY/);
  });
});

describe('imes playlist', () => {
  test('lists the queue in order: position, entry id, artist – title', async () => {
    const r = await ok(['playlist', 'jazz']);
    const got = lines(r.stdout);
    const es = await entries();
    assert.equal(got.length, 11);
    assert.deepEqual(got.map((x) => x.id), es.map((e) => e._id));
    assert.deepEqual(got.map((x) => x.pos), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    assert.deepEqual(got.map((x) => x.title),
      [...DEMO, 'Concert A', 'Alpha', 'Beta', 'Zeta', 'Low Hum']);
  });

  test('follows a move made as the web app makes it: the key alone changes', async () => {
    const es = await entries();
    const last = es[es.length - 1];
    // between the first and second entries, with the web app's own library
    const key = fracindex.betweenJitter(es[0].key, es[1].key);
    assert.ok(key > es[0].key && key < es[1].key);
    const w = await couchRequest(couch, 'PUT', docPath(last._id), { user: 'admin', body: { ...last, key } });
    assert.equal(w.status, 201, JSON.stringify(w.body));
    const got = lines((await ok(['playlist', 'jazz'])).stdout);
    assert.deepEqual(got.slice(0, 3).map((x) => x.title), ['Concert A', 'Low Hum', 'Five Fifty']);
    assert.equal(got[1].id, last._id);
  });

  test('a file gone from the library is shown as such; an empty playlist is fine', async () => {
    await ok(['channel', 'add', 'empty']);
    const r = await ok(['playlist', 'empty']);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /channel empty has an empty playlist/);
    await fails(['playlist', 'nochannel'], 1, /no channel nochannel/);
  });
});

describe('imes play, skip, pause, resume', () => {
  test('play by position: channel.play gets that entry and a fresh nonce, paused false', async () => {
    await ok(['pause', 'jazz']);
    const es = await entries();
    const before1 = await doc('channel:jazz');
    const r = await ok(['play', 'jazz', '3']);
    const ch = await doc('channel:jazz');
    assert.deepEqual(Object.keys(ch.play).sort(), ['entry', 'request']);
    assert.equal(ch.play.entry, es[2]._id);
    assert.match(ch.play.request, NONCE);
    assert.equal(ch.paused, false);
    assert.match(r.stdout, new RegExp(`play ${es[2]._id} \\(position 3\\) requested \\(${ch.play.request}\\)`));
    // and nothing else changed
    const { play, paused, _rev, ...rest } = ch; // eslint-disable-line no-unused-vars
    const { play: p0, paused: q0, _rev: r0, ...rest0 } = before1; // eslint-disable-line no-unused-vars
    assert.deepEqual(rest, rest0);
  });

  test('play the same entry again: a new nonce, so imesd acts again', async () => {
    const first = (await doc('channel:jazz')).play;
    await ok(['play', 'jazz', '3']);
    const second = (await doc('channel:jazz')).play;
    assert.equal(second.entry, first.entry);
    assert.notEqual(second.request, first.request);
  });

  test('play by entry id', async () => {
    const es = await entries();
    const r = await ok(['play', 'jazz', es[9]._id]);
    assert.match(r.stdout, /\(position 10\)/);
    assert.equal((await doc('channel:jazz')).play.entry, es[9]._id);
  });

  test('play: positions and ids that are not there', async () => {
    const before1 = await doc('channel:jazz');
    await fails(['play', 'jazz', '12'], 1, /channel jazz has 11 entries: no position 12/);
    await fails(['play', 'jazz', '0'], 1, /no position 0/);
    await fails(['play', 'jazz', 'entry:c~jazz:0000000000000000'], 1, /has no entry entry:c~jazz:0000000000000000/);
    await fails(['play', 'jazz', 'entry:c~blues:0000000000000000'], 2, /entry:c~jazz:<uid>/);
    await fails(['play', 'jazz', 'first'], 2, /a position/);
    await fails(['play', 'empty', '1'], 1, /channel empty has an empty playlist/);
    await fails(['play', 'nochannel', '1'], 1, /no channel nochannel/);
    await fails(['play', 'jazz'], 2, /ENTRY missing/);
    assert.deepEqual(await doc('channel:jazz'), before1);
  });

  test('skip: a new nonce each time, nothing else', async () => {
    const before1 = await doc('channel:jazz');
    const r = await ok(['skip', 'jazz']);
    const a = await doc('channel:jazz');
    assert.match(a.skip, NONCE);
    assert.match(r.stdout, new RegExp(`channel jazz: skip requested \\(${a.skip}\\)`));
    await ok(['skip', 'jazz']);
    const b = await doc('channel:jazz');
    assert.match(b.skip, NONCE);
    assert.notEqual(a.skip, b.skip);
    const { skip: s1, _rev: r1, ...rest1 } = b; // eslint-disable-line no-unused-vars
    const { skip: s0, _rev: r0, ...rest0 } = before1; // eslint-disable-line no-unused-vars
    assert.deepEqual(rest1, rest0);
    await fails(['skip', 'nochannel'], 1, /no channel nochannel/);
  });

  test('pause and resume set paused, and say when nothing changed', async () => {
    let r = await ok(['pause', 'jazz']);
    assert.match(r.stdout, /^channel jazz paused$/m);
    assert.equal((await doc('channel:jazz')).paused, true);
    r = await ok(['pause', 'jazz']);
    assert.match(r.stdout, /channel jazz was already paused/);
    r = await ok(['resume', 'jazz']);
    assert.match(r.stdout, /^channel jazz resumed$/m);
    assert.equal((await doc('channel:jazz')).paused, false);
    r = await ok(['resume', 'jazz']);
    assert.match(r.stdout, /channel jazz was not paused/);
    await fails(['pause', 'nochannel'], 1, /no channel nochannel \(make it with: imes channel add nochannel\)/);
    await fails(['resume', 'nochannel'], 1, /no channel nochannel/);
    assert.equal(await doc('channel:nochannel'), null);
    await fails(['pause'], 2, /CHANNEL missing/);
    await fails(['pause', 'a:b'], 2, /':' is not allowed/);
    await fails(['pause', 'jazz', 'blues'], 2, /unexpected argument blues/);
  });

  test('--help on each', async () => {
    for (const cmd of ['pause', 'resume', 'play', 'skip', 'playlist', 'enqueue']) {
      const r = await ok([cmd, '--help']);
      assert.match(r.stdout, new RegExp(`^usage: imes \\[-c FILE\\] ${cmd} CHANNEL`), cmd);
    }
    const all = await ok(['--help']);
    for (const cmd of ['channel', 'aggregate', 'enqueue', 'playlist', 'play', 'pause', 'resume', 'skip'])
      assert.match(all.stdout, new RegExp(`^  ${cmd} `, 'm'), cmd);
  });
});

describe('the documents pass validate_doc_update as a member too', () => {
  test('an entry like the CLI writes, written by alice, is accepted', async () => {
    const e = (await entries())[0];
    const r = await couchRequest(couch, 'PUT', docPath('entry:c~jazz:00000000000000aa'), {
      user: 'alice', password: 'alice secret',
      body: { type: 'entry', playlist: 'c~jazz', file: e.file, key: e.key + '1', added_by: 'alice', added: e.added },
    });
    assert.equal(r.status, 201, JSON.stringify(r.body));
  });
});
