// Test harness for the integration tests (node --test, node 18+, no npm
// dependencies): starts a real pouchdb-server, writes imesd configs, runs
// `imes` and `imesd` from the build directory, and cleans up after itself.
//
// Everything it starts is killed when the test process exits, however it
// exits. Each started process writes its output to a file in its own temp
// directory (os.tmpdir()/imes-test-*), so nothing blocks on an unread pipe and
// the output is still there after a crash; the directories are removed when
// the process exits with status 0 (kept on failure, or with IMES_KEEP_TMP=1).
//
// A pouchdb-server that dies while a test runs (COUCHDB-NOTES.md lists
// requests that crash it) is remembered in couch.crashes, restarted on the
// same port with the same data, and reported by throwing an uncaught error
// carrying its last log lines: node's test runner fails the running test with
// it. imesd dying on its own after it came up is reported the same way.

import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import dgram from 'node:dgram';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const BUILD_DIR = path.resolve(ROOT, process.env.IMES_BUILD_DIR || 'build');

/** Path of a program built into BUILD_DIR/bin. */
export function binPath(name) {
  return path.join(BUILD_DIR, 'bin', name);
}

// ---------------------------------------------------------------- cleanup

const live = new Set(); // child processes still running
const tmpDirs = [];
let hooked = false;

function killAll() {
  for (const child of live) {
    try {
      child.kill('SIGKILL');
    } catch {
      /* already gone */
    }
  }
  live.clear();
}

function hookExit() {
  if (hooked) return;
  hooked = true;
  process.on('exit', (code) => {
    killAll();
    if (!tmpDirs.length) return;
    if (code === 0 && !process.exitCode && !process.env.IMES_KEEP_TMP) {
      for (const d of tmpDirs) fs.rmSync(d, { recursive: true, force: true });
    } else {
      process.stderr.write(`harness: kept temp dirs: ${tmpDirs.join(' ')}\n`);
    }
  });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(sig, () => {
      killAll();
      process.exit(128 + os.constants.signals[sig]);
    });
  }
}

function mkTmp(label) {
  hookExit();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `imes-test-${label}-`));
  tmpDirs.push(dir);
  return dir;
}

// Long-running children are unref'd: a test file that forgets to stop one
// still ends (and the exit hook kills it) instead of hanging until a timeout.
function track(child, { unref = false } = {}) {
  live.add(child);
  child.once('exit', () => live.delete(child));
  if (unref) child.unref();
  return child;
}

// A promise of the exit status that keeps the process alive while awaited
// (the child itself is unref'd).
function exitThenable(child) {
  const p = exitPromise(child);
  return {
    then(onOk, onErr) {
      child.ref();
      return p.then(onOk, onErr);
    },
    catch(onErr) {
      return this.then(undefined, onErr);
    },
    finally(fn) {
      child.ref();
      return p.finally(fn);
    },
  };
}

/** Exit status as a number: the code, or 128 + signal number when killed. */
function statusOf(code, signal) {
  if (code !== null && code !== undefined) return code;
  return 128 + (os.constants.signals[signal] || 0);
}

function exitPromise(child) {
  if (child.exitCode !== null || child.signalCode !== null)
    return Promise.resolve(statusOf(child.exitCode, child.signalCode));
  return new Promise((resolve) =>
    child.once('exit', (code, signal) => resolve(statusOf(code, signal))),
  );
}

async function stopChild(child, { graceMs = 15000 } = {}) {
  if (child.exitCode !== null || child.signalCode !== null)
    return statusOf(child.exitCode, child.signalCode);
  child.ref();
  const done = exitPromise(child);
  child.kill('SIGTERM');
  let timer;
  const late = new Promise((resolve) => {
    timer = setTimeout(() => {
      child.kill('SIGKILL');
      resolve();
    }, graceMs);
  });
  await Promise.race([done, late]);
  clearTimeout(timer);
  return done;
}

/** The last n lines of a text file ('' if it does not exist). */
export function tailFile(file, n = 40) {
  let text;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  return lines.slice(-n).join('\n');
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------- ports

const handedOut = new Set();

function tryListenTcp(port) {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(null));
    srv.listen({ port, host: '127.0.0.1', exclusive: true }, () => {
      const p = srv.address().port;
      srv.close(() => resolve(p));
    });
  });
}

