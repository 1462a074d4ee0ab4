#!/usr/bin/env python3
"""Seed corpora for the fuzz_decoder_* targets: small real files (ffmpeg,
mpcenc) of every format the plugins read, plus tag-heavy ones whose tags
are written here byte by byte (ID3v2.2/2.3/2.4 with unsynchronisation,
data length indicators and an extended header, APEv2 with a cover, Vorbis
comments with METADATA_BLOCK_PICTURE, MP4 freeform atoms).

Run once from the repository root; the output is committed. Needs ffmpeg
and mpcenc (Debian: ffmpeg, musepack-tools).
"""
import base64
import os
import struct
import subprocess
import sys
import tempfile

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
TMP = tempfile.mkdtemp(prefix="imes-corpus-")


def ff(*args):
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True)


def tone(sec=0.2, rate=22050, ch=1):
    src = f"sine=frequency=440:sample_rate={rate}:duration={sec}"
    if ch == 1:
        return ["-f", "lavfi", "-i", src]
    return ["-f", "lavfi", "-i", src, "-ac", str(ch)]


def out(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def tmp(name):
    return os.path.join(TMP, name)


def read(p):
    with open(p, "rb") as f:
        return f.read()


ff("-f", "lavfi", "-i", "color=c=red:s=8x8", "-frames:v", "1", tmp("cover.png"))
COVER = read(tmp("cover.png"))
TITLE = "\u00c6r\u00f8sk\u00f8bing \u2014 \u6771\u4eac"
META = ["-metadata", f"title={TITLE}", "-metadata", "artist=Alpha", "-metadata", "album=Al",
        "-metadata", "track=3/12", "-metadata", "disc=1/2", "-metadata", "date=2001"]
PIC = ["-i", tmp("cover.png"), "-map", "0", "-map", "1", "-c:v", "copy",
       "-disposition:v", "attached_pic"]

# ---- ID3 ----


def syncsafe(n):
    return bytes([(n >> 21) & 0x7f, (n >> 14) & 0x7f, (n >> 7) & 0x7f, n & 0x7f])


def frame(ver, fid, body, flags=0):
    if ver == 2:
        return fid.encode() + struct.pack(">I", len(body))[1:] + body
    size = syncsafe(len(body)) if ver == 4 else struct.pack(">I", len(body))
    return fid.encode() + size + struct.pack(">H", flags) + body


def unsync(b):
    o = bytearray()
    for i, c in enumerate(b):
        o.append(c)
        if c == 0xff and (i + 1 == len(b) or b[i + 1] == 0 or b[i + 1] >= 0xe0):
            o.append(0)
    return bytes(o)


def id3(ver, frames, flags=0):
    return b"ID3" + bytes([ver, 0, flags]) + syncsafe(len(frames)) + frames


def text(ver, fid, *values, enc=3):
    if enc == 1:
        body = b"\x00\x00".join(b"\xff\xfe" + v.encode("utf-16-le") for v in values)
    else:
        body = b"\x00".join(v.encode("utf-8" if enc == 3 else "latin-1") for v in values)
    return frame(ver, fid, bytes([enc]) + body)


ff(*tone(0.2), "-id3v2_version", "0", "-c:a", "libmp3lame", "-b:a", "32k", tmp("bare.mp3"))
BARE = read(tmp("bare.mp3"))

v24 = b"".join([
    text(4, "TIT2", TITLE), text(4, "TPE1", "Alpha", "Beta"), text(4, "TRCK", "3/12"),
    text(4, "TCON", "(17)Rock", "8"), text(4, "TPOS", "1/2"),
    frame(4, "TXXX", b"\x03MusicBrainz Album Id\x00abc"),
    frame(4, "TXXX", b"\x03REPLAYGAIN_TRACK_GAIN\x00-6.5 dB"),
    frame(4, "UFID", b"http://musicbrainz.org\x00tid"),
    frame(4, "RVA2", b"album\x00\x01\xf3\x00\x10\x40\x00"),
    frame(4, "COMM", b"\x03eng\x00a comment"),
    frame(4, "APIC", b"\x03image/png\x00\x03d\x00" + COVER),
    # per-frame unsynchronisation and a data length indicator
    frame(4, "TALB", struct.pack(">I", 6) + unsync(b"\x01\xff\xfeA\x00"), flags=0x0003),
])
out("fuzz_decoder_mpg123", "id3v24.mp3", id3(4, v24) + BARE)

v23 = b"".join([
    text(3, "TIT2", TITLE, enc=1), text(3, "TPE1", "Alpha", enc=0), text(3, "TCON", "(8)", enc=0),
    text(3, "TYER", "2001", enc=0), frame(3, "UFID", b"http://musicbrainz.org\x00tid"),
    frame(3, "APIC", b"\x00image/png\x00\x04\x00" + COVER),
])
ext = struct.pack(">IHI", 6, 0, 0)
out("fuzz_decoder_mpg123", "id3v23-unsync.mp3", id3(3, unsync(ext + v23), 0xc0) + BARE)

v22 = b"".join([text(2, "TT2", TITLE, enc=1), text(2, "TP1", "Alpha", enc=0),
                frame(2, "COM", b"\x00eng\x00c"), frame(2, "PIC", b"\x00PNG\x03\x00" + COVER),
                frame(2, "UFI", b"http://musicbrainz.org\x00tid")])
out("fuzz_decoder_mpg123", "id3v22.mp3", id3(2, v22) + BARE)


def ape(items):
    body = b""
    for key, value, binary in items:
        body += struct.pack("<II", len(value), 2 if binary else 0) + key.encode() + b"\x00" + value
    size = len(body) + 32

    def head(is_header):
        flags = (1 << 31) | ((1 << 29) if is_header else 0)
        return b"APETAGEX" + struct.pack("<IIII", 2000, size, len(items), flags) + b"\x00" * 8
    return head(True) + body + head(False)


APE = ape([("Title", TITLE.encode(), 0), ("Artist", b"Alpha\x00Beta", 0), ("Track", b"3/12", 0),
           ("REPLAYGAIN_ALBUM_GAIN", b"-7.25 dB", 0), ("MUSICBRAINZ_TRACKID", b"tid", 0),
           ("Cover Art (Front)", b"c.png\x00" + COVER, 1)])
V1 = b"TAG" + b"v1 title".ljust(30, b"\0") + b"v1 artist".ljust(30, b"\0") + b"".ljust(30, b"\0") \
    + b"1999" + b"".ljust(28, b"\0") + b"\x00\x09" + b"\x08"
out("fuzz_decoder_mpg123", "ape-v1.mp3", BARE + APE + V1)
out("fuzz_decoder_mpg123", "v1.mp3", BARE + V1)
ff(*tone(0.2), *PIC, "-id3v2_version", "4", *META, "-c:a", "libmp3lame", "-q:a", "9", tmp("vbr.mp3"))
out("fuzz_decoder_mpg123", "vbr-ffmpeg.mp3", read(tmp("vbr.mp3")))
ff(*tone(0.1, 44100, 2), "-write_xing", "0", "-c:a", "libmp3lame", "-b:a", "64k", tmp("x.mp3"))
out("fuzz_decoder_mpg123", "stereo-noxing.mp3", read(tmp("x.mp3")))
ff(*tone(0.1, 32000), "-c:a", "mp2", "-b:a", "64k", tmp("x.mp2"))
out("fuzz_decoder_mpg123", "layer2.mp2", read(tmp("x.mp2")))

# ---- FLAC ----


def flac_picture(type_=3, mime="image/png", desc="d"):
    return struct.pack(">II", type_, len(mime)) + mime.encode() + struct.pack(">I", len(desc)) + \
        desc.encode() + struct.pack(">IIIII", 8, 8, 24, 0, len(COVER)) + COVER


B64PIC = base64.b64encode(flac_picture()).decode()
ff(*tone(0.1, 8000), *PIC, *META, "-metadata", "REPLAYGAIN_TRACK_GAIN=-6.5 dB",
   "-metadata", "METADATA_BLOCK_PICTURE=" + B64PIC, tmp("t.flac"))
out("fuzz_decoder_flac", "tagged.flac", read(tmp("t.flac")))
ff(*tone(0.05, 48000, 2), "-sample_fmt", "s32", "-c:a", "flac", tmp("s.flac"))
out("fuzz_decoder_flac", "stereo24.flac", read(tmp("s.flac")))
out("fuzz_decoder_flac", "id3-prefix.flac", id3(4, text(4, "TIT2", "x")) + read(tmp("s.flac")))
ff(*tone(0.05, 8000), "-c:a", "flac", "-f", "ogg", tmp("f.oga"))
out("fuzz_decoder_flac", "ogg.oga", read(tmp("f.oga")))

# ---- Vorbis, Opus ----

OGG_META = META + ["-metadata", "METADATA_BLOCK_PICTURE=" + B64PIC,
                   "-metadata", "REPLAYGAIN_ALBUM_GAIN=-7 dB", "-metadata", "R128_TRACK_GAIN=-512"]
ff(*tone(0.2, 8000), *OGG_META, "-c:a", "libvorbis", "-q:a", "0", tmp("t.ogg"))
out("fuzz_decoder_vorbis", "tagged.ogg", read(tmp("t.ogg")))
ff(*tone(0.1, 22050, 2), "-c:a", "libvorbis", "-q:a", "0", tmp("s.ogg"))
out("fuzz_decoder_vorbis", "stereo.ogg", read(tmp("s.ogg")))
out("fuzz_decoder_vorbis", "chained.ogg", read(tmp("s.ogg")) + read(tmp("t.ogg")))

ff(*tone(0.2, 48000), *OGG_META, "-c:a", "libopus", "-b:a", "16k", tmp("t.opus"))
out("fuzz_decoder_opus", "tagged.opus", read(tmp("t.opus")))
ff(*tone(0.1, 48000, 2), "-c:a", "libopus", "-b:a", "16k", tmp("s.opus"))
out("fuzz_decoder_opus", "stereo.opus", read(tmp("s.opus")))
# A chain whose second link has another channel count.
out("fuzz_decoder_opus", "chained.opus", read(tmp("t.opus")) + read(tmp("s.opus")))

# ---- MP4, ASF ----

ff(*tone(0.2, 8000), *PIC, *META, "-c:a", "aac", "-b:a", "16k", tmp("t.m4a"))
out("fuzz_decoder_avcodec", "aac.m4a", read(tmp("t.m4a")))
ff(*tone(0.05, 8000), *PIC, *META, "-c:a", "alac", tmp("a.m4a"))
out("fuzz_decoder_avcodec", "alac.m4a", read(tmp("a.m4a")))
ff(*tone(0.2, 8000), "-movflags", "faststart", "-c:a", "aac", "-b:a", "16k", tmp("f.m4a"))
out("fuzz_decoder_avcodec", "faststart.m4a", read(tmp("f.m4a")))
ff(*tone(0.2, 8000), *META, "-metadata", "MusicBrainz/Track Id=tid",
   "-metadata", "replaygain_track_gain=-6 dB", "-c:a", "wmav2", "-b:a", "32k", tmp("t.wma"))
out("fuzz_decoder_avcodec", "tagged.wma", read(tmp("t.wma")))

# ---- Musepack ----

ff(*tone(0.2, 44100), tmp("t.wav"))
subprocess.run(["mpcenc", "--silent", "--overwrite", "--quality", "2", tmp("t.wav"), tmp("t.mpc")],
               check=True)
out("fuzz_decoder_mpc", "tagged.mpc", read(tmp("t.mpc")) + APE)
ff(*tone(0.1, 44100, 2), tmp("s.wav"))
subprocess.run(["mpcenc", "--silent", "--overwrite", "--quality", "2", tmp("s.wav"), tmp("s.mpc")],
               check=True)
out("fuzz_decoder_mpc", "stereo.mpc", read(tmp("s.mpc")))
out("fuzz_decoder_mpc", "id3-prefix.mpc", id3(4, text(4, "TIT2", "x")) + read(tmp("s.mpc")))

subprocess.run(["rm", "-rf", TMP])
for d in sorted(os.listdir(ROOT)):
    if d.startswith("fuzz_decoder_"):
        files = os.listdir(os.path.join(ROOT, d))
        size = sum(os.path.getsize(os.path.join(ROOT, d, f)) for f in files)
        print(f"{d}: {len(files)} files, {size} bytes", file=sys.stderr)
