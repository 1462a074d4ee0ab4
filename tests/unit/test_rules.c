/* The rules (shared/DESIGN.md, "The rules"), one table row per situation:
 * a snapshot, the time, and what every device and channel must be, and when
 * the answer changes next by the clock alone.
 *
 * Expected device states are written "audible", "delegate NAME" (muted by
 * that delegate), "nobody" (nobody present) or "locked out" (everyone
 * present is locked out); channels "plays N" (N audible devices), "paused",
 * "no entry" or "no device". */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "state/rules.h"

#define MAXN    6
#define FOREVER RULES_FOREVER

/* A delegate's device list: DEVS("a", "b"). */
#define DEVS(...)                                                                                  \
    .devices = (const char *const[]){__VA_ARGS__},                                                 \
    .ndevices = sizeof((const char *const[]){__VA_ARGS__}) / sizeof(const char *)

/* Presence of a user with a live connection, and of one who left. */
#define HERE FOREVER

struct row {
    const char *what;
    double now;
    struct rules_channel ch[MAXN];
    struct rules_aggregate ag[MAXN];
    struct rules_device dev[MAXN];
    struct rules_delegate del[MAXN];
    struct rules_user us[MAXN];
    const char *dev_want[MAXN];
    const char *ch_want[MAXN];
    double next;
};

