/*
 * matriz: a Matriz performer site's peer. Reads peer.yaml, joins imesd's
 * roster, follows the other peers through CouchDB and keeps a link to each
 * (peer.h), with its audio through JACK or files (audio.h).
 *
 * One libev loop (the control plane: HTTP to imesd and CouchDB, RTSP) and
 * the audio backend's thread. SIGINT/SIGTERM leave the roster and stop.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "core/log.h"
#include "matriz/media.h"
#include "matriz/peer.h"
#include "matriz/peer_config.h"

#define MATRIZ_VERSION "0.1.0"

struct app {
    struct ev_loop *loop;
    struct peer_config cfg;
    struct media *media;
    struct matriz_peer *peer;
    ev_signal sigint, sigterm;
    int stopping;
};

static void stopped(void *arg)
{
    struct app *a = arg;
    ev_break(a->loop, EVBREAK_ALL);
}

static void signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    struct app *a = w->data;
    if (a->stopping) {
        LOG(E_WARN, L_MAIN, "signal again: exiting now");
        ev_break(loop, EVBREAK_ALL);
        return;
    }
    a->stopping = 1;
    LOG(E_INFO, L_MAIN, "%s: leaving the roster", w->signum == SIGINT ? "SIGINT" : "SIGTERM");
    matriz_peer_stop(a->peer, stopped, a);
}

static void usage(FILE *out)
{
    fprintf(out, "Usage: matriz -c PEER.YAML [options]\n"
                 "A Matriz performer site: sends this site's audio to the other sites over\n"
                 "RTSP/RTP and plays theirs, with the roster kept by imesd in CouchDB.\n\n"
                 "  -c, --config FILE     the peer's configuration (default: peer.yaml)\n"
                 "      --check-config    read the configuration, report problems, exit\n"
                 "      --example-config  print peer.yaml.example (every option, its default)\n"
                 "  -h, --help            this help\n"
                 "  -V, --version         the version\n\n"
                 "Make the peer's credentials with `imes peer add NAME` (it prints the key).\n"
                 "Exit status: 0 stopped cleanly, 1 failed, 2 bad configuration or usage.\n");
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},   {"check-config", no_argument, NULL, 'C'},
        {"example-config", no_argument, NULL, 'E'}, {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},        {NULL, 0, NULL, 0}};
    const char *path = "peer.yaml";
    int check_only = 0, ch;
    while ((ch = getopt_long(argc, argv, "c:hV", longopts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            path = optarg;
            break;
        case 'C':
            check_only = 1;
            break;
        case 'E':
            peer_config_write_example(stdout);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("matriz %s\n", MATRIZ_VERSION);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "matriz: unexpected argument: %s\n", argv[optind]);
        usage(stderr);
        return 2;
    }

    static struct app a; /* static: the signal watchers point into it */
    char err[CONFIG_ERRLEN];
    peer_config_defaults(&a.cfg);
    if (peer_config_load(&a.cfg, path, err, sizeof(err)) < 0) {
        fprintf(stderr, "matriz: %s\n", err);
        peer_config_free(&a.cfg);
        return 2;
    }
    if (check_only) {
        printf("%s: ok\n", path);
        peer_config_free(&a.cfg);
        return 0;
    }
    int r = log_open(a.cfg.log.file, log_level_parse(a.cfg.log.level));
    if (r < 0) {
        fprintf(stderr, "matriz: %s: log.file: %s: %s\n", path, a.cfg.log.file, strerror(-r));
        peer_config_free(&a.cfg);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    /* RTP goes in and out on this thread: on a busy machine a normal one is
     * held back for milliseconds, and the jitter buffers have to wait that
     * out. (Threads made later, libjack's and the file backend's, set their
     * own real-time scheduling.) */
    if (a.cfg.net.nice != 0 && setpriority(PRIO_PROCESS, 0, a.cfg.net.nice) < 0)
        LOG(E_INFO, L_MAIN, "net.nice %d not applied: %s", a.cfg.net.nice, strerror(errno));
    a.loop = EV_DEFAULT;
    int code = 1;
    LOG(E_INFO, L_MAIN, "matriz %s: %s joining %s (audio %s, %s in %s ms frames)", MATRIZ_VERSION,
        a.cfg.peer.name, a.cfg.peer.imesd, a.cfg.audio.backend, a.cfg.send.codec,
        a.cfg.send.frame_ms);
    /* The RTSP server first: imesd checks it answers when we join. */
    if (!(a.media = media_new(a.loop, &a.cfg)) ||
        !(a.peer = matriz_peer_new(a.loop, &a.cfg, &media_link_ops, a.media)))
        goto out;
    if ((r = matriz_peer_start(a.peer)) < 0) {
        LOG(E_FATAL, L_MAIN, "cannot start: %s", strerror(-r));
        goto out;
    }
    ev_signal_init(&a.sigint, signal_cb, SIGINT);
    ev_signal_init(&a.sigterm, signal_cb, SIGTERM);
    a.sigint.data = a.sigterm.data = &a;
    ev_signal_start(a.loop, &a.sigint);
    ev_signal_start(a.loop, &a.sigterm);
    ev_run(a.loop, 0);
    ev_signal_stop(a.loop, &a.sigint);
    ev_signal_stop(a.loop, &a.sigterm);
    code = 0;
out:
    matriz_peer_free(&a.peer);
    media_free(&a.media);
    peer_config_free(&a.cfg);
    log_close();
    return code;
}
