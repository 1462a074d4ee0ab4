// imesd follows the music folders with inotify: a file added, rewritten (by
// a rename over it and in place), renamed, moved with its folder, deleted,
// copied slowly, or arriving in a new folder is reflected in its `file:`
// document within a couple of seconds, ids surviving renames; and a move made
// while imesd was down is recognised when it comes back. Every document write
// is seen on CouchDB's _changes feed, so the tests know when and how often.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { startCouch, writeConfig, imes, startImesd, waitFor, couchRequest } from '../lib/harness.mjs';
import { buildLibrary, encodeTone, pool } from '../lib/medialib.mjs';

let couch, cfg, lib, imesd, outside;
const feed = { changes: [], abort: null, done: null };

const get = (p) => couchRequest(couch, 'GET', p, { user: 'admin' });
const authHeader = () => 'Basic ' + Buffer.from(`admin:${couch.admin.password}`).toString('base64');
const logText = () => {
  try {
    return fs.readFileSync(cfg.logPath, 'utf8');
  } catch {
    return '';
  }
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const revGen = (rev) => parseInt(rev, 10);

/** Follows _changes (continuous, with docs) from now on into feed.changes,
 * each change stamped with the time it arrived. */
async function followChanges() {
  const info = await get('/imes');
  const since = info.body.update_seq; // opaque: sent back as it came
  const ac = new AbortController();
  feed.abort = () => ac.abort();
  const res = await fetch(
    `${couch.url}/imes/_changes?feed=continuous&include_docs=true&heartbeat=2000&since=${encodeURIComponent(String(since))}`,
    // identity: pouchdb-server gzips a feed when allowed, and holds it back
    { headers: { Accept: 'application/json', 'Accept-Encoding': 'identity', Authorization: authHeader() }, signal: ac.signal },
  );
  assert.equal(res.status, 200);
  feed.done = (async () => {
    const dec = new TextDecoder();
    let buf = '';
    try {
      for await (const chunk of res.body) {
        buf += dec.decode(chunk, { stream: true });
        let nl;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl).trim();
          buf = buf.slice(nl + 1);
          if (!line) continue; // heartbeat
          const c = JSON.parse(line);
          if (c.id) feed.changes.push({ ...c, rev: c.changes?.[0]?.rev, at: performance.now() });
        }
      }
    } catch (e) {
      if (e.name !== 'AbortError') throw e;
    }
  })();
}

const changesOf = (id) => feed.changes.filter((c) => c.id === id);

/** The first change (after index `from`) for a file doc satisfying pred. */
function waitChange(pred, what, { from = 0, timeout = 10000 } = {}) {
  return waitFor(() => feed.changes.slice(from).find((c) => c.id.startsWith('file:') && pred(c)), {
    timeout, interval: 10, what: `${what}\n--- last log lines ---\n${logText().split('\n').slice(-25).join('\n')}`,
  });
}

async function fileDocs() {
  const r = await get(`/imes/_all_docs?include_docs=true&startkey=${encodeURIComponent('"file:"')}&endkey=${encodeURIComponent('"file:\ufff0"')}`);
  assert.equal(r.status, 200);
  return Object.fromEntries(r.body.rows.map((row) => [row.doc.path, row.doc]));
}

/** "changed: <path>" lines the scanner logged (debug level) for path. */
const changedLines = (p) => logText().split('\n').filter((l) => l.endsWith(`changed: ${p}`));
const scanDoneCount = () => (logText().match(/scan done in/g) ?? []).length;

before(async () => {
  couch = await startCouch();
  cfg = await writeConfig(couch);
  outside = path.join(cfg.dir, 'outside'); // same file system as the media folder, not watched
  fs.mkdirSync(outside);
  lib = await buildLibrary(cfg.mediaDir);
  const init = await imes(cfg, ['init']);
  assert.equal(init.code, 0, `imes init: ${init.stderr}`);
  imesd = await startImesd(cfg);
  await waitFor(() => scanDoneCount() >= 1, { timeout: 60000, what: 'the first scan to finish' });
  const docs = await fileDocs();
  assert.equal(Object.keys(docs).length, lib.audioCount, `the first scan wrote every file:\n${logText()}`);
  await followChanges();
});

after(async () => {
  feed.abort?.();
  await feed.done;
  if (imesd) await imesd.stop();
  if (couch) await couch.stop();
});

