/*
 * Token and session checks with short caches (see auth.h).
 *
 * Both caches are string-keyed maps of entries. An entry is either pending
 * (one CouchDB request in flight, with the checks waiting on it) or settled
 * (an answer and when it expires). A check whose answer is known at once
 * goes on the ready list instead; one ev_timer of 0 s runs the ready list on
 * the next loop iteration, so a callback never runs inside the call that
 * asked for it. A settled entry whose time is up is asked again in place.
 */
#include "state/auth.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <stdio.h>
#include <sys/random.h>

#include <glib.h>

#include "core/buf.h"
#include "core/hmap.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/token.h"
#include "couch/couch.h"

/* A found token: an `imes device add --new-token` reaches imesd within a
 * minute, while a room full of players reconnecting costs one read. */
#define DEFAULT_TOKEN_TTL 60.0
/* Not found / not logged in: short, so a device or user just added works
 * almost at once, yet a client retrying in a loop costs one read per 5 s. */
#define DEFAULT_NEGATIVE_TTL 5.0
/* CouchDB's cookies live 10 min and are renewed; 30 s of staleness after a
 * logout or password change is the price of not asking on every request
 * (a first CouchDB login hashes PBKDF2 for ~0.25 s). */
#define DEFAULT_SESSION_TTL 30.0
#define DEFAULT_MAX_ENTRIES 4096
/* Credentials longer than this are not credentials. */
#define CREDENTIAL_MAX 4096

enum wait_kind { W_TOKEN, W_SESSION };

struct entry {
    struct auth *a; /* NULL once auth_free detached it while pending */
    char *key;
    enum wait_kind kind;
    int pending;
    int found;      /* token: the doc has one; session: logged in */
    char *secret;   /* token */
    json_t *user;   /* session: {"name", "roles"} */
    bool member;    /* session */
    double expires; /* settled entries */
    struct auth_wait *waiters;
};

struct auth_wait {
    struct auth *a;
    struct auth_wait **list; /* the list it is on: an entry's waiters or ready */
    struct auth_wait *prev, *next;
    enum wait_kind kind;
    char given[AUTH_TOKEN_MAX + 1];
    auth_token_cb token_cb;
    auth_session_cb session_cb;
    void *arg;
    int result;
    json_t *user; /* ready session checks that succeeded */
    bool member;
};

struct auth {
    struct ev_loop *loop;
    struct couch *couch;
    char *private_db;
    struct auth_options opt;
    struct hmap *tokens;
    struct hmap *sessions;
    struct auth_wait *ready;
    ev_timer ready_timer;
    unsigned char hmac_key[32];
    struct {
        uint64_t token_lookups, session_lookups, token_hits, session_hits, errors;
    } st;
};

static double now(const struct auth *a)
{
    return a->opt.clock ? a->opt.clock(a->opt.clock_arg) : ev_now(a->loop);
}

/* ---- lists of waits ---- */

static void wait_unlink(struct auth_wait *w)
{
    if (!w->list)
        return;
    if (w->prev)
        w->prev->next = w->next;
    else
        *w->list = w->next;
    if (w->next)
        w->next->prev = w->prev;
    w->prev = w->next = NULL;
    w->list = NULL;
}

static void wait_push(struct auth_wait **list, struct auth_wait *w)
{
    w->list = list;
    w->prev = NULL;
    w->next = *list;
    if (*list)
        (*list)->prev = w;
    *list = w;
}

static void wait_free(struct auth_wait *w)
{
    wait_unlink(w);
    json_decref(w->user);
    explicit_bzero(w->given, sizeof(w->given));
    free(w);
}

/* Puts a wait on the ready list with its answer; runs on the next iteration. */
static void wait_ready(struct auth_wait *w, int result, const struct entry *e)
{
    struct auth *a = w->a;
    wait_unlink(w);
    w->result = result;
    if (result == 1 && w->kind == W_SESSION && e) {
        w->user = json_incref(e->user);
        w->member = e->member;
    }
    /* Appended, not pushed: answers go out in the order they came. */
    struct auth_wait **tail = &a->ready, *last = NULL;
    while (*tail) {
        last = *tail;
        tail = &(*tail)->next;
    }
    w->list = &a->ready;
    w->prev = last;
    w->next = NULL;
    *tail = w;
    if (!ev_is_active(&a->ready_timer)) {
        ev_timer_set(&a->ready_timer, 0., 0.);
        ev_timer_start(a->loop, &a->ready_timer);
    }
}

