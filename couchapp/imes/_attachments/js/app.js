// The IMES web app: every action is a document write (the same documents
// `imes` writes, backend/state/docs.h); what imesd does comes back through
// its live connection (/api/events, which also makes this user present) and
// the CouchDB changes feed.
import * as couch from './couch.js';
import * as search from './search.js';

const $ = (sel, el = document) => el.querySelector(sel);
const $$ = (sel, el = document) => [...el.querySelectorAll(sel)];
const fracindex = window.fracindex;

function h(tag, attrs = {}, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k in el && typeof v !== 'string') el[k] = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const k of kids.flat()) if (k !== null && k !== undefined && k !== false) el.append(k instanceof Node ? k : String(k));
  return el;
}

const S = {
  me: null, admin: false,
  user: null, // user:<me>
  channels: new Map(), aggregates: new Map(), devices: new Map(), delegates: new Map(), users: new Map(),
  live: { channels: {}, devices: {} }, liveAt: {}, // from /api/events
  files: new Map(), // file id -> doc
  entries: new Map(), // playlist -> Map(id -> entry doc)
  view: 'search', playlist: null, selected: null,
  imesd: null, // status:backend:imesd
  es: null, stopFeed: null,
  lastNotified: null,
};

const first = (v) => (Array.isArray(v) ? v[0] : v);
const fmtTime = (s) => {
  if (!Number.isFinite(s) || s < 0) return '';
  s = Math.round(s);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
};
const nameOk = (s) => /^[A-Za-z0-9@][A-Za-z0-9._@-]{0,63}$/.test(s);
const hex = (n) => [...crypto.getRandomValues(new Uint8Array(n))].map((b) => b.toString(16).padStart(2, '0')).join('');
const nowIso = () => new Date().toISOString().replace(/\.\d+Z$/, 'Z');
const coverUrl = (file, size = 128) => {
  const p = file && Array.isArray(file.pictures) && file.pictures[0];
  return p ? `${couch.DB}/${encodeURIComponent(p)}/${size}.jpg` : 'img/nocover.svg';
};
const rgOk = (f) => {
  const rg = f.replaygain || {};
  return Number.isFinite(rg.track_gain) || Number.isFinite(rg.album_gain);
};

function toast(msg, ms = 3500) {
  const t = $('#toast');
  t.textContent = msg;
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => (t.hidden = true), ms);
}
function fail(e) {
  toast(e.status === 403 || e.status === 401 ? `Not allowed: ${e.reason || e.message}` : `Failed: ${e.reason || e.message}`, 6000);
}

// ------------------------------------------------------------------ login

async function start() {
  let s;
  try {
    s = await couch.session();
  } catch {
    s = { userCtx: {} };
  }
  if (!s.userCtx?.name) return showLogin();
  const roles = s.userCtx.roles || [];
  if (!roles.some((r) => ['imes_user', 'imes_admin', '_admin'].includes(r))) {
    showLogin(`${s.userCtx.name} is not an IMES member.`);
    return;
  }
  S.me = s.userCtx.name;
  S.admin = roles.includes('imes_admin') || roles.includes('_admin');
  document.body.classList.toggle('admin', S.admin);
  $('#login').hidden = true;
  $('#app').hidden = false;
  $('#me').textContent = S.me;
  await loadAll();
  connectLive();
  route();
  document.body.dataset.ready = '1';
  performance.mark('imes-ready');
}

function showLogin(msg = '') {
  $('#app').hidden = true;
  $('#login').hidden = false;
  $('#login-error').textContent = msg;
  $('#login-form [name=name]').focus();
  document.body.dataset.ready = 'login';
}

$('#login-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const f = ev.target;
  $('#login-error').textContent = '';
  try {
    await couch.login(f.name.value.trim(), f.password.value);
    f.password.value = '';
    await start();
  } catch (e) {
    $('#login-error').textContent = e.status === 401 ? 'Name or password is wrong.' : `Cannot log in: ${e.message}`;
  }
});

$('#logout').addEventListener('click', async () => {
  S.stopFeed?.();
  S.es?.close();
  S.es = null;
  listenStop();
  try { await couch.logout(); } catch { /* gone already */ }
  S.me = null;
  // imesd's / is the login page that a logged-out browser can load (this
  // page is readable by members only)
  const base = imesdBase();
  if (base) location.href = `${base}/`;
  else showLogin();
});

// ------------------------------------------------------------------ data

const TYPES = { channel: 'channels', aggregate: 'aggregates', device: 'devices', delegate: 'delegates', user: 'users' };

async function loadAll() {
  const [docs] = await Promise.all([
    Promise.all(Object.keys(TYPES).map((t) => couch.prefixDocs(`${t}:`))),
  ]);
  Object.values(TYPES).forEach((k, i) => {
    S[k] = new Map(docs[i].map((d) => [d._id.slice(d._id.indexOf(':') + 1), d]));
  });
  S.user = S.users.get(S.me) ?? { _id: `user:${S.me}`, type: 'user' };
  S.imesd = await couch.getDoc('status:backend:imesd');
  const [status, devStatus] = await Promise.all([couch.prefixDocs('status:channel:'), couch.prefixDocs('status:device:')]);
  for (const st of status) {
    if (!S.live.channels[st.name]) S.live.channels[st.name] = st;
  }
  for (const st of devStatus) S.live.devices[st._id.slice(14)] = { ...st, name: st._id.slice(14) };
  await loadEntries(channelPlaylist());
  S.playlist = channelPlaylist() ?? userPlaylists()[0] ?? null;
  if (S.playlist) await loadEntries(S.playlist);
  renderAll();
}

function myAggregate() { return S.user?.aggregate || null; }
function myChannel() {
  const a = S.aggregates.get(myAggregate());
  return a?.channel || null;
}
function channelPlaylist(ch = myChannel()) { return ch ? `c~${ch}` : null; }
function userPlaylists() {
  const names = new Set(Array.isArray(S.user?.playlists) ? S.user.playlists : []);
  for (const pl of S.entries.keys()) if (pl.startsWith(`u~${S.me}~`)) names.add(pl.split('~')[2]);
  return [...names].sort().map((n) => `u~${S.me}~${n}`);
}
function playlistLabel(pl) {
  if (!pl) return '';
  return pl.startsWith('c~') ? `Channel ${pl.slice(2)}` : `My playlist ${pl.split('~')[2]}`;
}

async function loadEntries(pl) {
  if (!pl) return;
  const docs = await couch.prefixDocs(`entry:${pl}:`);
  S.entries.set(pl, new Map(docs.map((d) => [d._id, d])));
  await loadFiles(docs.map((d) => d.file));
}

async function loadFiles(ids) {
  const want = [...new Set(ids)].filter((id) => id && !S.files.has(id));
  if (!want.length) return;
  const got = await couch.getDocs(want);
  for (const [id, d] of Object.entries(got)) S.files.set(id, d);
}

function sortedEntries(pl) {
  const m = S.entries.get(pl);
  if (!m) return [];
  return [...m.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : a._id < b._id ? -1 : a._id > b._id ? 1 : 0));
}

// ------------------------------------------------------------------ live

function imesdBase() {
  const pub = S.imesd?.public;
  if (!pub) return null;
  // Behind a proxy that serves both under this origin, pub is on it already.
  return pub.replace(/\/+$/, '');
}

function connectLive() {
  S.stopFeed?.();
  S.stopFeed = couch.follow(onDoc, (e) => {
    // the session ended (expired, logged out elsewhere): log in again
    if (e.status === 401 && S.me) {
      S.me = null;
      S.es?.close();
      const base = imesdBase();
      if (base) location.href = `${base}/`;
      else showLogin('Your session ended: log in again.');
    }
  });
  openEvents();
}

