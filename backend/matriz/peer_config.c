/*
 * peer.yaml's option table (see peer_config.h). Defaults are what a site
 * with a sound card on a home connection wants: Opus in 5 ms frames at
 * 96 kbit/s stereo, a jitter buffer of at most 60 ms.
 */
#include "matriz/peer_config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "state/auth.h"

static const char *check_http_url(const char *v)
{
    if (strncmp(v, "http://", 7) != 0 && strncmp(v, "https://", 8) != 0)
        return "must be an http:// or https:// URL";
    if (strchr(v + 7, '@'))
        return "must not hold credentials (peer.name and peer.key are used)";
    return NULL;
}

static const char *check_http_url_or_empty(const char *v)
{
    return *v ? check_http_url(v) : NULL;
}

static const char *check_name_or_empty(const char *v)
{
    return !*v || auth_name_valid(v) ? NULL
                                     : "must be 1 to 64 of letters, digits, . _ - @ (not "
                                       "starting with . _ -)";
}

static const char *const backends[] = {"file", "jack", NULL};
static const char *const codecs[] = {"opus", "L16", "L24", NULL};
static const char *const frames[] = {"2.5", "5", "10", NULL};
static const char *const levels[] = {"fatal", "error", "warn", "info", "debug", NULL};

#define OFF(f) offsetof(struct peer_config, f)

static const struct config_option options[] = {
    {"peer.name", CONFIG_STR, OFF(peer.name), "", 0, 0, NULL, check_name_or_empty,
     "This site's name: the CouchDB user `imes peer add NAME` made (required)."},
    {"peer.key", CONFIG_STR, OFF(peer.key), "", 0, 0, NULL, NULL,
     "The key `imes peer add` printed (required; keep this file private)."},
    {"peer.imesd", CONFIG_STR, OFF(peer.imesd), "http://127.0.0.1:9997", 0, 0, NULL, check_http_url,
     "imesd's URL: the peer joins the roster at <imesd>/matriz/join."},
    {"peer.host", CONFIG_STR, OFF(peer.host), "", 0, 0, NULL, NULL,
     "Host name or address others reach this site at (empty: the address imesd sees)."},
    {"peer.port", CONFIG_INT, OFF(peer.port), "0", 0, 65535, NULL, NULL,
     "RTSP port others reach this site at, when a NAT forwards another (0: net.rtsp_port)."},

    {"roster.couchdb", CONFIG_STR, OFF(roster.couchdb), "http://127.0.0.1:5984", 0, 0, NULL,
     check_http_url_or_empty, "CouchDB's URL, for following the roster (peer: documents)."},
    {"roster.database", CONFIG_STR, OFF(roster.database), "imes", 0, 0, NULL, NULL,
     "The IMES database holding the roster."},

    {"net.bind_host", CONFIG_STR, OFF(net.bind_host), "0.0.0.0", 0, 0, NULL, NULL,
     "Address the RTSP server and the RTP sockets bind to."},
    {"net.rtsp_port", CONFIG_INT, OFF(net.port), "8554", 1, 65535, NULL, NULL,
     "TCP port of this site's RTSP server (rtsp://<host>:<port>/stream)."},
    {"net.rtp_min", CONFIG_INT, OFF(net.rtp_min), "8600", 1024, 65534, NULL, NULL,
     "Lowest UDP port for RTP and RTCP (one pair per link; open them in the firewall)."},
    {"net.rtp_max", CONFIG_INT, OFF(net.rtp_max), "8700", 1025, 65535, NULL, NULL,
     "Highest UDP port for RTP and RTCP."},
    {"net.nice", CONFIG_INT, OFF(net.nice), "-10", -20, 19, NULL, NULL,
     "Nice value of the thread that sends and receives RTP (below 0 needs root or CAP_SYS_NICE)."},

    {"audio.backend", CONFIG_ENUM, OFF(audio.backend), "jack", 0, 0, backends, NULL,
     "jack (a sound card through a JACK server), or file (WAV files or a tone)."},
    {"audio.rate", CONFIG_INT, OFF(audio.rate), "48000", 48000, 48000, NULL, NULL,
     "Sample rate: 48000 (Opus's; JACK must run at it too)."},
    {"audio.period", CONFIG_INT, OFF(audio.period), "128", 16, 4096, NULL, NULL,
     "file: frames per period (JACK uses its server's)."},
    {"audio.input", CONFIG_STR, OFF(audio.input), "", 0, 0, NULL, NULL,
     "file: a WAV file sent in a loop (empty: the tone)."},
    {"audio.tone_hz", CONFIG_INT, OFF(audio.tone_hz), "440", 0, 20000, NULL, NULL,
     "file: frequency of the tone sent when there is no input file (0: silence)."},
    {"audio.tone_dbfs", CONFIG_INT, OFF(audio.tone_dbfs), "-12", -100, 0, NULL, NULL,
     "file: level of that tone."},
    {"audio.output_dir", CONFIG_STR, OFF(audio.output_dir), "", 0, 0, NULL, NULL,
     "file: folder for <peer>.wav per remote site and mix.wav (empty: not written)."},
    {"audio.jack_server", CONFIG_STR, OFF(audio.jack_server), "", 0, 0, NULL, NULL,
     "jack: server name (empty: the default server)."},
    {"audio.connect_capture", CONFIG_STR, OFF(audio.connect_capture), "system:capture_", 0, 0, NULL,
     NULL, "jack: ports (a regular expression) connected to in_1 and in_2."},

    {"send.codec", CONFIG_ENUM, OFF(send.codec), "opus", 0, 0, codecs, NULL,
     "opus (RFC 7587), or uncompressed L16/L24 for fast LANs."},
    {"send.frame_ms", CONFIG_ENUM, OFF(send.frame_ms), "5", 0, 0, frames, NULL,
     "ms of audio per packet: 2.5, 5 or 10 (less: less delay). L16/L24 send one per audio "
     "period (this if under 32 frames)."},
    {"send.bitrate", CONFIG_INT, OFF(send.bitrate), "96000", 16000, 510000, NULL, NULL,
     "opus: bits per second (stereo)."},
    {"send.fec", CONFIG_BOOL, OFF(send.fec), "false", 0, 0, NULL, NULL,
     "opus: in-band forward error correction (helps lossy links, costs bits)."},
    {"send.loss_percent", CONFIG_INT, OFF(send.loss_percent), "5", 0, 100, NULL, NULL,
     "opus: packet loss the encoder expects (more: more robust, less efficient)."},

    {"jitter.min_ms", CONFIG_INT, OFF(jitter.min_ms), "0", 0, 1000, NULL, NULL,
     "Least delay the jitter buffer adds after the fastest packet."},
    {"jitter.max_ms", CONFIG_INT, OFF(jitter.max_ms), "60", 1, 1000, NULL, NULL,
     "Most delay it adds, however jittery the link (later packets are concealed)."},
    {"jitter.headroom_ms", CONFIG_INT, OFF(jitter.headroom_ms), "1", 0, 100, NULL, NULL,
     "Added to the measured jitter, for scheduling noise."},

    {"record.dir", CONFIG_STR, OFF(record.dir), "", 0, 0, NULL, NULL,
     "Folder to record into as WAV files named <what>-<UTC start>.wav (empty: no recording)."},
    {"record.what", CONFIG_STRLIST, OFF(record.what), NULL, 0, 0, NULL, NULL,
     "What is recorded, of mix (what we hear), self (our input), peers (a file per site); []: "
     "mix."},

    {"log.level", CONFIG_ENUM, OFF(log.level), "info", 0, 0, levels, NULL,
     "Least severity logged: fatal, error, warn, info or debug."},
    {"log.file", CONFIG_STR, OFF(log.file), "", 0, 0, NULL, NULL,
     "Log file (empty: standard error)."},
};