static const struct row rows[] = {
    {
        .what = "nothing at all",
        .now = 100,
        .next = FOREVER,
    },
    {
        .what = "one room: a present user, a connected device, a channel with entries",
        .now = 100,
        .ch = {{"jazz", false, true}},
        .ag = {{"home", "jazz"}},
        .dev = {{"kitchen", "home", 1}},
        .us = {{"alice", "home", HERE, false}},
        .dev_want = {"audible"},
        .ch_want = {"plays 1"},
        .next = FOREVER,
    },
    {
        .what = "paused by a user: the device stays audible (silence flows anyway)",
        .now = 100,
        .ch = {{"jazz", true, true}},
        .ag = {{"home", "jazz"}},
        .dev = {{"kitchen", "home", 1}},
        .us = {{"alice", "home", HERE, false}},
        .dev_want = {"audible"},
        .ch_want = {"paused"},
        .next = FOREVER,
    },
    {
        .what = "playlist empty or at its end",
        .now = 100,
        .ch = {{"jazz", false, false}},
        .ag = {{"home", "jazz"}},
        .dev = {{"kitchen", "home", 1}},
        .us = {{"alice", "home", HERE, false}},
        .dev_want = {"audible"},
        .ch_want = {"no entry"},
        .next = FOREVER,
    },
    {
        .what = "paused and at the end: paused is the reason given",
        .now = 100,
        .ch = {{"jazz", true, false}},
        .dev_want = {NULL},
        .ch_want = {"paused"},
        .next = FOREVER,
    },
    {
        .what = "at the end and no device: the playlist is the reason given",
        .now = 100,
        .ch = {{"jazz", false, false}},
        .ch_want = {"no entry"},
        .next = FOREVER,
    },
    {
        .what = "nobody present: muted, and the channel auto-pauses",
        .now = 100,
        .ch = {{"jazz", false, true}},
        .ag = {{"home", "jazz"}},
        .dev = {{"kitchen", "home", 1}},
        .dev_want = {"nobody"},
        .ch_want = {"no device"},
        .next = FOREVER,
    },
    {
        .what = "the only user present is locked out",
        .now = 100,
        .ch = {{"jazz", false, true}},
        .ag = {{"home", "jazz"}},
        .dev = {{"kitchen", "home", 1}},
        .us = {{"alice", "home", HERE, true}},
        .dev_want = {"locked out"},
        .ch_want = {"no device"},
        .next = FOREVER,
    },
    {
        .what = "one user locked out, another free: audible",
        .now = 100,
        .ch = {{"jazz", false, true}},
        .ag = {{"home", "jazz"}},
        .dev = {{"kitchen", "home", 1}},
        .us = {{"alice", "home", HERE, true}, {"bob", "home", HERE, false}},
        .dev_want = {"audible"},
        .ch_want = {"plays 1"},
        .next = FOREVER,
    },
    {
        .what = "a locked-out user who left: locked out until the session timeout, then nobody",
        .now = 100,
        .dev = {{"kitchen", "home", 1}},
        .us = {{"alice", "home", 160, true}},
        .dev_want = {"locked out"},
        .next = 160,
    },
    {
        .what = "a user who closed the web app is present for session_timeout",
        .now = 100,
        .ch = {{"jazz", false, true}},
        .ag = {{"home", "jazz"}},
        .dev = {{"kitchen", "home", 1}},
        .us = {{"alice", "home", 400, false}},
        .dev_want = {"audible"},
        .ch_want = {"plays 1"},
        .next = 400,
    },
    {
        .what = "... and absent from the moment it runs out (deadline == now)",
        .now = 400,
        .ch = {{"jazz", false, true}},
        .ag = {{"home", "jazz"}},
        .dev = {{"kitchen", "home", 1}},
        .us = {{"alice", "home", 400, false}},
        .dev_want = {"nobody"},
        .ch_want = {"no device"},
        .next = FOREVER,
    },
    {
        .what = "a user never seen (present_until 0) and one long gone",
        .now = 100,
        .dev = {{"kitchen", "home", 1}},
        .us = {{"alice", "home", 0, false}, {"bob", "home", 99.5, false}},
        .dev_want = {"nobody"},
        .next = FOREVER,
    },
    {
        .what = "a user present in another room does not count here",
        .now = 100,
        .ch = {{"jazz", false, true}},
        .ag = {{"home", "jazz"}, {"office", "jazz"}},
        .dev = {{"kitchen", "home", 1}, {"desk", "office", 1}},
        .us = {{"alice", "office", HERE, false}},
        .dev_want = {"nobody", "audible"},
        .ch_want = {"plays 1"},
        .next = FOREVER,
    },
    {
        .what = "a user in no room",
        .now = 100,
        .dev = {{"kitchen", "home", 1}},
        .us = {{"alice", NULL, HERE, false}},
        .dev_want = {"nobody"},
        .next = FOREVER,
    },
    {
        .what = "a delegate holding a device indefinitely",
        .now = 100,
        .ch = {{"jazz", false, true}},
        .ag = {{"home", "jazz"}},
        .dev = {{"kitchen", "home", 1}},
        .del = {{"phone", DEVS("kitchen"), RULES_HOLD_INDEFINITE, 0}},
        .us = {{"alice", "home", HERE, false}},
        .dev_want = {"delegate phone"},
        .ch_want = {"no device"},
        .next = FOREVER,
    },
    {
        .what = "a delegate holding for N s: muted, and the hold's end is the next change",
        .now = 100,
        .ch = {{"jazz", false, true}},
        .ag = {{"home", "jazz"}},
        .dev = {{"kitchen", "home", 1}},
        .del = {{"phone", DEVS("kitchen"), RULES_HOLD_UNTIL, 130}},
        .us = {{"alice", "home", HERE, false}},
        .dev_want = {"delegate phone"},
        .ch_want = {"no device"},
        .next = 130,
    },
    {
        .what = "... and the hold ends exactly at its deadline",
        .now = 130,
        .ch = {{"jazz", false, true}},
        .ag = {{"home", "jazz"}},
        .dev = {{"kitchen", "home", 1}},
        .del = {{"phone", DEVS("kitchen"), RULES_HOLD_UNTIL, 130}},
        .us = {{"alice", "home", HERE, false}},
        .dev_want = {"audible"},
        .ch_want = {"plays 1"},
        .next = FOREVER,
    },
    {
        .what = "a delegate that is not holding (its until is ignored)",
        .now = 100,
        .ch = {{"jazz", false, true}},
        .ag = {{"home", "jazz"}},
        .dev = {{"kitchen", "home", 1}},
        .del = {{"phone", DEVS("kitchen"), RULES_HOLD_NONE, 500}},
        .us = {{"alice", "home", HERE, false}},
        .dev_want = {"audible"},
        .ch_want = {"plays 1"},
        .next = FOREVER,
    },
    {
        .what = "two delegates on one device: the longer hold is named, the sooner end is next",
        .now = 100,
        .dev = {{"kitchen", "home", 1}},
        .del = {{"phone", DEVS("kitchen"), RULES_HOLD_UNTIL, 150},
                {"tablet", DEVS("kitchen"), RULES_HOLD_UNTIL, 300}},
        .us = {{"alice", "home", HERE, false}},
        .dev_want = {"delegate tablet"},
        .next = 150,
    },
    {
        .what = "... after the shorter hold ran out, the other still mutes",
        .now = 200,
        .dev = {{"kitchen", "home", 1}},
        .del = {{"phone", DEVS("kitchen"), RULES_HOLD_UNTIL, 150},
                {"tablet", DEVS("kitchen"), RULES_HOLD_UNTIL, 300}},
        .us = {{"alice", "home", HERE, false}},
        .dev_want = {"delegate tablet"},
        .next = 300,
    },
    {
        .what = "one delegate idle, one holding indefinitely: any holding mutes",
        .now = 100,
        .dev = {{"kitchen", "home", 1}},
        .del = {{"phone", DEVS("kitchen"), RULES_HOLD_NONE, 0},
                {"tablet", DEVS("kitchen"), RULES_HOLD_INDEFINITE, 0}},
        .us = {{"alice", "home", HERE, false}},
        .dev_want = {"delegate tablet"},
        .next = FOREVER,
    },
    {
        .what = "an indefinite hold outlasts a timed one",
        .now = 100,
        .dev = {{"kitchen", "home", 1}},
        .del = {{"phone", DEVS("kitchen"), RULES_HOLD_UNTIL, 900},
                {"tablet", DEVS("kitchen"), RULES_HOLD_INDEFINITE, 0}},
        .us = {{"alice", "home", HERE, false}},
        .dev_want = {"delegate tablet"},
        .next = 900,
    },
    {
        .what = "a delegate mutes every device it names, and only those",
        .now = 100,
        .dev = {{"kitchen", "home", 1}, {"hall", "home", 1}, {"attic", "home", 1}},
        .del = {{"phone", DEVS("kitchen", "hall", "nonexistent"), RULES_HOLD_INDEFINITE, 0}},
        .us = {{"alice", "home", HERE, false}},
        .dev_want = {"delegate phone", "delegate phone", "audible"},
        .next = FOREVER,
    },
    {
        .what = "a delegate's hold over no existing device still counts for the next change",
        .now = 100,
        .dev = {{"kitchen", "home", 1}},
        .del = {{"phone", DEVS("ghost"), RULES_HOLD_UNTIL, 120}},
        .us = {{"alice", "home", HERE, false}},
        .dev_want = {"audible"},
        .next = 120,
    },
    {
        .what = "a delegate hold wins over nobody being present",
        .now = 100,
        .dev = {{"kitchen", "home", 1}},
        .del = {{"phone", DEVS("kitchen"), RULES_HOLD_INDEFINITE, 0}},
        .dev_want = {"delegate phone"},
        .next = FOREVER,
    },
    {
        .what = "several rooms on one channel, one muted, one not: it plays",
        .now = 100,
        .ch = {{"jazz", false, true}},
        .ag = {{"home", "jazz"}, {"bar", "jazz"}},
        .dev = {{"kitchen", "home", 1}, {"stage", "bar", 3}},
        .del = {{"phone", DEVS("kitchen"), RULES_HOLD_INDEFINITE, 0}},
        .us = {{"alice", "home", HERE, false}, {"bob", "bar", HERE, false}},
        .dev_want = {"delegate phone", "audible"},
        .ch_want = {"plays 1"},
        .next = FOREVER,
    },
    {
        .what = "several rooms on one channel, all muted for different reasons: auto-paused",
        .now = 100,
        .ch = {{"jazz", false, true}},
        .ag = {{"home", "jazz"}, {"bar", "jazz"}, {"porch", "jazz"}},
        .dev = {{"kitchen", "home", 1}, {"stage", "bar", 3}, {"swing", "porch", 1}},
        .del = {{"phone", DEVS("kitchen"), RULES_HOLD_INDEFINITE, 0}},
        .us = {{"alice", "home", HERE, false}, {"bob", "bar", HERE, true}},
        .dev_want = {"delegate phone", "locked out", "nobody"},
        .ch_want = {"no device"},
        .next = FOREVER,
    },
    {
        .what = "several rooms and devices on one channel, all audible",
        .now = 100,
        .ch = {{"jazz", false, true}},
        .ag = {{"home", "jazz"}, {"bar", "jazz"}},
        .dev = {{"kitchen", "home", 1}, {"hall", "home", 2}, {"stage", "bar", 3}},
        .us = {{"alice", "home", HERE, false}, {"bob", "bar", 500, false}},
        .dev_want = {"audible", "audible", "audible"},
        .ch_want = {"plays 3"},
        .next = 500,
    },
    {
        .what = "an unmuted device nobody listens to does not keep a channel playing",
        .now = 100,
        .ch = {{"jazz", false, true}},
        .ag = {{"home", "jazz"}},
        .dev = {{"kitchen", "home", 0}},
        .us = {{"alice", "home", HERE, false}},
        .dev_want = {"audible"},
        .ch_want = {"no device"},
        .next = FOREVER,
    },
    {
        .what = "one connected device and one not, in one room",
        .now = 100,
        .ch = {{"jazz", false, true}},
        .ag = {{"home", "jazz"}},
        .dev = {{"kitchen", "home", 0}, {"hall", "home", 1}},
        .us = {{"alice", "home", HERE, false}},
        .dev_want = {"audible", "audible"},
        .ch_want = {"plays 1"},
        .next = FOREVER,
    },
    {
        .what = "a device in no aggregate: nobody is present there, and it plays no channel",
        .now = 100,
        .ch = {{"jazz", false, true}},
        .ag = {{"home", "jazz"}},
        .dev = {{"loose", NULL, 1}},
        .us = {{"alice", "home", HERE, false}, {"bob", NULL, HERE, false}},
        .dev_want = {"nobody"},
        .ch_want = {"no device"},
        .next = FOREVER,
    },
    {
        .what = "an aggregate with no channel: its devices play nothing, and may be audible",
        .now = 100,
        .ch = {{"jazz", false, true}},
        .ag = {{"home", NULL}},
        .dev = {{"kitchen", "home", 1}},
        .us = {{"alice", "home", HERE, false}},
        .dev_want = {"audible"},
        .ch_want = {"no device"},
        .next = FOREVER,
    },
    {
        .what = "a device whose aggregate has no document: the room is its name, no channel",
        .now = 100,
        .ch = {{"jazz", false, true}},
        .dev = {{"kitchen", "nowhere", 1}},
        .us = {{"alice", "nowhere", HERE, false}},
        .dev_want = {"audible"},
        .ch_want = {"no device"},
        .next = FOREVER,
    },
    {
        .what = "an aggregate playing a channel that does not exist",
        .now = 100,
        .ch = {{"jazz", false, true}},
        .ag = {{"home", "blues"}},
        .dev = {{"kitchen", "home", 1}},
        .us = {{"alice", "home", HERE, false}},
        .dev_want = {"audible"},
        .ch_want = {"no device"},
        .next = FOREVER,
    },
    {
        .what = "two channels, each with its own room",
        .now = 100,
        .ch = {{"jazz", false, true}, {"news", false, true}, {"idle", false, true}},
        .ag = {{"home", "jazz"}, {"office", "news"}},
        .dev = {{"kitchen", "home", 1}, {"desk", "office", 1}},
        .us = {{"alice", "home", HERE, false}, {"bob", "office", 250, false}},
        .dev_want = {"audible", "audible"},
        .ch_want = {"plays 1", "plays 1", "no device"},
        .next = 250,
    },
    {
        .what = "the next change is the soonest deadline of all, past ones ignored",
        .now = 100,
        .dev = {{"kitchen", "home", 1}},
        .del = {{"phone", DEVS("kitchen"), RULES_HOLD_UNTIL, 90},
                {"tablet", DEVS("kitchen"), RULES_HOLD_UNTIL, 700}},
        .us = {{"alice", "home", 650, false},
               {"bob", "home", 99, false},
               {"carol", "away", 600.25, false},
               {"dave", "home", HERE, false}},
        .dev_want = {"delegate tablet"},
        .next = 600.25,
    },
};

