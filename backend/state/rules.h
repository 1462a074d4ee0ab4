/*
 * The rules of IMES (shared/DESIGN.md, "The rules") as one pure function:
 * a snapshot of channels, aggregates (rooms), devices, delegates and users
 * goes in; which devices are muted, which channels play, and when the
 * answer will next change by the clock alone come out. No JSON, no I/O, no
 * clock: `now` is a parameter, so imesd re-evaluates after every change it
 * sees and sets one timer for next_change.
 *
 *   device muted    while any of its delegates holds it paused (indefinitely,
 *                   or until a time not yet reached), or while no user present
 *                   in its aggregate is free of lockout. A device in no
 *                   aggregate has nobody present: muted.
 *   user present    while now < present_until (imesd sets RULES_FOREVER while
 *                   the web app is connected, close time + session_timeout
 *                   after); lockout makes them absent.
 *   channel plays   while it is not paused, its playlist has a next entry, and
 *                   at least one device on it (device -> aggregate -> channel)
 *                   is connected (listeners > 0) and not muted. Otherwise it
 *                   auto-pauses, with the first of those reasons that holds.
 *
 * Times are seconds on any one clock the caller chooses (wall or monotonic);
 * every deadline is exclusive: a pause "until T" no longer holds at now == T.
 * References between records are by name (NULL: none); a name nobody has is
 * as good as none. Several delegates may name one device: any paused mutes it.
 * Thread: any (no state).
 */
#ifndef IMES_RULES_H
#define IMES_RULES_H

#include <math.h>
#include <stdbool.h>
#include <stddef.h>

#define RULES_FOREVER ((double)INFINITY)

struct rules_channel {
    const char *name;
    bool paused;   /* channel:<name>.paused, set by a user */
    bool has_next; /* its playlist has an entry to play (current or next) */
};

struct rules_aggregate {
    const char *name;
    const char *channel; /* the channel the room plays, or NULL */
};

struct rules_device {
    const char *name;
    const char *aggregate; /* the room it is in, or NULL */
    unsigned listeners;    /* connected players (HTTP, RTSP) */
};

enum rules_hold {
    RULES_HOLD_NONE = 0,   /* not pausing its devices */
    RULES_HOLD_UNTIL,      /* pausing them while now < until */
    RULES_HOLD_INDEFINITE, /* pausing them until it unpauses */
};

struct rules_delegate {
    const char *name;
    const char *const *devices; /* the devices it may pause */
    size_t ndevices;
    enum rules_hold hold;
    double until; /* for RULES_HOLD_UNTIL */
};

struct rules_user {
    const char *name;
    const char *aggregate; /* the room they are in, or NULL */
    double present_until;  /* RULES_FOREVER while connected; 0 if never seen */
    bool lockout;
};

struct rules_snapshot {
    const struct rules_channel *channels;
    size_t nchannels;
    const struct rules_aggregate *aggregates;
    size_t naggregates;
    const struct rules_device *devices;
    size_t ndevices;
    const struct rules_delegate *delegates;
    size_t ndelegates;
    const struct rules_user *users;
    size_t nusers;
};

enum rules_mute {
    RULES_AUDIBLE = 0,
    RULES_MUTED_DELEGATE,   /* a delegate holds it paused (delegate names it) */
    RULES_MUTED_NOBODY,     /* nobody is present in its aggregate */
    RULES_MUTED_LOCKED_OUT, /* everyone present in its aggregate is locked out */
};

struct rules_device_state {
    bool muted;
    enum rules_mute reason;
    /* RULES_MUTED_DELEGATE: the delegate whose hold lasts longest (the first
     * in the snapshot among equals), and when the last delegate hold ends
     * (RULES_FOREVER: indefinitely). The device may stay muted after that
     * for another reason. */
    const char *delegate;
    double delegate_until;
};

enum rules_stop {
    RULES_PLAYS = 0,
    RULES_STOP_PAUSED,    /* paused by a user */
    RULES_STOP_NO_ENTRY,  /* the playlist is empty or at its end */
    RULES_STOP_NO_DEVICE, /* no device on it is connected and unmuted */
};

struct rules_channel_state {
    bool plays;
    enum rules_stop reason;
    unsigned audible_devices; /* devices on it that are connected and unmuted */
};

/* Arrays parallel to the snapshot's, allocated by the caller. */
struct rules_result {
    struct rules_device_state *devices;   /* ndevices */
    struct rules_channel_state *channels; /* nchannels */
    bool *present; /* nusers: present and free of lockout (scrobbling); may be NULL */
    /* The earliest time after now at which the answer can change without any
     * document or connection changing (a delegate hold or a user's presence
     * running out), or RULES_FOREVER. */
    double next_change;
};

void rules_evaluate(const struct rules_snapshot *s, double now, struct rules_result *out);

/* Whether user u is present and free of lockout at now. */
bool rules_user_present(const struct rules_user *u, double now);

/* Short English reasons for logs and status documents: "delegate" (the
 * caller adds the name), "nobody present", "everyone present is locked
 * out"; "paused by a user", "playlist empty or at its end", "no device
 * connected and unmuted". "" for RULES_AUDIBLE / RULES_PLAYS. */
const char *rules_mute_str(enum rules_mute m);
const char *rules_stop_str(enum rules_stop s);

#endif
