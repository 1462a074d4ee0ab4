// The Matriz roster (issue 7): `imes peer add`, imesd's /matriz/join and
// /matriz/stats, and the peer:<name> documents, against a real pouchdb-server
// and imesd. The peers here are plain HTTP clients (node's http module), and
// their "RTSP servers" are small TCP servers that answer OPTIONS, so that
// this test needs nothing of the RTSP/RTP code.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { startCouch, writeConfig, imes, startImesd, couchRequest, waitFor, freePort } from '../lib/harness.mjs';

let couch, cfg, imesd;
const keys = {};

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A TCP server answering every RTSP request with 200 (what imesd's probe needs). */
async function fakeRtsp() {
  const seen = [];
  const server = net.createServer((sock) => {
    let data = '';
    sock.on('data', (d) => {
      data += d;
      const end = data.indexOf('\r\n\r\n');
      if (end < 0) return;
      seen.push(data.slice(0, end));
      const cseq = /CSeq:\s*(\d+)/i.exec(data)?.[1] ?? '0';
      sock.end(`RTSP/1.0 200 OK\r\nCSeq: ${cseq}\r\nPublic: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN\r\n\r\n`);
    });
    sock.on('error', () => {});
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { port: server.address().port, seen, close: () => new Promise((r) => server.close(r)) };
}

/**
 * Opens GET /matriz/join as name:key. Resolves { status, headers, body (for a
 * refusal), events (array, grows), req, res, closed (promise) } once the
 * answer's head is in, and for a 200 once the "joined" event arrived.
 */
function join(name, key, query = '') {
  return new Promise((resolve, reject) => {
    const req = http.get(
      `${imesd.url}/matriz/join${query ? '?' + query : ''}`,
      { headers: { Authorization: 'Basic ' + Buffer.from(`${name}:${key}`).toString('base64') } },
      (res) => {
        const j = { status: res.statusCode, headers: res.headers, body: '', events: [], req, res };
        j.closed = new Promise((r) => res.once('close', r));
        let buf = '';
        res.setEncoding('utf8');
        res.on('data', (d) => {
          if (res.statusCode !== 200) {
            j.body += d;
            return;
          }
          buf += d;
          let i;
          while ((i = buf.indexOf('\n\n')) >= 0) {
            const block = buf.slice(0, i);
            buf = buf.slice(i + 2);
            const ev = /^event: (.*)$/m.exec(block)?.[1];
            const data = /^data: (.*)$/m.exec(block)?.[1];
            j.events.push({ event: ev ?? null, data: data ? JSON.parse(data) : null, raw: block });
            if (ev === 'joined') resolve(j);
          }
        });
        res.on('error', () => {});
        if (res.statusCode !== 200) res.on('end', () => resolve(j));
      },
    );
    req.on('error', reject);
  });
}

async function peerDoc(name) {
  const r = await couchRequest(couch, 'GET', `/imes/${encodeURIComponent('peer:' + name)}`, { user: 'admin' });
  return r.status === 200 ? r.body : null;
}

before(async () => {
  couch = await startCouch();
  cfg = await writeConfig(couch);
  const init = await imes(cfg, ['init']);
  assert.equal(init.code, 0, `imes init: ${init.stderr}`);
  for (const name of ['lisboa', 'porto', 'faro']) {
    const r = await imes(cfg, ['peer', 'add', name]);
    assert.equal(r.code, 0, `imes peer add ${name}: ${r.stderr}`);
    keys[name] = /^key ([0-9a-f]{32})$/m.exec(r.stdout)?.[1];
    assert.ok(keys[name], `no key printed: ${r.stdout}`);
  }
  const u = await imes(cfg, ['user', 'add', 'alice'], { input: 'alice secret\n' });
  assert.equal(u.code, 0, u.stderr);
  imesd = await startImesd(cfg);
});

after(async () => {
  if (imesd) await imesd.stop();
  if (couch) await couch.stop();
});

describe('imes peer add', () => {
  test('makes a user with role matriz_peer, an offline roster entry, and the key works', async () => {
    const u = await couchRequest(couch, 'GET', '/_users/org.couchdb.user:lisboa', { user: 'admin' });
    assert.equal(u.status, 200);
    assert.deepEqual(u.body.roles, ['matriz_peer']);
    const doc = await peerDoc('lisboa');
    assert.equal(doc.type, 'peer');
    assert.equal(doc.online, false);
    const s = await couchRequest(couch, 'GET', '/_session', { user: 'lisboa', password: keys.lisboa });
    assert.equal(s.status, 200);
    assert.equal(s.body.userCtx.name, 'lisboa');
  });

  test('re-adding keeps the key unless --new-key', async () => {
    const again = await imes(cfg, ['peer', 'add', 'lisboa']);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /key kept/);
    assert.doesNotMatch(again.stdout, /^key [0-9a-f]{32}$/m);
    const s = await couchRequest(couch, 'GET', '/_session', { user: 'lisboa', password: keys.lisboa });
    assert.equal(s.body.userCtx.name, 'lisboa');
  });

  test('refuses to turn a person into a peer', async () => {
    const r = await imes(cfg, ['peer', 'add', 'alice']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /not a Matriz peer/);
    const u = await couchRequest(couch, 'GET', '/_users/org.couchdb.user:alice', { user: 'admin' });
    assert.ok(!u.body.roles.includes('matriz_peer'));
  });

  test('a peer reads the roster through _changes but cannot write documents', async () => {
    const feed = await couchRequest(couch, 'GET', '/imes/_changes?filter=imes/peers&include_docs=true', {
      user: 'porto',
      password: keys.porto,
    });
    assert.equal(feed.status, 200, JSON.stringify(feed.body));
    const ids = feed.body.results.map((r) => r.id).sort();
    assert.deepEqual(ids, ['peer:faro', 'peer:lisboa', 'peer:porto']);
    const w = await couchRequest(couch, 'PUT', '/imes/peer:porto', {
      user: 'porto',
      password: keys.porto,
      body: { type: 'peer', online: true },
    });
    assert.ok([401, 403].includes(w.status), `peer wrote its own doc: ${w.status}`);
    const c = await couchRequest(couch, 'PUT', '/imes/channel:x', {
      user: 'porto',
      password: keys.porto,
      body: { type: 'channel' },
    });
    assert.ok([401, 403].includes(c.status), `peer wrote a channel: ${c.status}`);
  });
});

describe('/matriz/join', () => {
  test('joins, checks RTSP, writes the peer online; offline the moment the connection drops', async () => {
    const rtsp = await fakeRtsp();
    const j = await join('lisboa', keys.lisboa, `rtsp_port=${rtsp.port}&codec=opus`);
    assert.equal(j.status, 200, j.body);
    assert.match(j.headers['content-type'], /text\/event-stream/);
    const ev = j.events.find((e) => e.event === 'joined').data;
    assert.equal(ev.name, 'lisboa');
    assert.equal(ev.reachable, true);
    assert.equal(ev.rtsp_url, `rtsp://127.0.0.1:${rtsp.port}/stream`);
    assert.match(rtsp.seen[0], new RegExp(`^OPTIONS rtsp://127\\.0\\.0\\.1:${rtsp.port}/stream RTSP/1\\.0`));
    const doc = await waitFor(async () => {
      const d = await peerDoc('lisboa');
      return d?.online === true ? d : null;
    }, { timeout: 3000, what: 'peer:lisboa online' });
    assert.equal(doc.reachable, true);
    assert.equal(doc.address, '127.0.0.1');
    assert.equal(doc.codec, 'opus');
    assert.equal(doc.rtsp_url, ev.rtsp_url);
    assert.equal(doc.session, ev.session);
    assert.ok(doc.since && doc.updated);

    const t0 = Date.now();
    j.req.destroy();
    await waitFor(async () => (await peerDoc('lisboa'))?.online === false, {
      timeout: 1000,
      interval: 20,
      what: 'peer:lisboa offline within 1 s',
    });
    const off = await peerDoc('lisboa');
    assert.equal(off.session, null);
    assert.ok(Date.now() - t0 < 1000);
    await rtsp.close();
  });

  test('a second peer of the same name is refused (409) and the first keeps its place', async () => {
    const rtsp = await fakeRtsp();
    const first = await join('porto', keys.porto, `rtsp_port=${rtsp.port}`);
    assert.equal(first.status, 200);
    const session = first.events[0].data.session;
    const second = await join('porto', keys.porto, `rtsp_port=${rtsp.port}`);
    assert.equal(second.status, 409, second.body);
    assert.match(second.body, /joined already/);
    await sleep(300);
    const doc = await peerDoc('porto');
    assert.equal(doc.online, true);
    assert.equal(doc.session, session);
    assert.ok(!first.res.destroyed, 'the first connection was cut');
    first.req.destroy();
    await waitFor(async () => (await peerDoc('porto'))?.online === false, { timeout: 2000, what: 'porto offline' });
    // Gone: the name is free again, with a new session.
    const again = await join('porto', keys.porto, `rtsp_port=${rtsp.port}`);
    assert.equal(again.status, 200);
    assert.notEqual(again.events[0].data.session, session);
    again.req.destroy();
    await rtsp.close();
  });

  test('a wrong key is 401, no credentials 401, a person 403, a bad query 400', async () => {
    const wrong = await join('faro', '0'.repeat(32));
    assert.equal(wrong.status, 401);
    assert.match(wrong.headers['www-authenticate'] ?? '', /Basic/);
    const person = await join('alice', 'alice secret');
    assert.equal(person.status, 403);
    const none = await new Promise((resolve) => http.get(`${imesd.url}/matriz/join`, resolve));
    assert.equal(none.statusCode, 401);
    none.resume();
    const bad = await join('faro', keys.faro, 'rtsp_port=99999');
    assert.equal(bad.status, 400);
    assert.match(bad.body, /rtsp_port/);
    const codec = await join('faro', keys.faro, 'codec=mp3');
    assert.equal(codec.status, 400);
    assert.equal((await peerDoc('faro')).online, false);
  });

  test('a peer whose RTSP port does not answer joins as unreachable', async () => {
    const port = await freePort(); // nobody listens there
    const j = await join('faro', keys.faro, `rtsp_port=${port}&host=faro.example.org`);
    assert.equal(j.status, 200);
    const ev = j.events[0].data;
    assert.equal(ev.reachable, false);
    assert.equal(ev.rtsp_url, `rtsp://faro.example.org:${port}/stream`);
    const doc = await waitFor(async () => {
      const d = await peerDoc('faro');
      return d?.online ? d : null;
    }, { what: 'faro online' });
    assert.equal(doc.reachable, false);
    j.req.destroy();
    await waitFor(async () => (await peerDoc('faro'))?.online === false, { what: 'faro offline' });
  });

  test('stats posted by a joined peer land in its document (throttled)', async () => {
    const rtsp = await fakeRtsp();
    const j = await join('lisboa', keys.lisboa, `rtsp_port=${rtsp.port}`);
    assert.equal(j.status, 200);
    const post = (body, key = keys.lisboa) =>
      fetch(`${imesd.url}/matriz/stats`, {
        method: 'POST',
        headers: {
          Authorization: 'Basic ' + Buffer.from(`lisboa:${key}`).toString('base64'),
          'Content-Type': 'application/json',
        },
        body: JSON.stringify(body),
      });
    let r = await post({ links: { porto: { rtt_ms: 12.5, loss: 0.01 } } });
    assert.equal(r.status, 204);
    r = await post({ links: { porto: { rtt_ms: 13, loss: 0.02 } } });
    assert.equal(r.status, 204);
    const doc = await waitFor(async () => {
      const d = await peerDoc('lisboa');
      return d?.stats?.links?.porto?.rtt_ms === 13 ? d : null;
    }, { timeout: 5000, what: 'the latest stats in peer:lisboa' });
    assert.equal(doc.online, true);
    assert.equal((await post({ x: 1 }, '1'.repeat(32))).status, 401);
    assert.equal((await post([1, 2])).status, 400);
    j.req.destroy();
    await waitFor(async () => (await peerDoc('lisboa'))?.online === false, { what: 'lisboa offline' });
    assert.equal((await peerDoc('lisboa')).stats, null);
    assert.equal((await post({ x: 1 })).status, 409);
    await rtsp.close();
  });

  test('peers online when imesd was killed are offline after it restarts', async () => {
    const rtsp = await fakeRtsp();
    const j = await join('faro', keys.faro, `rtsp_port=${rtsp.port}`);
    assert.equal(j.status, 200);
    await waitFor(async () => (await peerDoc('faro'))?.online === true, { what: 'faro online' });
    imesd.kill();
    await imesd.exited;
    await j.closed;
    assert.equal((await peerDoc('faro')).online, true, 'nobody wrote it offline (imesd was killed)');
    imesd = await startImesd(cfg);
    await waitFor(async () => (await peerDoc('faro'))?.online === false, {
      timeout: 5000,
      what: 'faro offline after the restart',
    });
    // and it can join again
    const again = await join('faro', keys.faro, `rtsp_port=${rtsp.port}`);
    assert.equal(again.status, 200);
    await waitFor(async () => (await peerDoc('faro'))?.online === true, { what: 'faro online again' });
    again.req.destroy();
    await rtsp.close();
  });

  test('/metrics counts joins', async () => {
    const m = await (await fetch(`${imesd.url}/metrics`)).text();
    assert.match(m, /^imes_matriz_peers_online \d+$/m);
    assert.match(m, /^imes_matriz_joins_total\{result="ok"\} \d+$/m);
  });
});