const tagsFor = (title, extra = {}) => ({
  title, artists: ['Inotify Tester'], album: 'Watched', albumartist: 'Inotify Tester', track: 1, tracktotal: 12,
  disc: 1, disctotal: 1, date: '2024', genres: ['Test'], ...extra,
});

test('a file added appears within 2 s of its close', async () => {
  const src = path.join(outside, 'added.flac');
  const expect = await encodeTone(src, { format: 'flac', freq: 1200, seconds: 2, tags: tagsFor('Added Later') });
  const bytes = fs.readFileSync(src);
  const target = path.join(cfg.mediaDir, 'Various', 'Lossless', '11 Added Later.flac');
  const from = feed.changes.length;
  fs.writeFileSync(target, bytes); // open, write, close
  const closed = performance.now();
  const c = await waitChange((x) => x.doc?.path === target, `a document for ${target}`, { from });
  const latency = c.at - closed;
  process.stderr.write(`# add -> document latency: ${latency.toFixed(0)} ms (settle 300 ms)\n`);
  assert.ok(latency < 2000, `latency ${latency.toFixed(0)} ms`);
  assert.equal(c.doc.error, undefined, JSON.stringify(c.doc));
  assert.deepEqual(c.doc.tags, expect.tags);
  assert.equal(c.doc.codec, 'flac');
  assert.ok(c.rev.startsWith('1-'), `a new document: ${c.rev}`);
  // its folder has a cover.jpg: the new file shows it too
  const ogg = (await fileDocs())[lib.byRel['Various/Lossless/03 Vorbis Tone.ogg'].path];
  assert.deepEqual(c.doc.pictures, ogg.pictures);
});

test('tags rewritten by ffmpeg to a temp name and moved over the file: same id, new tags', async () => {
  const target = lib.byRel['Various/Lossless/02 Flac With Art.flac'].path;
  const before_ = (await fileDocs())[target];
  const tmp = path.join(outside, 'retagged.flac');
  const r = spawnSync('ffmpeg', ['-v', 'error', '-nostdin', '-y', '-i', target, '-map', '0', '-c', 'copy',
    '-metadata', 'title=Retitled by ffmpeg', tmp]);
  assert.equal(r.status, 0, String(r.stderr));
  const from = feed.changes.length;
  fs.renameSync(tmp, target); // mv: IN_MOVED_TO from outside the watched folders
  const c = await waitChange((x) => x.doc?.path === target, 'the rewritten document', { from });
  assert.equal(c.id, before_._id, 'same id');
  assert.deepEqual(c.doc.tags.title, ['Retitled by ffmpeg'], JSON.stringify(c.doc.tags));
  assert.deepEqual(c.doc.tags.album, ['Lossless Things']);
  assert.equal(revGen(c.rev), revGen(before_._rev) + 1, `one write: ${before_._rev} -> ${c.rev}`);
  await sleep(1000);
  assert.equal(changesOf(before_._id).length, 1, 'written once');
});

test('a file rewritten in place (same inode): same id, new tags, one write', async () => {
  const e = lib.byRel['Ærøskøbing — 東京/01 Straße.flac'];
  const before_ = (await fileDocs())[e.path];
  const ino = fs.statSync(e.path).ino;
  const from = feed.changes.length;
  const expect = await encodeTone(e.path, {
    ...e.spec, inPlace: true, tags: { ...e.spec.tags, title: 'Straße (Remaster)', genres: ['Ambient', 'Drone'] },
  });
  assert.equal(fs.statSync(e.path).ino, ino, 'rewritten in place');
  const c = await waitChange((x) => x.doc?.path === e.path, 'the rewritten document', { from });
  assert.equal(c.id, before_._id);
  assert.deepEqual(c.doc.tags, expect.tags);
  await sleep(1000);
  assert.equal(changesOf(before_._id).length, 1, `written once: ${JSON.stringify(changesOf(before_._id).map((x) => x.rev))}`);
  assert.equal(revGen(c.rev), revGen(before_._rev) + 1);
});