static void format_device(const struct rules_device_state *st, char *out, size_t n)
{
    if (!st->muted)
        snprintf(out, n, "%s", st->reason == RULES_AUDIBLE ? "audible" : "audible?");
    else if (st->reason == RULES_MUTED_DELEGATE)
        snprintf(out, n, "delegate %s", st->delegate ? st->delegate : "(none)");
    else if (st->reason == RULES_MUTED_NOBODY)
        snprintf(out, n, "nobody");
    else if (st->reason == RULES_MUTED_LOCKED_OUT)
        snprintf(out, n, "locked out");
    else
        snprintf(out, n, "muted?");
}

static void format_channel(const struct rules_channel_state *st, char *out, size_t n)
{
    if (st->plays && st->reason == RULES_PLAYS)
        snprintf(out, n, "plays %u", st->audible_devices);
    else if (st->plays)
        snprintf(out, n, "plays?");
    else if (st->reason == RULES_STOP_PAUSED)
        snprintf(out, n, "paused");
    else if (st->reason == RULES_STOP_NO_ENTRY)
        snprintf(out, n, "no entry");
    else if (st->reason == RULES_STOP_NO_DEVICE)
        snprintf(out, n, "no device");
    else
        snprintf(out, n, "stopped?");
}

static size_t count_named(const void *arr, size_t size)
{
    size_t n = 0;
    while (n < MAXN && *(const char *const *)((const char *)arr + n * size))
        n++;
    return n;
}