static void ready_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct auth *a = t->data;
    /* One at a time from the head: a callback may cancel other ready waits
     * or add new ones (those run next time, through the timer). */
    struct auth_wait *batch = a->ready;
    size_t n = 0;
    for (struct auth_wait *w = batch; w; w = w->next)
        n++;
    while (n-- > 0 && a->ready) {
        struct auth_wait *w = a->ready;
        wait_unlink(w);
        if (w->kind == W_TOKEN) {
            w->token_cb(w->result, w->arg);
        } else {
            struct auth_user u = {0};
            if (w->result == 1) {
                u.name = json_string_value(json_object_get(w->user, "name"));
                u.roles = json_object_get(w->user, "roles");
                u.member = w->member;
            }
            w->session_cb(w->result, w->result == 1 ? &u : NULL, w->arg);
        }
        wait_free(w);
    }
}

static struct auth_wait *wait_new(struct auth *a, enum wait_kind kind, void *arg)
{
    struct auth_wait *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->a = a;
    w->kind = kind;
    w->arg = arg;
    return w;
}

/* ---- cache entries ---- */

static void entry_free(struct entry *e)
{
    if (!e)
        return;
    while (e->waiters)
        wait_free(e->waiters);
    if (e->secret) {
        explicit_bzero(e->secret, strlen(e->secret));
        free(e->secret);
    }
    json_decref(e->user);
    free(e->key);
    free(e);
}

static struct hmap *map_of(struct auth *a, enum wait_kind kind)
{
    return kind == W_TOKEN ? a->tokens : a->sessions;
}

static void entry_drop(struct auth *a, struct entry *e)
{
    hmap_remove(map_of(a, e->kind), e->key);
    entry_free(e);
}

/* Room for one more entry: expired ones go first, then any settled one. */
static int make_room(struct auth *a, struct hmap *m)
{
    size_t max = a->opt.max_entries;
    const char *k;
    void *v;
    if (hmap_count(m) < max)
        return 0;
    double t = now(a);
    for (size_t i = 0; hmap_next(m, &i, &k, &v);) {
        struct entry *e = v;
        if (!e->pending && t >= e->expires) {
            hmap_remove(m, k);
            entry_free(e);
        }
    }
    for (size_t i = 0; hmap_count(m) >= max && hmap_next(m, &i, &k, &v);) {
        struct entry *e = v;
        if (!e->pending) {
            hmap_remove(m, k);
            entry_free(e);
        }
    }
    return hmap_count(m) < max ? 0 : -EAGAIN;
}

/* The settled answer of e for one wait. */
static int answer_of(const struct entry *e, const struct auth_wait *w)
{
    if (!e->found)
        return 0;
    if (w->kind == W_TOKEN)
        return token_equal(e->secret, w->given) ? 1 : 0;
    return 1;
}

static void settle(struct auth *a, struct entry *e, double ttl)
{
    e->pending = 0;
    e->expires = now(a) + ttl;
    while (e->waiters) {
        struct auth_wait *w = e->waiters;
        wait_ready(w, answer_of(e, w), e);
    }
}

static void fail_entry(struct auth *a, struct entry *e)
{
    a->st.errors++;
    while (e->waiters)
        wait_ready(e->waiters, -EAGAIN, NULL);
    entry_drop(a, e);
}

/* ---- tokens ---- */

bool auth_name_valid(const char *name)
{
    size_t n;
    if (!name)
        return false;
    n = strlen(name);
    if (n == 0 || n > AUTH_NAME_MAX || name[0] == '.' || name[0] == '_' || name[0] == '-')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-' || c == '@'))
            return false;
    }
    return true;
}

static void token_done(const struct couch_response *r, void *arg)
{
    struct entry *e = arg;
    struct auth *a = e->a;
    if (!a) {
        entry_free(e);
        return;
    }
    if (r->error || (r->status != 200 && r->status != 404)) {
        LOG(E_WARN, L_STATE, "auth: cannot read %s/token:%s: %s", a->private_db, e->key,
            r->errmsg ? r->errmsg : "no answer");
        fail_entry(a, e);
        return;
    }
    const char *t = r->status == 200 ? json_string_value(json_object_get(r->body, "token")) : NULL;
    if (r->status == 200 && (!t || !*t))
        LOG(E_WARN, L_STATE, "auth: %s/token:%s has no \"token\" string", a->private_db, e->key);
    free(e->secret);
    e->secret = NULL;
    if (t && *t && !(e->secret = strdup(t))) {
        fail_entry(a, e);
        return;
    }
    e->found = e->secret != NULL;
    LOG(E_DEBUG, L_STATE, "auth: token:%s %s", e->key, e->found ? "found" : "absent");
    settle(a, e, e->found ? a->opt.token_ttl : a->opt.negative_ttl);
}