function openEvents() {
  S.es?.close();
  const base = imesdBase();
  if (!base) return;
  const es = new EventSource(`${base}/api/events`, { withCredentials: true });
  S.es = es;
  es.addEventListener('snapshot', (ev) => {
    const snap = JSON.parse(ev.data);
    S.live.channels = snap.channels || {};
    S.live.devices = snap.devices || {};
    const t = performance.now();
    for (const n of Object.keys(S.live.channels)) S.liveAt[n] = t;
    document.body.dataset.live = '1';
    renderNow();
    renderEntries();
    renderRooms();
  });
  es.addEventListener('state', (ev) => {
    const e = JSON.parse(ev.data);
    if (e.type === 'channel') {
      // A track-started event carries the position the old track had
      // reached (player.c sets position after it emits): a new entry
      // starts at 0.
      const prev = S.live.channels[e.name];
      if (prev && e.entry && prev.entry !== e.entry) e.position = 0;
      S.live.channels[e.name] = e;
      S.liveAt[e.name] = performance.now();
      renderNow();
      if (S.view === 'playlist') renderEntries();
      if (S.view === 'rooms') renderRooms();
    } else if (e.type === 'device') {
      S.live.devices[e.name] = e;
      if (S.view === 'rooms') renderRooms();
      else if (e.name === personalDevice()) renderListen();
    }
  });
  es.onerror = () => {
    if (es.readyState === EventSource.CLOSED) {
      // refused (logged out elsewhere?) or imesd away: try again later
      setTimeout(() => { if (S.es === es && S.me) openEvents(); }, 3000);
    }
  };
}

function onDoc(doc) {
  const id = doc._id;
  const colon = id.indexOf(':');
  const type = id.slice(0, colon), name = id.slice(colon + 1);
  if (TYPES[type]) {
    const m = S[TYPES[type]];
    if (doc._deleted) m.delete(name);
    else m.set(name, doc);
    if (type === 'user' && name === S.me) {
      const before = channelPlaylist();
      S.user = doc._deleted ? { _id: id, type: 'user' } : doc;
      applyLockout();
      if (channelPlaylist() !== before) switchChannel();
      listenFollow();
    }
    if (type === 'aggregate' && name === myAggregate()) switchChannel();
    renderAll();
  } else if (type === 'entry') {
    const pl = name.slice(0, name.lastIndexOf(':'));
    if (!S.entries.has(pl)) {
      if (!pl.startsWith(`u~${S.me}~`)) return;
      S.entries.set(pl, new Map());
    }
    const m = S.entries.get(pl);
    if (doc._deleted) m.delete(id);
    else m.set(id, doc);
    loadFiles([doc.file]).then(() => {
      if (S.view === 'playlist' && pl === S.playlist) renderEntries();
      renderTargets();
    });
  } else if (id.startsWith('status:device:') && !doc._deleted) {
    // listener counts come only this way (events carry mute changes)
    const name = id.slice(14);
    S.live.devices[name] = { ...(S.live.devices[name] || {}), ...doc, name };
    if (S.view === 'rooms') renderRooms();
    else if (name === personalDevice()) renderListen();
  } else if (id === 'status:backend:imesd' && !doc._deleted) {
    const was = imesdBase();
    S.imesd = doc;
    if (imesdBase() !== was || !S.es) openEvents();
  }
}

let switching = null;
function switchChannel() {
  const pl = channelPlaylist();
  if (S.playlist?.startsWith('c~') || !S.playlist) S.playlist = pl;
  switching = loadEntries(pl).then(() => renderAll());
}

// ------------------------------------------------------------------ rendering

function renderAll() {
  renderTargets();
  renderNow();
  if (S.view === 'playlist') renderEntries();
  if (S.view === 'rooms') renderRooms();
  if (S.view === 'settings') renderSettings();
  if (S.view === 'admin') renderAdmin();
}

function renderTargets() {
  const opts = [];
  const ch = channelPlaylist();
  if (ch) opts.push([ch, playlistLabel(ch)]);
  for (const pl of userPlaylists()) opts.push([pl, playlistLabel(pl)]);
  for (const sel of [$('#target'), $('#pl-select')]) {
    const cur = sel.id === 'pl-select' ? S.playlist : sel.value || ch;
    sel.replaceChildren(...opts.map(([v, l]) => h('option', { value: v, selected: v === cur }, l)));
    if (!opts.length) sel.append(h('option', { value: '' }, 'join a room first (Rooms)'));
  }
}

function liveChannel(ch = myChannel()) { return ch ? S.live.channels[ch] : null; }
function position(lc, ch) {
  if (!lc) return 0;
  let p = lc.position || 0;
  if (lc.state === 'playing' && S.liveAt[ch]) p += (performance.now() - S.liveAt[ch]) / 1000;
  return Math.min(p, lc.duration || p);
}

function renderNow() {
  const ch = myChannel();
  const lc = liveChannel(ch);
  const now = $('#now');
  const chDoc = S.channels.get(ch);
  const state = lc?.state || (chDoc?.paused ? 'paused' : 'idle');
  now.className = `now ${lc?.entry ? state : 'idle'}`;
  now.dataset.state = state;
  const file = lc?.file ? S.files.get(lc.file) : null;
  if (lc?.file && !file) loadFiles([lc.file]).then(renderNow);
  const t = file?.tags || {};
  $('#now-title').textContent = lc?.entry ? (first(t.title) || lc.title || file?.name || 'Unknown') : (ch ? `${ch}: nothing playing` : 'Join a room to play music');
  $('#now-sub').textContent = lc?.entry
    ? [first(t.artist), first(t.album)].filter(Boolean).join(' — ') + (state !== 'playing' ? ` · ${state}${lc.reason ? ` (${lc.reason})` : ''}` : '')
    : (lc && lc.state !== 'playing' && lc.reason ? `${lc.state}: ${lc.reason}` : '');
  const cover = file ? coverUrl(file, 64) : 'img/nocover.svg';
  if ($('#now-cover').getAttribute('src') !== cover) $('#now-cover').src = cover;
  const paused = chDoc?.paused;
  $('#now-pause').textContent = paused ? '▶' : '❚❚';
  $('#now-pause').setAttribute('aria-label', paused ? 'Resume' : 'Pause');
  $('#now-pause').disabled = !ch;
  tick();
  if (lc?.entry && lc.entry !== S.lastNotified && state === 'playing') {
    const prev = S.lastNotified;
    S.lastNotified = lc.entry;
    if (prev !== null) notify(file, lc);
  } else if (S.lastNotified === null) {
    S.lastNotified = lc?.entry || '';
  }
}

function tick() {
  const ch = myChannel();
  const lc = liveChannel(ch);
  const pos = position(lc, ch);
  const dur = lc?.duration || 0;
  const pct = dur > 0 && lc?.entry ? Math.min(100, (pos / dur) * 100) : 0;
  $('#now-bar').style.width = `${pct}%`;
  $('#now-time').textContent = lc?.entry ? `${fmtTime(pos)} / ${fmtTime(dur)}` : '';
  $('#now .progress').setAttribute('aria-valuenow', String(Math.round(pct)));
  const bar = $('#entries li.current .bar');
  if (bar) bar.style.width = `${pct}%`;
}
setInterval(() => S.me && tick(), 250);

function notify(file, lc) {
  if (localStorage.getItem('imes.notify') !== '1' || typeof Notification === 'undefined' || Notification.permission !== 'granted') return;
  const t = file?.tags || {};
  try {
    new Notification(first(t.title) || lc.title || 'Now playing', {
      body: [first(t.artist), first(t.album)].filter(Boolean).join(' — '),
      icon: file ? new URL(coverUrl(file, 128), location.href).href : undefined,
      tag: 'imes-now', silent: true,
    });
  } catch { /* not allowed here */ }
}

// ------------------------------------------------------------------ search

let searchSeq = 0;
let searchTimer = null;
const q = $('#q');
q.addEventListener('input', () => {
  clearTimeout(searchTimer);
  if (S.view !== 'search') location.hash = '#search';
  searchTimer = setTimeout(runSearch, 30);
});

