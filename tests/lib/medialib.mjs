// Builds a test music library at test time and returns its manifest: what
// every file must produce in its `file:` document (DESIGN.md, scanner.c
// read_one). node 18+, no npm dependencies; needs ffmpeg and mpcenc.
//
// Audio comes from ffmpeg (a distinct sine tone per file, a few seconds) with
// no tags at all (-map_metadata -1, bitexact); the tags are then written here
// byte by byte, the way taggers write them, so what a file holds is exactly
// what the manifest says and nothing ffmpeg adds or leaves out gets in the way:
//   ID3v2.4 (UTF-8 text, multi-values NUL-separated, TXXX, UFID, APIC), ID3v1,
//   FLAC metadata blocks (VORBIS_COMMENT, PICTURE), Ogg Vorbis/Opus comment
//   headers (re-paged, CRCs recomputed), MP4 ilst atoms (text, trkn, disk,
//   covr, ---- freeform), APEv2 (Musepack). WMA (ASF) tags are ffmpeg's own
//   ASF attributes, which are what Windows writes.
//
// Usage:
//   const lib = await buildLibrary(dir);        // dir/... files, about 1 s
//   lib.entries: [{ rel, path, expect: { container, codec, duration, durationTol,
//                   rate, channels, bits_per_sample, bitrate: [lo, hi], tags,
//                   replaygain, pictures, warnings } | { error: true } }]
//   lib.pictures: { 'picture:<sha1>': { mime, width, height, bytes } }
// Also exported: encodeTone (one tagged file of any format, for the inotify
// tests), id3v23Tag (the benchmark's tags), pictureId, and the tag writers.
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

// ---------------------------------------------------------------- processes

function run(cmd, args, { cwd } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
    const err = [];
    child.stderr.on('data', (d) => err.push(d));
    child.once('error', reject);
    child.once('close', (code, signal) => {
      if (code === 0) resolve();
      else reject(new Error(`${cmd} ${args.join(' ')} failed (${signal ?? code}): ${Buffer.concat(err)}`));
    });
  });
}

/** Runs the async functions in tasks with at most `limit` at a time. */
export async function pool(tasks, limit = 2) {
  const results = new Array(tasks.length);
  let next = 0;
  async function worker() {
    while (next < tasks.length) {
      const i = next++;
      results[i] = await tasks[i]();
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, tasks.length) }, worker));
  return results;
}

const FFMPEG_COMMON = ['-v', 'error', '-nostdin', '-y'];
const BITEXACT = ['-fflags', '+bitexact', '-flags:a', '+bitexact', '-map_metadata', '-1'];

// Per format: container/codec the scanner must report, ffmpeg arguments.
const FORMATS = {
  mp3: { container: 'mp3', codec: 'mp3', ext: 'mp3', args: (o) => ['-c:a', 'libmp3lame', '-b:a', `${o.kbps ?? 128}k`, '-id3v2_version', '0', '-write_xing', '1', '-f', 'mp3'], lossless: false },
  flac: { container: 'flac', codec: 'flac', ext: 'flac', args: (o) => ['-c:a', 'flac', ...(o.bits === 24 ? ['-sample_fmt', 's32', '-bits_per_raw_sample', '24'] : ['-sample_fmt', 's16']), '-f', 'flac'], lossless: true },
  vorbis: { container: 'ogg', codec: 'vorbis', ext: 'ogg', args: () => ['-c:a', 'libvorbis', '-q:a', '3', '-f', 'ogg'], lossless: false },
  opus: { container: 'ogg', codec: 'opus', ext: 'opus', args: (o) => ['-c:a', 'libopus', '-b:a', `${o.kbps ?? 96}k`, '-f', 'ogg'], lossless: false },
  aac: { container: 'mp4', codec: 'aac', ext: 'm4a', args: (o) => ['-c:a', 'aac', '-b:a', `${o.kbps ?? 128}k`, '-f', 'ipod'], lossless: false },
  alac: { container: 'mp4', codec: 'alac', ext: 'm4a', args: () => ['-c:a', 'alac', '-sample_fmt', 's16p', '-f', 'ipod'], lossless: true },
  wma: { container: 'asf', codec: 'wma', ext: 'wma', args: (o) => ['-c:a', 'wmav2', '-b:a', `${o.kbps ?? 128}k`, '-f', 'asf'], lossless: false },
  mpc: { container: 'mpc', codec: 'musepack', ext: 'mpc', lossless: false },
};

// How far the reported duration may be from the tone's length, by format:
// exact sample counts (FLAC, ALAC, Musepack SV8, Ogg granules) vs. frame
// padding that a decoder may or may not trim (LAME tag, AAC priming, ASF).
const DURATION_TOL = { mp3: 0.06, flac: 0.002, vorbis: 0.01, opus: 0.01, aac: 0.05, alac: 0.01, wma: 0.1, mpc: 0.03 };

/** The tagless audio of a tone: sine of freq Hz, seconds long. */
async function encodeAudio(out, format, { freq = 440, seconds = 3, rate = 44100, channels = 2, kbps, bits, noise = false } = {}) {
  const src = noise
    ? `anoisesrc=color=white:sample_rate=${rate}:duration=${seconds}:amplitude=0.5:seed=${freq}`
    : `sine=frequency=${freq}:sample_rate=${rate}:duration=${seconds}`;
  const input = ['-f', 'lavfi', '-i', src, '-ac', String(channels)];
  if (format === 'mpc') {
    const wav = out + '.wav';
    await run('ffmpeg', [...FFMPEG_COMMON, ...input, ...BITEXACT, '-c:a', 'pcm_s16le', '-f', 'wav', wav]);
    try {
      await run('mpcenc', ['--silent', '--overwrite', '--quality', '4', wav, out]);
    } finally {
      fs.rmSync(wav, { force: true });
    }
    return;
  }
  const f = FORMATS[format];
  await run('ffmpeg', [...FFMPEG_COMMON, ...input, ...BITEXACT, ...f.args({ kbps, bits }), out]);
}

// ---------------------------------------------------------------- pictures

export function sha1(buf) {
  return crypto.createHash('sha1').update(buf).digest('hex');
}