test('a file renamed keeps its id', async () => {
  const from_ = lib.byRel['Old Timer/Vintage/07 Old Song.mp3'].path;
  const to = path.join(path.dirname(from_), '07 Old Song (renamed).mp3');
  const before_ = (await fileDocs())[from_];
  const from = feed.changes.length;
  fs.renameSync(from_, to);
  const c = await waitChange((x) => x.id === before_._id, 'the renamed document', { from });
  assert.equal(c.doc.path, to);
  assert.equal(c.doc.name, '07 Old Song (renamed).mp3');
  assert.deepEqual(c.doc.tags, before_.tags);
  assert.equal(c.doc.deleted, undefined);
  assert.ok(logText().includes(`moved ${from_} -> ${to} (${before_._id})`), 'logged as a move');
  const docs = await fileDocs();
  assert.equal(docs[from_], undefined);
  assert.equal(docs[to]._id, before_._id);
});

test('a folder renamed: every file in it keeps its id', async () => {
  const oldDir = path.join(cfg.mediaDir, 'M4A');
  const newDir = path.join(cfg.mediaDir, 'M4A — renamed');
  const docs0 = await fileDocs();
  const ids = ['05 AAC Tone.m4a', '06 ALAC Tone.m4a'].map((n) => docs0[path.join(oldDir, n)]._id);
  const from = feed.changes.length;
  fs.renameSync(oldDir, newDir);
  for (const [i, n] of ['05 AAC Tone.m4a', '06 ALAC Tone.m4a'].entries()) {
    const c = await waitChange((x) => x.id === ids[i], `${n} moved with its folder`, { from });
    assert.equal(c.doc.path, path.join(newDir, n));
    assert.equal(c.doc.folder, newDir);
  }
  const docs = await fileDocs();
  assert.equal(Object.keys(docs).filter((p) => p.startsWith(oldDir + '/')).length, 0);
  // and the folder is still watched under its new name
  const src = path.join(outside, 'in-renamed.m4a');
  await encodeTone(src, { format: 'aac', freq: 1300, seconds: 1, tags: tagsFor('In Renamed Folder') });
  const target = path.join(newDir, '07 In Renamed Folder.m4a');
  const from2 = feed.changes.length;
  fs.copyFileSync(src, target);
  const c = await waitChange((x) => x.doc?.path === target, 'a file added to the renamed folder', { from: from2 });
  assert.deepEqual(c.doc.tags.title, ['In Renamed Folder']);
});

test('a file renamed over another: it keeps its id, the replaced file loses its document', async () => {
  const docs0 = await fileDocs();
  const a = lib.byRel['Various/Lossless/03 Vorbis Tone.ogg'].path;
  const b = path.join(path.dirname(a), '99 Replaced.ogg');
  // b: a file of its own first (the Opus tone's bytes under an .ogg name)
  const from0 = feed.changes.length;
  fs.copyFileSync(lib.byRel['Opus/04 Opus Tone.opus'].path, b);
  const cb = await waitChange((x) => x.doc?.path === b, 'the file about to be replaced', { from: from0 });
  const idA = docs0[a]._id;
  const idB = cb.id;
  assert.notEqual(idA, idB);
  const from = feed.changes.length;
  fs.renameSync(a, b); // mv a b: b's old content is gone
  await waitChange((x) => x.id === idA && x.doc?.path === b, 'the moved file at its new path', { from });
  await waitFor(async () => (await get(`/imes/${encodeURIComponent(idB)}`)).status === 404, {
    timeout: 5000,
    what: `the replaced file's document ${idB} to be deleted: ${JSON.stringify((await get(`/imes/${encodeURIComponent(idB)}`)).body)}`,
  });
  const docs = Object.values(await fileDocs()).filter((d) => d.path === b);
  assert.deepEqual(docs.map((d) => d._id), [idA], 'one document for the path');
  assert.equal(docs[0].codec, 'vorbis');
});

test('a download finishing under a temporary name: one document, none for the .part', async () => {
  const src = path.join(outside, 'download.ogg');
  const expect = await encodeTone(src, { format: 'vorbis', freq: 1250, seconds: 1, tags: tagsFor('Downloaded') });
  const part = path.join(cfg.mediaDir, 'Downloads', '05 Downloaded.ogg.part');
  const final = path.join(cfg.mediaDir, 'Downloads', '05 Downloaded.ogg');
  fs.mkdirSync(path.dirname(part));
  await sleep(500); // the new folder is watched
  const from = feed.changes.length;
  fs.copyFileSync(src, part);
  await sleep(500);
  fs.renameSync(part, final);
  const c = await waitChange((x) => x.doc?.path === final, 'the finished download', { from });
  assert.deepEqual(c.doc.tags, expect.tags);
  await sleep(800);
  const mine = feed.changes.slice(from).filter((x) => x.id.startsWith('file:'));
  assert.deepEqual(mine.map((x) => x.doc?.path), [final], 'one write, for the final name only');
});

