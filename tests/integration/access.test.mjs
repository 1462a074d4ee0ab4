// Who may read and write what, as `imes init` sets it up (shared/DESIGN.md,
// "who writes what"): the databases' _security and the validate_doc_update of
// the design documents, against a real pouchdb-server. Members alice and bob,
// admin carol, the backend (server admin) and someone not logged in.
//
// Status codes are asserted loosely where CouchDB and pouchdb-server differ
// (401 or 403, shared/COUCHDB-NOTES.md); what is asserted exactly is that a
// refused write left the database as it was.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { startCouch, writeConfig, imes, couchRequest } from '../lib/harness.mjs';

let couch, cfg;
const UID1 = '0123456789abcdef';
const UID2 = 'fedcba9876543210';
const UID3 = '00000000000000aa';
const entryDoc = (playlist, by, key, file = 'file:f1') =>
  ({ type: 'entry', playlist, file, key, added_by: by, added: '2024-05-01T12:00:00Z' });
const PW = { alice: 'alice secret 1', bob: 'bob secret 2', carol: 'carol secret 3' };
const DENIED = [401, 403];

const docPath = (db, id) => `/${db}/${encodeURIComponent(id)}`;

// A request as a user (by name: alice, bob, carol), as the backend ('admin',
// the server admin imesd logs in as) or anonymous (who null: plain fetch, so
// no credentials can creep in).
async function as(who, method, path, body) {
  if (who === 'admin') return couchRequest(couch, method, path, { body, user: 'admin' });
  if (who) return couchRequest(couch, method, path, { body, user: who, password: PW[who] });
  const u = new URL(couch.url);
  u.username = '';
  u.password = '';
  const res = await fetch(new URL(path, u), {
    method,
    headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { json = text; }
  return { status: res.status, body: json };
}

// The document as the backend sees it (null if absent).
async function current(db, id) {
  const r = await as('admin', 'GET', docPath(db, id));
  if (r.status === 404) return null;
  assert.equal(r.status, 200, `GET ${db}/${id}: ${JSON.stringify(r.body)}`);
  return r.body;
}

async function put(who, db, id, doc) {
  const cur = await current(db, id);
  const body = { ...doc, _id: id };
  if (cur) body._rev = cur._rev;
  return as(who, 'PUT', docPath(db, id), body);
}

// who must not be able to write doc at db/id: refused, and nothing changed.
async function refused(who, db, id, doc, codes = DENIED) {
  const before = await current(db, id);
  const r = await put(who, db, id, doc);
  assert.ok(codes.includes(r.status),
    `${who ?? 'anonymous'} PUT ${db}/${id}: expected ${codes}, got ${r.status} ${JSON.stringify(r.body)}`);
  assert.deepEqual(await current(db, id), before, `${db}/${id} changed`);
  return r;
}

async function allowed(who, db, id, doc) {
  const r = await put(who, db, id, doc);
  assert.ok(r.status === 201 || r.status === 202,
    `${who} PUT ${db}/${id}: expected 201, got ${r.status} ${JSON.stringify(r.body)}`);
  const now = await current(db, id);
  for (const [k, v] of Object.entries(doc)) assert.deepEqual(now[k], v, `${id}.${k}`);
  return r;
}

async function deleteRefused(who, db, id) {
  const before = await current(db, id);
  assert.ok(before, `${id} should exist`);
  const r = await as(who, 'DELETE', `${docPath(db, id)}?rev=${before._rev}`);
  assert.ok(DENIED.includes(r.status), `${who} DELETE ${id}: got ${r.status}`);
  assert.deepEqual(await current(db, id), before, `${id} changed`);
}

before(async () => {
  couch = await startCouch();
  cfg = await writeConfig(couch);
  const init = await imes(cfg, ['init']);
  assert.equal(init.code, 0, `imes init: ${init.stderr}`);
  for (const [name, extra] of [['alice', []], ['bob', []], ['carol', ['--admin']]]) {
    const r = await imes(cfg, ['user', 'add', name, ...extra], { input: `${PW[name]}\n` });
    assert.equal(r.code, 0, `imes user add ${name}: ${r.stderr}`);
  }
  const d = await imes(cfg, ['device', 'add', 'kitchen', '--aggregate', 'home']);
  assert.equal(d.code, 0, `imes device add: ${d.stderr}`);
  const g = await imes(cfg, ['delegate', 'add', 'phone', '--device', 'kitchen']);
  assert.equal(g.code, 0, `imes delegate add: ${g.stderr}`);
  // Documents only the backend writes, written as the backend.
  for (const [id, doc] of [
    ['file:f1', { type: 'file', path: 'a/b.flac' }],
    ['picture:p1', { type: 'picture' }],
    ['status:channel:jazz', { type: 'status', playing: false }],
    ['peer:remote', { type: 'peer', online: false }],
  ]) await allowed('admin', 'imes', id, doc);
});

after(async () => {
  if (couch) await couch.stop();
});

describe('a member (alice)', () => {
  test('cannot write documents the backend owns', async () => {
    await refused('alice', 'imes', 'file:f1', { type: 'file', path: 'evil' });
    await refused('alice', 'imes', 'file:new', { type: 'file', path: 'x' });
    await refused('alice', 'imes', 'picture:p2', { type: 'picture' });
    await refused('alice', 'imes', 'status:channel:jazz', { type: 'status', playing: true });
    await refused('alice', 'imes', 'peer:mine', { online: true });
  });

  test('cannot write devices or delegates', async () => {
    await refused('alice', 'imes', 'device:kitchen', { type: 'device', aggregate: 'mine' });
    await refused('alice', 'imes', 'device:attic', { type: 'device' });
    await refused('alice', 'imes', 'delegate:phone', { type: 'delegate', devices: [] });
    await refused('alice', 'imes', 'delegate:mine', { type: 'delegate', devices: ['kitchen'] });
  });

  test('cannot delete what she may not write', async () => {
    await deleteRefused('alice', 'imes', 'device:kitchen');
    await deleteRefused('alice', 'imes', 'file:f1');
    await deleteRefused('alice', 'imes', 'user:bob');
  });

  test("cannot write bob's settings, nor ones for a user that is not her", async () => {
    const r = await refused('alice', 'imes', 'user:bob', { type: 'user', lockout: true });
    assert.match(JSON.stringify(r.body), /bob/);
    await refused('alice', 'imes', 'user:alice2', { type: 'user' });
  });

  test('cannot write unknown document types or design documents', async () => {
    await refused('alice', 'imes', 'weird:thing', { x: 1 });
    await refused('alice', 'imes', 'noprefix', { x: 1 });
    await refused('alice', 'imes', '_design/evil', { validate_doc_update: 'function(){}' });
  });

  test('cannot sneak a backend document in through _bulk_docs', async () => {
    const r = await as('alice', 'POST', '/imes/_bulk_docs',
      { docs: [{ _id: 'file:bulk', path: 'x' }, { _id: 'channel:bulk', paused: true }] });
    assert.ok([201, 202].includes(r.status), `status ${r.status}`);
    const byId = Object.fromEntries(r.body.map((x) => [x.id, x]));
    assert.ok(byId['file:bulk'].error, JSON.stringify(byId['file:bulk']));
    assert.ok(byId['channel:bulk'].ok, JSON.stringify(byId['channel:bulk']));
    assert.equal(await current('imes', 'file:bulk'), null);
  });

  test('can read the main database', async () => {
    const r = await as('alice', 'GET', '/imes/_all_docs');
    assert.equal(r.status, 200);
    assert.ok(r.body.rows.some((x) => x.id === 'device:kitchen'));
    const v = await as('alice', 'GET', '/imes/_design/imes/_view/by_type?group=true');
    assert.equal(v.status, 200);
    const counts = Object.fromEntries(v.body.rows.map((x) => [x.key, x.value]));
    assert.equal(counts.user, 3);
    assert.equal(counts.device, 1);
  });

  test('can write channels, playlist entries, aggregates and her own settings', async () => {
    await allowed('alice', 'imes', 'channel:jazz', { type: 'channel', paused: true, replaygain: 'album', crossfade: 2.5 });
    await allowed('alice', 'imes', `entry:c~jazz:${UID1}`, entryDoc('c~jazz', 'alice', 'a0'));
    await allowed('alice', 'imes', 'aggregate:home', { type: 'aggregate', channel: 'jazz' });
    await allowed('alice', 'imes', 'user:alice', { type: 'user', aggregate: 'home', lockout: true, session_timeout: 600, scrobbling: false });
    // and delete them again
    const cur = await current('imes', `entry:c~jazz:${UID1}`);
    const d = await as('alice', 'DELETE', `${docPath('imes', `entry:c~jazz:${UID1}`)}?rev=${cur._rev}`);
    assert.equal(d.status, 200);
    assert.equal(await current('imes', `entry:c~jazz:${UID1}`), null);
  });

  test('gets a clear message naming the field for a malformed document', async () => {
    const cases = [
      ['channel:bad', { paused: 'yes' }, /paused/],
      ['channel:bad', { replaygain: 'loud' }, /replaygain/],
      ['channel:bad', { crossfade: 11 }, /crossfade/],
      ['channel:bad', { crossfade: '1' }, /crossfade/],
      ['channel:bad', { type: 'device' }, /type/],
      [`entry:c~jazz:${UID2}`, { ...entryDoc('c~jazz', 'alice', 'a1'), file: undefined }, /file/],
      [`entry:c~jazz:${UID2}`, { ...entryDoc('c~jazz', 'alice', 'a1'), file: 'f1' }, /file/],
      [`entry:c~jazz:${UID2}`, { ...entryDoc('c~jazz', 'alice', 'a1'), key: undefined }, /key/],
      [`entry:c~jazz:${UID2}`, { ...entryDoc('c~jazz', 'alice', 'a1'), key: 7 }, /key/],
      [`entry:c~jazz:${UID2}`, { ...entryDoc('c~jazz', 'alice', 'a1'), key: 'a00' }, /key/],
      [`entry:c~jazz:${UID2}`, { ...entryDoc('c~jazz', 'alice', 'a1'), key: 'a0-' }, /key/],
      [`entry:c~jazz:${UID2}`, { ...entryDoc('c~jazz', 'alice', 'a1'), playlist: 'c~blues' }, /playlist/],
      [`entry:c~jazz:${UID2}`, { ...entryDoc('c~jazz', 'alice', 'a1'), added_by: undefined }, /added_by/],
      [`entry:c~jazz:${UID2}`, { ...entryDoc('c~jazz', 'alice', 'a1'), added: undefined }, /added/],
      ['entry:jazz:b0', entryDoc('jazz', 'alice', 'a1'), /_id/],
      [`entry:c~jazz:${UID2.toUpperCase()}`, entryDoc('c~jazz', 'alice', 'a1'), /_id/],
      [`entry:u~alice:${UID2}`, entryDoc('u~alice', 'alice', 'a1'), /_id/],
      [`entry:c~ja~zz:${UID2}`, entryDoc('c~ja~zz', 'alice', 'a1'), /_id/],
      ['channel:bad', { play: 'now' }, /play/],
      ['channel:bad', { play: { entry: `entry:c~jazz:${UID1}`, request: 'n1' } }, /play\.entry/],
      ['channel:bad', { play: { entry: `entry:c~bad:${UID1}` } }, /play\.request/],
      ['channel:bad', { play: { entry: `entry:c~bad:${UID1}`, request: 'has space' } }, /play\.request/],
      ['channel:bad', { skip: '' }, /skip/],
      ['channel:bad', { skip: 42 }, /skip/],
      ['channel:ba~d', { paused: false }, /name/],
      ['aggregate:bad', { channel: 'ja~zz' }, /channel/],
      ['user:alice', { aggregate: 'a:b' }, /aggregate/],
      ['aggregate:bad', { channel: 5 }, /channel/],
      ['user:alice', { lockout: 'no' }, /lockout/],
      ['user:alice', { session_timeout: 'long' }, /session_timeout/],
      ['user:alice', { session_timeout: -1 }, /session_timeout/],
    ];
    for (const [id, doc, field] of cases) {
      const r = await refused('alice', 'imes', id, doc, [403]);
      assert.equal(r.body.error, 'forbidden', `${id} ${JSON.stringify(doc)}`);
      assert.match(r.body.reason, field, `${id} ${JSON.stringify(doc)}: ${r.body.reason}`);
    }
  });

  test('can neither read nor write the private database', async () => {
    for (const path of ['/imes_private/_all_docs', '/imes_private/token%3Adevice%3Akitchen',
      '/imes_private/_changes', '/imes_private']) {
      const r = await as('alice', 'GET', path);
      assert.ok(DENIED.includes(r.status), `GET ${path}: ${r.status}`);
      assert.doesNotMatch(JSON.stringify(r.body), /[0-9a-f]{32}/, `GET ${path} leaked a token`);
    }
    await refused('alice', 'imes_private', 'token:device:kitchen', { token: '0'.repeat(32) });
    await refused('alice', 'imes_private', 'token:device:mine', { token: '0'.repeat(32) });
    await refused('bob', 'imes_private', 'history:bob', { x: 1 });
  });
});

describe('playlists', () => {
  const own = `entry:u~alice~mix:${UID3}`;

  test("a user's own playlist: she writes it, nobody else but an admin", async () => {
    await allowed('alice', 'imes', own, entryDoc('u~alice~mix', 'alice', 'a0'));
    await allowed('alice', 'imes', own, entryDoc('u~alice~mix', 'alice', 'a0V')); // moved
    const r = await refused('bob', 'imes', own, entryDoc('u~alice~mix', 'alice', 'a1'), [403]);
    assert.match(r.body.reason, /u~alice~mix.*alice/);
    await refused('bob', 'imes', `entry:u~alice~mix:${UID1}`, entryDoc('u~alice~mix', 'bob', 'a1'), [403]);
    await deleteRefused('bob', 'imes', own);
    await refused(null, 'imes', `entry:u~alice~mix:${UID2}`, entryDoc('u~alice~mix', 'alice', 'a2'));
    // an admin may (cleaning up, importing)
    await allowed('carol', 'imes', `entry:u~alice~mix:${UID2}`, entryDoc('u~alice~mix', 'alice', 'a2'));
    await allowed('bob', 'imes', `entry:u~bob~mix:${UID1}`, entryDoc('u~bob~mix', 'bob', 'a0'));
  });

  test("a channel's queue: any member adds and moves, nobody rewrites who added what", async () => {
    const id = `entry:c~jazz:${UID3}`;
    await allowed('alice', 'imes', id, entryDoc('c~jazz', 'alice', 'a5'));
    await allowed('bob', 'imes', id, entryDoc('c~jazz', 'alice', 'a3')); // bob moves alice's entry
    let r = await refused('bob', 'imes', id, entryDoc('c~jazz', 'bob', 'a3'), [403]);
    assert.match(r.body.reason, /added_by.*cannot change/);
    r = await refused('bob', 'imes', id, entryDoc('c~jazz', 'alice', 'a3', 'file:f2'), [403]);
    assert.match(r.body.reason, /file.*cannot change/);
    r = await refused('bob', 'imes', id, { ...entryDoc('c~jazz', 'alice', 'a3'), added: '2025-01-01T00:00:00Z' }, [403]);
    assert.match(r.body.reason, /added.*cannot change/);
    // a member adds entries in their own name only
    r = await refused('bob', 'imes', `entry:c~jazz:${UID2}`, entryDoc('c~jazz', 'alice', 'a6'), [403]);
    assert.match(r.body.reason, /added_by.*bob/);
    // bob removes alice's entry from the shared queue
    const cur = await current('imes', id);
    const d = await as('bob', 'DELETE', `${docPath('imes', id)}?rev=${cur._rev}`);
    assert.equal(d.status, 200);
  });

  test('play and skip requests on a channel', async () => {
    await allowed('bob', 'imes', 'channel:jazz', {
      type: 'channel', paused: false, replaygain: 'track', crossfade: 0.5,
      play: { entry: `entry:c~jazz:${UID1}`, request: '5f2a9c0e1b7d3a46' }, skip: 'a1b2c3d4e5f60718',
    });
    await allowed('bob', 'imes', 'channel:jazz', { type: 'channel', play: null, skip: null });
  });
});

describe('an admin (carol)', () => {
  test('can write devices and delegates', async () => {
    await allowed('carol', 'imes', 'device:attic', { type: 'device', aggregate: null, codec: 'opus' });
    await allowed('carol', 'imes', 'delegate:tablet', { type: 'delegate', devices: ['attic', 'kitchen'] });
    await refused('carol', 'imes', 'device:attic', { codec: 'flac' }, [403]);
    await refused('carol', 'imes', 'delegate:tablet', { devices: 'attic' }, [403]);
  });

  test("can write another user's settings", async () => {
    await allowed('carol', 'imes', 'user:bob', { type: 'user', lockout: true });
  });

  test('cannot write documents the backend owns', async () => {
    await refused('carol', 'imes', 'file:f1', { path: 'evil' });
    await refused('carol', 'imes', 'status:channel:jazz', { playing: true });
  });

  test('can read and write the private database', async () => {
    const r = await as('carol', 'GET', '/imes_private/_all_docs');
    assert.equal(r.status, 200);
    assert.ok(r.body.rows.some((x) => x.id === 'token:device:kitchen'));
    await allowed('carol', 'imes_private', 'token:device:attic', { type: 'token', token: 'ab'.repeat(16) });
    await refused('carol', 'imes_private', 'token:device:weak', { token: 'short' }, [403]);
  });
});

describe('the backend (server admin)', () => {
  test('can write its own documents', async () => {
    await allowed('admin', 'imes', 'status:backend:test', { type: 'status', state: 'ok' });
    await allowed('admin', 'imes', 'file:f2', { type: 'file', path: 'c.mp3' });
  });
});

describe('someone not logged in', () => {
  test('can read nothing', async () => {
    for (const path of ['/imes/_all_docs', '/imes/device%3Akitchen', '/imes/user%3Aalice',
      '/imes/_design/imes/_view/by_type', '/imes/_changes',
      '/imes_private/_all_docs', '/imes_private/token%3Adevice%3Akitchen']) {
      const r = await as(null, 'GET', path);
      assert.ok(DENIED.includes(r.status), `anonymous GET ${path}: ${r.status}`);
    }
  });

  test('can write nothing', async () => {
    await refused(null, 'imes', 'channel:anon', { paused: false });
    await refused(null, 'imes', 'channel:jazz', { paused: false });
    await refused(null, 'imes', 'user:alice', { lockout: false });
    await refused(null, 'imes', 'file:f1', { path: 'evil' });
    await refused(null, 'imes_private', 'token:device:kitchen', { token: '0'.repeat(32) });
    const r = await as(null, 'POST', '/imes/_bulk_docs', { docs: [{ _id: 'channel:anon2' }] });
    assert.ok(r.status >= 400 || (Array.isArray(r.body) && r.body.every((x) => x.error)),
      JSON.stringify(r.body));
    assert.equal(await current('imes', 'channel:anon2'), null);
  });
});

describe('personal devices (the web app\'s Listen here)', () => {
  test('writes her own personal device (device:web-alice, "Listen here"), and only that one', async () => {
    const mine = { type: 'device', aggregate: 'home', codec: 'mp3', personal: true, owner: 'alice' };
    await allowed('alice', 'imes', 'device:web-alice', mine);
    await allowed('alice', 'imes', 'device:web-alice', { ...mine, aggregate: 'garden' });
    // bob's, or one not marked personal, or owned by someone else
    let r = await refused('alice', 'imes', 'device:web-bob', { ...mine, owner: 'bob' });
    assert.match(r.body.reason, /personal device is device:web-alice/);
    r = await refused('alice', 'imes', 'device:web-alice', { ...mine, personal: false });
    assert.match(r.body.reason, /"personal": true/);
    await refused('alice', 'imes', 'device:web-alice', { ...mine, owner: 'bob' });
    await refused('alice', 'imes', 'device:web-alice', { type: 'device', aggregate: 'home' });
    await refused('alice', 'imes', 'device:web-alice', { ...mine, codec: 'flac' }, [403]);
    // a device an admin made under that name stays the admin's
    await allowed('carol', 'imes', 'device:web-bob', { type: 'device', aggregate: 'home' });
    r = await refused('bob', 'imes', 'device:web-bob', { type: 'device', aggregate: 'home', personal: true, owner: 'bob' });
    assert.match(r.body.reason, /an admin made/);
    await deleteRefused('bob', 'imes', 'device:web-bob');
    await deleteRefused('bob', 'imes', 'device:web-alice');
    // an admin may write one, with the owner its name says
    await refused('carol', 'imes', 'device:web-carol', { ...mine, owner: 'alice' }, [403]);
    await allowed('carol', 'imes', 'device:web-carol', { ...mine, owner: 'carol' });
    // and she may delete her own
    const cur = await current('imes', 'device:web-alice');
    const del = await as('alice', 'DELETE', `${docPath('imes', 'device:web-alice')}?rev=${cur._rev}`);
    assert.equal(del.status, 200, JSON.stringify(del.body));
    await allowed('alice', 'imes', 'device:web-alice', mine);
  });
});
