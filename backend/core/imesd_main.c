/*
 * imesd: the IMES backend daemon.
 *
 * One libev loop owns every socket and timer: the CouchDB client (libcurl
 * multi), the changes follower, the HTTP/RTSP listener. Blocking work runs on
 * the worker pool. Start-up order is config → log → loop → workers → couch →
 * listener → feed; shutdown runs the mirror: stop accepting, stop the feed and
 * write its checkpoint, write the final status document, wait (bounded) for
 * CouchDB writes in flight, then free in reverse.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/config.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "core/metrics.h"
#include "core/worker.h"
#include "couch/changes.h"
#include "couch/couch.h"
#include "library/scanner.h"
#include "library/watch.h"
#include "matriz/roster.h"
#include "state/auth.h"
#include "state/dispatch.h"
#include "state/player.h"
#include "scrobble/scrobble.h"
#include "stream/api.h"
#include "stream/listener.h"
#include "stream/rtsp.h"
#include "stream/httpd.h"

#define IMESD_VERSION "0.1.0"
#define CHECKPOINT_ID "_local/imesd-changes"
#define STATUS_ID     "status:backend:imesd"
/* CouchDB liveness probe: often enough that /healthz is at most 2 s stale. */
#define PROBE_INTERVAL 2.0
/* Status document: written on change, but never more than every 2 s. */
#define STATUS_INTERVAL 2.0
/* At shutdown, writes in flight get this long to finish before we exit. */
#define SHUTDOWN_GRACE 10.0
/* A written file is read once nothing touched it for this long: short enough
 * for a change to reach its document within a second, long enough for tools
 * that write a file in several opens. */
#define WATCH_SETTLE 0.3
/* When the library cannot be loaded (CouchDB away at start), try again. */
#define LIBRARY_RETRY 5.0

struct imesd {
    struct config cfg;
    struct ev_loop *loop;
    struct worker_pool *workers;
    struct couch *couch;
    struct changes *changes;
    struct httpd *httpd;
    struct worker_pool *audio; /* produce calls only: never behind a scan */
    struct player *player;
    struct auth *auth;
    struct listener *listener;
    struct rtsp_device *rtsp; /* RTSP/RTP device streams */
    struct api *api;
    struct roster *roster; /* Matriz peers join here */
    struct scrobble *scrobble;
    int player_stopped;
    struct scanner *scanner;
    struct watch *watch;
    int library_loaded;

    ev_signal sigint, sigterm, sighup, sigusr1;
    ev_timer library_timer;
    ev_timer player_timer;
    ev_timer probe_timer;
    ev_timer status_timer;
    ev_timer grace_timer;
    ev_idle drain_idle;

    int couch_up; /* the last probe answered */
    int probe_busy;
    int status_busy;
    int status_dirty;
    int stopping;
    time_t started;
    unsigned long probes_failed;
};

/* ---- status document ---- */

static int status_apply(json_t *doc, void *arg)
{
    struct imesd *d = arg;
    char started[32], now[32];
    timeutil_iso8601(d->started, started, sizeof(started));
    timeutil_iso8601(time(NULL), now, sizeof(now));
    json_t *seq = changes_last_seq(d->changes);
    json_object_set_new(doc, "type", json_string("status"));
    json_object_set_new(doc, "kind", json_string("backend"));
    json_object_set_new(doc, "name", json_string("imesd"));
    json_object_set_new(doc, "state", json_string(d->stopping ? "stopped" : "running"));
    json_object_set_new(doc, "feed", json_string(changes_state_name(changes_state(d->changes))));
    json_object_set_new(doc, "last_seq", seq ? json_incref(seq) : json_null());
    json_object_set_new(doc, "changes_applied",
                        json_integer((json_int_t)changes_applied(d->changes)));
    json_object_set_new(doc, "changes_skipped",
                        json_integer((json_int_t)changes_skipped(d->changes)));
    json_object_set_new(doc, "version", json_string(IMESD_VERSION));
    json_object_set_new(doc, "pid", json_integer(getpid()));
    json_object_set_new(doc, "started", json_string(started));
    json_object_set_new(doc, "updated", json_string(now));
    /* Where the web app finds imesd (its live connection, device and
     * delegate URLs to show admins). */
    json_object_set_new(doc, "public", json_string(d->cfg.backend.public_url));
    json_object_set_new(doc, "public_rtsp", json_string(d->cfg.backend.public_rtsp));
    json_object_set_new(doc, "public_delegate", json_string(d->cfg.backend.public_delegate));
    return 1;
}