async function runSearch() {
  const text = q.value.trim();
  const seq = ++searchSeq;
  const out = $('#results');
  if (!text) {
    out.replaceChildren(h('p', { class: 'muted' }, 'Type to search the library. F1 shows the syntax.'));
    $('#search-info').textContent = '';
    out.dataset.query = '';
    return;
  }
  const t0 = performance.now();
  let res;
  try {
    res = await search.run(text, { db: couch.DB, get: couch.get, getDocs: couch.getDocs, limit: 300 });
  } catch (e) {
    if (seq === searchSeq) { $('#search-info').textContent = `Search failed: ${e.message}`; }
    return;
  }
  if (seq !== searchSeq) return;
  // Drawn from the view rows (artist, album, disc, track, title) at once;
  // durations, ReplayGain marks and covers come with the documents.
  out.dataset.complete = '';
  const complete = renderResults(res.rows, res);
  const ms = performance.now() - t0;
  $('#search-info').textContent = `${res.rows.length}${res.truncated ? '+' : ''} tracks · ${Math.round(ms)} ms`;
  out.dataset.query = text;
  out.dataset.ms = String(ms);
  await complete;
  if (seq === searchSeq) out.dataset.complete = text;
}

function albumsOf(rows) {
  const albums = [];
  let cur = null;
  for (const r of rows) {
    const key = `${r.value[0]}\u0000${r.value[1]}`;
    if (!cur || cur.key !== key) albums.push((cur = { key, artist: r.value[0], album: r.value[1], rows: [] }));
    cur.rows.push(r);
  }
  return albums;
}

const coverObserver = new IntersectionObserver((items) => {
  for (const it of items) {
    if (!it.isIntersecting) continue;
    const img = it.target;
    coverObserver.unobserve(img);
    img.src = img.dataset.src;
  }
}, { rootMargin: '300px' });

function renderResults(rows) {
  const out = $('#results');
  const albums = albumsOf(rows);
  if (!albums.length) {
    out.replaceChildren(h('p', { class: 'muted', id: 'no-results' }, 'Nothing found.'));
    return Promise.resolve();
  }
  const frag = document.createDocumentFragment();
  const INITIAL = 40;
  const make = (a) => {
    const files = a.rows.map((r) => S.files.get(r.id));
    const img = h('img', { class: 'cover', alt: '', width: 128, height: 128, src: 'img/nocover.svg', dataset: { ids: a.rows.map((r) => r.id).join(' ') } });
    setCover(img);
    const discs = new Set(a.rows.map((r) => r.value[2] || 0));
    const list = h('ul', { class: 'tracks' });
    let lastDisc = null;
    a.rows.forEach((r, i) => {
      const f = files[i];
      const disc = r.value[2] || 0;
      if (discs.size > 1 && disc !== lastDisc) list.append(h('li', { class: 'disc' }, `Disc ${disc || '?'}`));
      lastDisc = disc;
      const title = first(f?.tags?.title) || r.value[4] || f?.name || r.id;
      list.append(h('li', { class: 'track', dataset: { id: r.id, ...(f ? { filled: '1' } : {}) } },
        h('span', { class: 'no' }, r.value[3] || ''),
        h('span', { class: 'ttl', title: 'Track info', onclick: () => showInfo(r.id) }, title, f && !rgOk(f) ? [' ', h('span', { class: 'norg', title: 'No valid ReplayGain: plays at 0 dB' }, 'no RG')] : null),
        h('span', { class: 'dur' }, f ? fmtTime(f.duration) : ''),
        h('button', { class: 'icon info-btn', title: 'Track info', 'aria-label': `Info: ${title}`, onclick: () => showInfo(r.id) }, 'i'),
        h('button', { class: 'icon add-track', title: 'Add this track', 'aria-label': `Add ${title}`, onclick: () => append([r.id]) }, '+')));
    });
    return h('article', { class: 'album', dataset: { album: a.album, artist: a.artist } }, img,
      h('div', {},
        h('div', { class: 'album-head' },
          h('div', {}, h('h3', {}, a.album || '(no album)'), h('div', { class: 'artist' }, a.artist || '(no artist)')),
          h('button', { class: 'add-album', onclick: () => append(a.rows.map((r) => r.id)) }, '+ Album')),
        list));
  };
  albums.slice(0, INITIAL).forEach((a) => frag.append(make(a)));
  out.replaceChildren(frag);
  if (albums.length > INITIAL) {
    const more = h('p', { class: 'more' }, h('button', {
      onclick: async () => {
        more.remove();
        await loadFiles(albums.slice(INITIAL).flatMap((a) => a.rows.map((r) => r.id)));
        albums.slice(INITIAL).forEach((a) => out.append(make(a)));
        $$('img.cover[data-ids]', out).forEach(setCover);
      },
    }, `Show ${albums.length - INITIAL} more albums`));
    out.append(more);
  }
  // documents of tracks beyond the first page arrive afterwards
  // the documents of what is on screen first, then the rest
  const shown = new Set($$('li.track', out).map((li) => li.dataset.id));
  const missing = rows.filter((r) => !S.files.has(r.id)).map((r) => r.id);
  const fill = () => {
    for (const li of $$('li.track:not([data-filled])', out)) {
      const f = S.files.get(li.dataset.id);
      if (!f) continue;
      li.dataset.filled = '1';
      $('.ttl', li).replaceChildren(first(f.tags?.title) || f.name, ...(rgOk(f) ? [] : [' ', h('span', { class: 'norg', title: 'No valid ReplayGain: plays at 0 dB' }, 'no RG')]));
      $('.dur', li).textContent = fmtTime(f.duration);
    }
    $$('img.cover[data-ids]', out).forEach(setCover);
  };
  return (async () => {
    await loadFiles(missing.filter((id) => shown.has(id)));
    fill();
    await loadFiles(missing);
    fill();
  })();
}

function setCover(img) {
  if (img.dataset.src && img.dataset.src !== 'img/nocover.svg') return;
  const f = img.dataset.ids.split(' ').map((id) => S.files.get(id)).find((x) => x?.pictures?.length);
  if (!f) return;
  img.dataset.src = coverUrl(f, 128);
  coverObserver.observe(img); // loaded when near the screen
}

async function showInfo(id) {
  await loadFiles([id]);
  const f = S.files.get(id);
  if (!f) return;
  const t = f.tags || {};
  const rows = [];
  const add = (k, v) => { if (v !== undefined && v !== null && v !== '') rows.push(h('dt', {}, k), h('dd', {}, v)); };
  for (const [k, v] of Object.entries(t)) {
    if (k.startsWith('musicbrainz_')) {
      const kind = { musicbrainz_trackid: 'recording', musicbrainz_albumid: 'release', musicbrainz_artistid: 'artist', musicbrainz_albumartistid: 'artist', musicbrainz_releasegroupid: 'release-group', musicbrainz_releasetrackid: 'track', musicbrainz_workid: 'work' }[k];
      add(k, h('span', {}, ...[].concat(v).map((x, i) => [i ? ', ' : '', kind ? h('a', { href: `https://musicbrainz.org/${kind}/${encodeURIComponent(x)}`, target: '_blank', rel: 'noopener' }, x) : x])));
    } else {
      add(k, [].concat(v).join('; '));
    }
  }
  const rg = f.replaygain || {};
  add('ReplayGain', rgOk(f)
    ? `track ${rg.track_gain ?? '–'} dB (peak ${rg.track_peak ?? '–'}), album ${rg.album_gain ?? '–'} dB (peak ${rg.album_peak ?? '–'})`
    : 'none valid: plays at 0 dB');
  add('duration', fmtTime(f.duration));
  add('format', `${f.container}/${f.codec}, ${f.rate} Hz, ${f.channels} ch, ${Math.round((f.bitrate || 0) / 1000)} kb/s${f.bits_per_sample ? `, ${f.bits_per_sample} bit` : ''}`);
  add('path', f.path);
  add('size', `${(f.size / 1e6).toFixed(2)} MB`);
  add('id', f._id);
  $('#info-title').textContent = first(t.title) || f.name;
  $('#info-body').replaceChildren(
    h('div', { style: 'display:flex;gap:14px;align-items:start;flex-wrap:wrap' },
      h('img', { src: coverUrl(f, 128), width: 128, height: 128, alt: '', class: 'cover', style: 'border-radius:6px' }),
      h('div', {}, h('button', { class: 'primary', onclick: () => { append([id]); closeOverlays(); } }, `Add to ${playlistLabel(currentTarget())}`))),
    h('dl', { class: 'info-grid' }, rows));
  $('#info').hidden = false;
  $('#info .close').focus();
}

