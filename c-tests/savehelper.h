// SPDX-License-Identifier: GPL-3.0-only
/*
 * A driver for the real `libxl-save-helper` binary: it plays libxl's side of the helper's
 * message protocol (tools/libs/light/libxl_save_msgs_gen.pl at 4.17), so that tests can run
 * the unmodified helper, with or without xcsave preloaded, in a child process.
 *
 * Wire format, helper -> driver on the helper's stdout: [u16 len][u16 msgnum][args...], native
 * endian; STRING = [u32 size incl. NUL][bytes]. Replies, driver -> helper on its stdin: a native
 * int, for every callback that needs one (suspend, postcopy, checkpoint, wait_checkpoint,
 * switch_qemu_logdirty, static_data_done, complete).
 */
#ifndef XCSAVE_TESTS_SAVEHELPER_H
#define XCSAVE_TESTS_SAVEHELPER_H

#include <stddef.h>
#include <stdint.h>
#include <xenctrl.h>
#include <xenguest.h>

/* Message numbers, in the generator's order (1-based). */
enum lsh_msg {
    LSH_LOG = 1,
    LSH_PROGRESS = 2,
    LSH_SUSPEND = 3,
    LSH_POSTCOPY = 4,
    LSH_CHECKPOINT = 5,
    LSH_WAIT_CHECKPOINT = 6,
    LSH_SWITCH_QEMU_LOGDIRTY = 7,
    LSH_STATIC_DATA_DONE = 8,
    LSH_RESTORE_RESULTS = 9,
    LSH_COMPLETE = 10,
};

/* libxl's side of the callbacks. A NULL pointer is not advertised in cbflags. */
struct lsh_callbacks {
    int (*suspend)(void *data);
    int (*postcopy)(void *data);
    int (*checkpoint)(void *data);
    int (*wait_checkpoint)(void *data);
    int (*switch_qemu_logdirty)(uint32_t domid, unsigned enable, void *data);
    int (*static_data_done)(unsigned missing, void *data);
    void (*restore_results)(uint64_t store_gfn, uint64_t console_gfn, void *data);
    void *data;
};

/* What one helper run produced. Free with lsh_result_free(). */
struct lsh_result {
    int complete_seen;     /* a "complete" message arrived */
    int retval;            /* its retval (xc_domain_save/restore's return) */
    int errnoval;          /* its errnoval */
    int exit_status;       /* waitpid() status of the helper */
    unsigned messages;     /* messages received */
    unsigned progress;     /* progress messages */
    unsigned callbacks[LSH_COMPLETE + 1]; /* calls per msgnum */
    char *log;             /* every log message, one per line: "<level> <context>: <text>" */
    size_t log_len;
    uint64_t store_gfn, console_gfn; /* from restore_results */
    int protocol_error;    /* a malformed message was seen (the test should fail) */
};

/* Save: `libxl-save-helper --save-domain io_fd recv_fd dom flags cbflags stream_type`.
 * `preload` (may be NULL) becomes the child's LD_PRELOAD. io_fd/recv_fd are inherited by the
 * child; recv_fd may be -1 for streams that have no back channel (libxl then passes -1 too). */
int lsh_save(const char *helper, const char *preload, int io_fd, int recv_fd, uint32_t dom,
             uint32_t flags, xc_stream_type_t stream_type, const struct lsh_callbacks *cb,
             struct lsh_result *res);

/* Restore: `libxl-save-helper --restore-domain io_fd send_back_fd dom store_evtchn store_domid
 * console_evtchn console_domid cbflags stream_type`. */
int lsh_restore(const char *helper, const char *preload, int io_fd, int send_back_fd, uint32_t dom,
                unsigned store_evtchn, uint32_t store_domid, unsigned console_evtchn,
                uint32_t console_domid, xc_stream_type_t stream_type,
                const struct lsh_callbacks *cb, struct lsh_result *res);

/* Does the accumulated log contain `needle`? */
int lsh_log_contains(const struct lsh_result *res, const char *needle);

void lsh_result_free(struct lsh_result *res);

/* Plain callbacks shared by the helper tests. `suspend`: data points to the uint32_t domid to
 * suspend (xensim); the others accept everything and do nothing (a missing static data record
 * fails the restore, as a libxl without compatibility code would). */
int lsh_suspend_domain(void *data);
int lsh_no_qemu_logdirty(uint32_t domid, unsigned int enable, void *data);
int lsh_no_missing_static_data(unsigned int missing, void *data);
void lsh_ignore_results(uint64_t store_gfn, uint64_t console_gfn, void *data);

/* An environment variable run.sh sets; fails the test if it is missing. */
const char *lsh_env(const char *name);

#endif
