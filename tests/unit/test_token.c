/* Tokens: shape, uniqueness and the comparison's answers (its timing is by
 * construction, see token.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "core/token.h"

static void generate_shape(void **state)
{
    char t[TOKEN_HEX_LEN + 1];

    assert_int_equal(token_generate(t, sizeof(t)), 0);
    assert_int_equal(strlen(t), TOKEN_HEX_LEN);
    assert_true(TOKEN_HEX_LEN >= 32);
    assert_true(token_well_formed(t));
    assert_int_equal(token_generate(t, TOKEN_HEX_LEN), -EINVAL);
}

static void generate_differs(void **state)
{
    char a[TOKEN_HEX_LEN + 1], b[TOKEN_HEX_LEN + 1];

    for (int i = 0; i < 100; i++) {
        assert_int_equal(token_generate(a, sizeof(a)), 0);
        assert_int_equal(token_generate(b, sizeof(b)), 0);
        assert_string_not_equal(a, b);
    }
}

static void well_formed(void **state)
{
    assert_false(token_well_formed(NULL));
    assert_false(token_well_formed(""));
    assert_false(token_well_formed("0123456789abcdef"));
    assert_true(token_well_formed("0123456789abcdef0123456789abcdef"));
    assert_true(token_well_formed("0123456789abcdef0123456789abcdef00"));
    assert_false(token_well_formed("0123456789abcdef0123456789abcdeF"));
    assert_false(token_well_formed("0123456789abcdef0123456789abcdeg"));
    assert_false(token_well_formed("0123456789abcdef0123456789abcde/"));
}

static void equal(void **state)
{
    const char *k = "0123456789abcdef0123456789abcdef";

    assert_true(token_equal(k, "0123456789abcdef0123456789abcdef"));
    assert_false(token_equal(k, "0123456789abcdef0123456789abcdee"));
    assert_false(token_equal(k, "1123456789abcdef0123456789abcdef"));
    assert_false(token_equal(k, "0123456789abcdef0123456789abcde"));
    assert_false(token_equal(k, "0123456789abcdef0123456789abcdef0"));
    assert_false(token_equal(k, ""));
    assert_false(token_equal(k, NULL));
    assert_false(token_equal(NULL, k));
    assert_false(token_equal("", ""));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(generate_shape),
        cmocka_unit_test(generate_differs),
        cmocka_unit_test(well_formed),
        cmocka_unit_test(equal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
