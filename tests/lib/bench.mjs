// Shared by the benchmarks in tests/bench/ (fanout, transcode, reaction):
// figures from /proc, a C helper compiled for the run, a tone file, an imesd
// with one channel playing to a device, and the table every benchmark
// prints. Processes and temp dirs go through tests/lib/harness.mjs, so they
// are stopped and removed when the benchmark exits, however it exits.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import {
  ROOT, BUILD_DIR, startCouch, writeConfig, imes, startImesd, waitFor,
} from './harness.mjs';

export const say = (s) => process.stderr.write(`bench: ${s}\n`);
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function quantile(xs, q) {
  const s = [...xs].sort((a, b) => a - b);
  if (!s.length) return NaN;
  const i = (s.length - 1) * q;
  const lo = Math.floor(i), hi = Math.ceil(i);
  return s[lo] + (s[hi] - s[lo]) * (i - lo);
}
export const median = (xs) => quantile(xs, 0.5);

// ---------------------------------------------------------------- /proc

const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout) || 100;

/** CPU seconds a running process has used (all threads): { user, sys }. */
export function cpuTimes(pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may hold spaces) in parentheses.
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { user: Number(f[11]) / CLK_TCK, sys: Number(f[12]) / CLK_TCK }; // utime, stime (fields 14, 15)
}

/** CPU seconds (user + system, all threads) a running process has used. */
export function cpuSeconds(pid) {
  const t = cpuTimes(pid);
  return t.user + t.sys;
}