test('a file moved out of the folders loses its document', async () => {
  const p = path.join(cfg.mediaDir, 'Downloads', '05 Downloaded.ogg');
  const id = (await fileDocs())[p]._id;
  const from = feed.changes.length;
  fs.renameSync(p, path.join(outside, 'moved-out.ogg'));
  await waitChange((x) => x.id === id && x.deleted, 'the deletion of the file moved out', { from });
});

test('a file renamed to a name that is not audio loses its document; renamed back, it is read again', async () => {
  const p = lib.byRel['Ærøskøbing — 東京/01 Straße.flac'].path;
  const txt = `${p}.txt`;
  const id = (await fileDocs())[p]._id;
  const from = feed.changes.length;
  fs.renameSync(p, txt);
  await waitChange((x) => x.id === id && x.deleted, 'the deletion', { from });
  const from2 = feed.changes.length;
  fs.renameSync(txt, p);
  const c = await waitChange((x) => x.doc?.path === p, 'the file under its audio name again', { from: from2 });
  assert.equal(c.doc.codec, 'flac');
});

test('a folder moved out of the folders and back in: documents go, then come back', async () => {
  const dir = path.join(cfg.mediaDir, 'Opus');
  const out = path.join(outside, 'Opus');
  const p = path.join(dir, '04 Opus Tone.opus');
  const id = (await fileDocs())[p]._id;
  const from = feed.changes.length;
  fs.renameSync(dir, out);
  await waitChange((x) => x.id === id && x.deleted, 'the deletion of the file in the folder moved out', { from });
  const from2 = feed.changes.length;
  fs.renameSync(out, dir);
  const c = await waitChange((x) => x.doc?.path === p && !x.deleted, 'the file in the folder moved back in', { from: from2 });
  assert.equal(c.doc.codec, 'opus');
  // and the folder is watched again
  const from3 = feed.changes.length;
  fs.copyFileSync(p, path.join(dir, '05 Copy.opus'));
  await waitChange((x) => x.doc?.path === path.join(dir, '05 Copy.opus'), 'a file added to the folder moved back in', { from: from3 });
});

test('a file deleted loses its document', async () => {
  const gone = lib.byRel['Musepack/09 MPC Tone.mpc'].path;
  const id = (await fileDocs())[gone]._id;
  const from = feed.changes.length;
  fs.rmSync(gone);
  const c = await waitChange((x) => x.id === id && x.deleted, 'the deletion', { from });
  assert.ok(c.deleted);
  assert.equal((await get(`/imes/${encodeURIComponent(id)}`)).status, 404);
});

test('a 20 MB file copied slowly is read once, after the copy', async () => {
  const src = path.join(outside, 'big.flac');
  // Noise hardly compresses: 96 kHz stereo, 75 s is about 20 MB of FLAC.
  const expect = await encodeTone(src, {
    format: 'flac', noise: true, freq: 7, seconds: 75, rate: 96000, channels: 2, bits: 24, tags: tagsFor('Big Slow Copy'),
  });
  const bytes = fs.readFileSync(src);
  assert.ok(bytes.length > 18e6, `big enough: ${bytes.length}`);
  const target = path.join(cfg.mediaDir, 'Slow', 'Big Slow Copy.flac');
  fs.mkdirSync(path.dirname(target));
  await sleep(1000); // the new folder is watched
  const from = feed.changes.length;
  const fh = await fs.promises.open(target, 'w');
  const chunks = 20;
  const step = Math.ceil(bytes.length / chunks);
  for (let i = 0; i < chunks; i++) {
    await fh.write(bytes, i * step, Math.min(step, bytes.length - i * step));
    if (i < chunks - 1) await sleep(150);
  }
  await fh.close();
  const closed = performance.now();
  const early = feed.changes.slice(from).filter((x) => x.doc?.path === target && x.at < closed);
  assert.deepEqual(early.map((x) => x.rev), [], 'nothing written while the copy ran');
  const c = await waitChange((x) => x.doc?.path === target, 'the copied file', { from });
  process.stderr.write(`# 20 MB slow copy: document ${(c.at - closed).toFixed(0)} ms after the close\n`);
  await sleep(1500);
  const writes = feed.changes.slice(from).filter((x) => x.id === c.id);
  assert.deepEqual(writes.map((x) => x.rev.split('-')[0]), ['1'], 'written exactly once');
  assert.ok(c.rev.startsWith('1-'));
  assert.equal(c.doc.size, bytes.length);
  assert.equal(c.doc.error, undefined, JSON.stringify(c.doc));
  assert.deepEqual(c.doc.tags, expect.tags);
  assert.ok(Math.abs(c.doc.duration - 75) < 0.01, `duration ${c.doc.duration}`);
  assert.equal(changedLines(target).length, 1, `one "changed:" line:\n${changedLines(target).join('\n')}`);
});