static void table(void **state)
{
    for (size_t r = 0; r < sizeof(rows) / sizeof(rows[0]); r++) {
        const struct row *row = &rows[r];
        struct rules_snapshot s = {
            .channels = row->ch,
            .nchannels = count_named(row->ch, sizeof(row->ch[0])),
            .aggregates = row->ag,
            .naggregates = count_named(row->ag, sizeof(row->ag[0])),
            .devices = row->dev,
            .ndevices = count_named(row->dev, sizeof(row->dev[0])),
            .delegates = row->del,
            .ndelegates = count_named(row->del, sizeof(row->del[0])),
            .users = row->us,
            .nusers = count_named(row->us, sizeof(row->us[0])),
        };
        struct rules_device_state dev[MAXN];
        struct rules_channel_state ch[MAXN];
        bool present[MAXN];
        struct rules_result res = {.devices = dev, .channels = ch, .present = present};
        char got[128];
        int bad = 0;

        rules_evaluate(&s, row->now, &res);
        for (size_t i = 0; i < s.ndevices; i++) {
            format_device(&dev[i], got, sizeof(got));
            if (!row->dev_want[i] || strcmp(got, row->dev_want[i]) != 0) {
                print_error("row %zu (%s): device %s is %s, want %s\n", r, row->what,
                            row->dev[i].name, got, row->dev_want[i] ? row->dev_want[i] : "?");
                bad++;
            }
        }
        for (size_t i = 0; i < s.nchannels; i++) {
            format_channel(&ch[i], got, sizeof(got));
            if (!row->ch_want[i] || strcmp(got, row->ch_want[i]) != 0) {
                print_error("row %zu (%s): channel %s %s, want %s\n", r, row->what, row->ch[i].name,
                            got, row->ch_want[i] ? row->ch_want[i] : "?");
                bad++;
            }
        }
        if (!(res.next_change == row->next)) {
            print_error("row %zu (%s): next change %g, want %g\n", r, row->what, res.next_change,
                        row->next);
            bad++;
        }
        for (size_t i = 0; i < s.nusers; i++)
            assert_int_equal(present[i],
                             !row->us[i].lockout && row->now < row->us[i].present_until);
        if (bad)
            fail_msg("row %zu: %d mismatches", r, bad);
    }
}

