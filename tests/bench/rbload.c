/* rbload: the bench's iSCSI load generator, on libiscsi's asynchronous C API.
 *
 * Keeps QD commands outstanding (spread over one or more sessions, one URL each) for a number of
 * seconds or commands, sequential or random, reads or writes of one transfer size, and prints one
 * JSON line: commands, seconds, IOPS, MB/s, BUSY and TASK SET FULL answers (each retried), other
 * errors, the latency distribution (p50, p99, p99.9, max, and the count over 5 ms) and its own CPU
 * time over the run (cpu_s).
 *
 *   rbload --op read|write --pattern seq|rand --bs BYTES --qd N [--seconds S | --count N]
 *          [--span-mb MB] URL [URL ...]
 *
 * Built by tests/bench/bench_qd.py with `cc -O2 rbload.c -liscsi` (Debian libiscsi-dev). One C
 * process, one buffer for all writes: it drives tgtd far past what the board serves, and
 * bench_qd.py prints tgtd's own figures beside the board's to show the generator is not the limit. */
#include <inttypes.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>

#define MAX_SESSIONS 8
#define MAX_QD 256
#define STALL_US 5000

struct session {
    struct iscsi_context *iscsi;
    int lun;
};

struct slot {
    struct session *s;
    uint64_t lba;
    uint64_t t0;
    int busy;                      /* an answer is awaited */
};

static struct session sessions[MAX_SESSIONS];
static int nsessions;
static struct slot slots[MAX_QD];
static int write_op, random_op, qd;
static uint32_t bs, block = 512;
static uint64_t span_blocks, next_lba, rng = 88172645463325252ULL;
static uint64_t started, done, busy, tsf, errors, target_count, deadline_ns;
static uint64_t *lat;              /* each command's latency in µs, in completion order */
static unsigned char *wbuf;