static void maybe_finish(struct imesd *d);

static void status_written(const struct couch_response *resp, void *arg)
{
    struct imesd *d = arg;
    d->status_busy = 0;
    if (resp->error || resp->status >= 300)
        LOG(E_WARN, L_MAIN, "cannot write %s: %s", STATUS_ID, resp->errmsg);
    if (d->stopping)
        maybe_finish(d);
}

static void status_write(struct imesd *d)
{
    if (d->status_busy)
        return;
    d->status_dirty = 0;
    d->status_busy = 1;
    if (couch_update(d->couch, d->cfg.database.name, STATUS_ID, status_apply, d, status_written,
                     d) < 0)
        d->status_busy = 0;
}

/* Called whenever something in the status changed; writes are throttled. */
static void status_touch(struct imesd *d)
{
    d->status_dirty = 1;
}

static void status_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct imesd *d = w->data;
    if (d->status_dirty && d->couch_up)
        status_write(d);
}

/* ---- changes ---- */

static int on_change(const char *id, const char *rev, int deleted, json_t *doc, void *arg)
{
    struct imesd *d = arg;
    int r = dispatch_apply(id, rev, deleted, doc, NULL);
    if (r == 0 && d->player)
        player_apply(d->player, id, rev, deleted, doc);
    if (r <= 0) /* not for our own status writes: that would feed itself */
        status_touch(d);
    return r;
}

/* ---- CouchDB liveness ---- */

static void probe_done(const struct couch_response *resp, void *arg)
{
    struct imesd *d = arg;
    d->probe_busy = 0;
    int up = !resp->error && resp->status == 200;
    if (up != d->couch_up) {
        LOG(up ? E_INFO : E_WARN, L_MAIN, "CouchDB at %s is %s%s%s", couch_url_safe(d->couch),
            up ? "reachable" : "unreachable", up ? "" : ": ", up ? "" : resp->errmsg);
        d->couch_up = up;
        status_touch(d);
    }
    if (!up)
        d->probes_failed++;
}

static void probe_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct imesd *d = w->data;
    if (d->probe_busy || d->stopping)
        return;
    d->probe_busy = 1;
    if (couch_request(d->couch, "GET", "/", NULL, NULL, COUCH_NO_RETRY, probe_done, d) < 0)
        d->probe_busy = 0;
}

/* ---- HTTP: /healthz and /metrics ---- */

static void healthz(struct httpd_conn *conn, const struct http_request *req, void *arg)
{
    struct imesd *d = arg;
    enum changes_state feed = changes_state(d->changes);
    int ok = d->couch_up && feed == CHANGES_LIVE && !d->stopping;
    json_t *j = json_pack("{s:s,s:s,s:s,s:s}", "status", ok ? "ok" : "degraded", "couchdb",
                          d->couch_up ? "reachable" : "unreachable", "feed",
                          changes_state_name(feed), "version", IMESD_VERSION);
    char *body = json_dumps(j, JSON_COMPACT);
    httpd_respond(conn, ok ? 200 : 503, "application/json", body, body ? strlen(body) : 0);
    free(body);
    json_decref(j);
}

/* GET /: the way into the web app. The app is served by CouchDB as design
 * document attachments at <origin>/<db>/_design/imes/index.html (origin:
 * database.origin, or the database URL without its credentials), readable by
 * members only, so a logged-out browser could not even load its login form.
 * This page is that form: it posts to CouchDB's /_session (the same origin
 * behind nginx; CORS with credentials on a bare CouchDB or pouchdb-server)
 * and goes on to the app, at once when a session exists already. */