/** The picture document id of these image bytes. */
export function pictureId(buf) {
  return `picture:${sha1(buf)}`;
}

/** Writes test images (distinct content each) with one ffmpeg call. specs:
 * [{ file, width, height }] (the extension picks JPEG or PNG). */
async function makeImages(specs) {
  const n = specs.length;
  const labels = specs.map((_, i) => `[v${i}]`);
  // One moving test pattern, each output a different frame and size: distinct bytes.
  const chains = specs.map((s, i) => `[s${i}]trim=start_frame=${i * 7}:end_frame=${i * 7 + 1},scale=${s.width}:${s.height},setsar=1[v${i}]`);
  const filter = `[0]split=${n}${specs.map((_, i) => `[s${i}]`).join('')};${chains.join(';')}`;
  const args = [...FFMPEG_COMMON, '-f', 'lavfi', '-i', 'testsrc2=size=640x480:rate=25:duration=3', '-filter_complex', filter];
  specs.forEach((s, i) => {
    args.push('-map', labels[i], '-frames:v', '1', '-fflags', '+bitexact', '-flags:v', '+bitexact');
    if (s.file.endsWith('.png')) args.push('-c:v', 'png', '-f', 'image2');
    else args.push('-c:v', 'mjpeg', '-q:v', '4', '-pix_fmt', 'yuvj420p', '-f', 'image2');
    args.push(s.file);
  });
  await run('ffmpeg', args);
}

// ---------------------------------------------------------------- ID3

function syncsafe(n) {
  return Buffer.from([(n >> 21) & 0x7f, (n >> 14) & 0x7f, (n >> 7) & 0x7f, n & 0x7f]);
}

function u32be(n) {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}

function u32le(n) {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b;
}

function id3Frame(version, id, body) {
  const size = version === 4 ? syncsafe(body.length) : u32be(body.length);
  return Buffer.concat([Buffer.from(id, 'latin1'), size, Buffer.alloc(2), body]);
}

/**
 * An ID3v2.4 tag (UTF-8 text). frames: [{ id: 'TIT2', values: [...] } |
 * { id: 'TXXX', desc, values: [...] } | { id: 'UFID', owner, data } |
 * { id: 'APIC', mime, type, desc, data }]. Multiple values of a text frame
 * are separated by NUL as ID3v2.4 says.
 */
export function id3v24Tag(frames, padding = 256) {
  const parts = [];
  for (const f of frames) {
    let body;
    if (f.id === 'TXXX')
      body = Buffer.concat([Buffer.from([3]), Buffer.from(`${f.desc}\0${f.values.join('\0')}`, 'utf8')]);
    else if (f.id === 'UFID') body = Buffer.concat([Buffer.from(`${f.owner}\0`, 'latin1'), Buffer.from(f.data, 'latin1')]);
    else if (f.id === 'APIC')
      body = Buffer.concat([
        Buffer.from([3]), Buffer.from(`${f.mime}\0`, 'latin1'), Buffer.from([f.type ?? 3]),
        Buffer.from(`${f.desc ?? ''}\0`, 'utf8'), f.data,
      ]);
    else body = Buffer.concat([Buffer.from([3]), Buffer.from(f.values.join('\0'), 'utf8')]);
    parts.push(id3Frame(4, f.id, body));
  }
  const frames_ = Buffer.concat([...parts, Buffer.alloc(padding)]);
  return Buffer.concat([Buffer.from('ID3'), Buffer.from([4, 0, 0]), syncsafe(frames_.length), frames_]);
}

/**
 * An ID3v2.3 tag of text frames (ISO-8859-1 when the text allows, else
 * UTF-16 with BOM), as most taggers of the 2000s wrote: { TIT2: 'x', ... }.
 */
export function id3v23Tag(text, padding = 0) {
  const parts = [];
  for (const [id, value] of Object.entries(text)) {
    const latin = /^[\x00-\xff]*$/.test(value);
    const body = latin
      ? Buffer.concat([Buffer.from([0]), Buffer.from(value, 'latin1')])
      : Buffer.concat([Buffer.from([1, 0xff, 0xfe]), Buffer.from(value, 'utf16le')]);
    parts.push(id3Frame(3, id, body));
  }
  const frames = Buffer.concat([...parts, Buffer.alloc(padding)]);
  return Buffer.concat([Buffer.from('ID3'), Buffer.from([3, 0, 0]), syncsafe(frames.length), frames]);
}

/** A 128-byte ID3v1.1 tag (Latin-1). */
export function id3v1Tag({ title = '', artist = '', album = '', year = '', comment = '', track = 0, genre = 255 }) {
  const field = (s, n) => {
    const b = Buffer.alloc(n);
    Buffer.from(s, 'latin1').copy(b, 0, 0, n);
    return b;
  };
  return Buffer.concat([
    Buffer.from('TAG'), field(title, 30), field(artist, 30), field(album, 30), field(year, 4),
    field(comment, 28), Buffer.from([0, track, genre]),
  ]);
}

// ---------------------------------------------------------------- FLAC

function flacBlock(type, body, last) {
  const h = Buffer.alloc(4);
  h[0] = (last ? 0x80 : 0) | type;
  h.writeUIntBE(body.length, 1, 3);
  return Buffer.concat([h, body]);
}

/** Vorbis comment body: vendor, then KEY=value list (also Ogg's, without framing). */
function vorbisCommentBody(comments, vendor = 'imes test library') {
  const parts = [u32le(Buffer.byteLength(vendor)), Buffer.from(vendor), u32le(comments.length)];
  for (const c of comments) {
    const b = Buffer.from(c, 'utf8');
    parts.push(u32le(b.length), b);
  }
  return Buffer.concat(parts);
}

/** A FLAC PICTURE block body. */
export function flacPicture({ type = 3, mime, desc = '', width, height, depth = 24, data }) {
  const m = Buffer.from(mime, 'latin1');
  const d = Buffer.from(desc, 'utf8');
  return Buffer.concat([
    u32be(type), u32be(m.length), m, u32be(d.length), d, u32be(width), u32be(height), u32be(depth),
    u32be(0), u32be(data.length), data,
  ]);
}

