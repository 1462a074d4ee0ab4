/*
 * Playback from the command line, each command the same document write the
 * web app makes (state/docs.h):
 *   imes enqueue CHANNEL QUERY|PATH...  entry:c~CHANNEL:<uid> documents
 *   imes pause CHANNEL / resume CHANNEL channel:CHANNEL.paused
 *   imes play CHANNEL ENTRY             channel:CHANNEL.play {entry, request}
 *   imes skip CHANNEL                   channel:CHANNEL.skip
 *   imes playlist CHANNEL               lists the queue in order
 * Also the helpers the channel and aggregate commands share.
 */
#ifndef IMES_CLI_PLAYBACK_H
#define IMES_CLI_PLAYBACK_H

#include "cli/cli.h"

extern const struct cli_command cli_enqueue_command;
extern const struct cli_command cli_pause_command;
extern const struct cli_command cli_resume_command;
extern const struct cli_command cli_play_command;
extern const struct cli_command cli_skip_command;
extern const struct cli_command cli_playlist_command;

/* Whether TYPE:NAME exists in the main database. Returns 0 if it does (and
 * *doc, which may be NULL, gets it), else CLI_EXIT_FAIL after saying so:
 * "no channel jazz (make it with: HINT)" for a 404 (hint may be NULL). */
int cli_need_doc(struct cli *cli, const char *type, const char *name, const char *hint,
                 json_t **doc);

/* A random nonce: 16 lowercase hex digits and a NUL. 0 or -errno. */
int cli_nonce(char out[17]);

#endif