static const char login_page[] =
    "<!doctype html><html lang=en><head><meta charset=utf-8>"
    "<meta name=viewport content='width=device-width,initial-scale=1'><title>IMES</title>"
    "<link rel=icon href='data:,'>"
    "<style>body{font-family:system-ui,sans-serif;background:#14161a;color:#e8e9ec;display:grid;"
    "place-items:center;min-height:100vh;margin:0}form{background:#1d2026;border:1px solid #2f343d;"
    "border-radius:10px;padding:20px;width:min(340px,90vw)}label{display:grid;gap:4px;margin:8px 0;"
    "color:#9aa0aa}input,button{font:inherit;padding:8px;border-radius:8px;border:1px solid "
    "#2f343d;"
    "background:#252932;color:inherit}button{width:100%%;margin-top:10px;background:#4fb3a9;"
    "color:#06201d;font-weight:600}p{color:#e06c6c;min-height:1.2em}</style></head><body>"
    "<form id=f><h1>IMES</h1><label>Name<input name=name autocomplete=username required></label>"
    "<label>Password<input name=password type=password autocomplete=current-password required>"
    "</label><button>Log in</button><p id=e role=alert></p></form><script>"
    "const couch=%s,app=%s;"
    "const go=()=>location.replace(app);"
    "fetch(couch+'/_session',{credentials:'include',headers:{Accept:'application/json'}})"
    ".then(r=>r.json()).then(s=>{if(s.userCtx&&s.userCtx.name)go()}).catch(()=>{});"
    "f.onsubmit=async(ev)=>{ev.preventDefault();e.textContent='';try{"
    "const r=await fetch(couch+'/_session',{method:'POST',credentials:'include',headers:"
    "{'Content-Type':'application/json',Accept:'application/json'},body:JSON.stringify("
    "{name:f.name.value.trim(),password:f.password.value})});"
    "if(r.ok)go();else e.textContent=r.status===401?'Name or password is wrong.':'Cannot log in ('"
    "+r.status+').'}catch(x){e.textContent='CouchDB cannot be reached: '+x.message}};"
    "</script></body></html>";

static void root_route(struct httpd_conn *conn, const struct http_request *req, void *arg)
{
    struct imesd *d = arg;
    static const char not_found[] = "Not Found\n";
    if (strcmp(req->path, "/") != 0 && strcmp(req->path, "/login") != 0) {
        httpd_respond(conn, 404, "text/plain; charset=utf-8", not_found, sizeof(not_found) - 1);
        return;
    }
    const char *origin = d->cfg.database.origin;
    char base[512], app[1024];
    if (!origin || !*origin) {
        /* scheme://[user[:password]@]host[:port][/...] -> scheme://host[:port] */
        const char *url = d->cfg.database.url, *host = strstr(url, "://");
        host = host ? host + 3 : url;
        const char *end = host + strcspn(host, "/"), *at = NULL;
        for (const char *p = host; p < end; p++)
            if (*p == '@')
                at = p;
        snprintf(base, sizeof(base), "%.*s%.*s", (int)(host - url), url,
                 (int)(end - (at ? at + 1 : host)), at ? at + 1 : host);
    } else {
        snprintf(base, sizeof(base), "%s", origin);
        size_t n = strlen(base);
        if (n > 0 && base[n - 1] == '/')
            base[n - 1] = '\0';
    }
    snprintf(app, sizeof(app), "%s/%s/_design/imes/index.html", base, d->cfg.database.name);
    json_t *jb = json_string(base), *ja = json_string(app);
    char *sb = json_dumps(jb, JSON_ENCODE_ANY | JSON_ESCAPE_SLASH);
    char *sa = json_dumps(ja, JSON_ENCODE_ANY | JSON_ESCAPE_SLASH);
    json_decref(jb);
    json_decref(ja);
    char *page = NULL;
    int n = sb && sa ? asprintf(&page, login_page, sb, sa) : -1;
    free(sb);
    free(sa);
    if (n < 0) {
        httpd_respond(conn, 503, "text/plain; charset=utf-8", "out of memory\n", 14);
        return;
    }
    httpd_respond_headers(conn, 200, "Cache-Control: no-store\r\n", "text/html; charset=utf-8",
                          page, (size_t)n);
    free(page);
}

