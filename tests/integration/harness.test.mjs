// Self-test of tests/lib/harness.mjs: the real pouchdb-server starts with an
// admin, keeps its data across stop/start, is restarted and reported when it
// dies; configs are written as imesd reads them; imes and imesd start from
// the build directory.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import {
  binPath,
  couchRequest,
  freePort,
  freeRtpPort,
  imes,
  startCouch,
  startImesd,
  toYaml,
  waitFor,
  writeConfig,
} from '../lib/harness.mjs';

test('freePort gives distinct, bindable ports', async () => {
  const a = await freePort();
  const b = await freePort();
  assert.notEqual(a, b);
  const srv = net.createServer();
  await new Promise((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(a, '127.0.0.1', resolve);
  });
  srv.close();
  const rtp = await freeRtpPort();
  assert.equal(rtp % 2, 0);
});

test('pouchdb-server: admin, data survives a restart, crash is reported and healed', async () => {
  const crashes = [];
  const couch = await startCouch({ onCrash: (e) => crashes.push(e) });
  assert.match(couch.url, /^http:\/\/127\.0\.0\.1:\d+$/);
  assert.ok(couch.adminUrl.startsWith(`http://admin:`));
  assert.ok(couch.running());

  // The admin is a server admin; anonymous is nobody.
  let r = await couchRequest(couch, 'GET', '/_session', { user: 'admin' });
  assert.equal(r.status, 200);
  assert.ok(r.body.userCtx.roles.includes('_admin'));
  r = await couchRequest(couch, 'GET', '/_session');
  assert.equal(r.body.userCtx.name, null);
  r = await couchRequest(couch, 'GET', '/_session', { user: 'admin', password: 'wrong' });
  assert.equal(r.status, 401);

  // Credentials in adminUrl work for clients that take them from the URL (like imesd).
  const u = new URL(couch.adminUrl);
  assert.equal(decodeURIComponent(u.password), couch.admin.password);

  r = await couchRequest(couch, 'PUT', '/harness', { user: 'admin' });
  assert.equal(r.status, 201);
  r = await couchRequest(couch, 'PUT', '/harness/doc1', { user: 'admin', body: { hello: 'wörld' } });
  assert.equal(r.status, 201);

  // stop + start: same port, same data.
  const port = couch.port;
  await couch.stop();
  assert.equal(couch.running(), false);
  await assert.rejects(fetch(couch.url + '/'));
  await couch.start();
  assert.equal(couch.port, port);
  r = await couchRequest(couch, 'GET', '/harness/doc1', { user: 'admin' });
  assert.equal(r.status, 200);
  assert.equal(r.body.hello, 'wörld');

  // Dying on its own is remembered, reported, and healed by a restart.
  couch.proc.kill('SIGKILL');
  await waitFor(() => crashes.length === 1, { what: 'the crash report' });
  assert.match(crashes[0].message, /died unexpectedly/);
  assert.match(crashes[0].message, /--- .*log\.txt ---\n.*pouchdb-server has started/); // its last log lines
  assert.equal(couch.crashes.length, 1);
  await waitFor(() => couch.running(), { what: 'the restart' });
  r = await couchRequest(couch, 'GET', '/harness/doc1', { user: 'admin' });
  assert.equal(r.body.hello, 'wörld');

  await couch.stop();
});

test('toYaml and writeConfig', async () => {
  assert.equal(
    toYaml({ a: [1, 'x'], b: { c: true, d: null }, e: [], f: [{ g: 1, h: 2 }] }),
    'a:\n  - 1\n  - "x"\nb:\n  c: true\n  d: null\ne: []\nf:\n  - g: 1\n    h: 2\n',
  );
  const couch = { adminUrl: 'http://admin:pw@127.0.0.1:5984' };
  const cfg = await writeConfig(couch, { backend: { bind_port: 12345 }, log: { level: 'info' } });
  assert.equal(cfg.port, 12345);
  assert.equal(cfg.config.backend.public, 'http://127.0.0.1:12345');
  assert.equal(cfg.config.backend.bind_host, '127.0.0.1');
  assert.equal(cfg.config.log.level, 'info');
  assert.ok(fs.statSync(cfg.mediaDir).isDirectory());
  const text = fs.readFileSync(cfg.path, 'utf8');
  assert.match(text, /^database:\n {2}url: "http:\/\/admin:pw@127\.0\.0\.1:5984"\n {2}name: "imes"$/m);
  assert.match(text, /^ {2}bind_port: 12345$/m);
  assert.match(text, new RegExp(`^media:\\n  - "${cfg.mediaDir}"$`, 'm'));
  const removed = await writeConfig(couch, { log: { file: undefined } });
  assert.ok(!('file' in removed.config.log));
});

test('waitFor times out with what it waited for', async () => {
  await assert.rejects(waitFor(() => false, { timeout: 200, what: 'Godot' }), /timed out waiting for Godot/);
  assert.equal(await waitFor(async () => 42), 42);
});

const built = fs.existsSync(binPath('imesd')) && fs.existsSync(binPath('imes'));

test('imes and imesd run against the real server', { skip: !built && `${binPath('imesd')} not built` }, async () => {
  const couch = await startCouch();
  const cfg = await writeConfig(couch);
  const r = await imes(cfg, ['init']);
  assert.equal(r.code, 0, `imes init failed:\n${r.stdout}\n${r.stderr}`);
  const d = await startImesd(cfg);
  // /healthz answers 503 until imesd has caught up with CouchDB.
  await waitFor(async () => (await fetch(`${d.url}/healthz`)).status === 200, {
    what: `${d.url}/healthz to answer 200`,
  }).catch((e) => assert.fail(`${e.message}\n${d.log()}`));
  assert.equal(await d.stop(), 0, d.log());
  await couch.stop();
});
