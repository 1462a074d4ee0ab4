// Listening to a live stream while a test acts on it: ffmpeg reads the URL
// (a device's stream.mp3 or stream.opus, as a room's player would) and
// decodes it to 48 kHz mono float as it arrives, so a test can mark "now"
// in the decoded audio, act (pause, mute, restart...), and then find in the
// samples when the sound reacted.
//
// A mark is the number of samples received so far. After the connect
// burst, audio arrives in real time, so the sample received at wall time T
// left the server a little before T (ffmpeg's decoding and the pipe are the
// difference, tens of ms): a reaction measured from a mark is the server's
// reaction plus that small delay, never less.
import { spawn } from 'node:child_process';
import { goertzel, rms, dbfs } from './audio.mjs';

export const RATE = 48000;

/**
 * Starts decoding url. Returns { n (samples so far), samples() (a copy of
 * all so far), mark(), until(n, ms) (resolves once n samples are in),
 * stop() (resolves the samples), errors (ffmpeg's stderr), exited }.
 */
export function listen(url, { inputArgs = [] } = {}) {
  const args = ['-v', 'error', '-nostdin', ...inputArgs, '-i', url,
    '-f', 'f32le', '-ac', '1', '-ar', String(RATE), '-flush_packets', '1', '-'];
  const ff = spawn('ffmpeg', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let buf = new Float32Array(RATE * 30);
  let n = 0;
  let rest = Buffer.alloc(0);
  let errors = '';
  const waiters = [];
  const arrivals = []; // [samples so far, performance.now()] per chunk
  ff.stdout.on('data', (chunk) => {
    const data = rest.length ? Buffer.concat([rest, chunk]) : chunk;
    const whole = data.length & ~3;
    rest = Buffer.from(data.subarray(whole));
    const count = whole / 4;
    if (n + count > buf.length) {
      const bigger = new Float32Array(Math.max(buf.length * 2, n + count));
      bigger.set(buf.subarray(0, n));
      buf = bigger;
    }
    for (let i = 0; i < count; i++) buf[n + i] = data.readFloatLE(i * 4);
    n += count;
    arrivals.push([n, performance.now()]);
    for (let i = waiters.length - 1; i >= 0; i--) {
      if (n >= waiters[i].n) {
        waiters[i].resolve(n);
        waiters.splice(i, 1);
      }
    }
  });
  ff.stderr.on('data', (c) => { errors += c; });
  const exited = new Promise((resolve) => ff.once('close', (code, signal) => {
    for (const w of waiters.splice(0)) w.reject(new Error(`ffmpeg ended (${signal ?? code}) at ${n} samples: ${errors}`));
    resolve(code ?? signal);
  }));
  ff.once('error', (e) => { errors += e.message; });
  const self = {
    get n() { return n; },
    get errors() { return errors.trim(); },
    exited,
    samples: () => buf.slice(0, n),
    mark: () => n,
    /**
     * Wall time (performance.now(), ms) at which sample i left the server,
     * as well as can be told: audio arrives in real time after the burst,
     * so (arrival - n / RATE) is the same for every chunk but for delays;
     * the smallest over the second half of the chunks is the least
     * delayed. Compare listeners by it.
     */
    timeOf(i) {
      let off = Infinity;
      for (let k = arrivals.length >> 1; k < arrivals.length; k++)
        off = Math.min(off, arrivals[k][1] - (arrivals[k][0] / RATE) * 1000);
      return off + (i / RATE) * 1000;
    },
    /** Resolves when at least `want` samples are in; rejects after ms. */
    until(want, ms = 20000) {
      if (n >= want) return Promise.resolve(n);
      return new Promise((resolve, reject) => {
        const w = { n: want, resolve, reject };
        waiters.push(w);
        setTimeout(() => {
          const i = waiters.indexOf(w);
          if (i >= 0) {
            waiters.splice(i, 1);
            reject(new Error(`only ${n} of ${want} samples after ${ms} ms (${url}): ${errors}`));
          }
        }, ms);
      });
    },
    /** Waits for `seconds` more of audio from now. */
    more(seconds, ms) {
      return self.until(n + Math.round(seconds * RATE), ms ?? seconds * 1000 + 10000);
    },
    async stop() {
      if (ff.exitCode === null && ff.signalCode === null) ff.kill('SIGKILL');
      await exited;
      return buf.slice(0, n);
    },
  };
  return self;
}

// ---------------------------------------------------------------- analysis

export const SILENT_DB = -50;

/** Level of samples[start, start+len) in dBFS (RMS). */
export function levelDb(samples, start, len) {
  return dbfs(rms(samples, start, len));
}

/**
 * The first window (of windowMs, stepping by windowMs) at or after `from`
 * where pred(start, len) holds for `holdMs` in a row; its start index, or
 * -1.
 */
export function firstWhere(samples, from, pred, { windowMs = 10, holdMs = 200 } = {}) {
  const len = Math.round((RATE * windowMs) / 1000);
  const need = Math.max(1, Math.round(holdMs / windowMs));
  let run = 0;
  for (let s = from; s + len <= samples.length; s += len) {
    if (pred(s, len)) {
      if (++run >= need) return s - (need - 1) * len;
    } else run = 0;
  }
  return -1;
}

/** Index where silence (< SILENT_DB) begins after from, or -1. */
export function silenceFrom(samples, from, opts) {
  return firstWhere(samples, from, (s, l) => levelDb(samples, s, l) < SILENT_DB, opts);
}

/** Index where one of freqs is heard (above threshold) after from, or -1. */
export function toneFrom(samples, from, freqs, { threshold = 0.03, ...opts } = {}) {
  return firstWhere(samples, from,
    (s, l) => freqs.some((f) => goertzel(samples, s, l, f) > threshold),
    { windowMs: 20, holdMs: 100, ...opts });
}

/** The loudest of freqs in a window and its amplitude: { freq, amp }. */
export function loudest(samples, start, len, freqs) {
  let best = { freq: 0, amp: 0 };
  for (const f of freqs) {
    const a = goertzel(samples, start, len, f);
    if (a > best.amp) best = { freq: f, amp: a };
  }
  return best;
}

/**
 * Silent holes in samples[from, to): runs of windowMs windows below
 * SILENT_DB, as [{ at (s from `from`), seconds }].
 */
export function holes(samples, from = 0, to = samples.length, { windowMs = 20 } = {}) {
  const len = Math.round((RATE * windowMs) / 1000);
  const out = [];
  let start = -1;
  for (let s = from; s + len <= to; s += len) {
    const quiet = levelDb(samples, s, len) < SILENT_DB;
    if (quiet && start < 0) start = s;
    if (!quiet && start >= 0) {
      out.push({ at: (start - from) / RATE, seconds: (s - start) / RATE });
      start = -1;
    }
  }
  if (start >= 0) out.push({ at: (start - from) / RATE, seconds: (to - start) / RATE });
  return out;
}

export { goertzel, rms, dbfs };

/**
 * A toneTimeline (audio.mjs) as runs of the same set of tones:
 * [{ tones: '440' | '440+660' | '-', t (s), seconds }].
 */
export function segments(timeline) {
  const out = [];
  for (const w of timeline) {
    const tones = w.tones.join('+') || '-';
    const last = out[out.length - 1];
    if (last && last.tones === tones) last.n++;
    else out.push({ tones, t: w.t, n: 1, step: timeline[1] ? timeline[1].t - timeline[0].t : 0.1 });
  }
  return out.map(({ tones, t, n, step }) => ({ tones, t: Math.round(t * 100) / 100, seconds: Math.round(n * step * 100) / 100 }));
}

/** segments() as one line, for messages: "440 3.4s | 440+660 0.5s | ...". */
export const showSegments = (segs) => segs.map((s) => `${s.tones} ${s.seconds}s`).join(' | ');
