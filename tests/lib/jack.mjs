// JACK for the Matriz tests and tests/bench/latency: a jackd with its dummy
// driver under a server name of its own, and `jtool`, a small JACK client
// compiled here that plays a tone, measures tone levels on ports, or sends
// impulses and times when they come back. Everything runs on the same JACK
// clock, so latencies are exact to the frame.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { startProcess, waitFor } from './harness.mjs';
import { compileC } from './bench.mjs';

const JTOOL_C = String.raw`
#include <jack/jack.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* jtool NAME tone HZ DBFS PORT...          play a sine into PORT...
 * jtool NAME levels SECONDS HZ,HZ,... PORT... levels of each HZ on each PORT (JSON)
 * jtool NAME latency COUNT TO_PORT FROM_PORT  impulses into TO_PORT, found on FROM_PORT (JSON, ms) */
#define MAXP 16
static jack_client_t *c;
static jack_port_t *out, *in[MAXP];
static int mode, nin, nfreq;
static double freq, amp, phase, freqs[8];
static volatile int done;
static double gs1[MAXP][8], gs2[MAXP][8];
static long counted, settle, want;
/* latency */
static long count, sent, found, pending_at = -1, next_emit;
static double lat[1000];
static int burst_left;

static int process(jack_nframes_t n, void *arg)
{
    jack_nframes_t t0 = jack_last_frame_time(c);
    if (mode == 0) {
        float *o = jack_port_get_buffer(out, n);
        for (jack_nframes_t i = 0; i < n; i++) {
            o[i] = (float)(amp * sin(phase));
            phase += 2 * M_PI * freq / jack_get_sample_rate(c);
        }
        phase = fmod(phase, 2 * M_PI);
    } else if (mode == 1) {
        if (settle > 0) { settle -= n; return 0; }
        if (counted >= want) { done = 1; return 0; }
        for (int p = 0; p < nin; p++) {
            float *x = jack_port_get_buffer(in[p], n);
            for (int f = 0; f < nfreq; f++) {
                double k = 2 * cos(2 * M_PI * freqs[f] / jack_get_sample_rate(c));
                double s1 = gs1[p][f], s2 = gs2[p][f];
                for (jack_nframes_t i = 0; i < n; i++) {
                    double s0 = x[i] + k * s1 - s2;
                    s2 = s1; s1 = s0;
                }
                gs1[p][f] = s1; gs2[p][f] = s2;
            }
        }
        counted += n;
    } else {
        float *o = jack_port_get_buffer(out, n), *x = jack_port_get_buffer(in[0], n);
        memset(o, 0, n * sizeof(float));
        for (jack_nframes_t i = 0; i < n; i++) {
            long now = (long)t0 + (long)i;
            if (pending_at < 0 && sent < count && now >= next_emit) {
                pending_at = now; sent++; burst_left = 48; /* 1 ms of 3 kHz at full scale */
            }
            if (burst_left > 0) { o[i] = (float)(0.9 * sin(2 * M_PI * 3000 * (48 - burst_left) / 48000.0)); burst_left--; }
            if (pending_at >= 0 && now > pending_at && fabsf(x[i]) > 0.1f) {
                lat[found++] = (now - pending_at) * 1000.0 / jack_get_sample_rate(c);
                pending_at = -1;
                next_emit = now + jack_get_sample_rate(c) / 4; /* the echo has died away */
            }
            if (pending_at >= 0 && now - pending_at > (long)jack_get_sample_rate(c)) { /* lost */
                pending_at = -1; next_emit = now + jack_get_sample_rate(c) / 4;
            }
        }
        if (sent >= count && pending_at < 0) done = 1;
    }
    return 0;
}

static void stop(int s) { done = 1; }

int main(int argc, char **argv)
{
    if (argc < 4) return 2;
    jack_status_t st;
    c = jack_client_open(argv[1], JackNoStartServer, &st);
    if (!c) { fprintf(stderr, "jtool: no JACK server\n"); return 1; }
    signal(SIGTERM, stop); signal(SIGINT, stop);
    jack_set_process_callback(c, process, NULL);
    const char *m = argv[2];
    char **ports; int nports;
    if (!strcmp(m, "tone")) {
        mode = 0; freq = atof(argv[3]); amp = pow(10, atof(argv[4]) / 20);
        out = jack_port_register(c, "out", JACK_DEFAULT_AUDIO_TYPE, JackPortIsOutput, 0);
        ports = argv + 5; nports = argc - 5;
    } else if (!strcmp(m, "levels")) {
        mode = 1; want = (long)(atof(argv[3]) * 48000); settle = 24000;
        for (char *t = strtok(argv[4], ","); t && nfreq < 8; t = strtok(NULL, ",")) freqs[nfreq++] = atof(t);
        ports = argv + 5; nports = argc - 5;
        for (int i = 0; i < nports && i < MAXP; i++) {
            char nm[16]; snprintf(nm, sizeof(nm), "in_%d", i + 1);
            in[nin++] = jack_port_register(c, nm, JACK_DEFAULT_AUDIO_TYPE, JackPortIsInput, 0);
        }
    } else {
        mode = 2; count = atol(argv[3]);
        out = jack_port_register(c, "out", JACK_DEFAULT_AUDIO_TYPE, JackPortIsOutput, 0);
        in[nin++] = jack_port_register(c, "in", JACK_DEFAULT_AUDIO_TYPE, JackPortIsInput, 0);
        ports = argv + 4; nports = argc - 4;
    }
    if (jack_activate(c)) return 1;
    next_emit = (long)jack_frame_time(c) + 48000;
    for (int i = 0; i < nports; i++) {
        int r;
        if (mode == 0) r = jack_connect(c, jack_port_name(out), ports[i]);
        else if (mode == 1) r = jack_connect(c, ports[i], jack_port_name(in[i]));
        else r = i == 0 ? jack_connect(c, jack_port_name(out), ports[0]) : jack_connect(c, ports[1], jack_port_name(in[0]));
        if (r) fprintf(stderr, "jtool: cannot connect %s\n", ports[i]);
    }
    fprintf(stderr, "jtool: ready\n");
    while (!done) usleep(20000);
    jack_deactivate(c);
    if (mode == 1) {
        printf("{");
        for (int p = 0; p < nin; p++) {
            printf("%s\"%s\":{", p ? "," : "", ports[p]);
            for (int f = 0; f < nfreq; f++) {
                double k = 2 * cos(2 * M_PI * freqs[f] / 48000.0), s1 = gs1[p][f], s2 = gs2[p][f];
                double pw = s1 * s1 + s2 * s2 - k * s1 * s2;
                printf("%s\"%g\":%.4f", f ? "," : "", freqs[f], 2 * sqrt(pw > 0 ? pw : 0) / counted);
            }
            printf("}");
        }
        printf("}\n");
    } else if (mode == 2) {
        printf("[");
        for (long i = 0; i < found; i++) printf("%s%.3f", i ? "," : "", lat[i]);
        printf("]\n");
    }
    jack_client_close(c);
    return 0;
}
`;