static int collect_core(struct buf *out, void *arg)
{
    struct imesd *d = arg;
    metrics_gauge(out, "imes_couchdb_up", "Whether the last CouchDB probe answered.", d->couch_up);
    metrics_gauge(out, "imes_changes_feed_live", "Whether the _changes feed is open.",
                  changes_state(d->changes) == CHANGES_LIVE);
    metrics_counter(out, "imes_changes_applied_total", "Changes applied from the feed.",
                    (double)changes_applied(d->changes));
    metrics_counter(out, "imes_changes_skipped_total",
                    "Changes skipped because the document was not understood.",
                    (double)changes_skipped(d->changes));
    metrics_counter(out, "imes_changes_reconnects_total", "Reconnections of the feed.",
                    (double)changes_reconnects(d->changes));
    metrics_gauge(out, "imes_couchdb_requests_pending", "CouchDB requests in flight.",
                  couch_pending(d->couch));
    metrics_gauge(out, "imes_worker_jobs_pending", "Jobs queued or running on workers.",
                  worker_pending(d->workers));
    return metrics_gauge(out, "imes_start_time_seconds", "When imesd started (Unix time).",
                         (double)d->started);
}

static void metrics_route(struct httpd_conn *conn, const struct http_request *req, void *arg)
{
    struct buf out;
    buf_init(&out, 4u << 20);
    metrics_render(&out);
    httpd_respond(conn, 200, "text/plain; version=0.0.4; charset=utf-8", out.data ? out.data : "",
                  out.len);
    buf_free(&out);
}

/* ---- playback ---- */

static void player_loaded(int err, void *arg)
{
    struct imesd *d = arg;
    if (d->stopping)
        return;
    if (err) {
        LOG(E_WARN, L_STATE, "control documents not loaded (%s); trying again in %.0f s",
            strerror(-err), LIBRARY_RETRY);
        ev_timer_set(&d->player_timer, LIBRARY_RETRY, 0.);
        ev_timer_start(d->loop, &d->player_timer);
        return;
    }
    /* The feed starts once the documents are loaded: a change the feed
     * brings is then never older than what the load read. */
    changes_start(d->changes);
}

static void player_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct imesd *d = w->data;
    if (player_load(d->player, player_loaded, d) < 0) {
        ev_timer_set(w, LIBRARY_RETRY, 0.);
        ev_timer_start(loop, w);
    }
}

/* ---- the music library ---- */

static void library_scanned(int err, void *arg)
{
    (void)arg;
    if (err && err != -EINPROGRESS)
        LOG(E_WARN, L_LIBRARY, "scan failed: %s", strerror(-err));
}

static void library_loaded(int err, void *arg)
{
    struct imesd *d = arg;
    if (d->stopping)
        return;
    if (err) {
        LOG(E_WARN, L_LIBRARY, "library not loaded (%s); trying again in %.0f s", strerror(-err),
            LIBRARY_RETRY);
        ev_timer_set(&d->library_timer, LIBRARY_RETRY, 0.);
        ev_timer_start(d->loop, &d->library_timer);
        return;
    }
    d->library_loaded = 1;
    scanner_scan(d->scanner, NULL, library_scanned, d);
}

static void library_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct imesd *d = w->data;
    if (scanner_load(d->scanner, library_loaded, d) < 0) {
        ev_timer_set(w, LIBRARY_RETRY, 0.);
        ev_timer_start(loop, w);
    }
}

/* Thread: worker (the scanner's walk). */
static void watch_dir_hook(const char *path, void *arg)
{
    struct imesd *d = arg;
    if (d->watch)
        watch_add_dir(d->watch, path);
}