/* Starts (or restarts, for an expired entry) the CouchDB request of e. */
static int entry_lookup(struct auth *a, struct entry *e, const char *path,
                        const char *const *headers, int flags, couch_cb cb)
{
    e->pending = 1;
    int r = couch_request(a->couch, "GET", path, NULL, headers, flags, cb, e);
    if (r < 0) {
        LOG(E_WARN, L_STATE, "auth: cannot ask CouchDB (%s)", strerror(-r));
        fail_entry(a, e);
    }
    return r;
}

/* Finds or makes the entry for key and attaches w: answers at once from a
 * fresh settled entry, else waits on its (new) lookup. Returns 1 if a new
 * lookup must be started for *out, 0 otherwise. */
static int entry_attach(struct auth *a, enum wait_kind kind, const char *key, struct auth_wait *w,
                        struct entry **out)
{
    struct hmap *m = map_of(a, kind);
    struct entry *e = hmap_get(m, key);
    *out = NULL;
    if (e && e->pending) {
        wait_push(&e->waiters, w);
        return 0;
    }
    if (e && now(a) < e->expires) {
        if (kind == W_TOKEN)
            a->st.token_hits++;
        else
            a->st.session_hits++;
        wait_ready(w, answer_of(e, w), e);
        return 0;
    }
    if (!e) {
        if (make_room(a, m) < 0 || !(e = calloc(1, sizeof(*e))) || !(e->key = strdup(key)) ||
            hmap_set(m, key, e, NULL) < 0) {
            if (e)
                free(e->key);
            free(e);
            a->st.errors++;
            wait_ready(w, -EAGAIN, NULL);
            return 0;
        }
        e->a = a;
        e->kind = kind;
    }
    wait_push(&e->waiters, w);
    *out = e;
    return 1;
}

struct auth_wait *auth_token_check(struct auth *a, const char *kind, const char *name,
                                   const char *token, auth_token_cb cb, void *arg)
{
    struct auth_wait *w = wait_new(a, W_TOKEN, arg);
    struct entry *e;
    char key[16 + AUTH_NAME_MAX];
    if (!w)
        return NULL;
    w->token_cb = cb;
    if (!kind || (strcmp(kind, "device") != 0 && strcmp(kind, "delegate") != 0) ||
        !auth_name_valid(name) || !token || strlen(token) > AUTH_TOKEN_MAX ||
        !token_well_formed(token)) {
        wait_ready(w, 0, NULL);
        return w;
    }
    snprintf(w->given, sizeof(w->given), "%s", token);
    snprintf(key, sizeof(key), "%s:%s", kind, name);
    if (entry_attach(a, W_TOKEN, key, w, &e)) {
        char id[32 + AUTH_NAME_MAX];
        snprintf(id, sizeof(id), "token:%s", key);
        char *path = couch_path(a->private_db, id);
        a->st.token_lookups++;
        if (!path)
            fail_entry(a, e);
        else
            entry_lookup(a, e, path, NULL, COUCH_NO_RETRY, token_done);
        free(path);
    }
    return w;
}

void auth_forget_token(struct auth *a, const char *kind, const char *name)
{
    char key[16 + AUTH_NAME_MAX];
    if (!kind || !name || strlen(name) > AUTH_NAME_MAX)
        return;
    snprintf(key, sizeof(key), "%s:%s", kind, name);
    struct entry *e = hmap_get(a->tokens, key);
    if (e && !e->pending)
        entry_drop(a, e);
}

/* ---- sessions ---- */