function currentTarget() { return $('#target').value || channelPlaylist(); }

async function append(fileIds, pl = currentTarget()) {
  if (!pl) { toast('Join a room (Rooms) or make a playlist first.'); return; }
  if (!S.entries.has(pl)) await loadEntries(pl);
  const list = sortedEntries(pl);
  const last = list.length ? list[list.length - 1].key : null;
  const keys = fracindex.nBetweenJitter(last, null, fileIds.length);
  const now = nowIso();
  const docs = fileIds.map((file, i) => ({
    _id: `entry:${pl}:${hex(8)}`, type: 'entry', playlist: pl, file, key: keys[i], added_by: S.me, added: now,
  }));
  try {
    await couch.bulk(docs);
    for (const d of docs) S.entries.get(pl).set(d._id, d);
    await loadFiles(fileIds);
    toast(`${fileIds.length === 1 ? '1 track' : `${fileIds.length} tracks`} added to ${playlistLabel(pl)}`);
    if (S.view === 'playlist') renderEntries();
  } catch (e) { fail(e); }
}

// ------------------------------------------------------------------ playlist

function renderEntries() {
  const pl = S.playlist;
  const ol = $('#entries');
  const isCh = pl?.startsWith('c~');
  $$('.channel-only').forEach((b) => (b.hidden = !isCh));
  $('#pl-delete').hidden = isCh || !pl;
  $('#pl-append').hidden = isCh || !pl || !channelPlaylist();
  const ch = isCh ? pl.slice(2) : null;
  const paused = ch && S.channels.get(ch)?.paused;
  $('#pl-pause').textContent = paused ? 'Resume' : 'Pause';
  if (!pl) {
    ol.replaceChildren(h('li', { class: 'muted empty' }, 'Join a room to see its channel, or make a playlist.'));
    return;
  }
  const lc = ch ? S.live.channels[ch] : null;
  const list = sortedEntries(pl);
  const curIdx = lc?.entry ? list.findIndex((e) => e._id === lc.entry) : -1;
  ol.dataset.playlist = pl;
  ol.replaceChildren(...list.map((e, i) => {
    const f = S.files.get(e.file);
    const t = f?.tags || {};
    const cur = i === curIdx;
    const title = first(t.title) || f?.name || e.file;
    const li = h('li', {
      tabindex: 0, draggable: 'true',
      class: [cur ? `current ${lc.state}` : '', i < curIdx ? 'played' : '', S.selected === e._id ? 'selected' : ''].join(' ').trim(),
      dataset: { id: e._id, title },
    },
    h('span', { class: 'grip', 'aria-hidden': 'true' }, '⋮⋮'),
    h('img', { src: coverUrl(f, 64), alt: '', width: 40, height: 40, loading: 'lazy' }),
    h('span', { class: 't' }, title, h('small', {}, [first(t.artist), first(t.album)].filter(Boolean).join(' — ') + (cur ? ` · ${lc.state}` : ''))),
    h('span', { class: 'dur' }, f ? fmtTime(f.duration) : ''),
    h('span', { class: 'acts' },
      isCh ? h('button', { class: 'icon play-now', title: 'Play now', 'aria-label': `Play ${title} now`, onclick: (ev) => { ev.stopPropagation(); playNow(e); } }, '▶') : null,
      h('button', { class: 'icon remove', title: 'Remove', 'aria-label': `Remove ${title}`, onclick: (ev) => { ev.stopPropagation(); removeEntry(e); } }, '×')),
    cur ? h('div', { class: 'bar' }) : null);
    li.addEventListener('click', () => select(e._id));
    li.addEventListener('dragstart', (ev) => { li.classList.add('dragging'); ev.dataTransfer.setData('text/plain', e._id); ev.dataTransfer.effectAllowed = 'move'; });
    li.addEventListener('dragend', () => li.classList.remove('dragging'));
    li.addEventListener('dragover', (ev) => { ev.preventDefault(); li.classList.add('drop-before'); });
    li.addEventListener('dragleave', () => li.classList.remove('drop-before'));
    li.addEventListener('drop', (ev) => {
      ev.preventDefault();
      li.classList.remove('drop-before');
      const id = ev.dataTransfer.getData('text/plain');
      if (id && id !== e._id) moveBefore(id, e._id);
    });
    return li;
  }));
  if (!list.length) ol.append(h('li', { class: 'muted empty' }, 'Empty. Search and add tracks with +.'));
  else {
    // dropping below the last entry moves to the end
    const end = h('li', { class: 'muted drop-end', dataset: { end: '1' } }, 'drop here for the end');
    end.addEventListener('dragover', (ev) => { ev.preventDefault(); end.classList.add('drop-before'); });
    end.addEventListener('dragleave', () => end.classList.remove('drop-before'));
    end.addEventListener('drop', (ev) => { ev.preventDefault(); moveBefore(ev.dataTransfer.getData('text/plain'), null); });
    ol.append(end);
  }
  tick();
}

function select(id) {
  S.selected = id;
  $$('#entries li').forEach((li) => li.classList.toggle('selected', li.dataset.id === id));
}

async function moveBefore(id, beforeId) {
  const pl = S.playlist;
  const list = sortedEntries(pl).filter((e) => e._id !== id);
  const moving = S.entries.get(pl).get(id);
  if (!moving) return;
  const at = beforeId ? list.findIndex((e) => e._id === beforeId) : list.length;
  const a = at > 0 ? list[at - 1].key : null;
  const b = at < list.length ? list[at].key : null;
  let key;
  try {
    key = a !== null && b !== null && a >= b ? fracindex.betweenJitter(a, null) : fracindex.betweenJitter(a, b);
  } catch (e) { fail(e); return; }
  const doc = { ...moving, key };
  try {
    await couch.put(doc);
    S.entries.get(pl).set(id, doc);
    renderEntries();
    $(`#entries li[data-id="${CSS.escape(id)}"]`)?.focus();
  } catch (e) { fail(e); }
}

async function moveBy(id, delta) {
  const list = sortedEntries(S.playlist);
  const i = list.findIndex((e) => e._id === id);
  const j = i + delta;
  if (i < 0 || j < 0 || j >= list.length) return;
  await moveBefore(id, delta < 0 ? list[j]._id : (list[j + 1]?._id ?? null));
}

async function removeEntry(e) {
  try {
    await couch.remove(e);
    S.entries.get(e.playlist)?.delete(e._id);
    renderEntries();
  } catch (err) { fail(err); }
}

async function channelEdit(ch, edit) {
  try {
    const d = await couch.update(`channel:${ch}`, (doc) => { doc.type = 'channel'; return edit(doc); });
    S.channels.set(ch, d);
    renderAll();
  } catch (e) { fail(e); }
}

function playNow(e) {
  const ch = e.playlist.slice(2);
  return channelEdit(ch, (d) => { d.play = { entry: e._id, request: hex(8) }; d.paused = false; });
}
function togglePause(ch = myChannel()) {
  if (!ch) return;
  return channelEdit(ch, (d) => { d.paused = !d.paused; });
}

