/* The Matriz JACK backend under a real jackd with its dummy driver (started
 * here with a server name of its own): ports appear and go, the process
 * function runs at the server's rate, and the mix ports carry the sum. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <jack/jack.h>
#include <math.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include "matriz/audio.h"

static char server[64];
static pid_t jackd = -1;

static void quiet(const char *msg)
{
    (void)msg; /* "cannot connect" while jackd starts: expected */
}

static int setup(void **state)
{
    jack_set_error_function(quiet);
    jack_set_info_function(quiet);
    snprintf(server, sizeof(server), "imes-test-%d", (int)getpid());
    jackd = fork();
    if (jackd == 0) {
        int null = open("/dev/null", 1);
        dup2(null, 1);
        dup2(null, 2);
        /* -R: real-time, as with a sound card (a busy machine would slow
         * the dummy driver down otherwise) */
        execlp("jackd", "jackd", "-R", "-n", server, "-d", "dummy", "-r", "48000", "-p", "128",
               (char *)NULL);
        _exit(127);
    }
    /* Ready when a client can connect. */
    for (int i = 0; i < 100; i++) {
        jack_status_t st;
        jack_client_t *c =
            jack_client_open("probe", JackNoStartServer | JackServerName, &st, server);
        if (c) {
            jack_client_close(c);
            return 0;
        }
        usleep(50000);
    }
    return -1;
}

static int teardown(void **state)
{
    if (jackd > 0) {
        kill(jackd, SIGTERM);
        waitpid(jackd, NULL, 0);
    }
    return 0;
}

struct probe {
    atomic_int calls;
    double first_now, last_now;
    int bad_now;
    uint32_t frames;
};

static void process(struct audio_block *b, void *arg)
{
    struct probe *p = arg;
    int c = atomic_fetch_add(&p->calls, 1);
    if (c == 0)
        p->first_now = b->now;
    else if (b->now <= p->last_now)
        p->bad_now++;
    p->last_now = b->now;
    p->frames = b->frames;
    for (int s = 0; s < AUDIO_MAX_OUTPUTS; s++)
        if (b->out[s][0])
            for (uint32_t i = 0; i < b->frames; i++)
                b->out[s][0][i] = b->out[s][1][i] = 0.25f;
}

static int has_port(jack_client_t *c, const char *name)
{
    return jack_port_by_name(c, name) != NULL;
}

static void ports_and_process(void **state)
{
    const struct audio_ops *ops = audio_find("jack");
    assert_non_null(ops);
    struct probe p = {0};
    struct audio *a;
    struct audio_options o = {.name = "mz", .server = server, .connect_capture = "system:capture_"};
    assert_int_equal(ops->open(&a, &o, process, &p), 0);
    assert_int_equal(ops->rate(a), 48000);
    assert_int_equal(ops->period(a), 128);
    int s1 = ops->add_output(a, "porto"), s2 = ops->add_output(a, "faro");
    assert_true(s1 >= 0 && s2 >= 0 && s1 != s2);
    assert_int_equal(ops->add_output(a, "porto"), -EEXIST);
    assert_int_equal(ops->start(a), 0);

    jack_status_t st;
    jack_client_t *c = jack_client_open("look", JackNoStartServer | JackServerName, &st, server);
    assert_non_null(c);
    assert_true(has_port(c, "mz:in_1") && has_port(c, "mz:in_2"));
    assert_true(has_port(c, "mz:porto_L") && has_port(c, "mz:porto_R"));
    assert_true(has_port(c, "mz:faro_L") && has_port(c, "mz:mix_R"));
    assert_true(jack_port_connected_to(jack_port_by_name(c, "mz:in_1"), "system:capture_1"));
    usleep(500000);
    ops->remove_output(a, s1);
    assert_false(has_port(c, "mz:porto_L"));
    assert_true(has_port(c, "mz:faro_L"));
    assert_int_equal(ops->add_output(a, "porto") >= 0, 1);
    assert_true(has_port(c, "mz:porto_L"));
    usleep(200000);
    jack_client_close(c);
    int calls = atomic_load(&p.calls);
    ops->close(&a);
    assert_null(a);
    double span = p.last_now - p.first_now;
    print_message("%d cycles of %u frames, now advanced %.3f s (%.3f by frames)\n", calls, p.frames,
                  span, (calls - 1) * 128 / 48000.0);
    assert_int_equal(p.frames, 128);
    assert_true(calls > 0.6 * 48000 / 128 * 0.8);
    assert_int_equal(p.bad_now, 0);
    assert_true(fabs(span - (calls - 1) * 128 / 48000.0) < 0.02);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ports_and_process),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