/* RFC 7235 token68 after "Basic ": letters, digits, -._~+/ then '='s. */
static bool basic_credentials(const char *h, const char **cred)
{
    if (!h || strncasecmp(h, "Basic ", 6) != 0)
        return false;
    h += 6;
    while (*h == ' ')
        h++;
    size_t n = 0, eq = 0;
    for (; h[n]; n++) {
        char c = h[n];
        int alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (c == '=')
            eq++;
        else if (eq ||
                 !(alnum || c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/'))
            return false;
    }
    if (n == eq || n > CREDENTIAL_MAX)
        return false;
    *cred = h;
    return true;
}

/* The AuthSession cookie's value (RFC 6265 cookie-octets) into out. */
static bool session_cookie(const char *h, char *out, size_t outlen)
{
    static const char name[] = "AuthSession=";
    const char *p = h;
    while (p && *p) {
        while (*p == ' ' || *p == ';')
            p++;
        const char *end = strchr(p, ';');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len > sizeof(name) - 1 && strncmp(p, name, sizeof(name) - 1) == 0) {
            const char *v = p + sizeof(name) - 1;
            size_t vlen = len - (sizeof(name) - 1);
            while (vlen > 0 && v[vlen - 1] == ' ')
                vlen--;
            if (vlen == 0 || vlen >= outlen)
                return false;
            for (size_t i = 0; i < vlen; i++) {
                unsigned char c = (unsigned char)v[i];
                if (c < 0x21 || c > 0x7e || c == '"' || c == ',' || c == ';' || c == '\\')
                    return false;
            }
            memcpy(out, v, vlen);
            out[vlen] = '\0';
            return true;
        }
        p = end;
    }
    return false;
}

bool auth_has_role(const json_t *roles, const char *role)
{
    size_t i;
    json_t *v;
    json_array_foreach(roles, i, v)
    {
        if (json_is_string(v) && strcmp(json_string_value(v), role) == 0)
            return true;
    }
    return false;
}

static bool has_member_role(const json_t *roles)
{
    return auth_has_role(roles, "imes_user") || auth_has_role(roles, "imes_admin") ||
           auth_has_role(roles, "_admin");
}

static void session_done(const struct couch_response *r, void *arg)
{
    struct entry *e = arg;
    struct auth *a = e->a;
    if (!a) {
        entry_free(e);
        return;
    }
    /* 200 with userCtx.name null: no session (expired cookie); 401: wrong
     * Basic credentials; other 4xx: nothing usable. 5xx: CouchDB's trouble. */
    if (r->error || r->status >= 500 || r->status == 0) {
        LOG(E_WARN, L_STATE, "auth: cannot ask CouchDB for the session: %s",
            r->errmsg ? r->errmsg : "no answer");
        fail_entry(a, e);
        return;
    }
    json_t *ctx = r->status == 200 ? json_object_get(r->body, "userCtx") : NULL;
    const char *name = json_string_value(json_object_get(ctx, "name"));
    json_t *roles = json_object_get(ctx, "roles");
    json_decref(e->user);
    e->user = NULL;
    e->found = 0;
    if (name && *name) {
        json_t *rs = json_is_array(roles) ? json_incref(roles) : json_array();
        e->user = json_pack("{s:s,s:o}", "name", name, "roles", rs);
        if (!e->user) {
            fail_entry(a, e);
            return;
        }
        e->member = has_member_role(json_object_get(e->user, "roles"));
        e->found = 1;
        LOG(E_DEBUG, L_STATE, "auth: session of %s%s", name, e->member ? "" : " (not a member)");
    }
    settle(a, e, e->found ? a->opt.session_ttl : a->opt.negative_ttl);
}

struct auth_wait *auth_session_check(struct auth *a, const char *authorization, const char *cookie,
                                     auth_session_cb cb, void *arg)
{
    struct auth_wait *w = wait_new(a, W_SESSION, arg);
    const char *basic = NULL;
    char value[CREDENTIAL_MAX + 1];
    char header[CREDENTIAL_MAX + 64];
    struct entry *e;
    if (!w)
        return NULL;
    w->session_cb = cb;
    if (basic_credentials(authorization, &basic)) {
        snprintf(header, sizeof(header), "Authorization: Basic %s", basic);
        snprintf(value, sizeof(value), "%s", basic);
    } else if (!authorization && cookie && session_cookie(cookie, value, sizeof(value))) {
        snprintf(header, sizeof(header), "Cookie: AuthSession=%s", value);
    } else {
        wait_ready(w, 0, NULL);
        return w;
    }
    /* The cache key: HMAC-SHA256 under a key made at start, so neither the
     * map nor a memory dump holds something to replay or brute-force. */
    char kind_value[CREDENTIAL_MAX + 2];
    int klen = snprintf(kind_value, sizeof(kind_value), "%c%s", basic ? 'B' : 'C', value);
    gchar *key = g_compute_hmac_for_data(G_CHECKSUM_SHA256, a->hmac_key, sizeof(a->hmac_key),
                                         (const guchar *)kind_value, (gsize)klen);
    explicit_bzero(kind_value, sizeof(kind_value));
    explicit_bzero(value, sizeof(value));
    if (!key) {
        a->st.errors++;
        wait_ready(w, -EAGAIN, NULL);
        explicit_bzero(header, sizeof(header));
        return w;
    }
    if (entry_attach(a, W_SESSION, key, w, &e)) {
        const char *headers[] = {header, NULL};
        a->st.session_lookups++;
        entry_lookup(a, e, "/_session", headers, COUCH_NO_AUTH | COUCH_NO_RETRY, session_done);
    }
    g_free(key);
    explicit_bzero(header, sizeof(header));
    return w;
}

void auth_cancel(struct auth_wait **wp)
{
    if (!wp || !*wp)
        return;
    wait_free(*wp);
    *wp = NULL;
}

/* ---- life ---- */

static int collect(struct buf *out, void *arg)
{
    struct auth *a = arg;
    int r = metrics_family(out, "imes_auth_lookups_total", "counter",
                           "Token and session checks that asked CouchDB.");
    if (!r)
        r = metrics_sample(out, "imes_auth_lookups_total", "kind", "token",
                           (double)a->st.token_lookups);
    if (!r)
        r = metrics_sample(out, "imes_auth_lookups_total", "kind", "session",
                           (double)a->st.session_lookups);
    if (!r)
        r = metrics_family(out, "imes_auth_cache_hits_total", "counter",
                           "Token and session checks answered from the cache.");
    if (!r)
        r = metrics_sample(out, "imes_auth_cache_hits_total", "kind", "token",
                           (double)a->st.token_hits);
    if (!r)
        r = metrics_sample(out, "imes_auth_cache_hits_total", "kind", "session",
                           (double)a->st.session_hits);
    if (!r)
        r = metrics_counter(out, "imes_auth_lookup_errors_total",
                            "Checks that could not be answered (CouchDB unreachable, 5xx).",
                            (double)a->st.errors);
    return r;
}

struct auth *auth_new(struct ev_loop *loop, struct couch *couch, const struct auth_options *opt)
{
    struct auth *a = calloc(1, sizeof(*a));
    if (!a)
        return NULL;
    a->loop = loop;
    a->couch = couch;
    a->opt = *opt;
    if (a->opt.token_ttl <= 0)
        a->opt.token_ttl = DEFAULT_TOKEN_TTL;
    if (a->opt.negative_ttl <= 0)
        a->opt.negative_ttl = DEFAULT_NEGATIVE_TTL;
    if (a->opt.session_ttl <= 0)
        a->opt.session_ttl = DEFAULT_SESSION_TTL;
    if (a->opt.max_entries == 0)
        a->opt.max_entries = DEFAULT_MAX_ENTRIES;
    ev_timer_init(&a->ready_timer, ready_cb, 0., 0.);
    a->ready_timer.data = a;
    if (!opt->private_db || !(a->private_db = strdup(opt->private_db)))
        goto fail;
    a->opt.private_db = a->private_db;
    if (!(a->tokens = hmap_new()) || !(a->sessions = hmap_new()))
        goto fail;
    size_t got = 0;
    while (got < sizeof(a->hmac_key)) {
        ssize_t n = getrandom(a->hmac_key + got, sizeof(a->hmac_key) - got, 0);
        if (n < 0 && errno != EINTR) {
            LOG(E_ERROR, L_STATE, "auth: getrandom: %s", strerror(errno));
            goto fail;
        }
        if (n > 0)
            got += (size_t)n;
    }
    metrics_add_collector(collect, a);
    return a;
fail:
    hmap_free(&a->sessions, NULL);
    hmap_free(&a->tokens, NULL);
    free(a->private_db);
    free(a);
    return NULL;
}

static void free_map(struct hmap **m)
{
    const char *k;
    void *v;
    if (!*m)
        return;
    for (size_t i = 0; hmap_next(*m, &i, &k, &v);) {
        struct entry *e = v;
        hmap_remove(*m, k);
        while (e->waiters)
            wait_free(e->waiters);
        if (e->pending)
            e->a = NULL; /* its answer frees it */
        else
            entry_free(e);
    }
    hmap_free(m, NULL);
}

void auth_free(struct auth **ap)
{
    struct auth *a = ap ? *ap : NULL;
    if (!a)
        return;
    metrics_remove_collector(collect, a);
    ev_timer_stop(a->loop, &a->ready_timer);
    while (a->ready)
        wait_free(a->ready);
    free_map(&a->tokens);
    free_map(&a->sessions);
    explicit_bzero(a->hmac_key, sizeof(a->hmac_key));
    free(a->private_db);
    free(a);
    *ap = NULL;
}

size_t auth_cached_tokens(const struct auth *a)
{
    return hmap_count(a->tokens);
}

size_t auth_cached_sessions(const struct auth *a)
{
    return hmap_count(a->sessions);
}
