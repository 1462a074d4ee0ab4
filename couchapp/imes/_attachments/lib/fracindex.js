/*
 * Fractional indexing for playlist order: the twin of backend/state/fracindex.c
 * (read its header for the key format), and like it a port of rocicorp's
 * fractional-indexing. Both must give the same keys for the same inputs:
 * tests/integration/fracindex.test.mjs checks this file against the vectors
 * the C unit test writes (tests/unit/fracindex_vectors.json).
 *
 * Plain ES5, no dependencies. In a page it defines window.fracindex; under
 * CommonJS it is module.exports. Keys compare with < on strings; never sort
 * them with CouchDB view collation.
 *
 *   fracindex.between(a, b)             a key between a and b (null: the start / end)
 *   fracindex.betweenJitter(a, b)       the same plus random digits: two people
 *                                       inserting at one spot get different keys
 *   fracindex.betweenSuffix(a, b, s)    the same with the digits given
 *   fracindex.nBetween(a, b, n)         n keys in order (appending an album)
 *   fracindex.nBetweenJitter(a, b, n)   n keys that stay together
 *   fracindex.nBetweenSuffix(a, b, n, s)
 *   fracindex.valid(key)                whether key is a valid key
 * Errors throw an Error whose code is 'EINVAL' (a bad key, a >= b) or 'ERANGE'
 * (no room left).
 */