$('#pl-select').addEventListener('change', async (ev) => {
  S.playlist = ev.target.value;
  await loadEntries(S.playlist);
  renderEntries();
});
$('#pl-pause').addEventListener('click', () => togglePause(S.playlist.slice(2)));
$('#pl-skip').addEventListener('click', () => channelEdit(S.playlist.slice(2), (d) => { d.skip = hex(8); d.paused = false; }));
$('#now-pause').addEventListener('click', () => togglePause());
$('#pl-new').addEventListener('click', async () => {
  const name = prompt('Name of the new playlist (letters, digits, . _ - @)');
  if (!name) return;
  if (!nameOk(name)) { toast('Use 1 to 64 letters, digits, . _ - @'); return; }
  await saveUser((u) => { u.playlists = [...new Set([...(u.playlists || []), name])]; });
  S.playlist = `u~${S.me}~${name}`;
  S.entries.set(S.playlist, S.entries.get(S.playlist) ?? new Map());
  renderAll();
});
$('#pl-delete').addEventListener('click', async () => {
  const pl = S.playlist;
  const name = pl.split('~')[2];
  if (!confirm(`Delete the playlist ${name} and its ${sortedEntries(pl).length} entries?`)) return;
  try {
    await couch.bulk(sortedEntries(pl).map((e) => ({ _id: e._id, _rev: e._rev, _deleted: true })));
    await saveUser((u) => { u.playlists = (u.playlists || []).filter((n) => n !== name); });
    S.entries.delete(pl);
    S.playlist = channelPlaylist() ?? userPlaylists()[0] ?? null;
    if (S.playlist) await loadEntries(S.playlist);
    renderAll();
  } catch (e) { fail(e); }
});
$('#pl-append').addEventListener('click', () => append(sortedEntries(S.playlist).map((e) => e.file), channelPlaylist()));

$('#entries').addEventListener('keydown', (ev) => {
  const li = ev.target.closest('li[data-id]');
  if (!li) return;
  const id = li.dataset.id;
  const e = S.entries.get(S.playlist)?.get(id);
  if (ev.altKey && (ev.key === 'ArrowUp' || ev.key === 'ArrowDown')) {
    ev.preventDefault();
    select(id);
    moveBy(id, ev.key === 'ArrowUp' ? -1 : 1);
  } else if (ev.key === 'ArrowUp' || ev.key === 'ArrowDown') {
    ev.preventDefault();
    const sib = ev.key === 'ArrowUp' ? li.previousElementSibling : li.nextElementSibling;
    if (sib?.dataset.id) { sib.focus(); select(sib.dataset.id); }
  } else if (ev.key === 'Enter' && e && S.playlist.startsWith('c~')) {
    ev.preventDefault();
    playNow(e);
  } else if ((ev.key === 'Delete' || ev.key === 'Backspace') && e) {
    ev.preventDefault();
    removeEntry(e);
  }
});

// ------------------------------------------------------------------ rooms

async function saveUser(edit) {
  try {
    const d = await couch.update(`user:${S.me}`, (doc) => { doc.type = 'user'; return edit(doc); });
    S.user = d;
    S.users.set(S.me, d);
    return d;
  } catch (e) { fail(e); return null; }
}

function renderRooms() {
  const agg = myAggregate();
  const rs = $('#room-select');
  rs.replaceChildren(h('option', { value: '' }, '(none)'),
    ...[...S.aggregates.keys()].sort().map((n) => h('option', { value: n, selected: n === agg }, n)));
  const cs = $('#room-channel');
  const ch = myChannel();
  cs.disabled = !agg;
  cs.replaceChildren(h('option', { value: '' }, '(nothing)'),
    ...[...S.channels.keys()].sort().map((n) => h('option', { value: n, selected: n === ch }, n)));
  const lc = liveChannel(ch);
  const paused = ch && S.channels.get(ch)?.paused;
  $('#room-pause').textContent = paused ? 'Resume' : 'Pause';
  $('#room-pause').disabled = !ch;
  const st = $('#room-state');
  st.className = `state ${lc?.state || ''}`;
  st.textContent = lc ? `${lc.state}${lc.reason ? ` — ${lc.reason}` : ''}` : (ch ? '' : 'no channel');
  const devs = [...S.devices.values()].filter((d) => d.aggregate === agg && agg);
  $('#room-devices').replaceChildren(...(devs.length ? devs.map((d) => {
    const name = d._id.slice(7);
    const live = S.live.devices[name];
    const connected = live && live.listeners > 0;
    const muted = live?.muted;
    return h('li', { dataset: { device: name } },
      h('span', { class: `dot ${muted ? 'muted' : connected ? 'on' : ''}` }),
      h('strong', {}, name),
      h('span', { class: 'muted' }, [
        connected ? `connected (${live.listeners})` : 'not connected',
        muted ? `muted: ${live.reason}${live.delegate ? ` (${live.delegate})` : ''}` : live ? 'not muted' : '',
        d.codec || 'mp3',
      ].filter(Boolean).join(' · ')));
  }) : [h('li', { class: 'muted' }, agg ? 'No devices in this room.' : 'Choose a room.')]));
  renderListen();
}

$('#room-select').addEventListener('change', (ev) => {
  const agg = ev.target.value || null; // read now: a render may reset the select before the write
  saveUser((u) => { u.aggregate = agg; }).then(() => { switchChannel(); renderAll(); listenFollow(); });
});
$('#room-channel').addEventListener('change', async (ev) => {
  const agg = myAggregate();
  const ch = ev.target.value || null;
  if (!agg) return;
  try {
    const d = await couch.update(`aggregate:${agg}`, (doc) => { doc.type = 'aggregate'; doc.channel = ch; });
    S.aggregates.set(agg, d);
    switchChannel();
    renderAll();
  } catch (e) { fail(e); }
});
$('#room-pause').addEventListener('click', () => togglePause());

// A token as imes makes them (token:<kind>:<name> in <db>_private).
async function ensureToken(kind, name, renew = false) {
  const id = `token:${kind}:${name}`;
  const d = await couch.update(id, (doc) => {
    if (!renew && typeof doc.token === 'string' && /^[0-9a-f]{32,}$/.test(doc.token)) return false;
    Object.assign(doc, { type: 'token', kind, name, token: hex(16), created: nowIso() });
  }, `${couch.DB}_private`);
  return d.token;
}
async function readToken(kind, name) {
  return (await couch.getDoc(`token:${kind}:${name}`, `${couch.DB}_private`))?.token ?? null;
}

// ------------------------------------------------------------------ listen here
//
// "Listen here": this browser plays the room through an <audio> element on
// the user's personal device, device:web-<me> (personal, owner: me; members
// write their own, validate_doc_update.js). imesd streams it at
// /listen/stream.mp3 to whoever's session cookie comes with the request (no
// token: members cannot read imes_private). The device sits in the user's
// room, so the room's rules (delegates, lockout, presence) mute it like any
// device. The stream reconnects when it breaks (imesd restarted, network)
// and follows the user to another room.

const LISTEN = { on: false, state: 'off', retry: null, tries: 0, lastTime: 0, lastMove: 0, watch: null, placing: Promise.resolve() };

function personalDevice() { return `web-${S.me}`; }
function listenUrl() {
  const base = imesdBase();
  return base ? `${base}/listen/stream.mp3` : null;
}

// Puts the personal device in the user's room (creates it the first time).
// One write at a time: a room change comes both from the select and from the
// feed, and two racing writes would conflict.
function listenPlace() {
  const p = LISTEN.placing.catch(() => {}).then(listenPlaceNow);
  LISTEN.placing = p;
  return p;
}
async function listenPlaceNow() {
  const name = personalDevice();
  const agg = myAggregate();
  const dev = await couch.update(`device:${name}`, (d) => {
    if (d.type === 'device' && d.personal === true && d.owner === S.me && (d.aggregate ?? null) === agg) return false;
    Object.assign(d, { type: 'device', aggregate: agg, codec: d.codec || 'mp3', personal: true, owner: S.me });
  });
  S.devices.set(name, dev);
  return dev;
}

function listenSetState(state, info = '') {
  LISTEN.state = state;
  renderListen();
  if (info) $('#listen-info').textContent = info;
}

function listenAttach() {
  clearTimeout(LISTEN.retry);
  LISTEN.retry = null;
  const audio = $('#audio');
  const url = listenUrl();
  if (!url) { listenSetState('error', 'imesd has not said where it is yet (status:backend:imesd): retrying.'); listenRetry(); return; }
  LISTEN.lastTime = 0;
  LISTEN.lastMove = performance.now();
  audio.src = url;
  listenSetState('buffering', '');
  audio.play().catch((e) => {
    if (!LISTEN.on || e.name === 'AbortError') return; // replaced by a newer attach, or stopped
    if (e.name === 'NotAllowedError') {
      listenSetState('error', 'The browser did not allow playing: click Listen here again.');
      listenStop(false);
    }
    // other failures come as the element's error event
  });
}