/** Replaces the metadata of a FLAC file: keeps STREAMINFO and SEEKTABLE,
 * writes these comments ("KEY=value") and pictures, then padding. */
export function flacSetMetadata(buf, comments, pictures = [], padding = 1024) {
  if (buf.toString('latin1', 0, 4) !== 'fLaC') throw new Error('not a FLAC file');
  let off = 4;
  const keep = [];
  for (;;) {
    const last = buf[off] & 0x80;
    const type = buf[off] & 0x7f;
    const len = buf.readUIntBE(off + 1, 3);
    if (type === 0 || type === 3) keep.push({ type, body: buf.subarray(off + 4, off + 4 + len) });
    off += 4 + len;
    if (last) break;
  }
  const blocks = [...keep, { type: 4, body: vorbisCommentBody(comments) }];
  for (const p of pictures) blocks.push({ type: 6, body: flacPicture(p) });
  blocks.push({ type: 1, body: Buffer.alloc(padding) });
  return Buffer.concat([
    Buffer.from('fLaC'),
    ...blocks.map((b, i) => flacBlock(b.type, b.body, i === blocks.length - 1)),
    buf.subarray(off),
  ]);
}

// ---------------------------------------------------------------- Ogg

const OGG_CRC = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let r = i << 24;
    for (let j = 0; j < 8; j++) r = r & 0x80000000 ? (r << 1) ^ 0x04c11db7 : r << 1;
    t[i] = r >>> 0;
  }
  return t;
})();

function oggCrc(buf) {
  let crc = 0;
  for (let i = 0; i < buf.length; i++) crc = ((crc << 8) ^ OGG_CRC[((crc >>> 24) ^ buf[i]) & 0xff]) >>> 0;
  return crc >>> 0;
}

function parseOggPages(buf) {
  const pages = [];
  let off = 0;
  while (off < buf.length) {
    if (buf.toString('latin1', off, off + 4) !== 'OggS') throw new Error(`no Ogg page at ${off}`);
    const nseg = buf[off + 26];
    const lacing = buf.subarray(off + 27, off + 27 + nseg);
    const bodyLen = lacing.reduce((a, b) => a + b, 0);
    const hlen = 27 + nseg;
    pages.push({
      flags: buf[off + 5], granule: buf.readBigInt64LE(off + 6), serial: buf.readUInt32LE(off + 14),
      seq: buf.readUInt32LE(off + 18), lacing: [...lacing], body: buf.subarray(off + hlen, off + hlen + bodyLen),
    });
    off += hlen + bodyLen;
  }
  return pages;
}

function oggPage({ flags, granule, serial, seq, lacing, body }) {
  const h = Buffer.alloc(27 + lacing.length);
  h.write('OggS', 0, 'latin1');
  h[4] = 0;
  h[5] = flags;
  h.writeBigInt64LE(BigInt(granule), 6);
  h.writeUInt32LE(serial, 14);
  h.writeUInt32LE(seq, 18);
  h[26] = lacing.length;
  Buffer.from(lacing).copy(h, 27);
  const page = Buffer.concat([h, body]);
  page.writeUInt32LE(oggCrc(page), 22);
  return page;
}

/** Packets -> pages (granule 0, header pages), at most 255 segments each. */
function pagesForPackets(packets, serial, seq0) {
  const out = [];
  let lacing = [];
  let body = [];
  let seq = seq0;
  let continued = false;
  const flush = (nextContinued) => {
    out.push(oggPage({ flags: continued ? 1 : 0, granule: 0n, serial, seq: seq++, lacing, body: Buffer.concat(body) }));
    lacing = [];
    body = [];
    continued = nextContinued;
  };
  for (const p of packets) {
    let rest = p.length;
    let pos = 0;
    for (;;) {
      if (lacing.length === 255) flush(true);
      const n = Math.min(255, rest);
      lacing.push(n);
      body.push(p.subarray(pos, pos + n));
      pos += n;
      rest -= n;
      if (n < 255) break;
    }
    flush(false); // a header packet ends its page (Vorbis I spec, Opus RFC 7845)
  }
  return { pages: out, seq };
}

/** Replaces the comment header of an Ogg Vorbis or Opus file. */
export function oggSetComments(buf, comments) {
  const pages = parseOggPages(buf);
  const isOpus = pages[0].body.toString('latin1', 0, 8) === 'OpusHead';
  const nHeaders = isOpus ? 2 : 3;
  // Reassemble the header packets and find the first audio page.
  const packets = [];
  let cur = [];
  let i = 0;
  for (; i < pages.length && packets.length < nHeaders; i++) {
    let pos = 0;
    for (const l of pages[i].lacing) {
      cur.push(pages[i].body.subarray(pos, pos + l));
      pos += l;
      if (l < 255) {
        packets.push(Buffer.concat(cur));
        cur = [];
      }
    }
  }
  if (packets.length !== nHeaders || cur.length) throw new Error('Ogg headers do not end on a page boundary');
  const body = vorbisCommentBody(comments);
  packets[1] = isOpus
    ? Buffer.concat([Buffer.from('OpusTags'), body])
    : Buffer.concat([Buffer.from([3]), Buffer.from('vorbis'), body, Buffer.from([1])]);
  const serial = pages[0].serial;
  const first = oggPage({ ...pages[0], seq: 0 });
  const { pages: hdr, seq } = pagesForPackets(packets.slice(1), serial, 1);
  const rest = pages.slice(i).map((p, k) => oggPage({ ...p, seq: seq + k }));
  return Buffer.concat([first, ...hdr, ...rest]);
}

// ---------------------------------------------------------------- MP4

function atom(type, ...parts) {
  const body = Buffer.concat(parts);
  return Buffer.concat([u32be(8 + body.length), Buffer.from(type, 'latin1'), body]);
}

function dataAtom(type, payload) {
  return atom('data', u32be(type), u32be(0), payload);
}

/**
 * Replaces the iTunes metadata of an MP4 file whose moov is its last atom
 * (ffmpeg's default: chunk offsets stay valid). items: [{ key: '\xa9nam',
 * text } | { key: 'trkn'|'disk', n, total } | { key: 'covr', data, png } |
 * { key: '----', name, text }].
 */
