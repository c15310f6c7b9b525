/*
 * supervisor_access: the access log.  Workers write whole lines into a
 * pipe whose write end is non-blocking (a full pipe costs them dropped
 * lines, never a wait); the supervisor reads it and appends to the file.
 * A slow disk therefore slows only this process.  SIGHUP reopens the
 * file, for log rotation.
 *
 * s->access_wr (the workers' end) is inherited by every fork and closed
 * here only after the loop, so the last lines are read before exit.
 */
#include "rcp_autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "supervisor_internal.h"

/* Opens (or, on SIGHUP, reopens) the destination; on failure the one
 * already open is kept, so lines are not silently lost. */
int
supervisor_access_open_file(struct supervisor *s)
{
    int fd = STDERR_FILENO;

    if (strcmp(s->cfg.access_log, "stderr") != 0) {
        fd = open(s->cfg.access_log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
                  0644);
        if (fd < 0) {
            int rc = -errno;

            log_error("open(%s) failed: %s", s->cfg.access_log,
                      strerror(errno));
            return rc;
        }
    }
    if (s->access_out > STDERR_FILENO) {
        close(s->access_out);
    }
    s->access_out = fd;
    return 0;
}

static void
supervisor_access_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct supervisor *s = h->data;

    *buf = uv_buf_init(s->access_buf, sizeof(s->access_buf));
}

static void
supervisor_access_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *b)
{
    struct supervisor *s = stream->data;
    size_t             off = 0;

    if (nread <= 0 || s->access_out < 0) {
        return;
    }
    while (off < (size_t) nread) {
        ssize_t n = write(s->access_out, b->base + off, (size_t) nread - off);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            log_error("write(access log %s) failed: %s", s->cfg.access_log,
                      strerror(errno));
            return;
        }
        off += (size_t) n;
    }
}

int
supervisor_access_start(struct supervisor *s)
{
    int fds[2];
    int rc;

    if (s->cfg.access_log[0] == '\0') {
        return 0;
    }
    rc = supervisor_access_open_file(s);
    if (rc != 0) {
        return rc;
    }
    if (pipe2(fds, O_CLOEXEC) != 0) {
        rc = -errno;
        log_error("pipe2(access log) failed: %s", strerror(errno));
        return rc;
    }
    if (fcntl(fds[1], F_SETFL, O_NONBLOCK) != 0) {
        rc = -errno;
        log_error("fcntl(access log pipe, O_NONBLOCK) failed: %s",
                  strerror(errno));
        close(fds[0]);
        close(fds[1]);
        return rc;
    }
    s->access_wr = fds[1];
    uv_pipe_init(s->loop, &s->access_pipe, 0);
    s->access_pipe.data = s;
    s->access_open = true;
    rc = uv_pipe_open(&s->access_pipe, fds[0]);
    if (rc == 0) {
        rc = uv_read_start((uv_stream_t *) &s->access_pipe,
                           supervisor_access_alloc, supervisor_access_read);
    }
    if (rc != 0) {
        log_error("access log pipe: %s", uv_strerror(rc));
        return rc;
    }
    return 0;
}

void
supervisor_access_drain(struct supervisor *s)
{
    if (s->access_open) {
        /* The workers' last lines are in the pipe: take them. */
        close(s->access_wr);
        s->access_wr = -1;
        uv_run(s->loop, UV_RUN_NOWAIT);
    }
}

void
supervisor_access_close(struct supervisor *s)
{
    if (s->access_wr >= 0) {
        close(s->access_wr);
        s->access_wr = -1;
    }
    if (s->access_out > STDERR_FILENO) {
        close(s->access_out);
        s->access_out = -1;
    }
}