static uint64_t clock_ns(clockid_t which) {
    struct timespec ts;
    clock_gettime(which, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static uint64_t now_ns(void) {
    return clock_ns(CLOCK_MONOTONIC);
}

static uint64_t next_random(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static uint64_t pick_lba(void) {
    uint64_t per = bs / block, n = span_blocks / per;
    if (random_op)
        return (next_random() % n) * per;
    uint64_t lba = next_lba;
    next_lba = (next_lba + per) % (n * per);
    return lba;
}

static int more_wanted(uint64_t t) {
    if (target_count)
        return started < target_count;
    return t < deadline_ns;
}

static void finished(struct iscsi_context *iscsi, int status, void *command_data, void *private_data);

static void issue(struct slot *sl) {
    struct iscsi_context *iscsi = sl->s->iscsi;
    struct scsi_task *t;
    sl->t0 = now_ns();
    sl->busy = 1;
    if (write_op)
        t = iscsi_write16_task(iscsi, sl->s->lun, sl->lba, wbuf, bs, block, 0, 0, 0, 0, 0, finished, sl);
    else
        t = iscsi_read16_task(iscsi, sl->s->lun, sl->lba, bs, block, 0, 0, 0, 0, 0, finished, sl);
    if (t == NULL) {
        fprintf(stderr, "rbload: cannot queue a command: %s\n", iscsi_get_error(iscsi));
        exit(3);
    }
}

static void start(struct slot *sl) {
    started++;
    sl->lba = pick_lba();
    issue(sl);
}

static void finished(struct iscsi_context *iscsi, int status, void *command_data, void *private_data) {
    struct slot *sl = private_data;
    struct scsi_task *task = command_data;
    sl->busy = 0;
    if (task)
        scsi_free_scsi_task(task);
    if (status == SCSI_STATUS_BUSY || status == SCSI_STATUS_TASK_SET_FULL) {
        if (status == SCSI_STATUS_BUSY)
            busy++;
        else
            tsf++;
        issue(sl);                 /* the same command again: the time waited counts */
        return;
    }
    if (status != SCSI_STATUS_GOOD && ++errors <= 3)
        fprintf(stderr, "rbload: status %d at lba %" PRIu64 ": %s\n", status, sl->lba, iscsi_get_error(iscsi));
    uint64_t t = now_ns();
    lat[done++] = (t - sl->t0) / 1000;
    if (more_wanted(t))
        start(sl);
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static uint64_t pct(uint64_t n, double p) {
    if (!n)
        return 0;
    uint64_t i = (uint64_t)(p * (double)(n - 1) + 0.5);
    return lat[i];
}

static void connect_session(struct session *s, const char *url_text) {
    s->iscsi = iscsi_create_context("iqn.2026-01.raidboard.bench:rbload");
    struct iscsi_url *url = iscsi_parse_full_url(s->iscsi, url_text);
    if (!url) {
        fprintf(stderr, "rbload: bad URL %s: %s\n", url_text, iscsi_get_error(s->iscsi));
        exit(2);
    }
    iscsi_set_session_type(s->iscsi, ISCSI_SESSION_NORMAL);
    iscsi_set_header_digest(s->iscsi, ISCSI_HEADER_DIGEST_NONE);
    iscsi_set_targetname(s->iscsi, url->target);
    if (iscsi_full_connect_sync(s->iscsi, url->portal, url->lun) != 0) {
        fprintf(stderr, "rbload: login to %s failed: %s\n", url_text, iscsi_get_error(s->iscsi));
        exit(2);
    }
    s->lun = url->lun;
    iscsi_destroy_url(url);
}

static void usage(void) {
    fprintf(stderr, "usage: rbload --op read|write --pattern seq|rand --bs BYTES --qd N "
                    "[--seconds S | --count N] [--span-mb MB] URL [URL ...]\n");
    exit(2);
}

int main(int argc, char **argv) {
    double seconds = 2;
    uint64_t span_mb = 0;
    const char *urls[MAX_SESSIONS];
    qd = 1;
    bs = 4096;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--op") && v) { write_op = !strcmp(v, "write"); i++; }
        else if (!strcmp(a, "--pattern") && v) { random_op = !strcmp(v, "rand"); i++; }
        else if (!strcmp(a, "--bs") && v) { bs = (uint32_t)strtoul(v, NULL, 0); i++; }
        else if (!strcmp(a, "--qd") && v) { qd = atoi(v); i++; }
        else if (!strcmp(a, "--seconds") && v) { seconds = atof(v); i++; }
        else if (!strcmp(a, "--count") && v) { target_count = strtoull(v, NULL, 0); i++; }
        else if (!strcmp(a, "--span-mb") && v) { span_mb = strtoull(v, NULL, 0); i++; }
        else if (a[0] == '-') usage();
        else if (nsessions < MAX_SESSIONS) urls[nsessions++] = a;
        else usage();
    }
    if (!nsessions || qd < 1 || qd > MAX_QD || bs < 512 || bs % 512)
        usage();
    for (int i = 0; i < nsessions; i++)
        connect_session(&sessions[i], urls[i]);

    struct scsi_task *cap = iscsi_readcapacity16_sync(sessions[0].iscsi, sessions[0].lun);
    struct scsi_readcapacity16 *rc16 = cap && cap->status == SCSI_STATUS_GOOD ? scsi_datain_unmarshall(cap) : NULL;
    if (!rc16) {
        fprintf(stderr, "rbload: READ CAPACITY(16) failed: %s\n", iscsi_get_error(sessions[0].iscsi));
        return 2;
    }
    block = rc16->block_length;
    span_blocks = rc16->returned_lba + 1;
    scsi_free_scsi_task(cap);
    if (span_mb && span_mb * 1048576 / block < span_blocks)
        span_blocks = span_mb * 1048576 / block;
    if (bs % block || bs / block > span_blocks)
        usage();

    uint64_t cap_lat = (target_count ? target_count : (uint64_t)(seconds * 2000000)) + MAX_QD;
    lat = malloc(cap_lat * sizeof *lat);
    wbuf = malloc(bs);
    if (!lat || !wbuf)
        return 2;
    for (uint32_t i = 0; i < bs; i++)
        wbuf[i] = (unsigned char)(i * 7 + 1);

    uint64_t cpu0 = clock_ns(CLOCK_PROCESS_CPUTIME_ID);
    uint64_t t0 = now_ns();
    deadline_ns = t0 + (uint64_t)(seconds * 1e9);
    for (int i = 0; i < qd && more_wanted(t0); i++) {
        slots[i].s = &sessions[i % nsessions];
        start(&slots[i]);
    }
    struct pollfd pfd[MAX_SESSIONS];
    for (;;) {
        int waiting = 0;
        for (int i = 0; i < qd; i++)
            waiting += slots[i].busy;
        if (!waiting || done >= cap_lat - MAX_QD)
            break;
        for (int i = 0; i < nsessions; i++) {
            pfd[i].fd = iscsi_get_fd(sessions[i].iscsi);
            pfd[i].events = iscsi_which_events(sessions[i].iscsi);
            pfd[i].revents = 0;
        }
        if (poll(pfd, nsessions, 1000) < 0) {
            perror("rbload: poll");
            return 3;
        }
        for (int i = 0; i < nsessions; i++) {
            if (iscsi_service(sessions[i].iscsi, pfd[i].revents) < 0) {
                fprintf(stderr, "rbload: session %d: %s\n", i, iscsi_get_error(sessions[i].iscsi));
                return 3;
            }
        }
    }
    double secs = (double)(now_ns() - t0) / 1e9;
    double cpu = (double)(clock_ns(CLOCK_PROCESS_CPUTIME_ID) - cpu0) / 1e9;   /* this run's own, login excluded */
    uint64_t stalls = 0;
    for (uint64_t i = 0; i < done; i++)
        stalls += lat[i] > STALL_US;
    qsort(lat, done, sizeof *lat, cmp_u64);
    printf("{\"commands\": %" PRIu64 ", \"seconds\": %.4f, \"iops\": %.1f, \"mbps\": %.2f, "
           "\"busy\": %" PRIu64 ", \"task_set_full\": %" PRIu64 ", \"errors\": %" PRIu64 ", "
           "\"lat_us\": {\"p50\": %" PRIu64 ", \"p99\": %" PRIu64 ", \"p999\": %" PRIu64 ", \"max\": %" PRIu64 "}, "
           "\"stalls_over_5ms\": %" PRIu64 ", \"cpu_s\": %.4f}\n",
           done, secs, done / secs, done * (double)bs / 1048576 / secs, busy, tsf, errors,
           pct(done, 0.5), pct(done, 0.99), pct(done, 0.999), done ? lat[done - 1] : 0, stalls, cpu);
    for (int i = 0; i < nsessions; i++) {
        iscsi_logout_sync(sessions[i].iscsi);
        iscsi_destroy_context(sessions[i].iscsi);
    }
    return errors ? 1 : 0;
}
