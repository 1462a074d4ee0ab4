// Audio checked by content: decode what a client received with ffmpeg to
// 48 kHz mono float, then measure test tones window by window with the
// Goertzel algorithm. A test track is a known tone; what came out is
// compared with what went in.
import { spawn } from 'node:child_process';

// Decodes `input` (a URL or file; extra ffmpeg input options before -i) for
// `seconds` into a Float32Array at 48 kHz mono. Rejects if ffmpeg fails.
export function decode(input, { seconds, inputArgs = [] } = {}) {
  return new Promise((resolve, reject) => {
    const args = ['-v', 'error', '-nostdin', ...inputArgs, '-i', input];
    if (seconds) args.push('-t', String(seconds));
    args.push('-f', 'f32le', '-ac', '1', '-ar', '48000', '-');
    const ff = spawn('ffmpeg', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const chunks = [];
    let err = '';
    ff.stdout.on('data', (c) => chunks.push(c));
    ff.stderr.on('data', (c) => { err += c; });
    ff.on('error', reject);
    ff.on('close', (code) => {
      const buf = Buffer.concat(chunks);
      if (code !== 0 && buf.length === 0) return reject(new Error(`ffmpeg ${code}: ${err}`));
      const aligned = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + (buf.length & ~3)));
      resolve({ samples: aligned, errors: err.trim() });
    });
  });
}

// Power of one frequency in a window, as an amplitude (a full-scale sine
// gives about 1.0).
export function goertzel(samples, start, length, freq, rate = 48000) {
  const k = 2 * Math.cos((2 * Math.PI * freq) / rate);
  let s1 = 0, s2 = 0;
  for (let i = start; i < start + length; i++) {
    const s0 = samples[i] + k * s1 - s2;
    s2 = s1;
    s1 = s0;
  }
  const power = s1 * s1 + s2 * s2 - k * s1 * s2;
  return (2 * Math.sqrt(Math.max(power, 0))) / length;
}

export function rms(samples, start, length) {
  let sum = 0;
  for (let i = start; i < start + length; i++) sum += samples[i] * samples[i];
  return Math.sqrt(sum / Math.max(length, 1));
}

export const dbfs = (x) => (x > 0 ? 20 * Math.log10(x) : -Infinity);

// For each window of `windowMs`, which of `freqs` is present (amplitude above
// `threshold`): [{t, tones: [freq...], rms}].
export function toneTimeline(samples, freqs, { windowMs = 100, threshold = 0.02, rate = 48000 } = {}) {
  const n = Math.round((rate * windowMs) / 1000);
  const out = [];
  for (let start = 0; start + n <= samples.length; start += n) {
    const tones = freqs.filter((f) => goertzel(samples, start, n, f, rate) > threshold);
    out.push({ t: start / rate, tones, rms: rms(samples, start, n) });
  }
  return out;
}

// The order in which tones first became the only tone heard: e.g. [440, 660, 880].
export function toneOrder(timeline) {
  const order = [];
  for (const w of timeline) {
    if (w.tones.length === 1 && order[order.length - 1] !== w.tones[0]) order.push(w.tones[0]);
  }
  return order;
}
