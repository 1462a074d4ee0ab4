/*
 * libFuzzer target for RTSP requests and interleaved frames, through the
 * server's real entry points: one process-wide libev loop runs an httpd on
 * 127.0.0.1 with the RTSP server (backend/rtp/rtsp_server.h) on it and a
 * provider of fake sources ("/ok..." opens at once, "/later..." answers on
 * the next loop iteration, anything else is 404); each input is written to a
 * fresh TCP connection in pieces whose sizes come from the input, the loop
 * runs until the server has answered or closed, and the connection goes.
 * So the parser, every method, sessions, transports, PLAY/PAUSE with paced
 * sending of interleaved RTP, RTCP arriving on interleaved channels, and a
 * client leaving at any point are all reached. UDP is off (rtp_port 0): SETUP
 * over UDP answers 461 and nothing is sent to stray ports.
 *
 * Session ids are random, so an input names "the session the server gave
 * out last" as {S}: once an answer carries a Session header, every {S} in
 * the rest of the input becomes that id (so PLAY, PAUSE, GET_PARAMETER and
 * TEARDOWN reach a real session).
 *
 * Checks: nothing crashes or leaks (ASan), and after each input every
 * session is gone with its connection.
 */
#include "core/log.h"
#include "rtp/rtsp_server.h"
#include "stream/httpd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fake {
    struct rtsp_source base;
    int started;
    unsigned n;
    uint8_t frame[417];
};

static int fake_start(struct rtsp_source *s, rtsp_wake_fn wake, void *arg)
{
    ((struct fake *)s)->started = 1;
    return 0;
}

static int fake_read(struct rtsp_source *s, struct rtsp_frame *f)
{
    struct fake *k = (struct fake *)s;
    if (!k->started || k->n >= 20) /* 20 frames, then "none ready" */
        return 0;
    k->n++;
    f->data = k->frame;
    f->len = sizeof(k->frame);
    f->samples = 1152;
    return 1;
}

static void fake_stop(struct rtsp_source *s)
{
    ((struct fake *)s)->started = 0;
}

static void fake_close(struct rtsp_source *s)
{
    free(s);
}

static const struct rtsp_source_ops fake_ops = {
    .start = fake_start, .read = fake_read, .stop = fake_stop, .close = fake_close};

static struct rtsp_source *fake_new(int opus)
{
    struct fake *k = calloc(1, sizeof(*k));
    if (!k)
        return NULL;
    k->base.ops = &fake_ops;
    k->base.sample_rate = 48000;
    rtp_format_default(&k->base.fmt, opus ? RTP_ENC_OPUS : RTP_ENC_MPA, 48000, 2);
    snprintf(k->base.name, sizeof(k->base.name), "fuzz");
    memset(k->frame, 0x55, sizeof(k->frame));
    k->frame[0] = 0xff;
    return &k->base;
}

static struct ev_loop *loop;
static struct rtsp_open *later_op;
static int later_opus;
static ev_timer later_timer;

static void later_cb(struct ev_loop *l, ev_timer *w, int revents)
{
    struct rtsp_open *op = later_op;
    later_op = NULL;
    if (op)
        rtsp_open_done(op, 200, fake_new(later_opus));
}

static int prov_open(void *arg, struct rtsp_open *op, const char *path, const char *query)
{
    if (strncmp(path, "/ok", 3) == 0) {
        rtsp_open_done(op, 200, fake_new(strstr(path, "opus") != NULL));
    } else if (strncmp(path, "/later", 6) == 0 && !later_op) {
        later_op = op;
        later_opus = strstr(path, "opus") != NULL;
        ev_timer_set(&later_timer, 0., 0.);
        ev_timer_start(loop, &later_timer);
    } else if (strncmp(path, "/fail", 5) == 0) {
        return -ENOMEM;
    } else {
        rtsp_open_done(op, 404, NULL);
    }
    return 0;
}

static void prov_cancel(void *arg, struct rtsp_open *op)
{
    if (op == later_op)
        later_op = NULL;
}

static const struct rtsp_provider provider = {.open = prov_open, .cancel = prov_cancel};
static struct httpd *httpd;
static struct rtsp_server *server;
static int port;

static void setup(void)
{
    log_open(NULL, getenv("FUZZ_RTSP_LOG") ? E_DEBUG : E_FATAL);
    loop = ev_default_loop(0);
    struct httpd_options o = {.bind_host = "127.0.0.1", .header_timeout_s = 1, .idle_timeout_s = 1};
    httpd = httpd_new(loop, &o);
    struct rtsp_server_options so = {.rtp_port = 0, .session_timeout_s = 1, .cushion_s = 0.01};
    server = rtsp_server_new(loop, httpd, &so, &provider, NULL);
    if (!httpd || !server)
        abort();
    port = httpd_port(httpd);
    ev_timer_init(&later_timer, later_cb, 0., 0.);
}

static void spin(int rounds)
{
    for (int i = 0; i < rounds; i++)
        ev_run(loop, EVRUN_NOWAIT);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!loop)
        setup();
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return 0;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        close(fd);
        return 0;
    }
    spin(2);
    /* Pieces: the first byte picks a piece size (0: all at once). */
    size_t piece = size ? data[0] % 64 : 0;
    size_t off = size ? 1 : 0;
    uint8_t *rest = malloc(size * 6 + 1); /* {S} (3 bytes) may become 16 */
    if (!rest) {
        close(fd);
        return 0;
    }
    size_t rlen = size - off;
    memcpy(rest, data + off, rlen);
    off = 0;
    char sid[17] = "", answers[4096];
    size_t alen = 0;
    while (off < rlen) {
        size_t n = piece && rlen - off > piece ? piece : rlen - off;
        if (send(fd, rest + off, n, MSG_NOSIGNAL) < 0)
            break;
        off += n;
        spin(3);
        ssize_t r = recv(fd, answers + alen, sizeof(answers) - 1 - alen, MSG_DONTWAIT);
        if (r > 0) {
            alen += (size_t)r;
            answers[alen] = '\0';
            const char *h = strstr(answers, "Session: ");
            if (h && strlen(h + 9) >= 16 && !sid[0]) {
                memcpy(sid, h + 9, 16);
                /* substitute {S} in what is left */
                size_t w = off;
                uint8_t *copy = malloc(rlen - off + 1);
                if (copy) {
                    memcpy(copy, rest + off, rlen - off);
                    for (size_t i = 0; i < rlen - off;) {
                        if (i + 3 <= rlen - off && memcmp(copy + i, "{S}", 3) == 0) {
                            memcpy(rest + w, sid, 16);
                            w += 16;
                            i += 3;
                        } else {
                            rest[w++] = copy[i++];
                        }
                    }
                    rlen = w;
                    free(copy);
                }
            }
            if (alen > sizeof(answers) / 2)
                alen = 0; /* keep looking in later answers only */
        }
    }
    free(rest);
    shutdown(fd, SHUT_WR);
    /* Let the server answer and play a little (read what it sends). */
    char sink[65536];
    for (int i = 0; i < 20; i++) {
        spin(2);
        ssize_t r = recv(fd, sink, sizeof(sink), MSG_DONTWAIT);
        if (r == 0)
            break;
    }
    close(fd);
    spin(5);
    if (rtsp_server_sessions(server) != 0) {
        fprintf(stderr, "fuzz_rtsp: %zu sessions outlived their connection\n",
                rtsp_server_sessions(server));
        abort();
    }
    return 0;
}