// Tries again a little later (1, 2, 4, 8 s, then every 10 s).
function listenRetry() {
  if (!LISTEN.on || LISTEN.retry) return;
  const wait = Math.min(10000, 1000 * 2 ** Math.min(LISTEN.tries, 4));
  LISTEN.tries++;
  LISTEN.retry = setTimeout(() => { LISTEN.retry = null; if (LISTEN.on) listenAttach(); }, wait);
}

async function listenStart() {
  if (!myAggregate()) { toast('Choose a room first.'); return; }
  if (!nameOk(personalDevice())) { toast(`Your name is too long for a personal device (${personalDevice()}).`); return; }
  LISTEN.on = true;
  LISTEN.tries = 0;
  listenSetState('buffering', 'Joining your room…');
  try {
    const before = S.live.devices[personalDevice()];
    await listenPlace();
    // imesd learns a new device from the feed: wait (briefly) until it
    // reports it, so the first request is not refused
    if (!before) {
      for (let i = 0; i < 30 && LISTEN.on && !S.live.devices[personalDevice()]; i++) await new Promise((r) => setTimeout(r, 100));
    }
  } catch (e) { LISTEN.on = false; listenSetState('off'); fail(e); return; }
  if (!LISTEN.on) return;
  listenAttach();
  clearInterval(LISTEN.watch);
  LISTEN.watch = setInterval(listenWatch, 2000);
}

// Stops playing; keep: whether the state line keeps its message.
function listenStop(clear = true) {
  LISTEN.on = false;
  clearTimeout(LISTEN.retry);
  clearInterval(LISTEN.watch);
  LISTEN.retry = LISTEN.watch = null;
  const audio = $('#audio');
  audio.pause();
  audio.removeAttribute('src');
  audio.load();
  LISTEN.state = 'off';
  if (clear) $('#listen-info').textContent = '';
  renderListen();
}

// A stream whose time stands still for 8 s is dead (imesd gone without a
// close, a proxy holding it): reconnect. Muted or paused rooms still send
// silence, so time moves while the stream is alive.
function listenWatch() {
  const audio = $('#audio');
  if (!LISTEN.on || !audio.getAttribute('src') || LISTEN.retry) return;
  const t = performance.now();
  if (audio.currentTime !== LISTEN.lastTime) {
    LISTEN.lastTime = audio.currentTime;
    LISTEN.lastMove = t;
  } else if (t - LISTEN.lastMove > 8000) {
    listenSetState('error', 'The stream stalled: reconnecting…');
    listenAttach();
  }
}

// The user changed rooms: the personal device goes along.
function listenFollow() {
  const d = S.devices.get(personalDevice());
  if (!LISTEN.on && !d?.personal) return; // never listened here
  if (d && (d.aggregate ?? null) === myAggregate()) return;
  listenPlace().then(() => { if (S.view === 'rooms') renderRooms(); }, fail);
}

function renderListen() {
  const name = personalDevice();
  const live = S.live.devices[name];
  let state = LISTEN.state;
  if (LISTEN.on && state === 'playing' && live?.muted) state = 'muted';
  const text = {
    off: '', buffering: 'buffering…', playing: 'playing',
    muted: `muted: ${live?.reason || ''}${live?.delegate ? ` (${live.delegate})` : ''}`,
    error: 'not playing: reconnecting',
  }[state];
  for (const el of [$('#listen-state'), $('#now-listen')]) el.dataset.state = state;
  $('#listen-state').textContent = text;
  $('#listen-state').className = `state ${state}`;
  $('#listen').textContent = LISTEN.on ? 'Stop listening' : 'Listen here';
  $('#listen').setAttribute('aria-pressed', String(LISTEN.on));
  $('#listen-device').textContent = name;
  const nb = $('#now-listen');
  nb.setAttribute('aria-pressed', String(LISTEN.on));
  nb.title = LISTEN.on ? `Listening here (${text}): click to stop` : 'Listen here: play your room in this browser';
}

function listenToggle() { if (LISTEN.on) listenStop(); else listenStart(); }
$('#listen').addEventListener('click', listenToggle);
$('#now-listen').addEventListener('click', listenToggle);
{
  const audio = $('#audio');
  audio.addEventListener('playing', () => { LISTEN.tries = 0; if (LISTEN.on) listenSetState('playing', `Playing your room through ${personalDevice()}.`); });
  audio.addEventListener('waiting', () => { if (LISTEN.on) listenSetState('buffering'); });
  const broken = (why) => () => {
    if (!LISTEN.on || !audio.getAttribute('src')) return;
    listenSetState('error', `The stream ${why}: reconnecting…`);
    listenRetry();
  };
  audio.addEventListener('error', broken('broke off'));
  audio.addEventListener('ended', broken('ended'));
}

// ------------------------------------------------------------------ settings

function renderSettings() {
  const u = S.user || {};
  $('#set-timeout').value = u.session_timeout ?? 300;
  $('#set-lockout').checked = !!u.lockout;
  $('#set-scrobbling').checked = !!u.scrobbling;
  $('#set-notify').checked = localStorage.getItem('imes.notify') === '1';
  $('#notify-state').textContent = typeof Notification === 'undefined' ? 'This browser has no notifications.' : `Browser permission: ${Notification.permission}.`;
  renderScrobblers();
}

// Scrobbler accounts: imesd links them (/api/scrobble) and keeps their keys
// where members cannot read them; the user doc only says which service is
// linked to which account name. State here survives re-renders.
const scrob = { services: null, loading: false, approve: {}, note: {}, busy: {} };

async function scrobbleApi(body) {
  const base = imesdBase();
  if (!base) throw Object.assign(new Error('imesd has not published its address yet'), { status: 0 });
  // text/plain: a "simple" cross-origin request (no preflight); imesd reads JSON.
  const res = await fetch(`${base}/api/scrobble`, body
    ? { method: 'POST', credentials: 'include', headers: { 'Content-Type': 'text/plain' }, body: JSON.stringify(body) }
    : { credentials: 'include' });
  let j = {};
  try { j = await res.json(); } catch { /* not JSON */ }
  if (!res.ok) throw Object.assign(new Error(j.reason || `imesd answered ${res.status}`), { status: res.status, error: j.error, reason: j.reason });
  return j;
}

async function loadScrobblers() {
  if (scrob.loading) return;
  scrob.loading = true;
  try {
    scrob.services = (await scrobbleApi()).services;
  } catch (e) {
    scrob.services = [];
    scrob.note._all = `Scrobbler accounts cannot be shown: ${e.message}`;
  }
  scrob.loading = false;
  renderScrobblers();
}

// The user doc mirrors what imesd says: { service: { user: name } }, no keys.
async function mirrorScrobbler(k, name) {
  await saveUser((d) => {
    const cur = d.scrobblers?.[k]?.user ?? null;
    if (cur === (name ?? null)) return false;
    d.scrobblers = { ...(d.scrobblers || {}) };
    if (name) d.scrobblers[k] = { user: name };
    else delete d.scrobblers[k];
  });
}

async function scrobbleAction(svc, body) {
  const k = svc.service;
  scrob.busy[k] = true;
  scrob.note[k] = '';
  renderScrobblers();
  try {
    const r = await scrobbleApi({ service: k, ...body });
    if (r.state === 'approve') {
      scrob.approve[k] = r.url;
      scrob.note[k] = `Open the link, allow IMES at ${svc.label}, then press Done.`;
    } else if (r.linked) {
      delete scrob.approve[k];
      Object.assign(svc, { linked: true, name: r.name });
      scrob.note[k] = '';
      await mirrorScrobbler(k, r.name);
      toast(`${svc.label}: linked as ${r.name}.`);
    } else {
      delete scrob.approve[k];
      Object.assign(svc, { linked: false, name: '' });
      await mirrorScrobbler(k, null);
      toast(`${svc.label}: unlinked.`);
    }
  } catch (e) {
    scrob.note[k] = e.reason || e.message;
  }
  scrob.busy[k] = false;
  renderScrobblers();
}