static void on_watch(enum watch_event ev, const char *path, const char *old_path, int is_dir,
                     void *arg)
{
    struct imesd *d = arg;
    if (!d->library_loaded || d->stopping)
        return; /* the scan after loading sees everything */
    LOG(E_DEBUG, L_LIBRARY, "inotify: %s %s%s%s", watch_event_name(ev), old_path ? old_path : "",
        old_path ? " -> " : "", path ? path : "");
    switch (ev) {
    case WATCH_FILE_CHANGED:
        scanner_file_changed(d->scanner, path);
        break;
    case WATCH_FILE_REMOVED:
        scanner_file_removed(d->scanner, path);
        break;
    case WATCH_MOVED:
        scanner_moved(d->scanner, old_path, path, is_dir);
        break;
    case WATCH_DIR_ADDED:
        scanner_scan(d->scanner, path, library_scanned, d);
        break;
    case WATCH_DIR_REMOVED:
        scanner_dir_removed(d->scanner, path);
        break;
    case WATCH_OVERFLOW:
        LOG(E_WARN, L_LIBRARY, "inotify queue overflowed: rescanning everything");
        scanner_scan(d->scanner, NULL, library_scanned, d);
        break;
    }
}

static int collect_library(struct buf *out, void *arg)
{
    struct imesd *d = arg;
    const struct scanner_progress *p = scanner_last(d->scanner);
    metrics_gauge(out, "imes_library_files", "Files in the library.",
                  (double)scanner_file_count(d->scanner));
    metrics_gauge(out, "imes_library_scanning", "Whether a scan is running.",
                  scanner_busy(d->scanner));
    metrics_gauge(out, "imes_library_last_scan_seconds", "Duration of the last scan.", p->elapsed);
    return metrics_gauge(out, "imes_library_last_scan_unreadable",
                         "Files the last scan could not read.", (double)p->errors);
}

/* ---- shutdown ---- */

static void finish_now(struct imesd *d)
{
    ev_timer_stop(d->loop, &d->grace_timer);
    ev_break(d->loop, EVBREAK_ALL);
}

static void maybe_finish(struct imesd *d)
{
    if (changes_state(d->changes) != CHANGES_STOPPED || d->status_busy)
        return;
    if (d->status_dirty) { /* the final "stopped" document */
        status_write(d);
        return;
    }
    if (couch_pending(d->couch) > 0) {
        if (!ev_is_active(&d->drain_idle))
            ev_idle_start(d->loop, &d->drain_idle);
        return;
    }
    LOG(E_INFO, L_MAIN, "stopped");
    finish_now(d);
}

static void drain_idle_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
    struct imesd *d = w->data;
    if (couch_pending(d->couch) == 0) {
        ev_idle_stop(loop, w);
        maybe_finish(d);
    }
}

static void grace_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct imesd *d = w->data;
    LOG(E_WARN, L_MAIN, "%d CouchDB requests still in flight after %.0f s; exiting anyway",
        couch_pending(d->couch), SHUTDOWN_GRACE);
    finish_now(d);
}

static void feed_stopped(void *arg)
{
    struct imesd *d = arg;
    status_touch(d);
    maybe_finish(d);
}

static void player_stopped(void *arg)
{
    struct imesd *d = arg;
    d->player_stopped = 1;
    if (changes_stop(d->changes, feed_stopped, d) < 0)
        feed_stopped(d);
}

