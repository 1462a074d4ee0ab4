// CouchDB from the page: same origin (the app is an attachment of the design
// document), the session cookie, JSON both ways. Only requests CouchDB 3 and
// pouchdb-server both answer alike (shared/COUCHDB-NOTES.md); documents that
// may be missing are read through _all_docs, which answers 200 either way
// (a 404 would be a console error).

export const DB = location.pathname.split('/_design/')[0]; // "/imes"

export class CouchError extends Error {
  constructor(status, body) {
    super(`${status} ${body?.error ?? ''}: ${body?.reason ?? ''}`);
    this.status = status;
    this.error = body?.error;
    this.reason = body?.reason;
  }
}

export async function req(method, url, body, { signal } = {}) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(url, {
    method, headers, credentials: 'same-origin', signal,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { json = { reason: text }; }
  if (!res.ok) throw new CouchError(res.status, json);
  return json;
}

export const get = (url, opts) => req('GET', url, undefined, opts);

export const docUrl = (id, db = DB) => `${db}/${encodeURIComponent(id)}`;

/** {id: doc} for the ids that exist (deleted and missing left out). */
export async function getDocs(ids, db = DB) {
  if (!ids.length) return {};
  const r = await req('POST', `${db}/_all_docs?include_docs=true`, { keys: ids });
  const out = {};
  for (const row of r.rows) if (row.doc) out[row.id] = row.doc;
  return out;
}

export async function getDoc(id, db = DB) {
  return (await getDocs([id], db))[id] ?? null;
}

/** Every document whose id starts with prefix. */
export async function prefixDocs(prefix, db = DB) {
  const sk = encodeURIComponent(JSON.stringify(prefix));
  const ek = encodeURIComponent(JSON.stringify(prefix + '\ufff0'));
  const r = await get(`${db}/_all_docs?include_docs=true&startkey=${sk}&endkey=${ek}`);
  return r.rows.map((x) => x.doc).filter(Boolean);
}

export async function put(doc, db = DB) {
  const r = await req('PUT', docUrl(doc._id, db), doc);
  doc._rev = r.rev;
  return doc;
}

/** Read-modify-write: edit(doc) changes the doc (a new one is {_id});
 * retried on a conflict. */
export async function update(id, edit, db = DB) {
  for (let i = 0; ; i++) {
    const cur = (await getDoc(id, db)) ?? { _id: id };
    const next = structuredClone(cur);
    if (edit(next) === false) return cur;
    try {
      return await put(next, db);
    } catch (e) {
      if (e.status !== 409 || i >= 5) throw e;
    }
  }
}

export async function remove(doc, db = DB) {
  return req('DELETE', `${docUrl(doc._id, db)}?rev=${encodeURIComponent(doc._rev)}`);
}

export async function bulk(docs, db = DB) {
  const r = await req('POST', `${db}/_bulk_docs`, { docs });
  const failed = r.filter((x) => x.error);
  if (failed.length) throw new CouchError(403, { error: failed[0].error, reason: failed[0].reason });
  return r;
}

export const session = () => get('/_session');
export const login = (name, password) => req('POST', '/_session', { name, password });
export const logout = () => req('DELETE', '/_session');

/**
 * Follows _changes (longpoll: pouchdb-server ignores its timeout, so a
 * request may wait for the next change however long) from now on and calls
 * onChange(doc-or-{_id,_deleted}) for each. Returns stop().
 */
export function follow(onChange, onError) {
  const ctl = new AbortController();
  let stopped = false;
  (async () => {
    let since = 'now';
    let backoff = 500;
    while (!stopped) {
      try {
        const r = await get(`${DB}/_changes?feed=longpoll&include_docs=true&heartbeat=10000&limit=1000&since=${encodeURIComponent(typeof since === 'string' ? since : JSON.stringify(since))}`, { signal: ctl.signal });
        since = r.last_seq;
        backoff = 500;
        for (const c of r.results) onChange(c.doc ?? { _id: c.id, _deleted: true }, c);
      } catch (e) {
        if (stopped) return;
        onError?.(e);
        await new Promise((res) => setTimeout(res, backoff));
        backoff = Math.min(backoff * 2, 10000);
      }
    }
  })();
  return () => { stopped = true; ctl.abort(); };
}
