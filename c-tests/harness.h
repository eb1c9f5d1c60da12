// SPDX-License-Identifier: GPL-3.0-only
/*
 * Shared C test harness: xc_interface helpers, domain pairs on xensim, and
 * a save -> stock restore round trip (threads, tee to a file,
 * verify-stream-v2, equality checks at the end and at every checkpoint).
 */
#ifndef HARNESS_H
#define HARNESS_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <xenctrl.h>
#include <xenguest.h>

#include "xensim.h"

/* ---- failing a test ---- */
#define H_FAIL(...)                                                       \
    do {                                                                  \
        fprintf(stdout, "FAIL %s:%d: ", __FILE__, __LINE__);              \
        fprintf(stdout, __VA_ARGS__);                                     \
        fprintf(stdout, "\n");                                            \
        fflush(stdout);                                                   \
        exit(1);                                                          \
    } while (0)
#define H_CHECK(cond, ...)                                                \
    do {                                                                  \
        if (!(cond)) {                                                    \
            fprintf(stdout, "FAIL %s:%d: check `%s` failed: ", __FILE__,  \
                    __LINE__, #cond);                                     \
            fprintf(stdout, __VA_ARGS__);                                 \
            fprintf(stdout, "\n");                                        \
            fflush(stdout);                                               \
            exit(1);                                                      \
        }                                                                 \
    } while (0)

/* The signature of xc_domain_save (stock, xcsave, or a test double). */
typedef int (*harness_save_fn)(xc_interface *xch, int io_fd, uint32_t dom,
                               uint32_t flags, struct save_callbacks *cb,
                               xc_stream_type_t stream_type, int recv_fd);

/* The signature of xc_domain_restore (stock, xcsave, or a test double). */
typedef int (*harness_restore_fn)(xc_interface *xch, int io_fd, uint32_t dom,
                                  unsigned int store_evtchn, unsigned long *store_mfn,
                                  uint32_t store_domid, unsigned int console_evtchn,
                                  unsigned long *console_mfn, uint32_t console_domid,
                                  xc_stream_type_t stream_type,
                                  struct restore_callbacks *callbacks, int send_back_fd);

/* The stock libxenguest xc_domain_save@VERS_4.17.0 (via dlvsym). */
harness_save_fn harness_stock_save(void);

/* The stock libxenguest xc_domain_restore@VERS_4.17.0 (via dlvsym): a test linked with
 * libxcsave binds the plain name xc_domain_restore to xcsave's. */
harness_restore_fn harness_stock_restore(void);

/* An xc_interface logging to stderr at env HARNESS_XTL_LEVEL (a number,
 * default XTL_WARN).  Fails the test if it cannot be opened. */
xc_interface *harness_xc_open(void);

/* A COLO back-channel record header in uint32_t words, as the release's stock restore writes
 * it: type and length; from Xen 4.18 also the 8 bytes of struct xc_sr_record's NULL data
 * pointer, because send_checkpoint_dirty_pfn_list() writes the whole struct (commit
 * efe8de1f91; src/backchannel.rs). Fake secondaries in the tests use it. */
#if XEN_RELEASE_MINOR == 17
#define BC_HDR(type, len) (type), (len)
#else
#define BC_HDR(type, len) (type), (len), 0, 0
#endif

/* What the tests read of one domain's info, through the release's libxenctrl call:
 * 4.17's xc_domain_getinfo (the first domain with an id >= dom) or, from 4.18, where that
 * call is gone, xc_domain_getinfo_single (exactly dom, else -1 with errno ESRCH).
 * Returns 0, or -1 with errno. */
struct harness_dominfo {
    uint32_t domid;
    int hvm;
    unsigned long nr_pages;
};
int harness_dominfo(xc_interface *xch, uint32_t dom, struct harness_dominfo *out);
void harness_xc_close(xc_interface *xch);

/* Create a filled, running source (seed) and an empty, paused target of
 * the same size.  Fails the test on error. */
void harness_make_pair(uint32_t src, uint32_t dst, uint64_t mem_bytes,
                       uint64_t seed);

/* Bring back to running a source that a finished save left behind: log-dirty off,
 * resumed from its suspend, unpaused. Every step is tried; 0, or the first failing
 * call's return. */
int harness_resume_saved(uint32_t dom);

/* Seconds since an arbitrary epoch (CLOCK_MONOTONIC). */
double harness_now(void);

/* Options of one round trip. */
struct harness_opts {
    harness_save_fn save;        /* NULL -> harness_stock_save() */
    harness_restore_fn restore;  /* NULL -> harness_stock_restore() */
    uint32_t src, dst;           /* domains (made with harness_make_pair) */
    xc_stream_type_t stream;     /* PLAIN, REMUS or COLO */
    int live;                    /* XCFLAGS_LIVE */
    unsigned int checkpoints;    /* REMUS/COLO: checkpoints before failover */
    /* background dirtier on the source while it runs (0 rate: none) */
    uint64_t dirty_rate, dirty_first, dirty_count;
    /* pages the primary's guest writes after each postcopy (deterministic;
     * guarantees non-empty checkpoints) */
    unsigned int burst_pages;
    /* COLO: pages the secondary writes while it runs between checkpoints
     * (they travel back as CHECKPOINT_DIRTY_PFN_LIST) */
    unsigned int secondary_pages;
    const char *stream_path;     /* tee file; NULL -> $XENSIM_DIR/stream.bin */
    int no_verify;               /* skip verify-stream-v2 */
    int no_compare;              /* skip the equality checks */
    /* checkpointed streams: a gfn the primary released may stay on the
     * secondary (stream v2 cannot depopulate; the guest cannot read it) */
    int holes_ok;
    int expect_save_fail;        /* the save is expected to return nonzero */
    int expect_restore_fail;     /* the restore is expected to fail */
    /* called in the save thread after the k-th postcopy (k >= 1), while the
     * primary runs; e.g. to balloon pages */
    void (*between_checkpoints)(void *arg, unsigned int k);
    /* called in the restore thread at the start of the restore's k-th checkpoint callback
     * (k >= 1), before that checkpoint is applied; e.g. to sample xensim's counters */
    void (*restore_checkpoint)(void *arg, unsigned int k);
    /* COLO: called in the restore thread while the secondary runs after its k-th postcopy
     * (k >= 1), before it writes its secondary_pages; e.g. to balloon its pages */
    void (*secondary_running)(void *arg, unsigned int k);
    void *arg;
};

struct harness_result {
    int save_rc, save_errno;
    int restore_rc, restore_errno;
    unsigned int suspends;       /* suspend callbacks on the save side */
    unsigned int compared;       /* checkpoint states verified equal */
    uint64_t stream_bytes;
    double save_secs, restore_secs, wall_secs;
    uint64_t dirtier_writes;
    int verify_rc;               /* verify-stream-v2 exit status, -1 not run */
    char failure[400];           /* empty on success */
};

/*
 * Run opts->save on the source into a pipe, tee it to a file, restore it
 * with opts->restore (default: the stock xc_domain_restore) into the target in another thread, then
 * verify.  Returns 0 if every check passed, else -1 with r->failure set.
 *
 * Checks: PLAIN: target == source (RAM, HVM context, params) after both
 * finish.  REMUS: restore applies a checkpoint's records when the NEXT
 * checkpoint record arrives, and HVM context only at failover; so at the
 * restore's k-th checkpoint callback RAM+params equal the primary at
 * suspend max(1,k-1), and after failover everything equals the primary at
 * the last suspend.  COLO: at the secondary's k-th postcopy callback (after
 * stream_complete applied the checkpoint) RAM, HVM context and params equal
 * the primary at its k-th suspend.
 */
int harness_round_trip(const struct harness_opts *opts,
                       struct harness_result *r);

/* Run verify-stream-v2 on a file: returns its exit status (or -1), and
 * whether the output said the stream was truncated. */
int harness_verify_stream(const char *path, int *truncated);

/* 1 if a stream file consists of whole records and ends right after a
 * CHECKPOINT record (a checkpointed stream cut at failover). */
int harness_stream_ends_at_checkpoint(const char *path);

#endif