export function mp4SetTags(buf, items) {
  let off = 0;
  let moovOff = -1;
  while (off < buf.length) {
    const size = buf.readUInt32BE(off);
    const type = buf.toString('latin1', off + 4, off + 8);
    if (size < 8) throw new Error(`MP4 atom ${type} of size ${size}: not handled`);
    if (type === 'moov') moovOff = off;
    off += size;
  }
  const moovSize = buf.readUInt32BE(moovOff);
  if (moovOff < 0 || moovOff + moovSize !== buf.length) throw new Error('moov is not the last atom');
  const children = [];
  for (let o = moovOff + 8; o < moovOff + moovSize; ) {
    const size = buf.readUInt32BE(o);
    if (buf.toString('latin1', o + 4, o + 8) !== 'udta') children.push(buf.subarray(o, o + size));
    o += size;
  }
  const ilst = [];
  for (const it of items) {
    const key = it.key; // latin1: '\xa9nam' is the four bytes A9 6E 61 6D
    if (it.key === 'trkn')
      ilst.push(atom(key, dataAtom(0, Buffer.from([0, 0, it.n >> 8, it.n & 255, it.total >> 8, it.total & 255, 0, 0]))));
    else if (it.key === 'disk')
      ilst.push(atom(key, dataAtom(0, Buffer.from([0, 0, it.n >> 8, it.n & 255, it.total >> 8, it.total & 255]))));
    else if (it.key === 'covr') ilst.push(atom(key, dataAtom(it.png ? 14 : 13, it.data)));
    else if (it.key === '----')
      ilst.push(atom('----', atom('mean', u32be(0), Buffer.from('com.apple.iTunes')), atom('name', u32be(0), Buffer.from(it.name, 'utf8')), dataAtom(1, Buffer.from(it.text, 'utf8'))));
    else ilst.push(atom(key, dataAtom(1, Buffer.from(it.text, 'utf8'))));
  }
  const hdlr = atom('hdlr', u32be(0), u32be(0), Buffer.from('mdir'), Buffer.from('appl'), Buffer.alloc(8), Buffer.alloc(1));
  const udta = atom('udta', atom('meta', u32be(0), hdlr, atom('ilst', ...ilst)));
  return Buffer.concat([buf.subarray(0, moovOff), atom('moov', ...children, udta)]);
}

// ---------------------------------------------------------------- APEv2

/** An APEv2 tag with header and footer: { Key: 'value' | ['v1', 'v2'] }. */
export function apeTag(items) {
  const parts = [];
  for (const [k, v] of Object.entries(items)) {
    const value = Buffer.from(Array.isArray(v) ? v.join('\0') : v, 'utf8');
    parts.push(u32le(value.length), u32le(0), Buffer.from(`${k}\0`, 'ascii'), value);
  }
  const body = Buffer.concat(parts);
  const hf = (isHeader) =>
    Buffer.concat([
      Buffer.from('APETAGEX'), u32le(2000), u32le(body.length + 32), u32le(Object.keys(items).length),
      u32le(0x80000000 | (isHeader ? 0x20000000 : 0)), Buffer.alloc(8),
    ]);
  return Buffer.concat([hf(true), body, hf(false)]);
}

// ---------------------------------------------------------------- generic tags

/*
 * A tag set in one generic shape, written by each format's own conventions:
 *   { title, artists: [], album, albumartist, track, tracktotal, disc,
 *     disctotal, date, genres: [], composer, artistsort,
 *     mb: { trackid, albumid, artistid: [], albumartistid, releasegroupid },
 *     badMb: { albumartistid: 'not-a-uuid' }, rg: { tg, tp, ag, ap },
 *     r128: { track, album } (Opus only) }
 */

function fmtGain(g) {
  return `${g >= 0 ? '+' : ''}${g.toFixed(2)} dB`;
}

function fmtPeak(p) {
  return p.toFixed(6);
}

function vorbisComments(t, { splitTrack = false } = {}) {
  const c = [];
  const add = (k, v) => v !== undefined && v !== null && c.push(`${k}=${v}`);
  add('TITLE', t.title);
  for (const a of t.artists ?? []) add('ARTIST', a);
  add('ALBUM', t.album);
  add('ALBUMARTIST', t.albumartist);
  if (splitTrack) {
    add('TRACKNUMBER', t.track);
    add('TRACKTOTAL', t.tracktotal);
    add('DISCNUMBER', t.disc);
    add('DISCTOTAL', t.disctotal);
  } else {
    if (t.track !== undefined) add('TRACKNUMBER', t.tracktotal ? `${t.track}/${t.tracktotal}` : t.track);
    if (t.disc !== undefined) add('DISCNUMBER', t.disctotal ? `${t.disc}/${t.disctotal}` : t.disc);
  }
  add('DATE', t.date);
  for (const g of t.genres ?? []) add('GENRE', g);
  add('COMPOSER', t.composer);
  add('ARTISTSORT', t.artistsort);
  const mb = t.mb ?? {};
  add('MUSICBRAINZ_TRACKID', mb.trackid);
  add('MUSICBRAINZ_ALBUMID', mb.albumid);
  for (const a of mb.artistid ?? []) add('MUSICBRAINZ_ARTISTID', a);
  add('MUSICBRAINZ_ALBUMARTISTID', mb.albumartistid);
  add('MUSICBRAINZ_RELEASEGROUPID', mb.releasegroupid);
  for (const [k, v] of Object.entries(t.badMb ?? {})) add(`MUSICBRAINZ_${k.toUpperCase()}`, v);
  if (t.rg) {
    add('REPLAYGAIN_TRACK_GAIN', fmtGain(t.rg.tg));
    add('REPLAYGAIN_TRACK_PEAK', fmtPeak(t.rg.tp));
    add('REPLAYGAIN_ALBUM_GAIN', fmtGain(t.rg.ag));
    add('REPLAYGAIN_ALBUM_PEAK', fmtPeak(t.rg.ap));
  }
  if (t.r128) {
    add('R128_TRACK_GAIN', t.r128.track);
    add('R128_ALBUM_GAIN', t.r128.album);
  }
  return c;
}

