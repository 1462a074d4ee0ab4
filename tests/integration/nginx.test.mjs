// nginx/imes.conf for real: nginx with a throw-away self-signed certificate
// proxies CouchDB (a real pouchdb-server) and imesd over HTTPS and HTTP/2,
// the clients being curl and node's https. Only the ports, the upstream
// addresses and the certificate paths of the committed file are replaced.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import {
  ROOT,
  binPath,
  couchRequest,
  freePort,
  imes,
  startCouch,
  startImesd,
  startProcess,
  waitFor,
  writeConfig,
} from '../lib/harness.mjs';
import { listen, RATE } from '../lib/live.mjs';

const run = promisify(execFile);

function findNginx() {
  const dirs = [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/usr/local/sbin', '/sbin'];
  for (const d of dirs) {
    const p = path.join(d, 'nginx');
    if (fs.existsSync(p)) return p;
  }
  throw new Error('nginx is not installed: run scripts/install-deps');
}
const NGINX = findNginx();

let tmp;
let cert;
let key;
let couch;

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'imes-test-nginx-'));
  cert = path.join(tmp, 'cert.pem');
  key = path.join(tmp, 'key.pem');
  await run('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-days', '2', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
    '-keyout', key, '-out', cert,
  ]);
  couch = await startCouch();
  const r = await couchRequest(couch, 'PUT', '/imes', { user: 'admin' });
  assert.equal(r.status, 201);
});

