// A small RTSP 1.0 client for tests and benches: requests and answers on
// one TCP connection, interleaved frames ('$', channel, length) delivered
// to onFrame, and helpers to read RTP and RTCP packets. Written from RFC
// 2326 and RFC 3550, independent of the server's C code.
import net from 'node:net';
import dgram from 'node:dgram';

export class RtspClient {
  /** Every client made and not closed (a test's after() can close them all). */
  static open = new Set();

  constructor(url) {
    RtspClient.open.add(this);
    this.url = url;
    const u = new URL(url);
    this.host = u.hostname;
    this.port = Number(u.port || 554);
    this.cseq = 0;
    this.buf = Buffer.alloc(0);
    this.waiting = [];
    this.onFrame = null;
    this.frames = 0;
    this.closed = false;
  }

  connect() {
    return new Promise((resolve, reject) => {
      this.sock = net.connect(this.port, this.host);
      this.sock.setNoDelay(true);
      this.sock.once('connect', resolve);
      this.sock.once('error', reject);
      this.sock.on('error', () => {});
      this.sock.on('data', (d) => this.#data(d));
      this.sock.on('close', () => {
        this.closed = true;
        for (const w of this.waiting.splice(0)) w.reject(new Error('connection closed'));
      });
    });
  }

  #data(d) {
    this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
    for (;;) {
      if (this.buf.length === 0) return;
      if (this.buf[0] === 0x24) { // '$'
        if (this.buf.length < 4) return;
        const len = this.buf.readUInt16BE(2);
        if (this.buf.length < 4 + len) return;
        const ch = this.buf[1];
        const data = this.buf.subarray(4, 4 + len);
        this.buf = this.buf.subarray(4 + len);
        this.frames++;
        if (this.onFrame) this.onFrame(ch, data);
        continue;
      }
      const end = this.buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = this.buf.subarray(0, end).toString('latin1');
      const lines = head.split('\r\n');
      const headers = {};
      for (const l of lines.slice(1)) {
        const i = l.indexOf(':');
        if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
      }
      const len = Number(headers['content-length'] || 0);
      if (this.buf.length < end + 4 + len) return;
      const body = this.buf.subarray(end + 4, end + 4 + len).toString('latin1');
      this.buf = this.buf.subarray(end + 4 + len);
      const m = /^(\S+) (\d+) ?(.*)$/.exec(lines[0]) || [];
      const w = this.waiting.shift();
      if (w) w.resolve({ version: m[1], status: Number(m[2]), reason: m[3], headers, body, head });
    }
  }

  /** Sends raw bytes and waits for the next answer. */
  raw(bytes) {
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.sock.write(bytes);
    });
  }

  /** method, url (default: the client's), headers object, body. */
  request(method, url = this.url, headers = {}, body = '') {
    let h = `${method} ${url} RTSP/1.0\r\nCSeq: ${++this.cseq}\r\nUser-Agent: imes-tests\r\n`;
    for (const [k, v] of Object.entries(headers)) h += `${k}: ${v}\r\n`;
    if (body) h += `Content-Length: ${Buffer.byteLength(body)}\r\n`;
    return this.raw(h + '\r\n' + body);
  }

  /** DESCRIBE, SETUP (transport), PLAY: returns { sdp, session, transport, play }. */
  async start(transport, { url = this.url } = {}) {
    const d = await this.request('DESCRIBE', url, { Accept: 'application/sdp' });
    if (d.status !== 200) throw new Error(`DESCRIBE ${url}: ${d.status} ${d.reason}`);
    const base = d.headers['content-base'] || `${url}/`;
    const s = await this.request('SETUP', `${base}trackID=0`, { Transport: transport });
    if (s.status !== 200) throw new Error(`SETUP: ${s.status} ${s.reason}`);
    const session = s.headers.session.split(';')[0];
    const p = await this.request('PLAY', base, { Session: session, Range: 'npt=0.000-' });
    if (p.status !== 200) throw new Error(`PLAY: ${p.status} ${p.reason}`);
    return { sdp: d.body, base, session, transport: s.headers.transport, setup: s, play: p };
  }

  close() {
    RtspClient.open.delete(this);
    this.sock?.destroy();
  }

  static closeAll() {
    for (const c of [...RtspClient.open]) c.close();
  }
}

/** Parses an RTP packet (RFC 3550 §5.1): null if it is not one. */
export function parseRtp(b) {
  if (b.length < 12 || b[0] >> 6 !== 2) return null;
  const cc = b[0] & 15;
  let off = 12 + 4 * cc;
  if (b[0] & 0x10) off += 4 + 4 * b.readUInt16BE(off + 2);
  let end = b.length;
  if (b[0] & 0x20) end -= b[b.length - 1];
  return {
    marker: b[1] >> 7, pt: b[1] & 127, seq: b.readUInt16BE(2), ts: b.readUInt32BE(4),
    ssrc: b.readUInt32BE(8), payload: b.subarray(off, end),
  };
}

/** The packets of an RTCP compound: [{ type, count, ssrc, body }]. */
export function parseRtcp(b) {
  const out = [];
  let off = 0;
  while (off + 4 <= b.length) {
    const len = 4 * (b.readUInt16BE(off + 2) + 1);
    if (off + len > b.length) break;
    out.push({ type: b[off + 1], count: b[off] & 31, ssrc: len >= 8 ? b.readUInt32BE(off + 4) : 0,
      body: b.subarray(off, off + len) });
    off += len;
  }
  return out;
}

/** An RTCP RR from ssrc with one report block about `about`. */
export function rtcpRr(ssrc, about, { fraction = 0, lost = 0, highest = 0, jitter = 0, lsr = 0, dlsr = 0 } = {}) {
  const b = Buffer.alloc(32);
  b[0] = 0x81;
  b[1] = 201;
  b.writeUInt16BE(7, 2);
  b.writeUInt32BE(ssrc, 4);
  b.writeUInt32BE(about, 8);
  b.writeUInt32BE(((fraction & 255) << 24 | (lost & 0xffffff)) >>> 0, 12);
  b.writeUInt32BE(highest >>> 0, 16);
  b.writeUInt32BE(jitter >>> 0, 20);
  b.writeUInt32BE(lsr >>> 0, 24);
  b.writeUInt32BE(dlsr >>> 0, 28);
  return b;
}

/** A UDP socket bound on 127.0.0.1 (port 0: any); resolves the socket. */
export function udpSocket(port = 0) {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket('udp4');
    s.once('error', reject);
    s.bind(port, '127.0.0.1', () => resolve(s));
  });
}

/** A pair of UDP sockets on an even port P and P+1. */
export async function udpPair() {
  for (let i = 0; i < 50; i++) {
    const a = await udpSocket();
    const p = a.address().port;
    if (p % 2 === 0) {
      try {
        const b = await udpSocket(p + 1);
        return { rtp: a, rtcp: b, port: p };
      } catch { /* taken: try again */ }
    }
    a.close();
  }
  throw new Error('udpPair: no free even/odd port pair');
}
