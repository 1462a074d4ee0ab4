/*
 * The rules (see rules.h): devices first (delegates, then presence in the
 * room), channels from the devices. References are resolved by name with
 * linear scans: a home or a venue has a handful of rooms, devices and
 * users, and evaluating everything from scratch on each change keeps the
 * rules in one readable place instead of spread over incremental updates.
 */
#include "state/rules.h"

#include <string.h>

static bool same(const char *a, const char *b)
{
    return a && b && strcmp(a, b) == 0;
}

/* Whether d holds its devices paused at now; *until gets when that ends. */
static bool holds(const struct rules_delegate *d, double now, double *until)
{
    switch (d->hold) {
    case RULES_HOLD_INDEFINITE:
        *until = RULES_FOREVER;
        return true;
    case RULES_HOLD_UNTIL:
        *until = d->until;
        return now < d->until;
    case RULES_HOLD_NONE:
    default:
        return false;
    }
}

static bool names_device(const struct rules_delegate *d, const char *device)
{
    for (size_t i = 0; i < d->ndevices; i++)
        if (same(d->devices[i], device))
            return true;
    return false;
}

bool rules_user_present(const struct rules_user *u, double now)
{
    return !u->lockout && now < u->present_until;
}

static void device_state(const struct rules_snapshot *s, const struct rules_device *dev, double now,
                         struct rules_device_state *st)
{
    bool anyone = false, free_one = false;

    memset(st, 0, sizeof(*st));
    for (size_t g = 0; g < s->ndelegates; g++) {
        const struct rules_delegate *d = &s->delegates[g];
        double until;
        if (!holds(d, now, &until) || !names_device(d, dev->name))
            continue;
        if (!st->delegate || until > st->delegate_until) {
            st->delegate = d->name;
            st->delegate_until = until;
        }
    }
    if (st->delegate) {
        st->muted = true;
        st->reason = RULES_MUTED_DELEGATE;
        return;
    }
    st->delegate_until = 0;
    for (size_t u = 0; dev->aggregate && u < s->nusers && !free_one; u++) {
        const struct rules_user *user = &s->users[u];
        if (!same(user->aggregate, dev->aggregate) || !(now < user->present_until))
            continue;
        anyone = true;
        free_one = !user->lockout;
    }
    if (free_one)
        return;
    st->muted = true;
    st->reason = anyone ? RULES_MUTED_LOCKED_OUT : RULES_MUTED_NOBODY;
}

/* The channel a device plays through its aggregate, or NULL. */
static const char *device_channel(const struct rules_snapshot *s, const struct rules_device *dev)
{
    for (size_t a = 0; dev->aggregate && a < s->naggregates; a++)
        if (same(s->aggregates[a].name, dev->aggregate))
            return s->aggregates[a].channel;
    return NULL;
}

static void soonest(double *next, double t, double now)
{
    if (t > now && t < *next)
        *next = t;
}

void rules_evaluate(const struct rules_snapshot *s, double now, struct rules_result *out)
{
    double next = RULES_FOREVER;

    for (size_t d = 0; d < s->ndevices; d++)
        device_state(s, &s->devices[d], now, &out->devices[d]);

    for (size_t c = 0; c < s->nchannels; c++) {
        const struct rules_channel *ch = &s->channels[c];
        struct rules_channel_state *st = &out->channels[c];
        memset(st, 0, sizeof(*st));
        for (size_t d = 0; d < s->ndevices; d++) {
            const struct rules_device *dev = &s->devices[d];
            if (dev->listeners > 0 && !out->devices[d].muted &&
                same(device_channel(s, dev), ch->name))
                st->audible_devices++;
        }
        if (ch->paused)
            st->reason = RULES_STOP_PAUSED;
        else if (!ch->has_next)
            st->reason = RULES_STOP_NO_ENTRY;
        else if (st->audible_devices == 0)
            st->reason = RULES_STOP_NO_DEVICE;
        else
            st->plays = true;
    }

    /* What the clock alone changes: a delegate's hold or a user's presence
     * running out (a locked-out user's too: a device's reason changes from
     * "locked out" to "nobody present"). RULES_FOREVER is never "after". */
    for (size_t g = 0; g < s->ndelegates; g++)
        if (s->delegates[g].hold == RULES_HOLD_UNTIL)
            soonest(&next, s->delegates[g].until, now);
    for (size_t u = 0; u < s->nusers; u++) {
        soonest(&next, s->users[u].present_until, now);
        if (out->present)
            out->present[u] = rules_user_present(&s->users[u], now);
    }
    out->next_change = next;
}

const char *rules_mute_str(enum rules_mute m)
{
    switch (m) {
    case RULES_MUTED_DELEGATE:
        return "delegate";
    case RULES_MUTED_NOBODY:
        return "nobody present";
    case RULES_MUTED_LOCKED_OUT:
        return "everyone present is locked out";
    case RULES_AUDIBLE:
    default:
        return "";
    }
}

const char *rules_stop_str(enum rules_stop s)
{
    switch (s) {
    case RULES_STOP_PAUSED:
        return "paused by a user";
    case RULES_STOP_NO_ENTRY:
        return "playlist empty or at its end";
    case RULES_STOP_NO_DEVICE:
        return "no device connected and unmuted";
    case RULES_PLAYS:
    default:
        return "";
    }
}