function id3v24Frames(t, pictures = []) {
  const f = [];
  const text = (id, v) => v !== undefined && f.push({ id, values: Array.isArray(v) ? v : [String(v)] });
  const txxx = (desc, v) => v !== undefined && f.push({ id: 'TXXX', desc, values: Array.isArray(v) ? v : [String(v)] });
  text('TIT2', t.title);
  text('TPE1', t.artists);
  text('TALB', t.album);
  text('TPE2', t.albumartist);
  if (t.track !== undefined) text('TRCK', t.tracktotal ? `${t.track}/${t.tracktotal}` : t.track);
  if (t.disc !== undefined) text('TPOS', t.disctotal ? `${t.disc}/${t.disctotal}` : t.disc);
  text('TDRC', t.date);
  text('TCON', t.genres);
  text('TCOM', t.composer);
  text('TSOP', t.artistsort);
  const mb = t.mb ?? {};
  // Picard: the recording id in UFID, the rest in TXXX.
  if (mb.trackid) f.push({ id: 'UFID', owner: 'http://musicbrainz.org', data: mb.trackid });
  txxx('MusicBrainz Album Id', mb.albumid);
  txxx('MusicBrainz Artist Id', mb.artistid);
  txxx('MusicBrainz Album Artist Id', mb.albumartistid);
  txxx('MusicBrainz Release Group Id', mb.releasegroupid);
  const names = { albumartistid: 'MusicBrainz Album Artist Id', albumid: 'MusicBrainz Album Id', artistid: 'MusicBrainz Artist Id' };
  for (const [k, v] of Object.entries(t.badMb ?? {})) txxx(names[k], v);
  if (t.rg) {
    txxx('REPLAYGAIN_TRACK_GAIN', fmtGain(t.rg.tg));
    txxx('REPLAYGAIN_TRACK_PEAK', fmtPeak(t.rg.tp));
    txxx('REPLAYGAIN_ALBUM_GAIN', fmtGain(t.rg.ag));
    txxx('REPLAYGAIN_ALBUM_PEAK', fmtPeak(t.rg.ap));
  }
  for (const p of pictures) f.push({ id: 'APIC', mime: p.mime, type: p.type ?? 3, desc: p.desc ?? '', data: p.data });
  return f;
}

function mp4Items(t, pictures = []) {
  const it = [];
  const text = (key, v) => v !== undefined && it.push({ key, text: String(v) });
  const ff = (name, v) => v !== undefined && it.push({ key: '----', name, text: String(v) });
  text('\xa9nam', t.title);
  text('\xa9ART', (t.artists ?? [])[0]);
  text('\xa9alb', t.album);
  text('aART', t.albumartist);
  if (t.track !== undefined) it.push({ key: 'trkn', n: t.track, total: t.tracktotal ?? 0 });
  if (t.disc !== undefined) it.push({ key: 'disk', n: t.disc, total: t.disctotal ?? 0 });
  text('\xa9day', t.date);
  text('\xa9gen', (t.genres ?? [])[0]);
  text('\xa9wrt', t.composer);
  text('soar', t.artistsort);
  const mb = t.mb ?? {};
  ff('MusicBrainz Track Id', mb.trackid);
  ff('MusicBrainz Album Id', mb.albumid);
  ff('MusicBrainz Artist Id', (mb.artistid ?? [])[0]);
  ff('MusicBrainz Album Artist Id', mb.albumartistid);
  ff('MusicBrainz Release Group Id', mb.releasegroupid);
  if (t.rg) {
    ff('replaygain_track_gain', fmtGain(t.rg.tg));
    ff('replaygain_track_peak', fmtPeak(t.rg.tp));
    ff('replaygain_album_gain', fmtGain(t.rg.ag));
    ff('replaygain_album_peak', fmtPeak(t.rg.ap));
  }
  for (const p of pictures) it.push({ key: 'covr', data: p.data, png: p.mime === 'image/png' });
  return it;
}

function asfMetadataArgs(t) {
  const m = [];
  const add = (k, v) => v !== undefined && m.push('-metadata', `${k}=${v}`);
  add('title', t.title);
  add('artist', (t.artists ?? [])[0]); // Author
  add('album', t.album); // WM/AlbumTitle
  add('album_artist', t.albumartist); // WM/AlbumArtist
  add('track', t.track); // WM/TrackNumber
  if (t.disc !== undefined) add('disc', t.disctotal ? `${t.disc}/${t.disctotal}` : t.disc); // WM/PartOfSet
  add('WM/Year', t.date);
  add('genre', (t.genres ?? [])[0]); // WM/Genre
  add('composer', t.composer); // WM/Composer
  const mb = t.mb ?? {};
  add('MusicBrainz/Track Id', mb.trackid);
  add('MusicBrainz/Album Id', mb.albumid);
  add('MusicBrainz/Artist Id', (mb.artistid ?? [])[0]);
  add('MusicBrainz/Album Artist Id', mb.albumartistid);
  add('MusicBrainz/Release Group Id', mb.releasegroupid);
  if (t.rg) {
    add('replaygain_track_gain', fmtGain(t.rg.tg));
    add('replaygain_track_peak', fmtPeak(t.rg.tp));
    add('replaygain_album_gain', fmtGain(t.rg.ag));
    add('replaygain_album_peak', fmtPeak(t.rg.ap));
  }
  return m;
}

