// The web app's fractional index (couchapp/imes/_attachments/lib/fracindex.js)
// gives exactly the keys of the C one (backend/state/fracindex.c): every vector
// of tests/unit/fracindex_vectors.json, which tests/unit/test_fracindex.c
// writes and checks against the C code. Also: the file is a plain script that
// runs without modules (loaded as a page would, into a fresh global), and the
// jittered functions keep order and tell concurrent writers apart.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import vm from 'node:vm';
import { ROOT } from '../lib/harness.mjs';

const SRC = path.join(ROOT, 'couchapp', 'imes', '_attachments', 'lib', 'fracindex.js');
const VECTORS = JSON.parse(fs.readFileSync(path.join(ROOT, 'tests', 'unit', 'fracindex_vectors.json'), 'utf8'));

// As a <script> would: a global object with nothing but what a page has.
function load(globals = {}) {
  const sandbox = { ...globals };
  vm.createContext(sandbox);
  vm.runInContext(fs.readFileSync(SRC, 'utf8'), sandbox, { filename: SRC });
  assert.equal(typeof sandbox.fracindex, 'object', 'fracindex.js defines a global fracindex');
  return sandbox.fracindex;
}

const fi = load({ crypto: globalThis.crypto });

// The result of fn, or null when it throws (the vectors' "error"). Arrays are
// copied out of the script's own global (its Array is not this one's).
function attempt(fn) {
  try {
    const v = fn();
    return Array.isArray(v) ? [...v] : v;
  } catch (e) {
    assert.ok(['EINVAL', 'ERANGE'].includes(e.code), `unexpected error: ${e.stack}`);
    return null;
  }
}

test('the vector file has every kind of vector', () => {
  for (const k of ['between', 'between_suffix', 'n_between', 'n_between_suffix', 'valid'])
    assert.ok(VECTORS[k].length > 10, `${k}: ${VECTORS[k].length} vectors`);
});

test('between: the same key as C', () => {
  let errors = 0;
  for (const [a, b, want] of VECTORS.between) {
    assert.equal(attempt(() => fi.between(a, b)), want, `between(${a}, ${b})`);
    if (want === null) errors++;
  }
  assert.ok(errors > 10, 'the vectors include refusals');
});

test('betweenSuffix: the same key as C', () => {
  for (const [a, b, s, want] of VECTORS.between_suffix)
    assert.equal(attempt(() => fi.betweenSuffix(a, b, s)), want, `betweenSuffix(${a}, ${b}, ${s})`);
});

test('nBetween and nBetweenSuffix: the same keys as C', () => {
  for (const [a, b, n, want] of VECTORS.n_between)
    assert.deepEqual(attempt(() => fi.nBetween(a, b, n)), want, `nBetween(${a}, ${b}, ${n})`);
  for (const [a, b, n, s, want] of VECTORS.n_between_suffix)
    assert.deepEqual(attempt(() => fi.nBetweenSuffix(a, b, n, s)), want,
      `nBetweenSuffix(${a}, ${b}, ${n}, ${s})`);
});

test('valid: the same answer as C', () => {
  for (const [key, want] of VECTORS.valid) assert.equal(fi.valid(key), want, key);
  assert.equal(fi.valid(null), false);
  assert.equal(fi.valid(7), false);
});

test('jitter keeps order and separates concurrent inserts', () => {
  let keys = [];
  for (let i = 0; i < 2000; i++) {
    const at = crypto.randomInt(0, keys.length + 1);
    const k = fi.betweenJitter(keys[at - 1] ?? null, keys[at] ?? null);
    keys.splice(at, 0, k);
  }
  for (let i = 1; i < keys.length; i++) assert.ok(keys[i - 1] < keys[i], `${keys[i - 1]} < ${keys[i]}`);
  const x = fi.betweenJitter('a3', 'a4');
  const y = fi.betweenJitter('a3', 'a4');
  assert.notEqual(x, y);
  const p = fi.nBetweenJitter('a3', null, 12);
  const q = fi.nBetweenJitter('a3', null, 12);
  const [lo, hi] = p[0] < q[0] ? [p, q] : [q, p];
  assert.ok(lo[11] < hi[0], 'two albums appended at once do not interleave');
});

test('works without crypto (Math.random), as in an old browser', () => {
  const old = load({});
  const k = old.betweenJitter('a0', 'a1');
  assert.ok(k > 'a0' && k < 'a1' && old.valid(k), k);
});
