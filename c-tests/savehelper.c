// SPDX-License-Identifier: GPL-3.0-only
/* Driver for the real libxl-save-helper: see savehelper.h for the protocol. */
#include "savehelper.h"
#include "xensim.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int read_full(int fd, void *buf, size_t len)
{
    char *p = buf;
    while (len) {
        ssize_t r = read(fd, p, len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return r == 0 ? 0 : -1;
        p += r;
        len -= (size_t)r;
    }
    return 1;
}

static int write_full(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len) {
        ssize_t r = write(fd, p, len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        p += r;
        len -= (size_t)r;
    }
    return 0;
}

static void log_append(struct lsh_result *res, const char *fmt, ...)
{
    va_list ap;
    char *line = NULL;
    va_start(ap, fmt);
    int n = vasprintf(&line, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    char *grown = realloc(res->log, res->log_len + (size_t)n + 2);
    if (grown) {
        res->log = grown;
        memcpy(res->log + res->log_len, line, (size_t)n);
        res->log_len += (size_t)n;
        res->log[res->log_len++] = '\n';
        res->log[res->log_len] = '\0';
    }
    free(line);
}

/* A cursor over one message's argument bytes. */
struct cursor {
    const unsigned char *p, *end;
    int bad;
};

static void get_bytes(struct cursor *c, void *out, size_t n)
{
    if (c->bad || (size_t)(c->end - c->p) < n) {
        c->bad = 1;
        memset(out, 0, n);
        return;
    }
    memcpy(out, c->p, n);
    c->p += n;
}

static const char *get_string(struct cursor *c)
{
    uint32_t size;
    get_bytes(c, &size, sizeof(size));
    if (c->bad || size == 0 || (size_t)(c->end - c->p) < size || c->p[size - 1] != '\0') {
        c->bad = 1;
        return "";
    }
    const char *s = (const char *)c->p;
    c->p += size;
    return s;
}

static int dispatch(const unsigned char *msg, size_t len, const struct lsh_callbacks *cb,
                    struct lsh_result *res, int reply_fd)
{
    struct cursor c = { msg, msg + len, 0 };
    uint16_t num;
    int reply = 0, needs_reply = 1;

    get_bytes(&c, &num, sizeof(num));
    if (c.bad || num == 0 || num > LSH_COMPLETE)
        return -1;
    res->messages++;
    res->callbacks[num]++;

    switch (num) {
    case LSH_LOG: {
        uint32_t level, errnoval;
        get_bytes(&c, &level, sizeof(level));
        get_bytes(&c, &errnoval, sizeof(errnoval));
        const char *context = get_string(&c);
        const char *text = get_string(&c);
        if (!c.bad) {
            log_append(res, "%u %s: %s%s%s", level, context, text, errnoval ? " errno=" : "",
                       errnoval ? strerror((int)errnoval) : "");
            if (getenv("LSH_VERBOSE"))
                fprintf(stderr, "helper[%u] %s: %s\n", level, context, text);
        }
        needs_reply = 0;
        break;
    }
    case LSH_PROGRESS: {
        unsigned long done, total;
        (void)get_string(&c);
        (void)get_string(&c);
        get_bytes(&c, &done, sizeof(done));
        get_bytes(&c, &total, sizeof(total));
        res->progress++;
        needs_reply = 0;
        break;
    }
    case LSH_SUSPEND:
        reply = cb && cb->suspend ? cb->suspend(cb->data) : 0;
        break;
    case LSH_POSTCOPY:
        reply = cb && cb->postcopy ? cb->postcopy(cb->data) : 0;
        break;
    case LSH_CHECKPOINT:
        reply = cb && cb->checkpoint ? cb->checkpoint(cb->data) : 0;
        break;
    case LSH_WAIT_CHECKPOINT:
        reply = cb && cb->wait_checkpoint ? cb->wait_checkpoint(cb->data) : 0;
        break;
    case LSH_SWITCH_QEMU_LOGDIRTY: {
        uint32_t domid;
        unsigned enable;
        get_bytes(&c, &domid, sizeof(domid));
        get_bytes(&c, &enable, sizeof(enable));
        reply = cb && cb->switch_qemu_logdirty ? cb->switch_qemu_logdirty(domid, enable, cb->data)
                                               : 0;
        break;
    }
    case LSH_STATIC_DATA_DONE: {
        unsigned missing;
        get_bytes(&c, &missing, sizeof(missing));
        reply = cb && cb->static_data_done ? cb->static_data_done(missing, cb->data) : 0;
        break;
    }
    case LSH_RESTORE_RESULTS: {
        xen_pfn_t store, console;
        get_bytes(&c, &store, sizeof(store));
        get_bytes(&c, &console, sizeof(console));
        res->store_gfn = store;
        res->console_gfn = console;
        if (cb && cb->restore_results && !c.bad)
            cb->restore_results(store, console, cb->data);
        needs_reply = 0;
        break;
    }
    case LSH_COMPLETE: {
        int retval, errnoval;
        get_bytes(&c, &retval, sizeof(retval));
        get_bytes(&c, &errnoval, sizeof(errnoval));
        res->complete_seen = 1;
        res->retval = retval;
        res->errnoval = errnoval;
        reply = 0;
        break;
    }
    }
    if (c.bad || c.p != c.end)
        return -1;
    if (needs_reply && write_full(reply_fd, &reply, sizeof(reply)) < 0)
        return -1;
    return 0;
}

static unsigned cbflags_of(const struct lsh_callbacks *cb)
{
    unsigned f = 0;
    if (!cb)
        return 0;
    if (cb->suspend) f |= 1u << LSH_SUSPEND;
    if (cb->postcopy) f |= 1u << LSH_POSTCOPY;
    if (cb->checkpoint) f |= 1u << LSH_CHECKPOINT;
    if (cb->wait_checkpoint) f |= 1u << LSH_WAIT_CHECKPOINT;
    if (cb->switch_qemu_logdirty) f |= 1u << LSH_SWITCH_QEMU_LOGDIRTY;
    if (cb->static_data_done) f |= 1u << LSH_STATIC_DATA_DONE;
    if (cb->restore_results) f |= 1u << LSH_RESTORE_RESULTS;
    return f;
}

static int run_helper(const char *helper, const char *preload, char *const argv[],
                      const int *inherit, int ninherit, const struct lsh_callbacks *cb,
                      struct lsh_result *res)
{
    int to_child[2], from_child[2];

    memset(res, 0, sizeof(*res));
    if (pipe2(to_child, O_CLOEXEC) || pipe2(from_child, O_CLOEXEC))
        return -1;

    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        /* Child: stdin = replies, stdout = messages; inherited fds lose CLOEXEC. */
        if (dup2(to_child[0], 0) < 0 || dup2(from_child[1], 1) < 0)
            _exit(126);
        for (int i = 0; i < ninherit; i++)
            if (inherit[i] >= 0)
                fcntl(inherit[i], F_SETFD, 0);
        if (preload && *preload)
            setenv("LD_PRELOAD", preload, 1);
        else
            unsetenv("LD_PRELOAD");
        signal(SIGPIPE, SIG_DFL);
        execv(helper, argv);
        fprintf(stderr, "exec %s: %s\n", helper, strerror(errno));
        _exit(127);
    }
    close(to_child[0]);
    close(from_child[1]);

    for (;;) {
        uint16_t len;
        int r = read_full(from_child[0], &len, sizeof(len));
        if (r <= 0)
            break;
        unsigned char *msg = malloc(len ? len : 1);
        if (!msg || read_full(from_child[0], msg, len) <= 0) {
            free(msg);
            res->protocol_error = 1;
            break;
        }
        if (dispatch(msg, len, cb, res, to_child[1]) < 0) {
            res->protocol_error = 1;
            free(msg);
            break;
        }
        free(msg);
    }
    close(to_child[1]);
    close(from_child[0]);
    while (waitpid(pid, &res->exit_status, 0) < 0 && errno == EINTR)
        ;
    return 0;
}

int lsh_save(const char *helper, const char *preload, int io_fd, int recv_fd, uint32_t dom,
             uint32_t flags, xc_stream_type_t stream_type, const struct lsh_callbacks *cb,
             struct lsh_result *res)
{
    char a[6][24];
    snprintf(a[0], sizeof(a[0]), "%d", io_fd);
    snprintf(a[1], sizeof(a[1]), "%d", recv_fd);
    snprintf(a[2], sizeof(a[2]), "%u", dom);
    snprintf(a[3], sizeof(a[3]), "%u", flags);
    snprintf(a[4], sizeof(a[4]), "%u", cbflags_of(cb));
    snprintf(a[5], sizeof(a[5]), "%u", (unsigned)stream_type);
    char *argv[] = { (char *)helper, "--save-domain", a[0], a[1], a[2], a[3], a[4], a[5], NULL };
    int inherit[] = { io_fd, recv_fd };
    return run_helper(helper, preload, argv, inherit, 2, cb, res);
}

int lsh_restore(const char *helper, const char *preload, int io_fd, int send_back_fd, uint32_t dom,
                unsigned store_evtchn, uint32_t store_domid, unsigned console_evtchn,
                uint32_t console_domid, xc_stream_type_t stream_type,
                const struct lsh_callbacks *cb, struct lsh_result *res)
{
    char a[9][24];
    snprintf(a[0], sizeof(a[0]), "%d", io_fd);
    snprintf(a[1], sizeof(a[1]), "%d", send_back_fd);
    snprintf(a[2], sizeof(a[2]), "%u", dom);
    snprintf(a[3], sizeof(a[3]), "%u", store_evtchn);
    snprintf(a[4], sizeof(a[4]), "%u", store_domid);
    snprintf(a[5], sizeof(a[5]), "%u", console_evtchn);
    snprintf(a[6], sizeof(a[6]), "%u", console_domid);
    snprintf(a[7], sizeof(a[7]), "%u", cbflags_of(cb));
    snprintf(a[8], sizeof(a[8]), "%u", (unsigned)stream_type);
    char *argv[] = { (char *)helper, "--restore-domain", a[0], a[1], a[2], a[3], a[4], a[5],
                     a[6], a[7], a[8], NULL };
    int inherit[] = { io_fd, send_back_fd };
    return run_helper(helper, preload, argv, inherit, 2, cb, res);
}

int lsh_log_contains(const struct lsh_result *res, const char *needle)
{
    return res->log && strstr(res->log, needle) != NULL;
}

void lsh_result_free(struct lsh_result *res)
{
    free(res->log);
    res->log = NULL;
    res->log_len = 0;
}

int lsh_suspend_domain(void *data)
{
    uint32_t dom = *(const uint32_t *)data;
    int rc = xensim_suspend(dom);

    if (rc)
        printf("xensim_suspend(d%u): %s\n", dom, strerror(-rc));
    return rc == 0;
}

int lsh_no_qemu_logdirty(uint32_t domid, unsigned int enable, void *data)
{
    (void)domid;
    (void)enable;
    (void)data;
    return 0;
}

int lsh_no_missing_static_data(unsigned int missing, void *data)
{
    (void)data;
    return missing ? -1 : 0;
}

void lsh_ignore_results(uint64_t store_gfn, uint64_t console_gfn, void *data)
{
    (void)store_gfn;
    (void)console_gfn;
    (void)data;
}

const char *lsh_env(const char *name)
{
    const char *v = getenv(name);

    if (!v || !*v) {
        printf("FAIL: %s is not set (run through c-tests/run.sh)\n", name);
        exit(1);
    }
    return v;
}