function apeItems(t) {
  const a = {};
  const add = (k, v) => v !== undefined && (a[k] = Array.isArray(v) ? v : String(v));
  add('Title', t.title);
  add('Artist', t.artists);
  add('Album', t.album);
  add('Album Artist', t.albumartist);
  if (t.track !== undefined) add('Track', t.tracktotal ? `${t.track}/${t.tracktotal}` : t.track);
  if (t.disc !== undefined) add('Disc', t.disctotal ? `${t.disc}/${t.disctotal}` : t.disc);
  add('Year', t.date);
  add('Genre', t.genres);
  add('Composer', t.composer);
  const mb = t.mb ?? {};
  add('MUSICBRAINZ_TRACKID', mb.trackid);
  add('MUSICBRAINZ_ALBUMID', mb.albumid);
  add('MUSICBRAINZ_ARTISTID', mb.artistid);
  add('MUSICBRAINZ_ALBUMARTISTID', mb.albumartistid);
  add('MUSICBRAINZ_RELEASEGROUPID', mb.releasegroupid);
  if (t.rg) {
    add('REPLAYGAIN_TRACK_GAIN', fmtGain(t.rg.tg));
    add('REPLAYGAIN_TRACK_PEAK', fmtPeak(t.rg.tp));
    add('REPLAYGAIN_ALBUM_GAIN', fmtGain(t.rg.ag));
    add('REPLAYGAIN_ALBUM_PEAK', fmtPeak(t.rg.ap));
  }
  return a;
}

/** The `tags` object the scanner must write for a generic tag set as the
 * format holds it (formats without multi-values keep the first). */
function expectedTags(t, { multi = true, artistsort = true } = {}) {
  const e = {};
  const one = (v) => (v === undefined ? undefined : [String(v)]);
  const many = (v) => (v === undefined || !v.length ? undefined : multi ? v.map(String) : [String(v[0])]);
  const set = (k, v) => v !== undefined && (e[k] = v);
  set('title', one(t.title));
  set('artist', many(t.artists));
  set('album', one(t.album));
  set('albumartist', one(t.albumartist));
  set('tracknumber', t.track);
  set('tracktotal', t.tracktotal);
  set('discnumber', t.disc);
  set('disctotal', t.disctotal);
  set('date', one(t.date));
  set('genre', many(t.genres));
  set('composer', one(t.composer));
  if (artistsort) set('artistsort', one(t.artistsort));
  const mb = t.mb ?? {};
  set('musicbrainz_trackid', one(mb.trackid));
  set('musicbrainz_albumid', one(mb.albumid));
  set('musicbrainz_artistid', many(mb.artistid));
  set('musicbrainz_albumartistid', one(mb.albumartistid));
  set('musicbrainz_releasegroupid', one(mb.releasegroupid));
  return e;
}

function expectedRg(t) {
  if (t.rg) return { track_gain: t.rg.tg, track_peak: t.rg.tp, album_gain: t.rg.ag, album_peak: t.rg.ap };
  // RFC 7845 R128 gains are Q7.8 dB relative to -23 LUFS; ReplayGain's
  // reference is 5 dB louder (what MPD and opusfile users do).
  if (t.r128) return { track_gain: t.r128.track / 256 + 5, album_gain: t.r128.album / 256 + 5 };
  return {};
}

/**
 * Encodes one tagged file. spec: { format: 'mp3'|'flac'|'vorbis'|'opus'|
 * 'aac'|'alac'|'wma'|'mpc', freq, seconds, rate, channels, kbps, bits, noise,
 * tags (generic shape above), pictures: [{ data, mime, width, height }],
 * id3v1 (mp3: an ID3v1 tag only, with these fields instead of tags) }.
 * Writes it at out (via a temp name in the same folder, renamed at the end,
 * unless inPlace) and returns the expectation for its document.
 */
