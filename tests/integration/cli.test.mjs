// The admin CLI against a real pouchdb-server: init (and that running it again
// changes nothing), configuration and connection errors, user add (and that
// the password then logs in), device and delegate add (tokens, URLs, re-adding
// keeps the token), status, and --help everywhere.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { freePort, startCouch, writeConfig, imes, couchRequest } from '../lib/harness.mjs';

let couch, cfg;

// imes with a configuration file of our own (a broken one, a dead server).
const imesWith = (configPath, args) => imes({ path: configPath, dir: cfg.dir }, args);

// The server URL without credentials (fetch refuses URLs that carry them).
function plainUrl() {
  const u = new URL(couch.url);
  u.username = u.password = '';
  return u;
}

const get = (p) => couchRequest(couch, 'GET', p, { user: 'admin' });
const docPath = (db, id) => `/${db}/${encodeURIComponent(id)}`;

async function doc(db, id) {
  const r = await get(docPath(db, id));
  return r.status === 200 ? r.body : null;
}

async function ok(args, opts) {
  const r = await imes(cfg, args, opts);
  assert.equal(r.code, 0, `imes ${args.join(' ')}: exit ${r.code}\n${r.stdout}\n${r.stderr}`);
  return r;
}

before(async () => {
  couch = await startCouch();
  cfg = await writeConfig(couch);
});

after(async () => {
  if (couch) await couch.stop();
});

describe('imes init', () => {
  test('creates the databases, their security and design documents', async () => {
    const r = await ok(['init']);
    assert.match(r.stdout, /created database imes\b/);
    assert.match(r.stdout, /created database imes_private\b/);
    assert.match(r.stdout, /design doc _design\/imes in imes created/);
    assert.match(r.stdout, /design doc _design\/imes_private in imes_private created/);

    const sec = (await get('/imes/_security')).body;
    assert.deepEqual(sec.members.roles.sort(), ['imes_admin', 'imes_user', 'matriz_peer']);
    assert.deepEqual(sec.admins.roles, ['imes_admin']);
    const psec = (await get('/imes_private/_security')).body;
    assert.deepEqual(psec.members.roles, ['imes_admin']);
    assert.deepEqual(psec.admins.roles, ['imes_admin']);

    const ddoc = await doc('imes', '_design/imes');
    assert.match(ddoc.validate_doc_update, /^function/);
    assert.equal(ddoc.views.by_type.reduce, '_count');
    assert.match(ddoc.views.by_type.map, /emit/);
    assert.match(ddoc.filters.backend, /^function/);
    const pdoc = await doc('imes_private', '_design/imes_private');
    assert.match(pdoc.validate_doc_update, /^function/);
    assert.equal((await get('/_users')).status, 200);
  });

  test('run again, changes nothing', async () => {
    const revs = async () => [
      (await doc('imes', '_design/imes'))._rev,
      (await doc('imes_private', '_design/imes_private'))._rev,
      JSON.stringify((await get('/imes/_security')).body),
      JSON.stringify((await get('/imes_private/_security')).body),
    ];
    const before1 = await revs();
    const r = await ok(['init']);
    assert.doesNotMatch(r.stdout, /created|updated|set:/);
    assert.match(r.stdout, /database imes exists/);
    assert.match(r.stdout, /design doc _design\/imes in imes unchanged/);
    assert.match(r.stdout, /design doc _design\/imes_private in imes_private unchanged/);
    assert.match(r.stdout, /security of imes unchanged/);
    assert.deepEqual(await revs(), before1);
  });

  test('takes the design documents from --couchapp, attachments included', async () => {
    const dir = fs.mkdtempSync(path.join(cfg.dir, 'couchapp-'));
    fs.cpSync(new URL('../../couchapp', import.meta.url), dir, { recursive: true, dereference: true });
    fs.mkdirSync(path.join(dir, 'imes', '_attachments', 'img'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'imes', '_attachments', 'index.html'), '<!doctype html><p>hi\n');
    const png = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0, 1, 2, 0xff, 0xfe]);
    fs.writeFileSync(path.join(dir, 'imes', '_attachments', 'img', 'a.png'), png);
    let r = await ok(['init', '--couchapp', dir]);
    assert.match(r.stdout, /design doc _design\/imes in imes updated/);
    const res = await fetch(new URL('/imes/_design/imes/img/a.png', plainUrl()), {
      headers: { Authorization: 'Basic ' + Buffer.from(`${couch.admin.name}:${couch.admin.password}`).toString('base64') },
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'image/png');
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), png);
    const att = (await doc('imes', '_design/imes'))._attachments;
    assert.match(att['index.html'].content_type, /^text\/html/);

    r = await ok(['init', '--couchapp', dir]);
    assert.match(r.stdout, /design doc _design\/imes in imes unchanged/);
    // back to the tree's own, for the tests after this one
    r = await ok(['init']);
    assert.match(r.stdout, /design doc _design\/imes in imes updated/);
  });
});