/* What the device state says besides the reason: when delegate holds end. */
static void delegate_until(void **state)
{
    const struct rules_device devs[] = {{"kitchen", "home", 1}, {"hall", "home", 1}};
    const char *const k[] = {"kitchen"}, *const both[] = {"kitchen", "hall"};
    const struct rules_delegate dels[] = {
        {"phone", k, 1, RULES_HOLD_UNTIL, 150},
        {"tablet", both, 2, RULES_HOLD_UNTIL, 150},
        {"watch", both, 2, RULES_HOLD_UNTIL, 120},
    };
    const struct rules_user us[] = {{"alice", "home", RULES_FOREVER, false}};
    struct rules_snapshot s = {.devices = devs,
                               .ndevices = 2,
                               .delegates = dels,
                               .ndelegates = 3,
                               .users = us,
                               .nusers = 1};
    struct rules_device_state st[2];
    struct rules_result res = {.devices = st};

    rules_evaluate(&s, 100, &res);
    /* equal ends: the first in the snapshot is named */
    assert_string_equal(st[0].delegate, "phone");
    assert_true(st[0].delegate_until == 150);
    assert_string_equal(st[1].delegate, "tablet");
    assert_true(st[1].delegate_until == 150);
    assert_true(res.next_change == 120);
    rules_evaluate(&s, 150, &res);
    assert_false(st[0].muted);
    assert_null(st[0].delegate);
    assert_int_equal(st[0].reason, RULES_AUDIBLE);
}