test('a new folder with files copied in: every file scanned', async () => {
  const names = ['01 One.ogg', '02 Two.mp3', '03 Three.opus'];
  const formats = ['vorbis', 'mp3', 'opus'];
  const srcs = names.map((n) => path.join(outside, n));
  const expects = await pool(names.map((n, i) => () =>
    encodeTone(srcs[i], { format: formats[i], freq: 1400 + 100 * i, seconds: 1, rate: formats[i] === 'opus' ? 48000 : 44100, tags: tagsFor(n.slice(3, n.lastIndexOf('.'))) })), 2);
  const dir = path.join(cfg.mediaDir, 'Fresh Folder', 'CD 1');
  const from = feed.changes.length;
  fs.mkdirSync(dir, { recursive: true }); // mkdir -p, then cp at once: races the watch on the new folders
  names.forEach((n, i) => fs.copyFileSync(srcs[i], path.join(dir, n)));
  for (const [i, n] of names.entries()) {
    const p = path.join(dir, n);
    const c = await waitChange((x) => x.doc?.path === p, `a document for ${n}`, { from });
    assert.deepEqual(c.doc.tags, expects[i].tags, n);
  }
  // and files added later to the new folder are seen too
  const later = path.join(dir, '04 Later.ogg');
  const from2 = feed.changes.length;
  fs.copyFileSync(srcs[0], later);
  await waitChange((x) => x.doc?.path === later, 'a file added to the new folder later', { from: from2 });
});

test('a folder deleted with everything in it: every document goes', async () => {
  const dir = path.join(cfg.mediaDir, 'Fresh Folder');
  const docs = await fileDocs();
  const ids = Object.values(docs).filter((d) => d.path.startsWith(dir + '/')).map((d) => d._id);
  assert.equal(ids.length, 4);
  const from = feed.changes.length;
  fs.rmSync(dir, { recursive: true });
  for (const id of ids) await waitChange((x) => x.id === id && x.deleted, `deletion of ${id}`, { from });
});

test('imesd restarted after a move made while it was down: same id', async () => {
  const from_ = lib.byRel['Björk Guðmundsdóttir/Vespertine/01 Hidden Place.mp3'].path;
  const to = path.join(cfg.mediaDir, 'Offline', 'Hidden Place (moved offline).mp3');
  const before_ = (await fileDocs())[from_];
  const code = await imesd.stop();
  assert.equal(code, 0, 'clean exit');
  const scans = scanDoneCount();
  fs.mkdirSync(path.dirname(to));
  fs.renameSync(from_, to);
  imesd = await startImesd(cfg);
  await waitFor(() => scanDoneCount() > scans, { timeout: 30000, what: 'the scan after the restart' });
  const docs = await fileDocs();
  assert.equal(docs[from_], undefined);
  assert.ok(docs[to], 'a document at the new path');
  assert.equal(docs[to]._id, before_._id, 'same id');
  assert.deepEqual(docs[to].tags, before_.tags);
  assert.deepEqual(docs[to].pictures, before_.pictures);
  const line = logText().split('\n').filter((l) => /scan done in/.test(l)).at(-1);
  assert.match(line, /\b1 moved\b/, line);
  // it watches the new folder it found
  const later = path.join(path.dirname(to), 'copy.mp3');
  const from = feed.changes.length;
  fs.copyFileSync(to, later);
  await waitChange((x) => x.doc?.path === later, 'a file added after the restart', { from });
});
