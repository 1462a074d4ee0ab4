// A stand-in for Last.fm / Libre.fm (Audioscrobbler 2.0) and ListenBrainz,
// because the tests cannot reach the real services. It checks what the real
// ones check and answers as they answer:
//
// Audioscrobbler 2.0 (under /2.0/; https://www.last.fm/api):
// - every call: a known api_key (else error 10), a known method (else 3),
//   api_sig = md5 of the parameters other than format/callback/api_sig,
//   sorted by name, name and value concatenated, the secret appended (else
//   13); format=json answers JSON, errors as {"error": N, "message"};
// - write methods (track.*) only by POST with a form body (else 3), with a
//   valid session key sk (else 9), and their required parameters (artist,
//   track; timestamp for track.scrobble; else 6);
// - auth.getToken → {"token"}; auth.getSession with a token not approved yet
//   → 14, with an unknown one → 4; once approved → {"session": {"name",
//   "key", "subscriber": 0}}. Approval: GET /api/auth/?api_key=&token= with a
//   "fakeuser" cookie (the user logged in at the service).
// ListenBrainz (under /1/; https://listenbrainz.readthedocs.io):
// - GET /1/validate-token with "Authorization: Token X": {"code": 200,
//   "message": "Token valid.", "valid": true, "user_name"}, or valid false
//   for an unknown token; no token at all 401;
// - POST /1/submit-listens: 401 {"code", "error"} without a known token; 400
//   for a payload that is not what the API takes (listen_type single /
//   playing_now / import; one listen for single and playing_now; listened_at
//   an integer except for playing_now; artist_name and track_name strings).
//
// What was accepted is recorded: fake.calls (every request), fake.nowPlaying,
// fake.scrobbles, fake.listens (per service and user).
import crypto from 'node:crypto';
import http from 'node:http';

const md5 = (s) => crypto.createHash('md5').update(s, 'utf8').digest('hex');

/** The signature of an Audioscrobbler call, as the spec says. */
export function apiSig(params, secret) {
  const names = Object.keys(params).filter((k) => !['format', 'callback', 'api_sig'].includes(k)).sort();
  return md5(names.map((k) => k + params[k]).join('') + secret);
}

const READ_METHODS = new Set(['auth.getToken', 'auth.getSession']);
const WRITE_METHODS = new Set(['track.updateNowPlaying', 'track.scrobble']);

export class FakeScrobbler {
  constructor({ apps = { testkey0123456789abcdef012345678: 'testsecret' }, lbTokens = {} } = {}) {
    this.apps = apps; // api_key -> secret
    this.lbTokens = { ...lbTokens }; // ListenBrainz token -> user name
    this.tokens = new Map(); // token -> { apiKey, approvedBy }
    this.sessions = new Map(); // sk -> user name
    this.calls = [];
    this.nowPlaying = [];
    this.scrobbles = [];
    this.listens = [];
    this.server = null;
    this.port = 0;
    this.hang = false;
  }

  get url() { return `http://127.0.0.1:${this.port}`; }