/** Resident memory of a running process in KiB (VmRSS). */
export function rssKiB(pid) {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

/** CPU used by each pid over `seconds` of wall time, as fractions of one
 * core, measured over the same interval: { [pid]: { cpu, user, sys } }. */
/** VmRSS of pid in KiB, read every `every` s for `seconds` s. */
export async function rssSamples(pid, seconds, every = 1) {
  const out = [];
  for (let t = 0; t < seconds; t += every) {
    out.push(rssKiB(pid));
    await sleep(every * 1000);
  }
  return out;
}

export async function cpuOver(pids, seconds) {
  const t0 = performance.now();
  const c0 = pids.map(cpuTimes);
  await sleep(seconds * 1000);
  const c1 = pids.map(cpuTimes);
  const wall = (performance.now() - t0) / 1000;
  return Object.fromEntries(pids.map((p, i) => {
    const user = (c1[i].user - c0[i].user) / wall, sys = (c1[i].sys - c0[i].sys) / wall;
    return [p, { cpu: user + sys, user, sys }];
  }));
}

/** The other processes' share of the machine while we measure: the load
 * average and how busy all cores were over `seconds` (from /proc/stat). */
export function machineBusy() {
  const read = () => {
    const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const idle = f[3] + f[4];
    return { idle, total: f.reduce((a, b) => a + b, 0) };
  };
  const a = read();
  return {
    /** Cores busy (0 .. ncores) since this call. */
    coresBusy: () => {
      const b = read();
      return ((1 - (b.idle - a.idle) / (b.total - a.total)) * os.cpus().length);
    },
  };
}

// ---------------------------------------------------------------- the run

export function pouchdbVersion() {
  const p = path.join(ROOT, 'node_modules', 'pouchdb-server', 'package.json');
  return JSON.parse(fs.readFileSync(p, 'utf8')).version;
}

export function machineLine() {
  const cpus = os.cpus();
  return `${cpus.length} x ${cpus[0]?.model ?? '?'}, ${os.platform()} ${os.release()}, load average ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`;
}

export function buildName() {
  return path.relative(ROOT, BUILD_DIR) || '.';
}

/** Prints rows (arrays of strings, the first one the heading) as a table. */
export function printTable(rows) {
  const width = rows[0].map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  const line = (r) => r.map((cell, c) => (cell ?? '').padEnd(width[c])).join('  ').trimEnd();
  console.log(line(rows[0]));
  console.log(width.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows.slice(1)) console.log(line(r));
}

export const verdict = (ok) => (ok ? 'met' : 'NOT MET');

/** Compiles one C file with cc -O2 into dir; pkgs: pkg-config names;
 * extra: more arguments (objects, libraries). Returns the program's path. */
export function compileC(dir, name, source, { pkgs = [], extra = [] } = {}) {
  const src = path.join(dir, `${name}.c`);
  const bin = path.join(dir, name);
  fs.writeFileSync(src, source);
  let flags = [];
  if (pkgs.length) {
    const pc = spawnSync('pkg-config', ['--cflags', '--libs', ...pkgs], { encoding: 'utf8' });
    if (pc.status !== 0) throw new Error(`pkg-config ${pkgs.join(' ')}: ${pc.stderr}`);
    flags = pc.stdout.trim().split(/\s+/).filter(Boolean);
  }
  const args = ['-O2', '-g', '-Wall', '-D_GNU_SOURCE', '-o', bin, src, ...extra, ...flags, '-lpthread', '-lm'];
  const r = spawnSync('cc', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`cc ${args.join(' ')}:\n${r.stderr}`);
  return bin;
}

/** A tone file made by ffmpeg: `seconds` of a sine at `freq` Hz, stereo,
 * at `rate` Hz, in the format of file's extension (flac, mp3). */
export function toneFile(file, { seconds, freq = 440, rate = 44100, extra = [] }) {
  const r = spawnSync('ffmpeg', ['-v', 'error', '-nostdin', '-y', '-f', 'lavfi', '-i',
    `sine=frequency=${freq}:sample_rate=${rate}:duration=${seconds}`, '-ac', '2',
    '-map_metadata', '-1', ...extra, file]);
  if (r.status !== 0) throw new Error(`ffmpeg (tone ${file}): ${r.stderr}`);
  return file;
}

// ---------------------------------------------------------------- imesd playing

const basic = (u, p) => 'Basic ' + Buffer.from(`${u}:${p}`).toString('base64');

async function ok(cfg, args, opts) {
  const r = await imes(cfg, args, opts);
  if (r.code !== 0) throw new Error(`imes ${args.join(' ')}: exit ${r.code}\n${r.stdout}\n${r.stderr}`);
  return r;
}

/**
 * A pouchdb-server and an imesd with channel `channel` playing `track` (a
 * file it copies into the media folder) in room `home` to device `speaker`
 * (MP3), with user alice present: her /api/events connection (Basic auth)
 * stays open until stop(). config: merged over writeConfig's defaults.
 * Returns { couch, cfg, imesd, mp3Url, opusUrl, stop() }.
 */
export async function playingChannel({ track, channel = 'lounge', config = {} }) {
  const couch = await startCouch({ logLevel: 'warn' });
  const cfg = await writeConfig(couch, { log: { level: 'info' }, ...config });
  await ok(cfg, ['init']);
  const dest = path.join(cfg.mediaDir, path.basename(track));
  fs.copyFileSync(track, dest);
  await ok(cfg, ['scan', '--quiet'], { timeout: 120000 });
  const password = 'bench secret';
  await ok(cfg, ['user', 'add', 'alice'], { input: `${password}\n` });
  await ok(cfg, ['channel', 'add', channel]);
  await ok(cfg, ['aggregate', 'add', 'home', '--channel', channel]);
  await ok(cfg, ['aggregate', 'join', 'home', 'alice']);
  const dev = await ok(cfg, ['device', 'add', 'speaker', '--aggregate', 'home', '--codec', 'mp3']);
  const [mp3Url, opusUrl] = dev.stdout.split('\n').filter((l) => /^https?:\/\//.test(l));
  await ok(cfg, ['enqueue', channel, dest]);
  const imesd = await startImesd(cfg);
  const events = http.get(`${imesd.url}/api/events`, { headers: { Authorization: basic('alice', password) } });
  events.on('error', () => {});
  const status = await new Promise((resolve, reject) => {
    events.once('response', (res) => {
      res.on('data', () => {});
      resolve(res.statusCode);
    });
    events.once('error', reject);
  });
  if (status !== 200) throw new Error(`/api/events answered ${status}`);
  // The player knows the device once a stream attaches.
  await waitFor(() => new Promise((resolve) => {
    const req = http.get(mp3Url, (res) => {
      resolve(res.statusCode === 200);
      req.destroy();
    });
    req.on('error', () => resolve(false));
  }), { timeout: 20000, what: `the stream ${mp3Url}` });
  return {
    couch, cfg, imesd, mp3Url, opusUrl,
    stop: async () => {
      events.destroy();
      await imesd.stop();
      await couch.stop();
    },
  };
}