let jtoolBin = null;

/** Builds jtool once per process (into a temp dir). */
export function jtool() {
  if (jtoolBin) return jtoolBin;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'imes-jtool-'));
  jtoolBin = compileC(dir, 'jtool', JTOOL_C, { pkgs: ['jack'] });
  return jtoolBin;
}

/** Starts jackd with the dummy driver (no sound card) under a fresh server
 * name, real-time (-R, as with a sound card: without it, on a busy machine
 * the dummy driver falls behind the wall clock and every timing is off); resolves { name, env (JACK_DEFAULT_SERVER), proc, stop() } once a
 * client can connect. `name`: the server name (again: a restart). */
export async function startJackd({ rate = 48000, period = 128, name = `imes-${process.pid}-${Math.floor(Math.random() * 1e6)}` } = {}) {
  const proc = startProcess('jackd', ['-R', '-n', name, '-d', 'dummy', '-r', String(rate), '-p', String(period)], {
    name: 'jackd',
  });
  const env = { ...process.env, JACK_DEFAULT_SERVER: name, JACK_NO_AUDIO_RESERVATION: '1' };
  await waitFor(() => spawnSync('jack_lsp', [], { env, encoding: 'utf8' }).stdout.includes('system:playback_1'), {
    timeout: 10000,
    what: `jackd ${name}`,
  });
  return { name, env, proc, stop: () => proc.stop() };
}

/** Runs jtool to completion (levels, latency) and parses its JSON output. */
export function runJtool(jack, args, { timeout = 60000 } = {}) {
  const r = spawnSync(jtool(), args, { env: jack.env, encoding: 'utf8', timeout });
  if (r.status !== 0) throw new Error(`jtool ${args.join(' ')}: exit ${r.status}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

/** Starts jtool for a long-running role (tone). */
export function startJtool(jack, name, args) {
  return startProcess(jtool(), [name, ...args], { name: `jtool-${name}`, env: jack.env });
}

/** The ports of the server (jack_lsp). */
export function jackPorts(jack) {
  return spawnSync('jack_lsp', [], { env: jack.env, encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
}