export async function encodeTone(out, spec) {
  const { format } = spec;
  const f = FORMATS[format];
  const tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'imes-tone-'));
  const raw = path.join(tmpDir, `raw.${f.ext}`);
  try {
    const t = spec.tags ?? {};
    if (format === 'wma') {
      // ASF attributes come from ffmpeg's muxer itself.
      const args = [
        ...FFMPEG_COMMON, '-f', 'lavfi', '-i', `sine=frequency=${spec.freq ?? 440}:sample_rate=${spec.rate ?? 44100}:duration=${spec.seconds ?? 3}`,
        '-ac', String(spec.channels ?? 2), ...BITEXACT, ...asfMetadataArgs(t), ...f.args(spec), raw,
      ];
      await run('ffmpeg', args);
    } else {
      await encodeAudio(raw, format, spec);
    }
    let buf = fs.readFileSync(raw);
    const pics = spec.pictures ?? [];
    switch (format) {
      case 'mp3':
        if (spec.id3v1) buf = Buffer.concat([buf, id3v1Tag(spec.id3v1)]);
        else buf = Buffer.concat([id3v24Tag(id3v24Frames(t, pics)), buf]);
        break;
      case 'flac':
        buf = flacSetMetadata(buf, vorbisComments(t), pics);
        break;
      case 'vorbis':
      case 'opus':
        buf = oggSetComments(buf, vorbisComments(t, { splitTrack: true }));
        break;
      case 'aac':
      case 'alac':
        buf = mp4SetTags(buf, mp4Items(t, pics));
        break;
      case 'mpc':
        buf = Buffer.concat([buf, apeTag(apeItems(t))]);
        break;
      case 'wma':
        break;
    }
    if (spec.inPlace) {
      fs.writeFileSync(out, buf); // same inode: open(O_TRUNC), write, close
    } else {
      const tmp = path.join(path.dirname(out), `.${path.basename(out)}.part`);
      fs.writeFileSync(tmp, buf);
      fs.renameSync(tmp, out);
    }
    const multi = ['mp3', 'flac', 'vorbis', 'opus', 'mpc'].includes(format);
    let tags;
    if (spec.id3v1) {
      const v = spec.id3v1;
      tags = { title: [v.title], artist: [v.artist], album: [v.album], date: [v.year], tracknumber: v.track };
      if (v.genreName) tags.genre = [v.genreName];
    } else {
      tags = expectedTags(t, { multi, artistsort: ['mp3', 'flac', 'vorbis', 'opus', 'aac', 'alac'].includes(format) });
    }
    const seconds = spec.seconds ?? 3;
    const expect = {
      container: f.container,
      codec: f.codec,
      duration: seconds,
      durationTol: DURATION_TOL[format],
      rate: spec.rate ?? 44100,
      channels: spec.channels ?? 2,
      bits_per_sample: f.lossless ? (spec.bits ?? 16) : undefined,
      bitrate: format === 'mp3' ? [0.93 * (spec.kbps ?? 128) * 1000, 1.07 * (spec.kbps ?? 128) * 1000] : [8000, 5e6],
      tags,
      replaygain: spec.id3v1 ? {} : expectedRg(t),
      pictures: pics.map((p) => pictureId(p.data)),
      warnings: Object.keys(t.badMb ?? {}).map((k) => `musicbrainz_${k}`),
      size: buf.length,
    };
    return expect;
  } finally {
    fs.rmSync(tmpDir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------- the library

const uuid = () => crypto.randomUUID();

function mbSet(nArtists = 1) {
  return {
    trackid: uuid(), albumid: uuid(), artistid: Array.from({ length: nArtists }, uuid),
    albumartistid: uuid(), releasegroupid: uuid(),
  };
}

/**
 * Builds the library under root (created if needed). Returns the manifest:
 * { root, entries: [{ rel, path, expect }], byRel: {rel: entry},
 *   pictures: {id: {mime, width, height, bytes, file}}, ignored: [rel],
 *   audioCount (files the walk must see), errorCount, pictureCount }.
 */
export async function buildLibrary(root, { jobs = 2 } = {}) {
  const t0 = Date.now();
  fs.mkdirSync(root, { recursive: true });
  const assets = fs.mkdtempSync(path.join(os.tmpdir(), 'imes-assets-'));
  const P = (rel) => path.join(root, rel);
  const mk = (rel) => fs.mkdirSync(path.dirname(P(rel)), { recursive: true });

  const images = {
    apic: { file: path.join(assets, 'apic.jpg'), width: 500, height: 500, mime: 'image/jpeg' },
    flacpng: { file: path.join(assets, 'flac.png'), width: 300, height: 200, mime: 'image/png' },
    covr: { file: path.join(assets, 'covr.jpg'), width: 640, height: 480, mime: 'image/jpeg' },
    folder: { file: P('Various/Lossless/cover.jpg'), width: 256, height: 256, mime: 'image/jpeg' },
    folder2: { file: P('Ærøskøbing — 東京/Cover.JPG'), width: 200, height: 120, mime: 'image/jpeg' },
  };
  fs.mkdirSync(P('Various/Lossless'), { recursive: true });
  fs.mkdirSync(P('Ærøskøbing — 東京'), { recursive: true });
  await makeImages(Object.values(images));
  const pictures = {};
  for (const img of Object.values(images)) {
    img.data = fs.readFileSync(img.file);
    pictures[pictureId(img.data)] = { mime: img.mime, width: img.width, height: img.height, bytes: img.data.length, file: img.file };
  }
  const pic = (k) => ({ data: images[k].data, mime: images[k].mime, width: images[k].width, height: images[k].height, type: 3, desc: 'Front cover' });

  const rg = (tg, tp, ag, ap) => ({ tg, tp, ag, ap });
  const specs = [
    {
      rel: 'Björk Guðmundsdóttir/Vespertine/01 Hidden Place.mp3',
      format: 'mp3', freq: 330, rate: 44100, channels: 2, kbps: 128,
      tags: {
        title: 'Hidden Place', artists: ['Björk Guðmundsdóttir', 'Anna Ærø'], album: 'Vespertine',
        albumartist: 'Björk Guðmundsdóttir', track: 1, tracktotal: 12, disc: 1, disctotal: 2, date: '2001-08-27',
        genres: ['Electronic', 'Art Pop'], composer: 'Jörg Brahms', artistsort: 'Guðmundsdóttir, Björk',
        mb: mbSet(2), rg: rg(-6.2, 0.988123, -5.5, 1.0),
      },
      pictures: [pic('apic')],
    },
    {
      rel: 'Old Timer/Vintage/07 Old Song.mp3',
      format: 'mp3', freq: 392, rate: 22050, channels: 1, kbps: 64,
      id3v1: { title: 'Old Song', artist: 'Old Timer', album: 'Vintage', year: '1979', track: 7, genre: 17, genreName: 'Rock' },
    },
    {
      rel: 'Various/Lossless/02 Flac With Art.flac',
      format: 'flac', freq: 440, rate: 44100, channels: 2, bits: 16,
      tags: {
        title: 'Flac With Art', artists: ['Anna Ærø', 'Bob Ñandú'], album: 'Lossless Things', albumartist: 'Various Artists',
        track: 2, tracktotal: 12, disc: 1, disctotal: 2, date: '2019-05-01', genres: ['Jazz', 'Fusion'],
        composer: 'Zoë Åström', artistsort: 'Ærø, Anna', mb: mbSet(2), badMb: { albumartistid: 'not-a-musicbrainz-id' },
        rg: rg(-7.03, 0.891251, -6.48, 0.977237),
      },
      pictures: [pic('flacpng')],
    },
    {
      rel: 'Various/Lossless/03 Vorbis Tone.ogg',
      format: 'vorbis', freq: 494, rate: 44100, channels: 2,
      tags: {
        title: 'Vorbis Tone', artists: ['Bob Ñandú'], album: 'Lossless Things', albumartist: 'Various Artists',
        track: 3, tracktotal: 12, disc: 1, disctotal: 2, date: '2019-05-01', genres: ['Jazz'], composer: 'Zoë Åström',
        artistsort: 'Ñandú, Bob', mb: mbSet(1), rg: rg(2.5, 0.5, -6.48, 0.977237),
      },
    },
    {
      rel: 'Ærøskøbing — 東京/01 Straße.flac',
      format: 'flac', freq: 523, rate: 48000, channels: 2, bits: 24,
      tags: {
        title: 'Straße', artists: ['Ærøskøbing Ensemble'], album: '東京 Nights', albumartist: 'Ærøskøbing Ensemble',
        track: 1, tracktotal: 12, disc: 2, disctotal: 2, date: '2005', genres: ['Ambient'], composer: '坂本 龍一',
        mb: mbSet(1), rg: rg(-3.1, 0.7, -3.3, 0.75),
      },
    },
    {
      rel: 'Opus/04 Opus Tone.opus',
      format: 'opus', freq: 587, rate: 48000, channels: 2, kbps: 96,
      tags: {
        title: 'Opus Tone', artists: ['Céline Opus', 'Dmitri Шостакович'], album: 'Codecs', albumartist: 'Céline Opus',
        track: 4, tracktotal: 12, disc: 1, disctotal: 2, date: '2012-09-11', genres: ['Classical'], composer: 'Dmitri Шостакович',
        mb: mbSet(2), r128: { track: -1234, album: -512 },
      },
    },
    {
      rel: 'M4A/05 AAC Tone.m4a',
      format: 'aac', freq: 659, rate: 44100, channels: 2, kbps: 128,
      tags: {
        title: 'AAC Tone', artists: ['Éric Apple'], album: 'Codecs', albumartist: 'Éric Apple', track: 5, tracktotal: 12,
        disc: 1, disctotal: 2, date: '2004', genres: ['Pop'], composer: 'Éric Apple', artistsort: 'Apple, Éric',
        mb: mbSet(1), rg: rg(-4.25, 0.95, -4.0, 0.99),
      },
      pictures: [pic('covr')],
    },
    {
      rel: 'M4A/06 ALAC Tone.m4a',
      format: 'alac', freq: 698, rate: 44100, channels: 2, bits: 16,
      tags: {
        title: 'ALAC Tone', artists: ['Éric Apple'], album: 'Codecs', albumartist: 'Éric Apple', track: 6, tracktotal: 12,
        disc: 1, disctotal: 2, date: '2004', genres: ['Pop'], composer: 'Éric Apple', artistsort: 'Apple, Éric',
        mb: mbSet(1), rg: rg(-1.5, 0.6, -4.0, 0.99),
      },
      pictures: [pic('covr')], // the same image: one picture document
    },
    {
      rel: 'WMA/08 WMA Tone.wma',
      format: 'wma', freq: 784, rate: 44100, channels: 2, kbps: 128,
      tags: {
        title: 'WMA Tone', artists: ['Gates Ørkestra'], album: 'Windows Media', albumartist: 'Gates Ørkestra', track: 8,
        disc: 1, disctotal: 2, date: '1985', genres: ['Synthpop'], composer: 'Gates Ørkestra', mb: mbSet(1),
        rg: rg(-8.0, 1.05, -7.5, 1.1),
      },
    },
    {
      rel: 'Musepack/09 MPC Tone.mpc',
      format: 'mpc', freq: 880, rate: 44100, channels: 2,
      tags: {
        title: 'MPC Tone', artists: ['Frank Musepack'], album: 'Codecs', albumartist: 'Frank Musepack', track: 9,
        tracktotal: 12, disc: 1, disctotal: 2, date: '2010', genres: ['Experimental'], composer: 'Frank Müller',
        mb: mbSet(1), rg: rg(0.75, 0.4, -2.25, 0.8),
      },
    },
    {
      rel: 'mislabelled/10 Actually FLAC.mp3',
      format: 'flac', freq: 988, rate: 32000, channels: 1, bits: 16,
      tags: {
        title: 'Actually FLAC', artists: ['Mislabel'], album: 'Wrong Names', track: 10, tracktotal: 12, date: '1999',
        genres: ['Noise'], mb: mbSet(1), rg: rg(-1.0, 0.5, -1.0, 0.5),
      },
    },
  ];

  const entries = [];
  await pool(
    specs.map((s) => async () => {
      mk(s.rel);
      const expect = await encodeTone(P(s.rel), s);
      entries.push({ rel: s.rel, path: P(s.rel), spec: s, expect });
    }),
    jobs,
  );

  // Broken files: each gets a document with `error`, and the scan goes on.
  const broken = [];
  const addBroken = (rel, bytes, why) => {
    mk(rel);
    fs.writeFileSync(P(rel), bytes);
    broken.push({ rel, path: P(rel), expect: { error: true, why, size: bytes.length } });
  };
  addBroken('broken/empty.mp3', Buffer.alloc(0), 'empty file');
  // Cut inside the metadata (the PNG picture block is larger than 2 KiB): no audio at all.
  const flacWithArt = fs.readFileSync(P('Various/Lossless/02 Flac With Art.flac'));
  addBroken('broken/truncated.flac', flacWithArt.subarray(0, 2048), 'first 2 KiB of a FLAC file');
  let noise = crypto.randomBytes(8192);
  noise.write('xxxx', 0, 'latin1'); // never an accidental magic number
  addBroken('broken/noise.ogg', noise, 'random bytes');
  addBroken('broken/readme.m4a', Buffer.from('This is a text file, not an MPEG-4 audio file.\nNothing to see here.\n'), 'a text file');

  // Files the walk must not take: not audio by name, or hidden.
  fs.writeFileSync(P('notes.txt'), 'not audio\n');
  fs.copyFileSync(P('Old Timer/Vintage/07 Old Song.mp3'), P('.hidden.mp3'));
  fs.mkdirSync(P('.hiddendir'), { recursive: true });
  fs.copyFileSync(P('Old Timer/Vintage/07 Old Song.mp3'), P('.hiddendir/song.mp3'));

  fs.rmSync(assets, { recursive: true, force: true });
  entries.sort((a, b) => a.rel.localeCompare(b.rel));
  const all = [...entries, ...broken];
  const byRel = Object.fromEntries(all.map((e) => [e.rel, e]));
  const usedPictures = new Set(entries.flatMap((e) => e.expect.pictures));
  // Files without embedded art take their folder's cover.
  for (const e of entries) {
    if (e.expect.pictures.length) continue;
    const dir = path.dirname(e.path);
    for (const img of [images.folder, images.folder2])
      if (path.dirname(img.file) === dir) {
        e.expect.pictures = [pictureId(img.data)];
        usedPictures.add(pictureId(img.data));
      }
  }
  return {
    root,
    entries: all,
    good: entries,
    broken,
    byRel,
    pictures,
    usedPictures: [...usedPictures],
    ignored: ['notes.txt', '.hidden.mp3', '.hiddendir/song.mp3'],
    audioCount: all.length,
    errorCount: broken.length,
    buildSeconds: (Date.now() - t0) / 1000,
  };
}
