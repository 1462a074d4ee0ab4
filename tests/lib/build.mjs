// What kind of build the tests run against, for the few timing assertions
// that only hold at full speed: AddressSanitizer slows audio code (Opus) by
// two to three times, so real-time figures are checked loosely there.
import fs from 'node:fs';
import path from 'node:path';
import { BUILD_DIR } from './harness.mjs';

let cached = null;

/** Whether BUILD_DIR was configured with IMES_SANITIZE (or IMES_FUZZ). */
export function sanitized() {
  if (cached !== null) return cached;
  try {
    const cache = fs.readFileSync(path.join(BUILD_DIR, 'CMakeCache.txt'), 'utf8');
    cached = /^IMES_(SANITIZE|FUZZ):BOOL=ON$/m.test(cache);
  } catch {
    cached = false;
  }
  return cached;
}