after(async () => {
  await couch?.stop();
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** nginx/imes.conf with test ports and paths; every replacement must apply. */
function siteConf({ httpsPort, httpPort, couchPort, backendPort }) {
  let conf = fs.readFileSync(path.join(ROOT, 'nginx', 'imes.conf'), 'utf8');
  const subst = [
    ['listen 443 ssl http2;', `listen 127.0.0.1:${httpsPort} ssl http2;`],
    ['listen [::]:443 ssl http2;', ''], // IPv6 may be missing on a test machine
    ['listen 80;', `listen 127.0.0.1:${httpPort};`],
    ['listen [::]:80;', ''],
    ['server 127.0.0.1:5984;', `server 127.0.0.1:${couchPort};`],
    ['server 127.0.0.1:9997;', `server 127.0.0.1:${backendPort};`],
    ['/etc/ssl/certs/imes.pem', cert],
    ['/etc/ssl/private/imes.key', key],
  ];
  for (const [from, to] of subst) {
    assert.equal(conf.split(from).length, 2, `nginx/imes.conf should contain "${from}" exactly once`);
    conf = conf.replace(from, to);
  }
  return conf;
}

/** Starts nginx on free ports in front of couchPort and backendPort. */
async function startNginx(couchPort, backendPort) {
  const dir = fs.mkdtempSync(path.join(tmp, 'nginx-'));
  const httpsPort = await freePort();
  const httpPort = await freePort();
  fs.writeFileSync(path.join(dir, 'imes.conf'), siteConf({ httpsPort, httpPort, couchPort, backendPort }));
  for (const t of ['body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) fs.mkdirSync(path.join(dir, t));
  fs.writeFileSync(
    path.join(dir, 'nginx.conf'),
    `${process.getuid() === 0 ? 'user root;\n' : ''}worker_processes 1;
pid ${dir}/nginx.pid;
events { worker_connections 256; }
http {
    access_log ${dir}/access.log;
    client_body_temp_path ${dir}/body;
    proxy_temp_path ${dir}/proxy;
    fastcgi_temp_path ${dir}/fastcgi;
    uwsgi_temp_path ${dir}/uwsgi;
    scgi_temp_path ${dir}/scgi;
    include ${dir}/imes.conf;
}
`,
  );
  const args = ['-p', dir, '-c', path.join(dir, 'nginx.conf'), '-e', 'stderr', '-g', 'daemon off; error_log stderr;'];
  await run(NGINX, ['-t', ...args]).catch((e) => assert.fail(`nginx -t failed:\n${e.stderr}`));
  const proc = startProcess(NGINX, args, { name: 'nginx', outPath: path.join(dir, 'nginx.out') });
  await waitFor(
    () =>
      new Promise((resolve) => {
        const s = net.connect(httpsPort, '127.0.0.1', () => {
          s.destroy();
          resolve(true);
        });
        s.on('error', () => resolve(false));
      }),
    { what: `nginx on port ${httpsPort}`, timeout: 15000 },
  ).catch((e) => assert.fail(`${e.message}\n${proc.log()}`));
  return { ...proc, httpsPort, httpPort, base: `https://127.0.0.1:${httpsPort}` };
}

/** curl -k through the proxy; resolves { status, version, headers, body }. */
async function curl(url, extra = []) {
  const { stdout } = await run('curl', [
    '-sk', '--http2', '--max-time', '10', '-D', '-', '-w', '\n%{http_code} %{http_version}', ...extra, url,
  ]);
  const lines = stdout.trimEnd().split('\n');
  const [status, version] = lines.pop().split(' ');
  const text = lines.join('\n');
  const split = text.search(/\r?\n\r?\n/);
  const head = split < 0 ? text : text.slice(0, split);
  const body = split < 0 ? '' : text.slice(split).trim();
  const headers = {};
  for (const l of head.split(/\r?\n/).slice(1)) {
    const i = l.indexOf(':');
    if (i > 0) headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
  }
  let json;
  try {
    json = JSON.parse(body);
  } catch {
    /* not JSON */
  }
  return { status: Number(status), version, headers, body, json };
}

test('CouchDB through nginx: HTTP/2 over TLS, sessions, databases, redirects', async (t) => {
  const nginx = await startNginx(couch.port, await freePort());
  t.after(() => nginx.stop());

  let r = await curl(`${nginx.base}/_session`);
  assert.equal(r.status, 200, r.body);
  assert.equal(r.version, '2');
  assert.equal(r.json.userCtx.name, null);

  // Cookie login through the proxy, then a database with the cookie.
  r = await curl(`${nginx.base}/_session`, [
    '-X', 'POST', '-H', 'Content-Type: application/json',
    '--data', JSON.stringify({ name: 'admin', password: couch.admin.password }),
  ]);
  assert.equal(r.status, 200, r.body);
  const cookie = (r.headers['set-cookie'] ?? '').split(';')[0];
  assert.match(cookie, /^AuthSession=./);
  r = await curl(`${nginx.base}/imes`, ['-H', `Cookie: ${cookie}`]);
  assert.equal(r.status, 200, r.body);
  assert.equal(r.json.db_name, 'imes');

  r = await curl(`${nginx.base}/imes`, ['-u', `admin:${couch.admin.password}`]);
  assert.equal(r.json.db_name, 'imes');
  r = await curl(`${nginx.base}/_utils/`);
  assert.equal(r.status, 200);
  assert.match(r.body, /<html/i);

  r = await curl(`${nginx.base}/`);
  assert.equal(r.status, 302);
  assert.match(r.headers.location, /\/imes\/_design\/imes\//);
  r = await curl(`${nginx.base}/etc/passwd`);
  assert.equal(r.status, 404);
  r = await curl(`http://127.0.0.1:${nginx.httpPort}/imes`);
  assert.equal(r.status, 301);
  assert.match(r.headers.location, /^https:\/\//);
});

const built = fs.existsSync(binPath('imesd'));

test('imesd through nginx: /b/healthz', { skip: !built && `${binPath('imesd')} not built` }, async (t) => {
  const cfg = await writeConfig(couch);
  const init = await imes(cfg, ['init']);
  assert.equal(init.code, 0, `imes init: ${init.stdout}${init.stderr}`);
  const imesd = await startImesd(cfg);
  t.after(() => imesd.stop());
  const nginx = await startNginx(couch.port, cfg.port);
  t.after(() => nginx.stop());

  const direct = await fetch(`${imesd.url}/healthz`);
  const r = await curl(`${nginx.base}/b/healthz`);
  assert.ok(r.status === 200 || r.status === 503, `status ${r.status}: ${r.body}\n${nginx.log()}`);
  assert.equal(r.version, '2');
  assert.equal(r.headers['content-type'], direct.headers.get('content-type'));
  const viaProxy = await waitFor(
    async () => {
      const x = await curl(`${nginx.base}/b/healthz`);
      return x.status === 200 && x;
    },
    { what: 'imesd to be healthy through nginx' },
  ).catch((e) => assert.fail(`${e.message}\n${imesd.log()}`));
  assert.equal(viaProxy.body.trim(), (await (await fetch(`${imesd.url}/healthz`)).text()).trim());
  const redirect = await curl(`${nginx.base}/b`);
  assert.equal(redirect.status, 301);
});

test('Listen here through nginx: a member\'s personal device at /b/listen/stream.mp3 with her session cookie', { skip: !built && `${binPath('imesd')} not built` }, async (t) => {
  const cfg = await writeConfig(couch);
  for (const args of [['init'], ['channel', 'add', 'den'], ['aggregate', 'add', 'home', '--channel', 'den']]) {
    const r = await imes(cfg, args);
    assert.equal(r.code, 0, `imes ${args.join(' ')}: ${r.stdout}${r.stderr}`);
  }
  const add = await imes(cfg, ['user', 'add', 'dora'], { input: 'dora secret\n' });
  assert.equal(add.code, 0, add.stderr);
  const imesd = await startImesd(cfg);
  t.after(() => imesd.stop());
  const nginx = await startNginx(couch.port, cfg.port);
  t.after(() => nginx.stop());

  // logged in through the proxy, as the web app is; the cookie is same-origin
  let r = await curl(`${nginx.base}/_session`, [
    '-X', 'POST', '-H', 'Content-Type: application/json',
    '--data', JSON.stringify({ name: 'dora', password: 'dora secret' }),
  ]);
  assert.equal(r.status, 200, r.body);
  const cookie = (r.headers['set-cookie'] ?? '').split(';')[0];
  r = await curl(`${nginx.base}/imes/device:web-dora`, [
    '-X', 'PUT', '-H', 'Content-Type: application/json', '-H', `Cookie: ${cookie}`,
    '--data', JSON.stringify({ type: 'device', aggregate: 'home', codec: 'mp3', personal: true, owner: 'dora' }),
  ]);
  assert.equal(r.status, 201, r.body);

  r = await curl(`${nginx.base}/b/listen/stream.mp3`);
  assert.equal(r.status, 401);
  assert.match(r.body, /Log in to IMES to listen here/);
  // imesd learns the device from the feed: the stream plays once it has
  const ear = await waitFor(async () => {
    const e = listen(`${nginx.base}/b/listen/stream.mp3`, { inputArgs: ['-headers', `Cookie: ${cookie}\r\n`] });
    try {
      await e.until(RATE, 5000);
      return e;
    } catch {
      await e.stop();
      return null;
    }
  }, { timeout: 20000, interval: 500, what: 'the personal stream through nginx' });
  t.after(() => ear.stop());
  await ear.until(2 * RATE);
  assert.ok(ear.n >= 2 * RATE, 'two seconds of MP3 decoded through nginx');
});

test('/b/ strips the prefix, forwards X-Forwarded-*, and streams unbuffered', async (t) => {
  // A plain HTTP server in imesd's place, to look at what nginx sends upstream
  // and when it passes bytes on (audio and Server-Sent Events must not wait
  // in a proxy buffer).
  const seen = [];
  const upstream = http.createServer((req, res) => {
    seen.push({ url: req.url, headers: req.headers });
    if (req.url === '/stream') {
      res.writeHead(200, { 'Content-Type': 'text/event-stream' });
      res.write('data: first\n\n');
      setTimeout(() => res.end('data: second\n\n'), 1500);
    } else {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ url: req.url }));
    }
  });
  const port = await freePort();
  await new Promise((resolve) => upstream.listen(port, '127.0.0.1', resolve));
  t.after(() => upstream.close());
  const nginx = await startNginx(couch.port, port);
  t.after(() => nginx.stop());

  const r = await curl(`${nginx.base}/b/device/kitchen/tok3n/stream.mp3?x=1`);
  assert.equal(r.status, 200, `${r.body}\n${nginx.log()}`);
  assert.equal(r.json.url, '/device/kitchen/tok3n/stream.mp3?x=1');
  const h = seen.at(-1).headers;
  assert.equal(h['x-forwarded-proto'], 'https');
  assert.equal(h['x-forwarded-prefix'], '/b');
  assert.equal(h['x-forwarded-for'], '127.0.0.1');
  assert.equal(h['x-forwarded-port'], String(nginx.httpsPort));
  assert.equal(h.host, '127.0.0.1');

  // The first event arrives long before the upstream ends the response.
  const t0 = Date.now();
  const firstAt = await new Promise((resolve, reject) => {
    https
      .get(`${nginx.base}/b/stream`, { rejectUnauthorized: false }, (res) => {
        res.once('data', () => resolve(Date.now() - t0));
        res.resume();
      })
      .on('error', reject);
  });
  assert.ok(firstAt < 1000, `first chunk after ${firstAt} ms: nginx buffered the stream`);
});