function tryBindUdp(port) {
  return new Promise((resolve) => {
    const sock = dgram.createSocket('udp4');
    sock.once('error', () => {
      sock.close();
      resolve(false);
    });
    sock.bind({ port, address: '127.0.0.1', exclusive: true }, () => sock.close(() => resolve(true)));
  });
}

/** A free TCP port on 127.0.0.1 (never the same one twice in this process). */
export async function freePort() {
  for (let i = 0; i < 50; i++) {
    const p = await tryListenTcp(0);
    if (p && !handedOut.has(p)) {
      handedOut.add(p);
      return p;
    }
  }
  throw new Error('freePort: no free TCP port found');
}

/** An even port P with UDP P (RTP) and P+1 (RTCP) free on 127.0.0.1. */
export async function freeRtpPort() {
  for (let i = 0; i < 100; i++) {
    const p = 20000 + 2 * crypto.randomInt(0, 20000);
    if (handedOut.has(p) || handedOut.has(p + 1)) continue;
    if ((await tryBindUdp(p)) && (await tryBindUdp(p + 1))) {
      handedOut.add(p);
      handedOut.add(p + 1);
      return p;
    }
  }
  throw new Error('freeRtpPort: no free UDP port pair found');
}

// ---------------------------------------------------------------- CouchDB

const POUCHDB_BIN = path.join(ROOT, 'node_modules', 'pouchdb-server', 'bin', 'pouchdb-server');
const ORPHAN_GUARD = path.join(ROOT, 'tests', 'lib', 'orphan-guard.cjs');

/**
 * Starts pouchdb-server on a free port with its data in a fresh temp dir and a
 * server admin `admin` with a random password.
 *
 * opts: port (default: a free one), dir (reuse a data dir), password,
 *       logLevel ('info': every request is logged), config (extra sections
 *       merged into its config.json, e.g. { couch_httpd_auth: {...} }),
 *       restartOnCrash (default true), onCrash(err) (called instead of
 *       throwing when it dies unexpectedly), startTimeout (ms, default 30000).
 *
 * Returns { url, adminUrl, admin: { name, password }, port, dir, logPath,
 *           crashes, stop(), start(), running(), lastLines(n) }.
 */