function renderScrobblers() {
  const box = $('#scrobblers');
  if (!scrob.services) {
    box.replaceChildren(h('p', { class: 'muted' }, 'Loading scrobbler accounts…'));
    loadScrobblers();
    return;
  }
  const rows = scrob.services.map((svc) => {
    const k = svc.service;
    const busy = !!scrob.busy[k];
    const parts = [h('strong', { style: 'min-width:7em' }, svc.label)];
    if (!svc.enabled && !svc.linked) {
      parts.push(h('span', { class: 'muted' }, 'not set up on this server'));
    } else if (svc.linked) {
      parts.push(h('span', { class: 'scrobble-state' }, `Linked as ${svc.name}`),
        h('button', { type: 'button', disabled: busy, onclick: () => scrobbleAction(svc, { action: 'unlink' }) }, 'Unlink'));
    } else if (svc.kind === 'token') {
      const input = h('input', { type: 'password', autocomplete: 'off', placeholder: `${svc.label} user token`, 'aria-label': `${svc.label} user token` });
      parts.push(input, h('button', { disabled: busy }, 'Link'));
      return h('form', { class: 'inline', dataset: { service: k }, onsubmit: (ev) => {
        ev.preventDefault();
        scrobbleAction(svc, { action: 'link', token: input.value.trim() });
      } }, ...parts, scrob.note[k] ? h('span', { class: 'muted scrobble-note', role: 'status' }, scrob.note[k]) : null);
    } else if (scrob.approve[k]) {
      parts.push(h('a', { href: scrob.approve[k], target: '_blank', rel: 'noopener', class: 'scrobble-approve' }, `Allow IMES at ${svc.label}`),
        h('button', { type: 'button', disabled: busy, onclick: () => scrobbleAction(svc, { action: 'complete' }) }, 'Done'));
    } else {
      parts.push(h('button', { type: 'button', disabled: busy, onclick: () => scrobbleAction(svc, { action: 'link' }) }, 'Link'));
    }
    if (scrob.note[k]) parts.push(h('span', { class: 'muted scrobble-note', role: 'status' }, scrob.note[k]));
    return h('div', { class: 'inline', dataset: { service: k } }, ...parts);
  });
  if (scrob.note._all) rows.push(h('p', { class: 'muted' }, scrob.note._all));
  box.replaceChildren(...rows);
}
$('#set-timeout').addEventListener('change', (ev) => {
  const v = Number(ev.target.value);
  if (Number.isFinite(v) && v >= 0) saveUser((u) => { u.session_timeout = v; });
});
$('#set-lockout').addEventListener('change', (ev) => setLockout(ev.target.checked));
$('#set-scrobbling').addEventListener('change', (ev) => {
  const on = ev.target.checked;
  saveUser((u) => { u.scrobbling = on; });
});
$('#set-notify').addEventListener('change', async (ev) => {
  const on = ev.target.checked;
  if (on && typeof Notification !== 'undefined' && Notification.permission !== 'granted') {
    await Notification.requestPermission();
  }
  localStorage.setItem('imes.notify', on ? '1' : '0');
  renderSettings();
});
$('#show-help').addEventListener('click', () => ($('#help').hidden = false));

async function setLockout(on) {
  S.user = { ...S.user, lockout: on };
  applyLockout();
  await saveUser((u) => { if (!!u.lockout === on) return false; u.lockout = on; });
  applyLockout();
}
function applyLockout() {
  const on = !!S.user?.lockout;
  $('#lockout').hidden = !on;
  document.body.classList.toggle('locked', on);
  if ($('#set-lockout')) $('#set-lockout').checked = on;
}
$('#unlock').addEventListener('click', () => setLockout(false));

// ------------------------------------------------------------------ admin

function copyBtn(text) {
  return h('button', { class: 'icon copy', title: 'Copy', onclick: () => navigator.clipboard?.writeText(text).then(() => toast('Copied'), () => toast(text, 8000)) }, 'Copy');
}
function urlRow(label, url) {
  return h('div', {}, h('span', { class: 'muted', style: 'min-width:4em' }, label), h('code', { class: 'url' }, url), copyBtn(url));
}
function opts(names, cur, none = '(none)') {
  return [h('option', { value: '' }, none), ...names.map((n) => h('option', { value: n, selected: n === cur }, n))];
}
async function adminWrite(id, edit) {
  try {
    const d = await couch.update(id, edit);
    onDoc(d);
  } catch (e) { fail(e); }
}
async function adminDelete(doc) {
  if (!confirm(`Delete ${doc._id}?`)) return;
  try { await couch.remove(doc); onDoc({ _id: doc._id, _deleted: true }); } catch (e) { fail(e); }
}

const tokens = new Map(); // "device:x" -> token (admins)