  async start(port = 0) {
    this.server = http.createServer((req, res) => this.handle(req, res));
    await new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, '127.0.0.1', resolve);
    });
    this.port = this.server.address().port;
    return this;
  }

  async stop() {
    if (!this.server) return;
    this.server.closeAllConnections?.();
    await new Promise((r) => this.server.close(r));
    this.server = null;
  }

  handle(req, res) {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      const url = new URL(req.url, 'http://fake');
      const call = { method: req.method, path: url.pathname, headers: req.headers, body };
      this.calls.push(call);
      if (this.hang) return; // a service that accepts and never answers
      try {
        if (url.pathname === '/2.0/' || url.pathname === '/2.0') this.audioscrobbler(req, url, body, res, call);
        else if (url.pathname === '/api/auth/' || url.pathname === '/api/auth') this.approve(req, url, res);
        else if (url.pathname === '/1/validate-token') this.lbValidate(req, res);
        else if (url.pathname === '/1/submit-listens') this.lbSubmit(req, body, res);
        else this.send(res, 404, { error: 'not found' });
      } catch (e) {
        this.send(res, 500, { error: String(e) });
      }
    });
  }

  send(res, status, obj) {
    const text = JSON.stringify(obj);
    res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
    res.end(text);
  }

  asError(res, code, message, status = 400) {
    this.send(res, status, { error: code, message });
  }

  audioscrobbler(req, url, body, res, call) {
    let params;
    if (req.method === 'POST') {
      if (!/^application\/x-www-form-urlencoded/.test(req.headers['content-type'] ?? ''))
        return this.asError(res, 6, 'Invalid parameters - expected a form body');
      params = Object.fromEntries(new URLSearchParams(body));
    } else {
      params = Object.fromEntries(url.searchParams);
    }
    call.params = params;
    const secret = this.apps[params.api_key];
    if (!params.api_key || secret === undefined)
      return this.asError(res, 10, 'Invalid API key - You must be granted a valid key by last.fm', 403);
    const m = params.method;
    if (!READ_METHODS.has(m) && !WRITE_METHODS.has(m))
      return this.asError(res, 3, 'Invalid Method - No method with that name in this package');
    if (WRITE_METHODS.has(m) && req.method !== 'POST')
      return this.asError(res, 3, 'Invalid Method - This service requires POST', 405);
    if (!params.api_sig || params.api_sig !== apiSig(params, secret))
      return this.asError(res, 13, 'Invalid method signature supplied', 403);
    if (m === 'auth.getToken') {
      const token = crypto.randomBytes(16).toString('hex');
      this.tokens.set(token, { apiKey: params.api_key, approvedBy: null });
      return this.send(res, 200, { token });
    }
    if (m === 'auth.getSession') {
      const t = this.tokens.get(params.token);
      if (!params.token || !t || t.apiKey !== params.api_key)
        return this.asError(res, 4, 'Invalid authentication token supplied', 403);
      if (!t.approvedBy)
        return this.asError(res, 14, 'This token has not been authorized', 403);
      this.tokens.delete(params.token); // a token gives one session
      const key = crypto.randomBytes(16).toString('hex');
      this.sessions.set(key, t.approvedBy);
      return this.send(res, 200, { session: { name: t.approvedBy, key, subscriber: 0 } });
    }
    const user = this.sessions.get(params.sk);
    if (!params.sk || !user)
      return this.asError(res, 9, 'Invalid session key - Please re-authenticate', 403);
    // One track per call here (IMES sends one); the real API also takes artist[0]..
    if (!params.artist || !params.track)
      return this.asError(res, 6, 'Invalid parameters - Your request is missing a required parameter');
    const track = {
      user, artist: params.artist, track: params.track, album: params.album,
      duration: params.duration === undefined ? undefined : Number(params.duration),
    };
    if (m === 'track.updateNowPlaying') {
      this.nowPlaying.push(track);
      return this.send(res, 200, {
        nowplaying: {
          artist: { corrected: '0', '#text': params.artist }, track: { corrected: '0', '#text': params.track },
          album: { corrected: '0', '#text': params.album ?? '' }, ignoredMessage: { code: '0', '#text': '' },
        },
      });
    }
    if (!/^\d+$/.test(params.timestamp ?? ''))
      return this.asError(res, 6, 'Invalid parameters - Your request is missing a required parameter');
    track.timestamp = Number(params.timestamp);
    this.scrobbles.push(track);
    return this.send(res, 200, {
      scrobbles: {
        '@attr': { accepted: 1, ignored: 0 },
        scrobble: {
          artist: { corrected: '0', '#text': params.artist }, track: { corrected: '0', '#text': params.track },
          album: { corrected: '0', '#text': params.album ?? '' }, timestamp: params.timestamp,
          ignoredMessage: { code: '0', '#text': '' },
        },
      },
    });
  }

  // The approval page: the user (cookie fakeuser) allows the application.
  approve(req, url, res) {
    const user = /(?:^|;\s*)fakeuser=([^;]+)/.exec(req.headers.cookie ?? '')?.[1];
    const token = url.searchParams.get('token');
    const t = this.tokens.get(token);
    if (!this.apps[url.searchParams.get('api_key')] || !t) {
      res.writeHead(400, { 'Content-Type': 'text/html' });
      return res.end('<p>Invalid API key or token.</p>');
    }
    if (!user) {
      res.writeHead(302, { Location: '/login' });
      return res.end();
    }
    t.approvedBy = decodeURIComponent(user);
    res.writeHead(200, { 'Content-Type': 'text/html' });
    res.end('<h1>Application authorized</h1>');
  }

  lbToken(req) {
    const m = /^Token\s+(\S+)$/i.exec(req.headers.authorization ?? '');
    return m ? m[1] : null;
  }

  lbValidate(req, res) {
    const token = this.lbToken(req);
    if (!token) return this.send(res, 401, { code: 401, error: 'You need to provide an Authorization token.' });
    const user = this.lbTokens[token];
    if (!user) return this.send(res, 200, { code: 200, message: 'Token invalid.', valid: false });
    return this.send(res, 200, { code: 200, message: 'Token valid.', valid: true, user_name: user });
  }

  lbSubmit(req, body, res) {
    if (req.method !== 'POST') return this.send(res, 405, { code: 405, error: 'Method Not Allowed' });
    const token = this.lbToken(req);
    const user = token && this.lbTokens[token];
    if (!user) return this.send(res, 401, { code: 401, error: 'Invalid authorization token.' });
    const bad = (error) => this.send(res, 400, { code: 400, error });
    let j;
    try { j = JSON.parse(body); } catch { return bad('Cannot parse JSON document.'); }
    if (!j || typeof j !== 'object') return bad('Invalid JSON document submitted.');
    if (!['single', 'playing_now', 'import'].includes(j.listen_type)) return bad('JSON document does not contain a valid listen_type.');
    if (!Array.isArray(j.payload) || j.payload.length === 0) return bad('JSON document does not contain a payload.');
    if (j.listen_type !== 'import' && j.payload.length !== 1) return bad(`JSON document should contain exactly one listen for ${j.listen_type}.`);
    for (const l of j.payload) {
      const md = l?.track_metadata;
      if (!md || typeof md.artist_name !== 'string' || !md.artist_name) return bad('JSON document does not contain required artist_name in track_metadata.');
      if (typeof md.track_name !== 'string' || !md.track_name) return bad('JSON document does not contain required track_name in track_metadata.');
      if (md.additional_info !== undefined && (typeof md.additional_info !== 'object' || Array.isArray(md.additional_info))) return bad('additional_info must be an object.');
      if (j.listen_type === 'playing_now') {
        if ('listened_at' in l) return bad('JSON document must not contain listened_at while submitting playing_now.');
      } else if (!Number.isInteger(l.listened_at)) {
        return bad('JSON document must contain listened_at (an integer).');
      }
      const rec = {
        user, listen_type: j.listen_type, artist: md.artist_name, track: md.track_name, album: md.release_name,
        duration_ms: md.additional_info?.duration_ms, listened_at: l.listened_at,
      };
      if (j.listen_type === 'playing_now') this.nowPlaying.push({ ...rec, service: 'listenbrainz' });
      else this.listens.push(rec);
    }
    return this.send(res, 200, { status: 'ok' });
  }
}