export async function startCouch(opts = {}) {
  hookExit();
  if (!fs.existsSync(POUCHDB_BIN))
    throw new Error(`pouchdb-server is not installed (${POUCHDB_BIN}): run scripts/install-deps`);
  const dir = opts.dir ?? mkTmp('couch');
  fs.mkdirSync(dir, { recursive: true });
  const admin = { name: 'admin', password: opts.password ?? crypto.randomBytes(12).toString('hex') };
  const dataDir = path.join(dir, 'data');
  const configPath = path.join(dir, 'config.json');
  const logPath = path.join(dir, 'log.txt');
  const outPath = path.join(dir, 'pouchdb-server.out');

  // The admin goes into its config file in plain text, as in CouchDB's ini
  // files; pouchdb-server replaces it with a PBKDF2 hash when it starts.
  let conf = {};
  if (fs.existsSync(configPath)) conf = JSON.parse(fs.readFileSync(configPath, 'utf8'));
  conf = merge(conf, opts.config ?? {});
  conf.admins = { ...(conf.admins ?? {}), [admin.name]: admin.password };
  conf.log = { ...(conf.log ?? {}), file: logPath, level: opts.logLevel ?? 'info' };
  fs.writeFileSync(configPath, JSON.stringify(conf, null, 2) + '\n');

  const couch = {
    url: '',
    adminUrl: '',
    admin,
    port: 0,
    dir,
    dataDir,
    logPath,
    outPath,
    crashes: [],
    proc: null,
    running: () => !!couch.proc && couch.proc.exitCode === null && couch.proc.signalCode === null,
    lastLines: (n = 30) =>
      [`--- ${logPath} ---`, tailFile(logPath, n), `--- ${outPath} ---`, tailFile(outPath, n)].join('\n'),
    start: () => launch(false),
    stop: async () => {
      const p = couch.proc;
      if (!p) return 0;
      p.expectedExit = true;
      return stopChild(p, { graceMs: 10000 });
    },
    _restarting: null,
  };

  const setPort = (port) => {
    couch.port = port;
    couch.url = `http://127.0.0.1:${port}`;
    couch.adminUrl = `http://${admin.name}:${encodeURIComponent(admin.password)}@127.0.0.1:${port}`;
  };

  async function launch(first) {
    if (couch.running()) return couch;
    const out = fs.openSync(outPath, 'a');
    const child = track(
      spawn(
        process.execPath,
        ['-r', ORPHAN_GUARD, POUCHDB_BIN, '-p', String(couch.port), '-o', '127.0.0.1',
         '-d', dataDir, '-c', configPath, '-n', '--no-color'],
        { cwd: dir, stdio: ['ignore', out, out] },
      ),
      { unref: true },
    );
    fs.closeSync(out);
    couch.proc = child;
    let ready = false;
    child.once('exit', (code, signal) => {
      if (!ready || child.expectedExit) return;
      const err = new Error(
        `pouchdb-server on port ${couch.port} died unexpectedly (${signal ?? 'exit ' + code}); ` +
          `a request made just before probably crashed it. Last lines:\n${couch.lastLines()}`,
      );
      couch.crashes.push(err);
      if (opts.restartOnCrash !== false) {
        couch._restarting = launch(false)
          .catch((e) => process.stderr.write(`harness: restarting pouchdb-server failed: ${e.message}\n`))
          .finally(() => (couch._restarting = null));
      }
      if (opts.onCrash) opts.onCrash(err);
      else throw err; // uncaught: node --test fails the running test with it
    });
    const outStart = fs.statSync(outPath).size;
    const deadline = Date.now() + (opts.startTimeout ?? 30000);
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null)
        throw new Error(`pouchdb-server exited (${child.signalCode ?? child.exitCode}) while starting:\n${couch.lastLines()}`);
      const out = fs.readFileSync(outPath, 'utf8').slice(outStart);
      if (/already in use/.test(out)) {
        child.expectedExit = true;
        await stopChild(child);
        if (first && !opts.port) {
          setPort(await freePort());
          return launch(true);
        }
        throw new Error(`pouchdb-server: port ${couch.port} is already in use`);
      }
      try {
        const res = await fetch(`${couch.url}/_session`, {
          headers: { Accept: 'application/json', Authorization: basic(admin.name, admin.password) },
          signal: AbortSignal.timeout(2000),
        });
        const body = await res.json();
        if (res.status === 200 && body.userCtx?.roles?.includes('_admin')) break;
      } catch {
        /* not up yet */
      }
      if (Date.now() > deadline) {
        child.expectedExit = true;
        await stopChild(child);
        throw new Error(`pouchdb-server did not come up on ${couch.url}:\n${couch.lastLines()}`);
      }
      await sleep(100);
    }
    ready = true;
    return couch;
  }

  setPort(opts.port ?? (await freePort()));
  await launch(true);
  return couch;
}

function basic(user, password) {
  return 'Basic ' + Buffer.from(`${user}:${password ?? ''}`).toString('base64');
}

/**
 * fetch against couch.url (never with credentials in the URL). body: an object
 * is sent as JSON, a string or Buffer as is; Content-Type and Accept are JSON
 * unless given in headers. user: Basic auth ('admin' uses the admin password
 * unless password is given). Resolves { status, body (parsed JSON or text),
 * headers }.
 */
export async function couchRequest(couch, method, p, { body, user, password, headers = {} } = {}) {
  if (couch._restarting) await couch._restarting;
  const h = { Accept: 'application/json', ...headers };
  let payload;
  if (body !== undefined) {
    payload = typeof body === 'string' || body instanceof Uint8Array ? body : JSON.stringify(body);
    if (!Object.keys(h).some((k) => k.toLowerCase() === 'content-type')) h['Content-Type'] = 'application/json';
  }
  if (user) {
    const pw = password ?? (user === couch.admin.name ? couch.admin.password : undefined);
    h.Authorization = basic(user, pw);
  }
  const res = await fetch(couch.url + (p.startsWith('/') ? p : '/' + p), { method, headers: h, body: payload });
  const text = await res.text();
  let parsed = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  return { status: res.status, body: parsed, headers: res.headers };
}

// ---------------------------------------------------------------- config

