/*
 * `imes scan` (see cli_scan.h): loads what CouchDB knows of the library,
 * scans every media folder with the scanner imesd uses, and shows progress:
 * a bar redrawn in place on a terminal, a line every few seconds otherwise.
 */
#include "cli/cli_scan.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/worker.h"
#include "library/scanner.h"

static const char scan_usage[] =
    "usage: imes [-c FILE] scan [--quiet]\n"
    "\n"
    "Scans every folder of `media` into CouchDB: new and changed files are read\n"
    "(tags, ReplayGain, cover art), files that are gone are removed, files moved\n"
    "while nothing watched keep their id. Unchanged files are not read again.\n"
    "Progress is shown here and kept in the status:scan document.\n"
    "Exits 0 when the scan finished (unreadable files are counted, not fatal),\n"
    "1 if CouchDB cannot be reached or the scan failed.\n"
    "\n"
    "  -q, --quiet  only the summary line\n"
    "  -h, --help   this help\n";

struct scan_state {
    int quiet;
    int tty;
    int done;
    int err;
    double last_line;
};

static void draw(const struct scanner_progress *p, int final, void *arg)
{
    struct scan_state *st = arg;
    if (st->quiet)
        return;
    unsigned long total = p->to_read ? p->to_read : 1;
    double frac = !strcmp(p->phase, "reading") || final ? (double)p->read / (double)total : 0;
    if (frac > 1)
        frac = 1;
    if (st->tty) {
        char bar[31];
        int fill = (int)(frac * 30);
        for (int i = 0; i < 30; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[30] = '\0';
        fprintf(stderr, "\r%-8s [%s] %lu/%lu read, %lu written, %lu found, %.1f s%s", p->phase, bar,
                p->read, p->to_read, p->written, p->seen, p->elapsed, final ? "\n" : "  ");
    } else if (final || p->elapsed - st->last_line >= 5) {
        st->last_line = p->elapsed;
        fprintf(stderr, "scan: %s: %lu/%lu read, %lu written, %lu found, %.1f s\n", p->phase,
                p->read, p->to_read, p->written, p->seen, p->elapsed);
    }
}

static void scan_done(int err, void *arg)
{
    struct scan_state *st = arg;
    st->done = 1;
    st->err = err;
}

static int scan_run(struct cli *cli, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"quiet", no_argument, NULL, 'q'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    struct scan_state st = {.tty = isatty(STDERR_FILENO)};
    int ch;
    optind = 0;
    while ((ch = cli_getopt(&cli_scan_command, argc, argv, "qh", longopts)) != -1) {
        if (ch == 'q')
            st.quiet = 1;
        else if (ch == 'h') {
            fputs(scan_usage, stdout);
            return CLI_EXIT_OK;
        } else
            return CLI_EXIT_USAGE;
    }
    if (optind < argc)
        return cli_usage_error(&cli_scan_command, "unexpected argument: %s", argv[optind]);
    int r = cli_connect(cli, NULL);
    if (r)
        return r;
    if (cli->cfg.media.n == 0) {
        fprintf(stderr, "imes scan: %s names no media folders: nothing to scan\n",
                cli->config_path);
        return CLI_EXIT_USAGE;
    }
    struct worker_pool *workers = worker_pool_new(cli->loop, cli->cfg.backend.workers);
    if (!workers) {
        fprintf(stderr, "imes scan: cannot start worker threads\n");
        return CLI_EXIT_FAIL;
    }
    struct scanner_options opt = {
        .roots = &cli->cfg.media,
        .db = cli->db,
        .progress = draw,
        .progress_arg = &st,
    };
    struct scanner *s = scanner_new(cli->loop, cli->couch, workers, &opt);
    if (!s) {
        worker_pool_free(&workers);
        fprintf(stderr, "imes scan: out of memory\n");
        return CLI_EXIT_FAIL;
    }
    int exit_code = CLI_EXIT_OK;
    if (scanner_load(s, scan_done, &st) == 0) {
        while (!st.done)
            ev_run(cli->loop, EVRUN_ONCE);
    } else {
        st.err = -1;
    }
    if (st.err) {
        fprintf(stderr, "imes scan: cannot read the library from %s\n", cli->db);
        exit_code = CLI_EXIT_FAIL;
        goto out;
    }
    st.done = 0;
    if (scanner_scan(s, NULL, scan_done, &st) < 0 && !st.done) {
        exit_code = CLI_EXIT_FAIL;
        goto out;
    }
    /* Until the scan is done and its last writes (status:scan) are in. */
    while (!st.done || scanner_busy(s))
        ev_run(cli->loop, EVRUN_ONCE);
    const struct scanner_progress *p = scanner_last(s);
    printf("scanned %lu files in %.2f s: %lu unchanged, %lu read, %lu written, %lu moved, "
           "%lu removed, %lu unreadable, %lu pictures; %zu files in the library\n",
           p->seen, p->elapsed, p->unchanged, p->read, p->written, p->moved, p->removed, p->errors,
           p->pictures, scanner_file_count(s));
    if (st.err)
        exit_code = CLI_EXIT_FAIL;
out:
    scanner_free(&s);
    worker_pool_free(&workers);
    return exit_code;
}

const struct cli_command cli_scan_command = {
    .name = "scan",
    .summary = "scan the media folders into CouchDB (progress bar; status:scan)",
    .usage = scan_usage,
    .run = scan_run,
};