describe('configuration and connection errors', () => {
  test('a bad config file: exit 2 with file:line: key', async () => {
    const bad = path.join(cfg.dir, 'bad.yaml');
    fs.writeFileSync(bad, 'database:\n  name: imes\n  colour: blue\n');
    const r = await imesWith(bad, ['status']);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /bad\.yaml:3:.*colour/);
  });

  test('a missing config file: exit 2 naming it', async () => {
    const r = await imesWith(path.join(cfg.dir, 'nothere.yaml'), ['status']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /nothere\.yaml/);
  });

  test('a missing couchapp folder: exit 2 before touching the server', async () => {
    const r = await imes(cfg, ['init', '--couchapp', path.join(cfg.dir, 'no-such-couchapp')]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /no-such-couchapp/);
    assert.equal(r.stdout, '');
  });

  test('CouchDB unreachable: exit 1, naming the URL without the password', async () => {
    const port = await freePort();
    const dead = path.join(cfg.dir, 'dead.yaml');
    fs.writeFileSync(dead, `database:\n  url: http://admin:hunter2pw@127.0.0.1:${port}\n`);
    for (const args of [['init'], ['status'], ['device', 'add', 'x']]) {
      const r = await imesWith(dead, args);
      assert.equal(r.code, 1, `${args}: ${r.stderr}`);
      assert.match(r.stderr, new RegExp(`127\\.0\\.0\\.1:${port}`));
      assert.doesNotMatch(r.stderr + r.stdout, /hunter2pw/);
    }
  });
});

describe('imes user add', () => {
  const login = (name, password) => fetch(new URL('/_session', plainUrl()), {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
    body: JSON.stringify({ name, password }),
  }).then(async (r) => ({ status: r.status, body: await r.json() }));

  test('creates a login that works and default settings', async () => {
    const r = await ok(['user', 'add', 'alice'], { input: 'correct horse\n' });
    assert.match(r.stdout, /user alice created/);
    const s = await login('alice', 'correct horse');
    assert.equal(s.status, 200, JSON.stringify(s.body));
    assert.deepEqual(s.body.roles, ['imes_user']);
    assert.equal((await login('alice', 'wrong')).status, 401);
    const u = await doc('imes', 'user:alice');
    assert.deepEqual(
      { type: u.type, aggregate: u.aggregate, lockout: u.lockout, session_timeout: u.session_timeout, scrobbling: u.scrobbling },
      { type: 'user', aggregate: null, lockout: false, session_timeout: 300, scrobbling: false });
  });

  test('re-adding sets the new password and keeps the settings', async () => {
    const u0 = await doc('imes', 'user:alice');
    const r = await ok(['user', 'add', 'alice'], { input: 'battery staple\n' });
    assert.match(r.stdout, /user alice updated/);
    assert.equal((await login('alice', 'battery staple')).status, 200);
    assert.equal((await login('alice', 'correct horse')).status, 401);
    assert.equal((await doc('imes', 'user:alice'))._rev, u0._rev);
  });

  test('--admin gives imes_admin', async () => {
    await ok(['user', 'add', 'carol', '--admin'], { input: 'pw carol\n' });
    const s = await login('carol', 'pw carol');
    assert.deepEqual(s.body.roles.sort(), ['imes_admin', 'imes_user']);
  });

  test('refuses an empty password and a bad name', async () => {
    let r = await imes(cfg, ['user', 'add', 'dave'], { input: '\n' });
    assert.equal(r.code, 2);
    assert.equal(await doc('_users', 'org.couchdb.user:dave'), null);
    r = await imes(cfg, ['user', 'add', 'da:ve'], { input: 'pw\n' });
    assert.equal(r.code, 2);
    r = await imes(cfg, ['user', 'add'], { input: 'pw\n' });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /usage:/);
  });
});

describe('imes device add', () => {
  const urlRe = /\/device\/kitchen\/([0-9a-f]{32,})\/stream\.mp3/;
  let token;

  test('writes the device and its token and prints the URLs', async () => {
    const r = await ok(['device', 'add', 'kitchen', '--aggregate', 'home']);
    const m = r.stdout.match(urlRe);
    assert.ok(m, r.stdout);
    token = m[1];
    const pub = cfg.config?.backend?.public;
    if (pub) assert.ok(r.stdout.includes(`${pub}/device/kitchen/${token}/stream.mp3`), r.stdout);
    assert.ok(r.stdout.includes(`/device/kitchen/${token}/stream.opus`), r.stdout);
    assert.match(r.stdout, new RegExp(`^rtsp://\\S+/device/kitchen/${token}$`, 'm'));
    const d = await doc('imes', 'device:kitchen');
    assert.equal(d.aggregate, 'home');
    assert.equal(d.codec, 'mp3');
    assert.equal(d.type, 'device');
    const t = await doc('imes_private', 'token:device:kitchen');
    assert.equal(t.token, token);
    assert.equal(await doc('imes', 'token:device:kitchen'), null);
  });

  test('re-adding keeps the token and changes only what is given', async () => {
    const r = await ok(['device', 'add', 'kitchen', '--codec', 'opus']);
    assert.equal(r.stdout.match(urlRe)?.[1], token);
    assert.match(r.stdout, /token kept/);
    const d = await doc('imes', 'device:kitchen');
    assert.equal(d.aggregate, 'home');
    assert.equal(d.codec, 'opus');
    const rev = d._rev;
    const again = await ok(['device', 'add', 'kitchen']);
    assert.equal(again.stdout.match(urlRe)?.[1], token);
    assert.equal((await doc('imes', 'device:kitchen'))._rev, rev);
  });

  test('--new-token replaces it', async () => {
    const r = await ok(['device', 'add', 'kitchen', '--new-token']);
    const t2 = r.stdout.match(urlRe)?.[1];
    assert.ok(t2 && t2 !== token, r.stdout);
    assert.equal((await doc('imes_private', 'token:device:kitchen')).token, t2);
    token = t2;
  });

  test('refuses a bad codec or name', async () => {
    let r = await imes(cfg, ['device', 'add', 'attic', '--codec', 'flac']);
    assert.equal(r.code, 2);
    assert.equal(await doc('imes', 'device:attic'), null);
    r = await imes(cfg, ['device', 'add', 'a/b']);
    assert.equal(r.code, 2);
  });
});

