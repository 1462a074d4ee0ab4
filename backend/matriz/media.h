/*
 * The media of a Matriz peer: this site's audio served at
 * rtsp://<host>:<net.rtsp_port>/stream (tx.h on the RTSP server of
 * backend/rtp), and for every link an RTSP client session to the other
 * site's stream feeding its receive path (rx.h), started again with backoff
 * (0.5 s doubling to 5 s) whenever it ends while the link lasts.
 *
 *     struct media *m = media_new(loop, cfg);          binds the RTSP port
 *     p = matriz_peer_new(loop, cfg, &media_link_ops, m);
 *     ...  matriz_peer_free(&p);  media_free(&m);
 *
 * RTCP goes every second both ways (not imesd's 5 s), randomised ±50 %.
 *
 * Link stats (media_link_ops.stats), per remote peer: rtt_ms (the RTCP
 * round trip: RFC 3611 XR RRTR/DLRR, see rtsp_client.h; -1 until the first
 * answer), rtsp_rtt_ms (the RTSP keep-alive's round trip, the other peer's
 * request handling included), jitter_ms, loss (fraction, by sequence numbers),
 * lost, late, concealed, fec, depth_ms, target_ms, packets, kbps, transport.
 * Thread: loop; the ops' process/capture on the audio thread.
 */
#ifndef IMES_MATRIZ_MEDIA_H
#define IMES_MATRIZ_MEDIA_H

#include <ev.h>

#include "matriz/peer.h"
#include "matriz/peer_config.h"

struct media;

struct media *media_new(struct ev_loop *loop, const struct peer_config *cfg);
void media_free(struct media **m);

extern const struct matriz_link_ops media_link_ops;

#endif