function isPlainObject(v) {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** Deep merge: objects merge, anything else (arrays too) replaces; a key
 * given as undefined is removed. */
export function merge(base, over) {
  const out = { ...base };
  for (const [k, v] of Object.entries(over)) {
    if (v === undefined) delete out[k];
    else if (isPlainObject(v) && isPlainObject(out[k])) out[k] = merge(out[k], v);
    else out[k] = v;
  }
  return out;
}

function yamlScalar(v) {
  if (v === null) return 'null';
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return JSON.stringify(String(v)); // a JSON string is a valid YAML double-quoted scalar
}

/** YAML text for an object of scalars, arrays and objects (block style). */
export function toYaml(obj, indent = '') {
  let out = '';
  for (const [k, v] of Object.entries(obj)) {
    if (v === undefined) continue;
    if (Array.isArray(v)) {
      if (!v.length) out += `${indent}${k}: []\n`;
      else {
        out += `${indent}${k}:\n`;
        for (const item of v) {
          if (isPlainObject(item)) {
            const body = toYaml(item, indent + '    ');
            out += `${indent}  - ${body.slice(indent.length + 4)}`;
          } else if (Array.isArray(item)) out += `${indent}  - ${JSON.stringify(item)}\n`;
          else out += `${indent}  - ${yamlScalar(item)}\n`;
        }
      }
    } else if (isPlainObject(v)) {
      out += Object.keys(v).length ? `${indent}${k}:\n${toYaml(v, indent + '  ')}` : `${indent}${k}: {}\n`;
    } else out += `${indent}${k}: ${yamlScalar(v)}\n`;
  }
  return out;
}

/**
 * Writes config.yaml into a fresh temp dir for an imesd talking to couch
 * (may be null: no database section). overrides is merged over the defaults
 * (see merge). Returns { path, dir, port, rtpPort, logPath, mediaDir, config, couch }.
 */
export async function writeConfig(couch, overrides = {}) {
  const dir = mkTmp('imesd');
  const mediaDir = path.join(dir, 'media');
  fs.mkdirSync(mediaDir);
  const port = await freePort();
  const rtpPort = await freeRtpPort();
  const base = {
    media: [mediaDir],
    database: couch ? { url: couch.adminUrl, name: 'imes' } : { name: 'imes' },
    backend: {
      bind_host: '127.0.0.1',
      bind_port: port,
      rtp_port: rtpPort,
      public: `http://127.0.0.1:${port}`,
    },
    log: { level: 'debug', file: path.join(dir, 'imesd.log') },
  };
  const config = merge(base, overrides);
  const ob = overrides.backend ?? {};
  if (config.backend && 'bind_port' in ob && !('public' in ob))
    config.backend.public = `http://127.0.0.1:${config.backend.bind_port}`;
  const file = path.join(dir, 'config.yaml');
  fs.writeFileSync(file, `# written by tests/lib/harness.mjs\n${toYaml(config)}`);
  return {
    path: file,
    dir,
    port: config.backend?.bind_port,
    rtpPort: config.backend?.rtp_port,
    logPath: config.log?.file || path.join(dir, 'imesd.log'),
    mediaDir,
    config,
    couch,
  };
}

// ---------------------------------------------------------------- programs

function requireBin(name) {
  const bin = binPath(name);
  if (!fs.existsSync(bin)) throw new Error(`${bin} does not exist: build first (IMES_BUILD_DIR=${BUILD_DIR})`);
  return bin;
}

/**
 * Runs `imes -c cfg.path ...args` with input (string or Buffer) on stdin.
 * Resolves { code, stdout, stderr } whatever the exit status (code is
 * 128 + signal number when killed); rejects only if it cannot be started or
 * outlives timeout (ms, default 60000).
 */
export async function imes(cfg, args, { input, env, timeout = 60000 } = {}) {
  hookExit();
  const bin = requireBin('imes');
  const child = track(
    spawn(bin, ['-c', cfg.path, ...args], {
      cwd: cfg.dir,
      env: { ...process.env, ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    }),
  );
  const out = [];
  const err = [];
  child.stdout.on('data', (d) => out.push(d));
  child.stderr.on('data', (d) => err.push(d));
  child.stdin.on('error', () => {}); // it may exit without reading its input
  child.stdin.end(input ?? '');
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(
        new Error(`imes ${args.join(' ')} did not finish in ${timeout} ms\nstdout: ${Buffer.concat(out)}\nstderr: ${Buffer.concat(err)}`),
      );
    }, timeout);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({
        code: statusOf(code, signal),
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      });
    });
  });
}

/**
 * Starts `imesd -c cfg.path` and waits until GET /healthz answers (any
 * status). opts: env, args (extra arguments), timeout (ms, default 30000),
 * expectExit (do not report it exiting on its own as a failure).
 * Returns { proc, pid, url, stop(), kill(), log(), exited }: stop() sends
 * SIGTERM and resolves the exit status (SIGKILL after 20 s); exited resolves
 * the exit status whenever it exits.
 */