(function (root) {
  'use strict';

  var DIGITS = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
  var BASE = 62;
  var MAX = 1024; // FRACINDEX_MAX
  var JITTER_LEN = 4; // FRACINDEX_JITTER_LEN
  var SUFFIX_MAX = 8; // FRACINDEX_SUFFIX_MAX
  var N_MAX = 100000; // FRACINDEX_N_MAX
  var SMALLEST_INT = 'A' + new Array(27).join('0');

  function error(code, message) {
    var e = new Error(message);
    e.code = code;
    return e;
  }

  function digit(c) {
    return c === undefined || c === '' ? -1 : DIGITS.indexOf(c);
  }

  function intLen(head) {
    if (head >= 'a' && head <= 'z') {
      return head.charCodeAt(0) - 97 + 2;
    }
    if (head >= 'A' && head <= 'Z') {
      return 90 - head.charCodeAt(0) + 2;
    }
    return 0;
  }

  function valid(key) {
    if (typeof key !== 'string' || key.length === 0 || key.length > MAX) {
      return false;
    }
    var il = intLen(key.charAt(0));
    if (il === 0 || il > key.length) {
      return false;
    }
    for (var i = 1; i < key.length; i++) {
      if (digit(key.charAt(i)) < 0) {
        return false;
      }
    }
    if (key.length > il && key.charAt(key.length - 1) === '0') {
      return false;
    }
    return key !== SMALLEST_INT;
  }

  // A fraction strictly between fractions a and b (b null: 1).
  function midpoint(a, b) {
    var out = '';
    for (;;) {
      if (b !== null) {
        var n = 0;
        while ((n < a.length ? a.charAt(n) : '0') === b.charAt(n)) {
          n++;
        }
        out += b.substring(0, n);
        a = a.substring(n);
        b = b.substring(n);
      }
      var da = a.length ? digit(a.charAt(0)) : 0;
      var db = b !== null ? digit(b.charAt(0)) : BASE;
      if (db - da > 1) {
        return out + DIGITS.charAt(Math.floor((da + db + 1) / 2));
      }
      if (b !== null && b.length > 1) {
        return out + b.charAt(0);
      }
      out += DIGITS.charAt(da);
      a = a.substring(1);
      b = null;
    }
  }

  function incrementInt(x) {
    var head = x.charAt(0);
    var d = x.substring(1).split('');
    var carry = true;
    for (var i = d.length - 1; carry && i >= 0; i--) {
      var v = digit(d[i]) + 1;
      if (v === BASE) {
        d[i] = '0';
      } else {
        d[i] = DIGITS.charAt(v);
        carry = false;
      }
    }
    if (carry) {
      if (head === 'Z') {
        return 'a0';
      }
      if (head === 'z') {
        return null;
      }
      head = String.fromCharCode(head.charCodeAt(0) + 1);
      if (head > 'a') {
        d.push('0');
      } else {
        d.pop();
      }
    }
    return head + d.join('');
  }

  function decrementInt(x) {
    var head = x.charAt(0);
    var d = x.substring(1).split('');
    var borrow = true;
    for (var i = d.length - 1; borrow && i >= 0; i--) {
      var v = digit(d[i]) - 1;
      if (v < 0) {
        d[i] = 'z';
      } else {
        d[i] = DIGITS.charAt(v);
        borrow = false;
      }
    }
    if (borrow) {
      if (head === 'a') {
        return 'Zz';
      }
      if (head === 'A') {
        return null;
      }
      head = String.fromCharCode(head.charCodeAt(0) - 1);
      if (head < 'Z') {
        d.push('z');
      } else {
        d.pop();
      }
    }
    return head + d.join('');
  }

  function nullish(v) {
    return v === null || v === undefined;
  }

  function checkLength(k) {
    if (k.length > MAX) {
      throw error('ERANGE', 'fracindex: the key would be longer than ' + MAX + ' characters');
    }
    return k;
  }

  function between(a, b) {
    a = nullish(a) ? null : a;
    b = nullish(b) ? null : b;
    if ((a !== null && !valid(a)) || (b !== null && !valid(b))) {
      throw error('EINVAL', 'fracindex: invalid key ' + JSON.stringify(a !== null && !valid(a) ? a : b));
    }
    if (a !== null && b !== null && a >= b) {
      throw error('EINVAL', 'fracindex: ' + a + ' >= ' + b);
    }
    var i;
    if (a === null && b === null) {
      return 'a0';
    }
    if (a === null) {
      var ib = b.substring(0, intLen(b.charAt(0)));
      var fb = b.substring(ib.length);
      if (ib === SMALLEST_INT) {
        return checkLength(ib + midpoint('', fb));
      }
      if (fb.length) {
        return ib;
      }
      i = decrementInt(ib);
      if (i === null) {
        throw error('ERANGE', 'fracindex: no key before ' + b);
      }
      return i;
    }
    var ia = a.substring(0, intLen(a.charAt(0)));
    var fa = a.substring(ia.length);
    if (b === null) {
      i = incrementInt(ia);
      return i === null ? checkLength(ia + midpoint(fa, null)) : i;
    }
    var ib2 = b.substring(0, intLen(b.charAt(0)));
    if (ia === ib2) {
      return checkLength(ia + midpoint(fa, b.substring(ib2.length)));
    }
    i = incrementInt(ia);
    if (i === null) {
      throw error('ERANGE', 'fracindex: no key after ' + a);
    }
    if (i < b) {
      return i;
    }
    return checkLength(ia + midpoint(fa, null));
  }

  function suffixOk(s) {
    if (typeof s !== 'string' || s.length === 0 || s.length > SUFFIX_MAX ||
        s.charAt(s.length - 1) === '0') {
      return false;
    }
    for (var i = 0; i < s.length; i++) {
      if (digit(s.charAt(i)) < 0) {
        return false;
      }
    }
    return true;
  }

  function betweenSuffix(a, b, suffix) {
    if (!suffixOk(suffix)) {
      throw error('EINVAL', 'fracindex: invalid suffix ' + JSON.stringify(suffix));
    }
    b = nullish(b) ? null : b;
    var k = between(a, b);
    for (;;) {
      var c = checkLength(k + suffix);
      if (b === null || (c < b && b.substring(0, c.length) !== c)) {
        return c;
      }
      k = between(k, b); // k is a prefix of b: move it towards b
    }
  }

  function randomSuffix() {
    var bytes = [];
    var i;
    var c = root && (root.crypto || root.msCrypto);
    if (c && typeof c.getRandomValues === 'function' && typeof Uint8Array !== 'undefined') {
      var arr = new Uint8Array(JITTER_LEN);
      c.getRandomValues(arr);
      for (i = 0; i < JITTER_LEN; i++) {
        bytes.push(arr[i]);
      }
    } else {
      for (i = 0; i < JITTER_LEN; i++) {
        bytes.push(Math.floor(Math.random() * 256));
      }
    }
    var s = '';
    for (i = 0; i + 1 < JITTER_LEN; i++) {
      s += DIGITS.charAt(bytes[i] % BASE);
    }
    return s + DIGITS.charAt(1 + bytes[JITTER_LEN - 1] % (BASE - 1));
  }

  function betweenJitter(a, b) {
    return betweenSuffix(a, b, randomSuffix());
  }

  function nBetween(a, b, n) {
    a = nullish(a) ? null : a;
    b = nullish(b) ? null : b;
    if (n > N_MAX) {
      throw error('EINVAL', 'fracindex: more than ' + N_MAX + ' keys');
    }
    var out = [];
    var c;
    var i;
    if (n <= 0) {
      return out;
    }
    if (n === 1) {
      return [between(a, b)];
    }
    if (b === null) {
      c = a;
      for (i = 0; i < n; i++) {
        c = between(c, null);
        out.push(c);
      }
      return out;
    }
    if (a === null) {
      c = b;
      for (i = 0; i < n; i++) {
        c = between(null, c);
        out.push(c);
      }
      return out.reverse();
    }
    var mid = Math.floor(n / 2);
    c = between(a, b);
    return nBetween(a, c, mid).concat([c], nBetween(c, b, n - mid - 1));
  }

  function nBetweenSuffix(a, b, n, suffix) {
    if (n > N_MAX) {
      throw error('EINVAL', 'fracindex: more than ' + N_MAX + ' keys');
    }
    if (!suffixOk(suffix)) {
      throw error('EINVAL', 'fracindex: invalid suffix ' + JSON.stringify(suffix));
    }
    if (n <= 0) {
      return [];
    }
    var j = betweenSuffix(a, b, suffix);
    var m = n - 1;
    var span = 1;
    var w = 0;
    while (span < m + 1) {
      span *= BASE;
      w++;
    }
    if (j.length + w > MAX) {
      throw error('ERANGE', 'fracindex: the keys would be longer than ' + MAX + ' characters');
    }
    var out = [j];
    for (var i = 1; i < n; i++) {
      var v = Math.floor(i * span / (m + 1));
      var f = '';
      for (var p = 0; p < w; p++) {
        f = DIGITS.charAt(v % BASE) + f;
        v = Math.floor(v / BASE);
      }
      out.push(j + f.replace(/0+$/, ''));
    }
    return out;
  }

  function nBetweenJitter(a, b, n) {
    return nBetweenSuffix(a, b, n, randomSuffix());
  }

  var api = {
    DIGITS: DIGITS,
    MAX: MAX,
    JITTER_LEN: JITTER_LEN,
    valid: valid,
    between: between,
    betweenSuffix: betweenSuffix,
    betweenJitter: betweenJitter,
    nBetween: nBetween,
    nBetweenSuffix: nBetweenSuffix,
    nBetweenJitter: nBetweenJitter
  };
  if (typeof module === 'object' && module && module.exports) {
    module.exports = api;
  } else {
    root.fracindex = api;
  }
})(typeof self !== 'undefined' ? self : this);