static void begin_shutdown(struct imesd *d, const char *why)
{
    if (d->stopping) {
        LOG(E_WARN, L_MAIN, "%s again: exiting now", why);
        finish_now(d);
        return;
    }
    LOG(E_INFO, L_MAIN, "%s: stopping", why);
    d->stopping = 1;
    ev_timer_stop(d->loop, &d->probe_timer);
    ev_timer_stop(d->loop, &d->status_timer);
    /* No new clients; listeners and event streams go with their connections. */
    rtsp_device_free(&d->rtsp);
    listener_free(&d->listener);
    api_free(&d->api);
    httpd_free(&d->httpd);
    /* The watcher stays until the workers are joined: a scan's walk may still
     * be registering folders with it. on_watch ignores events from now on. */
    ev_timer_stop(d->loop, &d->library_timer);
    ev_timer_set(&d->grace_timer, SHUTDOWN_GRACE, 0.);
    ev_timer_start(d->loop, &d->grace_timer);
    ev_timer_stop(d->loop, &d->player_timer);
    /* Positions first (status documents), then the feed's checkpoint. */
    player_stop(d->player, player_stopped, d);
}

static void signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    struct imesd *d = w->data;
    if (w->signum == SIGUSR1) {
        if (d->scanner && d->library_loaded) {
            LOG(E_INFO, L_MAIN, "SIGUSR1: rescanning the library");
            scanner_scan(d->scanner, NULL, library_scanned, d);
        }
        return;
    }
    if (w->signum == SIGHUP) {
        int r = log_reopen();
        LOG(r < 0 ? E_ERROR : E_INFO, L_MAIN, "SIGHUP: log reopened%s%s", r < 0 ? ": " : "",
            r < 0 ? strerror(-r) : "");
        return;
    }
    begin_shutdown(d, w->signum == SIGINT ? "SIGINT" : "SIGTERM");
}