describe('imes delegate add', () => {
  const re = /\/delegate\/phone\/([0-9a-f]{32,})\/pause$/m;

  test('writes the delegate and its token and prints the URLs', async () => {
    const r = await ok(['delegate', 'add', 'phone', '--device', 'kitchen', '--device', 'attic']);
    const token = r.stdout.match(re)?.[1];
    assert.ok(token, r.stdout);
    assert.ok(r.stdout.includes(`/delegate/phone/${token}/pause/`), r.stdout);
    assert.ok(r.stdout.includes(`/delegate/phone/${token}/unpause`), r.stdout);
    assert.match(r.stdout, /device:attic does not exist/);
    assert.deepEqual((await doc('imes', 'delegate:phone')).devices, ['kitchen', 'attic']);
    assert.equal((await doc('imes_private', 'token:delegate:phone')).token, token);

    const again = await ok(['delegate', 'add', 'phone', '--device', 'kitchen']);
    assert.equal(again.stdout.match(re)?.[1], token);
    assert.deepEqual((await doc('imes', 'delegate:phone')).devices, ['kitchen']);
  });

  test('needs at least one device', async () => {
    const r = await imes(cfg, ['delegate', 'add', 'tablet']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--device/);
    assert.equal(await doc('imes', 'delegate:tablet'), null);
  });
});

describe('imes status', () => {
  test('shows the server, the databases, counts per type and imesd', async () => {
    let r = await ok(['status']);
    assert.match(r.stdout, /reachable/);
    assert.match(r.stdout, /database imes: \d+ documents/);
    assert.match(r.stdout, /database imes_private: \d+ documents/);
    assert.match(r.stdout, /^\s+device\s+1$/m);
    assert.match(r.stdout, /^\s+delegate\s+1$/m);
    assert.match(r.stdout, /^\s+user\s+2$/m);
    assert.match(r.stdout, /healthz: not answering/);

    const st = {
      _id: 'status:backend:imesd', type: 'status', state: 'running', feed: 'live',
      last_seq: '42-abc', changes_applied: 7, started: '2025-01-01T00:00:00Z', updated: '2025-01-01T00:01:00Z',
    };
    const w = await couchRequest(couch, 'PUT', '/imes/status%3Abackend%3Aimesd', { body: st, user: 'admin' });
    assert.equal(w.status, 201, JSON.stringify(w.body));
    r = await ok(['status']);
    for (const re of [/state\s+running/, /feed\s+live/, /last_seq\s+42-abc/, /changes_applied\s+7/,
      /started\s+2025-01-01T00:00:00Z/, /updated\s+2025-01-01T00:01:00Z/]) assert.match(r.stdout, re);
  });
});

describe('help and usage', () => {
  test('--help on every command and subcommand exits 0', async () => {
    for (const args of [['--help'], ['help'], ['-h'], ['init', '--help'], ['user', '--help'],
      ['user', 'add', '--help'], ['device', '--help'], ['device', 'add', '--help'],
      ['delegate', '--help'], ['delegate', 'add', '--help'], ['status', '--help'],
      ['help', 'device']]) {
      const r = await imes(cfg, args);
      assert.equal(r.code, 0, `imes ${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stdout, /usage: imes/, args.join(' '));
    }
    const all = (await imes(cfg, ['--help'])).stdout;
    for (const c of ['init', 'user', 'device', 'delegate', 'status']) assert.match(all, new RegExp(`^  ${c}\\b`, 'm'));
  });

  test('unknown commands and options: message, usage, exit 2', async () => {
    for (const args of [['frobnicate'], ['--frob'], ['user', 'remove', 'x'], ['device', 'add', 'x', '--colour', 'red'],
      ['status', 'extra'], ['init', '-x'], []]) {
      const r = await imes(cfg, args);
      assert.equal(r.code, 2, `imes ${args.join(' ')}: ${r.code}`);
      assert.match(r.stderr, /usage: imes/, args.join(' '));
    }
  });
});
