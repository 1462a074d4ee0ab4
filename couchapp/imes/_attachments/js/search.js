// The library search: the original IMES query syntax over the `search` view
// (couchapp/imes/views/search/map.js: [field, term] keys, value [artist,
// album, disc, track]).
//
//   words            every word must start a word of artist, album or title
//   artist:be        a word of the artist (or album artist) starting with "be"
//   album: title: genre:                      the same for those tags
//   artist2:"The Sine Waves"                  the whole tag, exactly
//   album2: title2: genre2: albumartist2:
//   path:/music/Jazz                          files under that folder
//   date:1975  date:1970~1979                 as tagged; ~ makes a range
//   mbid:0d5e...                              any MusicBrainz id of the file
// Terms combine with AND. Quotes keep spaces inside a value.
//
// Each term is one view range request (all at once). A term matching more
// than BROAD rows is not fetched whole: the narrower terms decide which
// files, and the broad ones are checked on those files' documents.

export const BROAD = 500;

export function fold(s) {
  s = String(s).toLowerCase().normalize('NFD').replace(/[\u0300-\u036f]/g, '');
  return s.replace(/\u00df/g, 'ss').replace(/\u00e6/g, 'ae').replace(/\u0153/g, 'oe')
    .replace(/\u00f8/g, 'o').replace(/\u0142/g, 'l').replace(/\u0111/g, 'd');
}

