/* The hash map against a plain array model: set, overwrite, remove, grow, iterate. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/hmap.h"

#define N 20000

static void test_model(void **state)
{
    struct hmap *m = hmap_new();
    static intptr_t model[N];
    char key[32];
    srand(1);
    for (int round = 0; round < 200000; round++) {
        int k = rand() % N;
        snprintf(key, sizeof(key), "/music/%d.flac", k);
        int op = rand() % 3;
        if (op < 2) {
            void *old;
            assert_int_equal(hmap_set(m, key, (void *)(intptr_t)(round + 1), &old), 0);
            assert_int_equal((intptr_t)old, model[k]);
            model[k] = round + 1;
        } else {
            assert_int_equal((intptr_t)hmap_remove(m, key), model[k]);
            model[k] = 0;
        }
    }
    size_t count = 0;
    for (int k = 0; k < N; k++) {
        snprintf(key, sizeof(key), "/music/%d.flac", k);
        assert_int_equal((intptr_t)hmap_get(m, key), model[k]);
        count += model[k] != 0;
    }
    assert_int_equal(hmap_count(m), count);
    size_t seen = 0, pos = 0;
    const char *k;
    void *v;
    while (hmap_next(m, &pos, &k, &v)) {
        assert_non_null(v);
        seen++;
    }
    assert_int_equal(seen, count);
    hmap_free(&m, NULL);
    assert_null(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_model)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