export async function startImesd(cfg, { env, args = [], timeout = 30000, expectExit = false } = {}) {
  hookExit();
  const bin = requireBin('imesd');
  const host = cfg.config?.backend?.bind_host || '127.0.0.1';
  const url = `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${cfg.port}`;
  const stderrPath = path.join(cfg.dir, 'imesd.stderr');
  const out = fs.openSync(stderrPath, 'a');
  const proc = track(
    spawn(bin, ['-c', cfg.path, ...args], {
      cwd: cfg.dir,
      env: { ...process.env, ...env },
      stdio: ['ignore', out, out],
    }),
    { unref: true },
  );
  fs.closeSync(out);
  let expected = expectExit;
  let ready = false;
  const log = () => {
    let text = '';
    try {
      text = fs.readFileSync(cfg.logPath, 'utf8');
    } catch {
      /* no log file (yet) */
    }
    let err = '';
    try {
      err = fs.readFileSync(stderrPath, 'utf8');
    } catch {
      /* nothing */
    }
    return `${text}\n--- imesd stderr/stdout ---\n${err}`;
  };
  const exited = exitThenable(proc);
  proc.once('exit', (code, signal) => {
    if (!ready || expected) return;
    const lines = log().split('\n').slice(-60).join('\n');
    throw new Error(`imesd (${url}) exited unexpectedly (${signal ?? 'exit ' + code}). Last lines:\n${lines}`);
  });
  const startErr = await new Promise((resolve) => {
    proc.once('error', resolve);
    proc.once('spawn', () => resolve(null));
  });
  if (startErr) throw startErr;

  const deadline = Date.now() + timeout;
  for (;;) {
    if (proc.exitCode !== null || proc.signalCode !== null)
      throw new Error(
        `imesd exited (${proc.signalCode ?? proc.exitCode}) before answering ${url}/healthz:\n${log()}`,
      );
    try {
      await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(2000) }).then((r) => r.arrayBuffer());
      break;
    } catch {
      /* not listening yet */
    }
    if (Date.now() > deadline) {
      expected = true;
      proc.kill('SIGKILL');
      throw new Error(`imesd did not answer ${url}/healthz within ${timeout} ms:\n${log()}`);
    }
    await sleep(100);
  }
  ready = true;
  return {
    proc,
    pid: proc.pid,
    url,
    log,
    exited,
    stop: () => {
      expected = true;
      return stopChild(proc, { graceMs: 20000 });
    },
    kill: () => {
      expected = true;
      proc.kill('SIGKILL');
      return exited;
    },
  };
}

/** Polls fn (may be async) until it returns something truthy, and returns
 * that; throws "timed out waiting for <what>" (with fn's last error). */
export async function waitFor(fn, { timeout = 10000, interval = 100, what = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  let lastErr;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      lastErr = e;
    }
    if (Date.now() > deadline) {
      const err = new Error(`timed out waiting for ${what}${lastErr ? ` (last error: ${lastErr.message})` : ''}`);
      if (lastErr) err.cause = lastErr;
      throw err;
    }
    await sleep(interval);
  }
}

/**
 * Starts any other long-running program (nginx, ffmpeg, a client) with the
 * same guarantees: killed when the test process exits, output (stdout and
 * stderr) in a file. opts: cwd, env, name (for messages), outPath.
 * Returns { proc, pid, outPath, log(), stop() (SIGTERM, then SIGKILL after
 * graceMs; resolves the exit status), exited }.
 */
export function startProcess(cmd, args, { cwd, env, name = path.basename(cmd), outPath, graceMs = 10000 } = {}) {
  hookExit();
  if (cmd.includes('/')) fs.accessSync(cmd, fs.constants.X_OK); // a clear error, not an 'error' event
  const file = outPath ?? path.join(mkTmp(name.replace(/[^A-Za-z0-9_.-]/g, '_')), 'output.txt');
  const out = fs.openSync(file, 'a');
  const proc = track(
    spawn(cmd, args, { cwd, env: { ...process.env, ...env }, stdio: ['ignore', out, out] }),
    { unref: true },
  );
  fs.closeSync(out);
  proc.on('error', (e) => fs.appendFileSync(file, `harness: ${name}: ${e.message}\n`));
  return {
    proc,
    pid: proc.pid,
    outPath: file,
    log: () => tailFile(file, 200),
    stop: () => stopChild(proc, { graceMs }),
    exited: exitThenable(proc),
  };
}
