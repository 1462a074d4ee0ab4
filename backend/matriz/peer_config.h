/*
 * peer.yaml, the Matriz peer's configuration, read with the option-table
 * machinery of core/config.h (the same loader, messages and generated
 * example as config.yaml). peer.yaml.example is generated from the table
 * (`matriz --example-config`) and a test keeps the committed copy identical.
 */
#ifndef IMES_MATRIZ_PEER_CONFIG_H
#define IMES_MATRIZ_PEER_CONFIG_H

#include <stddef.h>
#include <stdio.h>

#include "core/config.h"

struct peer_config {
    char *path;
    struct {
        char *name;  /* the peer's name: its CouchDB user (imes peer add NAME) */
        char *key;   /* its key */
        char *imesd; /* imesd's URL */
        char *host;  /* advertised in the RTSP URL; "" = the address imesd sees */
        int port;    /* advertised RTSP port; 0 = net.port */
    } peer;
    struct {
        char *couchdb;  /* CouchDB URL (no credentials: the peer's are used) */
        char *database; /* the main IMES database */
    } roster;
    struct {
        char *bind_host;
        int port;    /* RTSP (TCP) */
        int rtp_min; /* UDP ports for RTP/RTCP, sending and receiving */
        int rtp_max;
        int nice; /* of the loop thread (RTP in and out) */
    } net;
    struct {
        char *backend; /* file, jack */
        int rate;
        int period;
        char *input;
        int tone_hz;
        int tone_dbfs;
        char *output_dir;
        char *jack_server;
        char *connect_capture;
    } audio;
    struct {
        char *codec;    /* opus, L16, L24 */
        char *frame_ms; /* "2.5", "5", "10" */
        int bitrate;
        int fec;
        int loss_percent;
    } send;
    struct {
        int min_ms;
        int max_ms;
        int headroom_ms;
    } jitter;
    struct {
        char *dir;           /* "" = no recording */
        struct strlist what; /* mix, self, peers */
    } record;
    struct {
        char *level;
        char *file;
    } log;

    int frame; /* derived: samples per packet at 48 kHz */
};

void peer_config_defaults(struct peer_config *c);
/* 0, or -1 with errbuf "FILE:LINE: KEY: what is wrong" (or "FILE: KEY: ..."
 * for a required option left out). */
int peer_config_load(struct peer_config *c, const char *path, char *errbuf, size_t errlen);
int peer_config_load_string(struct peer_config *c, const char *name, const char *yaml, size_t len,
                            char *errbuf, size_t errlen);
void peer_config_free(struct peer_config *c);
void peer_config_write_example(FILE *out);

#endif