/* The result arrays are filled whatever they held before; present may be
 * NULL; NULL names never match each other. */
static void robustness(void **state)
{
    const struct rules_channel ch[] = {{NULL, false, true}};
    const struct rules_aggregate ag[] = {{NULL, NULL}};
    const struct rules_device dev[] = {{NULL, NULL, 1}};
    const char *const none[] = {NULL};
    const struct rules_delegate del[] = {{NULL, none, 1, RULES_HOLD_INDEFINITE, 0}};
    const struct rules_user us[] = {{NULL, NULL, RULES_FOREVER, false}};
    struct rules_snapshot s = {ch, 1, ag, 1, dev, 1, del, 1, us, 1};
    struct rules_device_state ds;
    struct rules_channel_state cs;
    struct rules_result res = {.devices = &ds, .channels = &cs};

    memset(&ds, 0xff, sizeof(ds));
    memset(&cs, 0xff, sizeof(cs));
    rules_evaluate(&s, 0, &res);
    assert_true(ds.muted);
    assert_int_equal(ds.reason, RULES_MUTED_NOBODY);
    assert_null(ds.delegate);
    assert_false(cs.plays);
    assert_int_equal(cs.reason, RULES_STOP_NO_DEVICE);
    assert_int_equal(cs.audible_devices, 0);
    assert_true(res.next_change == RULES_FOREVER);
}

static void strings(void **state)
{
    assert_string_equal(rules_mute_str(RULES_AUDIBLE), "");
    assert_string_equal(rules_mute_str(RULES_MUTED_DELEGATE), "delegate");
    assert_string_equal(rules_mute_str(RULES_MUTED_NOBODY), "nobody present");
    assert_string_equal(rules_mute_str(RULES_MUTED_LOCKED_OUT), "everyone present is locked out");
    assert_string_equal(rules_stop_str(RULES_PLAYS), "");
    assert_string_equal(rules_stop_str(RULES_STOP_PAUSED), "paused by a user");
    assert_string_equal(rules_stop_str(RULES_STOP_NO_ENTRY), "playlist empty or at its end");
    assert_string_equal(rules_stop_str(RULES_STOP_NO_DEVICE), "no device connected and unmuted");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(table),
        cmocka_unit_test(delegate_until),
        cmocka_unit_test(robustness),
        cmocka_unit_test(strings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