static const struct config_schema schema = {
    .options = options,
    .count = sizeof(options) / sizeof(options[0]),
    .intro = "# Matriz peer configuration (peer.yaml): every option with its default and why.\n"
             "# Generated from the option table in backend/matriz/peer_config.c by\n"
             "# `matriz --example-config`; a test keeps the two identical.\n"
             "# Run with: build/bin/matriz -c peer.yaml\n",
};

void peer_config_defaults(struct peer_config *c)
{
    memset(c, 0, sizeof(*c));
    config_schema_defaults(&schema, c);
}

static int finish(struct peer_config *c, const char *name, char *err, size_t errlen)
{
    if (!*c->peer.name) {
        snprintf(err, errlen, "%s: peer.name: required (the name given to imes peer add)", name);
        return -1;
    }
    if (!*c->peer.key) {
        snprintf(err, errlen, "%s: peer.key: required (the key imes peer add printed)", name);
        return -1;
    }
    if (c->net.rtp_max < c->net.rtp_min + 3) {
        snprintf(err, errlen, "%s: net.rtp_max: must be at least net.rtp_min + 3 (two pairs)",
                 name);
        return -1;
    }
    for (size_t i = 0; i < c->record.what.n; i++) {
        const char *w = c->record.what.v[i];
        if (strcmp(w, "mix") != 0 && strcmp(w, "self") != 0 && strcmp(w, "peers") != 0) {
            snprintf(err, errlen, "%s: record.what: %s is not one of mix, self, peers", name, w);
            return -1;
        }
    }
    double ms = atof(c->send.frame_ms);
    c->frame = (int)(ms * 48);
    if (c->jitter.min_ms > c->jitter.max_ms) {
        snprintf(err, errlen, "%s: jitter.min_ms: must not be above jitter.max_ms", name);
        return -1;
    }
    return 0;
}

int peer_config_load_string(struct peer_config *c, const char *name, const char *yaml, size_t len,
                            char *errbuf, size_t errlen)
{
    if (config_schema_load_string(&schema, c, name, yaml, len, errbuf, errlen) < 0)
        return -1;
    return finish(c, name, errbuf, errlen);
}

int peer_config_load(struct peer_config *c, const char *path, char *errbuf, size_t errlen)
{
    if (config_schema_load(&schema, c, path, errbuf, errlen) < 0)
        return -1;
    if (!(c->path = strdup(path))) {
        snprintf(errbuf, errlen, "%s: out of memory", path);
        return -1;
    }
    return finish(c, path, errbuf, errlen);
}

void peer_config_free(struct peer_config *c)
{
    config_schema_free(&schema, c);
    free(c->path);
    c->path = NULL;
}

void peer_config_write_example(FILE *out)
{
    config_schema_write_example(&schema, out);
}