async function renderAdmin() {
  if (!S.admin) return;
  const chans = [...S.channels.keys()].sort();
  const aggs = [...S.aggregates.keys()].sort();
  $('#adm-channels').replaceChildren(h('tr', {}, h('th', {}, 'Channel'), h('th', {}, 'Paused'), h('th', {}, 'ReplayGain'), h('th', {}, 'Crossfade (s)'), h('th', {}, '')),
    ...chans.map((n) => {
      const d = S.channels.get(n);
      return h('tr', { dataset: { channel: n } }, h('td', {}, n),
        h('td', {}, h('input', { type: 'checkbox', checked: !!d.paused, 'aria-label': `${n} paused`, onchange: (ev) => { const v = ev.target.checked; adminWrite(d._id, (x) => { x.type = 'channel'; x.paused = v; }); } })),
        h('td', {}, h('select', { 'aria-label': `${n} ReplayGain`, onchange: (ev) => { const v = ev.target.value; adminWrite(d._id, (x) => { x.type = 'channel'; x.replaygain = v; }); } },
          ...['album', 'track', 'off'].map((v) => h('option', { value: v, selected: (d.replaygain || 'album') === v }, v)))),
        h('td', {}, h('input', { type: 'number', min: 0, max: 10, step: 0.1, value: d.crossfade ?? 0.5, style: 'width:6em', 'aria-label': `${n} crossfade`, onchange: (ev) => { const v = ev.target.value; adminWrite(d._id, (x) => { x.type = 'channel'; x.crossfade = Number(v); }); } })),
        h('td', {}, h('button', { class: 'link', onclick: () => adminDelete(d) }, 'delete')));
    }));
  $('#adm-aggregates').replaceChildren(h('tr', {}, h('th', {}, 'Room'), h('th', {}, 'Channel'), h('th', {}, 'Devices'), h('th', {}, '')),
    ...aggs.map((n) => {
      const d = S.aggregates.get(n);
      return h('tr', { dataset: { aggregate: n } }, h('td', {}, n),
        h('td', {}, h('select', { 'aria-label': `${n} channel`, onchange: (ev) => { const v = ev.target.value; adminWrite(d._id, (x) => { x.type = 'aggregate'; x.channel = v || null; }); } }, ...opts(chans, d.channel))),
        h('td', { class: 'muted' }, [...S.devices.values()].filter((x) => x.aggregate === n).map((x) => x._id.slice(7)).join(', ')),
        h('td', {}, h('button', { class: 'link', onclick: () => adminDelete(d) }, 'delete')));
    }));
  const base = imesdBase() || '';
  const rtsp = (S.imesd?.public_rtsp || '').replace(/\/+$/, '');
  const del = (S.imesd?.public_delegate || base).replace(/\/+$/, '');
  const devNames = [...S.devices.keys()].sort();
  await Promise.all(devNames.filter((n) => !tokens.has(`device:${n}`)).map(async (n) => tokens.set(`device:${n}`, await readToken('device', n).catch(() => null))));
  await Promise.all([...S.delegates.keys()].filter((n) => !tokens.has(`delegate:${n}`)).map(async (n) => tokens.set(`delegate:${n}`, await readToken('delegate', n).catch(() => null))));
  $('#adm-devices').replaceChildren(h('tr', {}, h('th', {}, 'Device'), h('th', {}, 'Room'), h('th', {}, 'Codec'), h('th', {}, 'URLs'), h('th', {}, '')),
    ...devNames.map((n) => {
      const d = S.devices.get(n);
      const tok = tokens.get(`device:${n}`);
      const e = encodeURIComponent(n);
      return h('tr', { dataset: { device: n } }, h('td', {}, n),
        h('td', {}, h('select', { 'aria-label': `${n} room`, onchange: (ev) => { const v = ev.target.value; adminWrite(d._id, (x) => { x.type = 'device'; x.aggregate = v || null; }); } }, ...opts(aggs, d.aggregate))),
        h('td', {}, h('select', { 'aria-label': `${n} codec`, onchange: (ev) => { const v = ev.target.value; adminWrite(d._id, (x) => { x.type = 'device'; x.codec = v; }); } },
          ...['mp3', 'opus'].map((v) => h('option', { value: v, selected: (d.codec || 'mp3') === v }, v)))),
        h('td', { class: 'urls' }, tok ? [urlRow('MP3', `${base}/device/${e}/${tok}/stream.mp3`), urlRow('Opus', `${base}/device/${e}/${tok}/stream.opus`), urlRow('RTSP', `${rtsp}/device/${e}/${tok}`)]
          : h('button', { onclick: async () => { tokens.set(`device:${n}`, await ensureToken('device', n)); renderAdmin(); } }, 'Make token')),
        h('td', {}, tok ? h('button', { class: 'link', onclick: async () => { if (confirm('A new token cuts off the old URLs. Go on?')) { tokens.set(`device:${n}`, await ensureToken('device', n, true)); renderAdmin(); } } }, 'new token') : null,
          h('button', { class: 'link', onclick: () => adminDelete(d) }, 'delete')));
    }));
  $('#adm-delegates').replaceChildren(h('tr', {}, h('th', {}, 'Delegate'), h('th', {}, 'May pause'), h('th', {}, 'URLs'), h('th', {}, '')),
    ...[...S.delegates.keys()].sort().map((n) => {
      const d = S.delegates.get(n);
      const tok = tokens.get(`delegate:${n}`);
      const b = `${del}/delegate/${encodeURIComponent(n)}/${tok}`;
      return h('tr', { dataset: { delegate: n } }, h('td', {}, n),
        h('td', {}, h('input', { value: (d.devices || []).join(', '), 'aria-label': `${n} devices`, placeholder: 'device, device', onchange: (ev) => {
          const list = ev.target.value.split(/[\s,]+/).filter(Boolean);
          if (!list.every(nameOk)) { toast('Device names: letters, digits, . _ - @'); return; }
          adminWrite(d._id, (x) => { x.type = 'delegate'; x.devices = list; });
        } })),
        h('td', { class: 'urls' }, tok ? [urlRow('pause', `${b}/pause`), urlRow('10 min', `${b}/pause/600`), urlRow('unpause', `${b}/unpause`)]
          : h('button', { onclick: async () => { tokens.set(`delegate:${n}`, await ensureToken('delegate', n)); renderAdmin(); } }, 'Make token')),
        h('td', {}, h('button', { class: 'link', onclick: () => adminDelete(d) }, 'delete')));
    }));
  const users = [...S.users.keys()].sort();
  $('#adm-users').replaceChildren(h('tr', {}, h('th', {}, 'User'), h('th', {}, 'Room'), h('th', {}, 'Lockout'), h('th', {}, 'Session timeout')),
    ...users.map((n) => {
      const d = S.users.get(n);
      return h('tr', { dataset: { user: n } }, h('td', {}, n),
        h('td', {}, h('select', { 'aria-label': `${n} room`, onchange: (ev) => { const v = ev.target.value; adminWrite(d._id, (x) => { x.type = 'user'; x.aggregate = v || null; }); } }, ...opts(aggs, d.aggregate))),
        h('td', {}, d.lockout ? 'yes' : 'no'), h('td', {}, `${d.session_timeout ?? 300} s`));
    }));
}

function addForm(sel, make) {
  $(sel).addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const f = ev.target;
    const name = f.name.value.trim();
    if (!nameOk(name)) { toast('Names: 1 to 64 letters, digits, . _ - @ (not starting with . _ -)'); return; }
    try {
      await make(name, f);
      f.reset();
    } catch (e) { fail(e); }
  });
}
addForm('#add-channel', async (n) => onDoc(await couch.put({ _id: `channel:${n}`, type: 'channel', paused: false, replaygain: 'album', crossfade: 0.5 })));
addForm('#add-aggregate', async (n) => onDoc(await couch.put({ _id: `aggregate:${n}`, type: 'aggregate', channel: null })));
addForm('#add-device', async (n) => {
  onDoc(await couch.put({ _id: `device:${n}`, type: 'device', aggregate: null, codec: 'mp3' }));
  tokens.set(`device:${n}`, await ensureToken('device', n));
  renderAdmin();
});
addForm('#add-delegate', async (n) => {
  onDoc(await couch.put({ _id: `delegate:${n}`, type: 'delegate', devices: [] }));
  tokens.set(`delegate:${n}`, await ensureToken('delegate', n));
  renderAdmin();
});
addForm('#add-user', async (n, f) => {
  // As `imes user add`: the _users document (CouchDB hashes the password)
  // and the settings document user:NAME.
  // IMES admins are admins of _users (imes init), so they may create users
  // with roles. A new document only: pouchdb-server cannot let a database
  // admin who is not a server admin read _users, so an existing user is
  // not read and changed here (`imes user add NAME` resets a password).
  const roles = ['imes_user', ...(f.admin.checked ? ['imes_admin'] : [])];
  const exists = () => toast(`There is a user ${n} already (imes user add ${n} sets a new password)`);
  if (S.users.has(n)) { exists(); return; } // (a PUT would be a 409 in the console)
  try {
    await couch.put({ _id: `org.couchdb.user:${n}`, name: n, type: 'user', roles, password: f.password.value }, '/_users');
  } catch (e) {
    if (e.status === 409) { exists(); return; }
    throw e;
  }
  if (!S.users.has(n)) onDoc(await couch.put({ _id: `user:${n}`, type: 'user', aggregate: null, lockout: false, session_timeout: 300, scrobbling: false }));
  toast(`User ${n} saved`);
});

// ------------------------------------------------------------------ screens and keys

function route() {
  const v = (location.hash || '#search').slice(1);
  const view = ['search', 'playlist', 'rooms', 'settings', 'admin'].includes(v) ? v : 'search';
  S.view = view;
  $$('.view').forEach((s) => (s.hidden = s.dataset.view !== view));
  $$('.tabs a').forEach((a) => a.classList.toggle('active', a.dataset.tab === view));
  if (view === 'search' && !q.value) runSearch();
  renderAll();
}
window.addEventListener('hashchange', () => S.me && route());

function closeOverlays() {
  $('#info').hidden = true;
  $('#help').hidden = true;
}
$$('[data-close]').forEach((b) => b.addEventListener('click', closeOverlays));
$$('.overlay:not(.lock)').forEach((o) => o.addEventListener('click', (ev) => { if (ev.target === o) closeOverlays(); }));

document.addEventListener('keydown', (ev) => {
  if (!S.me) return;
  const typing = ev.target.matches('input, select, textarea');
  if (ev.key === 'F1') { ev.preventDefault(); $('#help').hidden = !$('#help').hidden; return; }
  if (ev.ctrlKey && (ev.key === 'l' || ev.key === 'L')) { ev.preventDefault(); setLockout(!S.user?.lockout); return; }
  if (ev.ctrlKey && (ev.key === 'f' || ev.key === 'F')) { ev.preventDefault(); q.focus(); q.select(); return; }
  if (ev.key === 'Escape') { closeOverlays(); return; }
  if (typing && ev.target !== q) return;
  if (ev.key === '/' && !(ev.target === q && /(^|\s)path:\S*$/.test(q.value))) {
    ev.preventDefault();
    q.value = '';
    q.focus();
    if (S.view !== 'search') location.hash = '#search';
    runSearch();
    return;
  }
  if (!typing && ev.key.length === 1 && !ev.ctrlKey && !ev.altKey && !ev.metaKey && !ev.target.closest('#entries')) {
    // type anywhere to search
    q.focus();
  }
});

start();
