// A whole IMES for the browser tests, the screenshots and by hand: a real
// pouchdb-server and imesd (tests/lib/harness.mjs), the web app pushed by
// `imes init`, a small library of tagged tones with folder covers scanned
// by `imes scan`, users (owner: IMES admin; alice, bob: members), a channel
// "lounge" played by the room "livingroom" with the device "speaker".
//
//   node tests/browser/setup.mjs      starts it, prints the URLs, runs until Ctrl-C
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  ROOT, startCouch, writeConfig, imes, startImesd, couchRequest, waitFor,
} from '../lib/harness.mjs';
import { encodeTone } from '../lib/medialib.mjs';

export const USERS = {
  owner: { password: 'owner secret', admin: true },
  alice: { password: 'alice secret' },
  bob: { password: 'bob secret' },
};

// Albums: distinct artists, genres, dates and formats, so each search syntax
// has a different right answer. Tones are short (tests hear them change).
export const ALBUMS = [
  {
    dir: 'Sine Waves/Concert Pitch', artist: 'The Sine Waves', album: 'Concert Pitch', date: '1975',
    genre: 'Ambient', color: 'red', mbid: '0d5e3c5e-1f7a-4a43-9d6e-1c2a3b4c5d01',
    tracks: [
      { title: 'Concert A', freq: 440, format: 'flac', seconds: 8 },
      { title: 'Five Fifty', freq: 550, format: 'mp3', seconds: 8 },
      { title: 'Six Sixty', freq: 660, format: 'vorbis', seconds: 8 },
    ],
  },
  {
    dir: 'Square Roots/Low End', artist: 'Square Roots', album: 'Low End', date: '1978-05-01',
    genre: 'Drone', color: 'blue', rg: false, mbid: '0d5e3c5e-1f7a-4a43-9d6e-1c2a3b4c5d02',
    tracks: [
      { title: 'Low Hum', freq: 220, format: 'opus', seconds: 6 },
      { title: 'Three Thirty', freq: 330, format: 'flac', seconds: 6 },
    ],
  },
  {
    dir: 'Beatrice/Night Music', artist: 'Béatrice Électrique', album: 'Night Music', date: '1991',
    genre: 'Electronic', color: 'green', mbid: '0d5e3c5e-1f7a-4a43-9d6e-1c2a3b4c5d03',
    tracks: [
      { title: 'Eight Eighty', freq: 880, format: 'mp3', seconds: 6, disc: 1 },
      { title: 'Night Hum', freq: 990, format: 'mp3', seconds: 6, disc: 2 },
    ],
  },
];
const EXT = { flac: 'flac', mp3: 'mp3', vorbis: 'ogg', opus: 'opus' };

function run(cmd, args) {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d) => (err += d));
    p.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`${cmd}: ${code} ${err}`))));
  });
}

async function ok(cfg, args, opts) {
  const r = await imes(cfg, args, opts);
  if (r.code !== 0) throw new Error(`imes ${args.join(' ')}: exit ${r.code}\n${r.stdout}\n${r.stderr}`);
  return r;
}

export async function makeLibrary(mediaDir) {
  for (const a of ALBUMS) {
    const dir = path.join(mediaDir, a.dir);
    fs.mkdirSync(dir, { recursive: true });
    await run('ffmpeg', ['-nostdin', '-loglevel', 'error', '-y', '-f', 'lavfi', '-i',
      `color=c=${a.color}:size=256x256:duration=1`, '-frames:v', '1', path.join(dir, 'cover.jpg')]);
    for (const [i, t] of a.tracks.entries()) {
      const file = path.join(dir, `${String(i + 1).padStart(2, '0')} ${t.title}.${EXT[t.format]}`);
      const tags = {
        title: t.title, artists: [a.artist], album: a.album, albumartist: a.artist,
        track: i + 1, tracktotal: a.tracks.length, date: a.date, genres: [a.genre],
        disc: t.disc, mb: { albumid: a.mbid },
      };
      if (a.rg !== false) Object.assign(tags, { rg: { tg: -3.5, tp: 0.5, ag: -3.2, ap: 0.6 } });
      await encodeTone(file, { format: t.format, freq: t.freq, seconds: t.seconds, rate: 48000, tags });
    }
  }
}

/**
 * Starts everything (config: overrides of config.yaml). Returns { couch, cfg, imesd, appUrl, imesdUrl, urls
 * (speaker: {mp3, opus}), stop() }.
 */
export async function startImes({ library = true, imesdEnv, config = {} } = {}) {
  process.env.IMES_COUCHAPP = path.join(ROOT, 'couchapp');
  const couch = await startCouch();
  const cfg = await writeConfig(couch, config);
  await ok(cfg, ['init']);
  for (const [name, u] of Object.entries(USERS))
    await ok(cfg, ['user', 'add', name, ...(u.admin ? ['--admin'] : [])], { input: `${u.password}\n` });
  if (library) {
    await makeLibrary(cfg.mediaDir);
    await ok(cfg, ['scan', '--quiet'], { timeout: 120000 });
  }
  await ok(cfg, ['channel', 'add', 'lounge', '--crossfade', '0.3']);
  await ok(cfg, ['channel', 'add', 'kitchen']);
  await ok(cfg, ['aggregate', 'add', 'livingroom', '--channel', 'lounge']);
  await ok(cfg, ['aggregate', 'add', 'patio', '--channel', 'kitchen']);
  for (const u of Object.keys(USERS)) await ok(cfg, ['aggregate', 'join', 'livingroom', u]);
  const dev = await ok(cfg, ['device', 'add', 'speaker', '--aggregate', 'livingroom']);
  const lines = dev.stdout.split('\n').filter((l) => /^(https?|rtsp):\/\//.test(l));
  const imesd = await startImesd(cfg, { env: imesdEnv });
  const appUrl = `${couch.url}/imes/_design/imes/index.html`;
  await waitFor(async () => {
    const r = await couchRequest(couch, 'GET', '/imes/status:backend:imesd', { user: 'admin' });
    return r.status === 200 && r.body.public;
  }, { what: 'status:backend:imesd', timeout: 20000 });
  return {
    couch, cfg, imesd, appUrl, imesdUrl: imesd.url,
    urls: { speaker: { mp3: lines[0], opus: lines[1], rtsp: lines[2] } },
    imes: (args, opts) => ok(cfg, args, opts),
    async stop() {
      await imesd.stop();
      await couch.stop();
    },
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const env = await startImes();
  process.stdout.write(`app:   ${env.appUrl}\nimesd: ${env.imesdUrl}\ncouch: ${env.couch.adminUrl}\n` +
    `users: ${Object.entries(USERS).map(([n, u]) => `${n} / ${u.password}`).join(', ')}\n` +
    `speaker: ${env.urls.speaker.mp3}\n`);
  fs.writeFileSync('/tmp/imes-web-dev.json', JSON.stringify({ appUrl: env.appUrl, imesdUrl: env.imesdUrl, couch: env.couch.adminUrl, urls: env.urls, cfg: env.cfg.path }));
  const stop = async () => { await env.stop(); process.exit(0); };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  setInterval(() => {}, 1 << 30);
}