// As the view splits tags into words.
export function words(s) {
  return fold(s).replace(/['\u2019]/g, '')
    .split(/[\s\-\u2010-\u2015_.,;:!?"'\u2018\u2019\u201c\u201d()[\]{}/\\&+*#@~`|<>=]+/)
    .filter((w) => w.length > 0);
}

const PREFIX_FIELDS = ['artist', 'album', 'title', 'genre'];
const EXACT_FIELDS = ['artist2', 'album2', 'title2', 'genre2', 'albumartist2'];

function tokens(q) {
  const out = [];
  const re = /(\S+?:)?("([^"]*)"?|\S+)/g;
  let m;
  while ((m = re.exec(q))) {
    const field = m[1] ? m[1].slice(0, -1).toLowerCase() : '';
    const value = m[3] !== undefined ? m[3] : m[2];
    out.push({ field, value });
  }
  return out;
}

/** Parses a query into terms: {field, lo, hi, exact, test(doc)}. */
export function parse(q) {
  const terms = [];
  for (const { field, value } of tokens(q)) {
    if (!value) continue;
    if (PREFIX_FIELDS.includes(field) || field === '' || field === 'any') {
      const f = field || 'any';
      for (const w of words(value)) terms.push({ field: f, lo: w, hi: w + '\ufff0', word: w });
    } else if (EXACT_FIELDS.includes(field)) {
      terms.push({ field, lo: value, hi: value, exactValue: value });
    } else if (field === 'path') {
      const v = value.replace(/\/+$/, '');
      terms.push({ field, lo: v, hi: v + '\ufff0', pathPrefix: v });
    } else if (field === 'date') {
      const [a, b] = value.split('~');
      const lo = a || '', hi = (b === undefined ? a : b) || '\ufff0';
      terms.push({ field, lo, hi: hi + '\ufff0', dateLo: lo, dateHi: hi });
    } else if (field === 'mbid') {
      terms.push({ field, lo: value.toLowerCase(), hi: value.toLowerCase(), exactValue: value.toLowerCase() });
    } else {
      // an unknown field: the whole token as words
      for (const w of words(`${field} ${value}`)) terms.push({ field: 'any', lo: w, hi: w + '\ufff0', word: w });
    }
  }
  return terms;
}

const list = (v) => (v === undefined || v === null ? [] : Array.isArray(v) ? v : [v]);

/** Whether a search view row's value satisfies a term: true, false, or
 * null when the value cannot tell (see the view: value[7]). */
export function valueMatches(term, v) {
  if (!Array.isArray(v) || v.length < 8) return null;
  if (term.field === 'path' || term.field === 'mbid') return null;
  const ws = (x) => words(x);
  let r;
  switch (term.field) {
    case 'any': r = [v[0], v[1], v[4]].flatMap(ws).some((w) => w.startsWith(term.word)); break;
    case 'artist': r = ws(v[0]).some((w) => w.startsWith(term.word)); break;
    case 'album': r = ws(v[1]).some((w) => w.startsWith(term.word)); break;
    case 'title': r = ws(v[4]).some((w) => w.startsWith(term.word)); break;
    case 'genre': r = ws(v[5]).some((w) => w.startsWith(term.word)); break;
    case 'date': r = v[6] >= term.dateLo && v[6] <= term.dateHi + '\ufff0'; break;
    case 'album2': r = v[1] === term.exactValue; break;
    case 'title2': r = v[4] === term.exactValue; break;
    case 'genre2': r = v[5] === term.exactValue; break;
    default: return null; // artist2, albumartist2: the value holds one of them
  }
  // a value without every tag can say yes, not no
  return r || !v[7] ? r : null;
}

/** Whether a file document satisfies a term (the view's logic, in JS). */
export function matches(term, doc) {
  const t = doc.tags || {};
  const tagWords = (keys) => keys.flatMap((k) => list(t[k]).flatMap(words));
  switch (term.field) {
    case 'any': return tagWords(['artist', 'albumartist', 'album', 'title']).some((w) => w.startsWith(term.word));
    case 'artist': return tagWords(['artist', 'albumartist']).some((w) => w.startsWith(term.word));
    case 'album': case 'title': case 'genre': return tagWords([term.field]).some((w) => w.startsWith(term.word));
    case 'path': return typeof doc.folder === 'string' && doc.folder.startsWith(term.pathPrefix);
    case 'date': return list(t.date).some((d) => String(d) >= term.dateLo && String(d) <= term.dateHi + '\ufff0');
    case 'mbid': return Object.keys(t).some((k) => k.startsWith('musicbrainz_') && list(t[k]).some((v) => String(v).toLowerCase() === term.exactValue));
    default: return list(t[term.field.slice(0, -1)]).some((v) => String(v) === term.exactValue);
  }
}

/**
 * Runs a query. get(url) resolves parsed JSON; getDocs(ids) resolves
 * {id: doc}. Returns {rows: [{id, value}] in album/disc/track order,
 * broad: whether a broad term could only be checked on fewer files}.
 */
export async function run(q, { db, get, getDocs, limit = 400 }) {
  const terms = parse(q);
  if (terms.length === 0) return { rows: [], terms };
  const view = `${db}/_design/imes/_view/search`;
  const results = await Promise.all(terms.map(async (term) => {
    const sk = encodeURIComponent(JSON.stringify([term.field, term.lo]));
    const ek = encodeURIComponent(JSON.stringify([term.field, term.hi]));
    const r = await get(`${view}?startkey=${sk}&endkey=${ek}&limit=${BROAD + 1}`);
    return { term, rows: r.rows, broad: r.rows.length > BROAD };
  }));
  const narrow = results.filter((r) => !r.broad).sort((a, b) => a.rows.length - b.rows.length);
  const broad = results.filter((r) => r.broad).sort((a, b) => a.rows.length - b.rows.length);
  let cand; // id -> value
  let truncatedBroad = false;
  if (narrow.length) {
    cand = new Map(narrow[0].rows.map((r) => [r.id, r.value]));
    for (const r of narrow.slice(1)) {
      const ids = new Set(r.rows.map((x) => x.id));
      for (const id of cand.keys()) if (!ids.has(id)) cand.delete(id);
    }
  } else {
    // only broad terms: the first rows of one of them (in its key order),
    // checked against the others
    cand = new Map(broad.shift().rows.map((r) => [r.id, r.value]));
    truncatedBroad = true;
  }
  let rows = [...cand].map(([id, value]) => ({ id, value }));
  rows.sort(byAlbum);
  let truncated = false;
  if (broad.length) {
    // check the broad terms on the rows' values, and on documents where
    // a value cannot tell, a page at a time, until enough for the first
    // screen (the answer is then marked truncated)
    const kept = [];
    const PAGE = 250, want = Math.min(limit, 120);
    for (let i = 0; i < rows.length && kept.length < want; i += PAGE) {
      const page = rows.slice(i, i + PAGE);
      const unsure = [];
      for (const r of page) {
        const verdicts = broad.map((b) => valueMatches(b.term, r.value));
        if (verdicts.includes(false)) continue;
        if (verdicts.includes(null)) unsure.push(r);
        else kept.push(r);
      }
      if (unsure.length) {
        const docs = await getDocs(unsure.map((r) => r.id));
        for (const r of unsure) {
          const d = docs[r.id];
          if (d && broad.every((b) => matches(b.term, d))) kept.push(r);
        }
      }
    }
    kept.sort(byAlbum);
    if (kept.length >= want && rows.length > kept.length) truncatedBroad = true;
    rows = kept;
  }
  truncated = truncatedBroad;
  if (rows.length > limit) {
    rows = rows.slice(0, limit);
    truncated = true;
  }
  return { rows, terms, truncated };
}

const collator = new Intl.Collator(undefined, { sensitivity: 'base', numeric: true });
export function byAlbum(a, b) {
  const x = a.value, y = b.value;
  return collator.compare(x[0], y[0]) || collator.compare(x[1], y[1]) || (x[2] - y[2]) || (x[3] - y[3]) ||
    (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}