/* ---- main ---- */

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: imesd [-c CONFIG] [options]\n"
            "The IMES backend: follows CouchDB, streams channels to devices.\n\n"
            "  -c, --config FILE     configuration (default: $IMES_CONFIG or config.yaml)\n"
            "      --check-config    read the configuration, report problems, exit\n"
            "      --example-config  print config.yaml.example (every option, its default)\n"
            "  -h, --help            this help\n"
            "  -V, --version         the version\n\n"
            "Exit status: 0 stopped cleanly, 1 failed to start, 2 bad configuration or usage.\n");
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},   {"check-config", no_argument, NULL, 'C'},
        {"example-config", no_argument, NULL, 'E'}, {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},        {NULL, 0, NULL, 0}};
    const char *config_path = getenv("IMES_CONFIG");
    int check_only = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, "c:hV", longopts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            config_path = optarg;
            break;
        case 'C':
            check_only = 1;
            break;
        case 'E':
            config_write_example(stdout);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("imesd %s\n", IMESD_VERSION);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "imesd: unexpected argument: %s\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    if (!config_path || !*config_path)
        config_path = "config.yaml";

    static struct imesd d; /* static: signal watchers point into it */
    char err[CONFIG_ERRLEN];
    config_defaults(&d.cfg);
    if (config_load(&d.cfg, config_path, err, sizeof(err)) < 0) {
        fprintf(stderr, "imesd: %s\n", err);
        config_free(&d.cfg);
        return 2;
    }
    if (check_only) {
        printf("%s: ok\n", config_path);
        config_free(&d.cfg);
        return 0;
    }
    int level = log_level_parse(d.cfg.log.level);
    int r = log_open(d.cfg.log.file, level);
    if (r < 0) {
        fprintf(stderr, "imesd: %s: log.file: %s: %s\n", config_path, d.cfg.log.file, strerror(-r));
        config_free(&d.cfg);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    d.started = time(NULL);
    d.loop = EV_DEFAULT;
    int exit_code = 1;
    char *safe_url = config_database_url_safe(&d.cfg);
    LOG(E_INFO, L_MAIN, "imesd %s starting (config %s, CouchDB %s, database %s)", IMESD_VERSION,
        config_path, safe_url ? safe_url : "?", d.cfg.database.name);
    free(safe_url);

    if (!(d.workers = worker_pool_new(d.loop, d.cfg.backend.workers))) {
        LOG(E_FATAL, L_MAIN, "cannot start worker threads");
        goto fail_workers;
    }
    if (!(d.couch = couch_new(d.loop, d.cfg.database.url))) {
        LOG(E_FATAL, L_MAIN, "cannot set up the CouchDB client");
        goto fail_couch;
    }
    struct httpd_options hopt = {
        .bind_host = d.cfg.backend.bind_host,
        .bind_port = d.cfg.backend.bind_port,
        .max_connections = d.cfg.backend.max_connections,
        .header_timeout_s = d.cfg.backend.header_timeout,
        .idle_timeout_s = d.cfg.backend.idle_timeout,
    };
    if (!(d.httpd = httpd_new(d.loop, &hopt))) {
        LOG(E_FATAL, L_MAIN, "cannot listen on %s:%d", d.cfg.backend.bind_host,
            d.cfg.backend.bind_port);
        goto fail_httpd;
    }
    /* One audio worker: a channel's produce calls must never wait behind a
     * scan's reads on the general pool. */
    if (!(d.audio = worker_pool_new(d.loop, 1))) {
        LOG(E_FATAL, L_MAIN, "cannot start the audio worker");
        goto fail_audio;
    }
    struct player_options popt = {
        .couch = d.couch, .db = d.cfg.database.name, .audio = d.audio, .workers = d.workers};
    struct auth_options aopt = {.private_db = d.cfg.database.private_name};
    if (!(d.player = player_new(d.loop, &popt)) || !(d.auth = auth_new(d.loop, d.couch, &aopt)) ||
        !(d.listener = listener_new(d.loop, d.httpd, d.player, d.auth)) ||
        !(d.rtsp = rtsp_device_new(d.loop, d.httpd, d.player, d.auth,
                                   &(struct rtsp_device_options){
                                       .bind_host = d.cfg.backend.bind_host,
                                       .rtp_port = d.cfg.backend.rtp_port,
                                       /* RFC 2326's 60 s by default; shorter
                                        * with a short idle_timeout (tests) */
                                       .session_timeout_s = 2.0 * d.cfg.backend.idle_timeout,
                                   })) ||
        !(d.api = api_new(d.loop, d.httpd, d.player, d.auth)) ||
        !(d.roster = roster_new(d.loop, d.httpd, d.couch, d.auth,
                                &(struct roster_options){.db = d.cfg.database.name})) ||
        !(d.scrobble = scrobble_new(d.loop,
                                    &(struct scrobble_options){
                                        .couch = d.couch,
                                        .db = d.cfg.database.name,
                                        .private_db = d.cfg.database.private_name,
                                        .player = d.player,
                                        .cfg = &d.cfg,
                                    })) ||
        scrobble_start(d.scrobble) < 0) {
        LOG(E_FATAL, L_MAIN, "cannot set up playback");
        goto fail_player;
    }
    api_set_scrobble(d.api, d.scrobble);
    httpd_add_route(d.httpd, "GET", "/healthz", healthz, &d);
    httpd_add_route(d.httpd, "GET", "/metrics", metrics_route, &d);
    httpd_add_route(d.httpd, "GET", "/", root_route, &d); /* "/" and "/login"; else 404 */
    metrics_add_collector(collect_core, &d);

    if (d.cfg.media.n > 0) {
        d.watch = watch_new(d.loop, WATCH_SETTLE, on_watch, &d);
        if (!d.watch)
            LOG(E_WARN, L_LIBRARY, "inotify unavailable (%s): changes are seen at the next scan",
                strerror(errno));
        struct scanner_options sopt = {
            .roots = &d.cfg.media,
            .db = d.cfg.database.name,
            .dir_hook = watch_dir_hook,
            .dir_hook_arg = &d,
        };
        if (!(d.scanner = scanner_new(d.loop, d.couch, d.workers, &sopt))) {
            LOG(E_FATAL, L_MAIN, "cannot set up the library scanner");
            goto fail_scanner;
        }
        metrics_add_collector(collect_library, &d);
    }

    struct changes_options copt = {
        .db = d.cfg.database.name,
        .checkpoint_id = CHECKPOINT_ID,
        .filter = "imes/backend",
        /* pouchdb-server sends nothing, not even headers, before the first
         * heartbeat: 2 s bounds both "is the feed live" at start and the
         * detection of a dead feed (three missed heartbeats). */
        .heartbeat_ms = 2000,
    };
    if (!(d.changes = changes_new(d.couch, &copt, on_change, &d))) {
        LOG(E_FATAL, L_MAIN, "cannot set up the changes feed");
        goto fail_changes;
    }

    ev_signal_init(&d.sigint, signal_cb, SIGINT);
    ev_signal_init(&d.sigterm, signal_cb, SIGTERM);
    ev_signal_init(&d.sighup, signal_cb, SIGHUP);
    ev_signal_init(&d.sigusr1, signal_cb, SIGUSR1);
    d.sigint.data = d.sigterm.data = d.sighup.data = d.sigusr1.data = &d;
    ev_signal_start(d.loop, &d.sigusr1);
    ev_timer_init(&d.player_timer, player_timer_cb, 0., 0.);
    d.player_timer.data = &d;
    ev_timer_start(d.loop, &d.player_timer);
    ev_timer_init(&d.library_timer, library_timer_cb, 0., 0.);
    d.library_timer.data = &d;
    if (d.scanner)
        ev_timer_start(d.loop, &d.library_timer);
    ev_signal_start(d.loop, &d.sigint);
    ev_signal_start(d.loop, &d.sigterm);
    ev_signal_start(d.loop, &d.sighup);
    ev_timer_init(&d.probe_timer, probe_timer_cb, 0., PROBE_INTERVAL);
    d.probe_timer.data = &d;
    ev_timer_start(d.loop, &d.probe_timer);
    ev_timer_init(&d.status_timer, status_timer_cb, STATUS_INTERVAL, STATUS_INTERVAL);
    d.status_timer.data = &d;
    ev_timer_start(d.loop, &d.status_timer);
    ev_timer_init(&d.grace_timer, grace_timer_cb, SHUTDOWN_GRACE, 0.);
    d.grace_timer.data = &d;
    ev_idle_init(&d.drain_idle, drain_idle_cb);
    d.drain_idle.data = &d;
    status_touch(&d);

    LOG(E_INFO, L_MAIN, "listening on %s:%d (HTTP and RTSP), public URL %s",
        d.cfg.backend.bind_host, httpd_port(d.httpd), d.cfg.backend.public_url);

    ev_run(d.loop, 0);
    exit_code = 0;

    ev_signal_stop(d.loop, &d.sigint);
    ev_signal_stop(d.loop, &d.sigterm);
    ev_signal_stop(d.loop, &d.sighup);
    ev_signal_stop(d.loop, &d.sigusr1);
    ev_timer_stop(d.loop, &d.library_timer);
    ev_timer_stop(d.loop, &d.player_timer);
    ev_timer_stop(d.loop, &d.probe_timer);
    ev_timer_stop(d.loop, &d.status_timer);
    ev_timer_stop(d.loop, &d.grace_timer);
    ev_idle_stop(d.loop, &d.drain_idle);
    changes_free(&d.changes);
fail_changes:
    /* Workers first: their done() callbacks still reach the scanner and
     * the player. */
    worker_pool_free(&d.workers);
    worker_pool_free(&d.audio);
    scanner_free(&d.scanner);
fail_scanner:
    watch_free(&d.watch);
fail_player:
    rtsp_device_free(&d.rtsp);
    listener_free(&d.listener);
    api_free(&d.api);
    scrobble_free(&d.scrobble);
    /* After the loop: the offline writes of httpd_free's closes are done
     * (or dropped by couch_free after the grace period). */
    roster_free(&d.roster);
    player_free(&d.player);
    auth_free(&d.auth);
    worker_pool_free(&d.audio);
fail_audio:
    httpd_free(&d.httpd);
fail_httpd:
    couch_free(&d.couch);
fail_couch:
    worker_pool_free(&d.workers);
fail_workers:
    config_free(&d.cfg);
    log_close();
    return exit_code;
}
