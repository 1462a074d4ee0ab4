// WAV files as the Matriz file backend writes them (16-bit stereo PCM, a
// 44-byte header that is rewritten only every second): read to the end of
// the file, whatever the header says yet.
import fs from 'node:fs';

/** The left channel of such a file, as floats in [-1, 1). */
export function readWavLeft(file) {
  const b = fs.readFileSync(file);
  const n = Math.floor((b.length - 44) / 4);
  const x = new Float32Array(Math.max(n, 0));
  for (let i = 0; i < n; i++) x[i] = b.readInt16LE(44 + 4 * i) / 32768;
  return x;
}
