/*
 * worker_accept: what a worker does when accept4() finds no descriptor
 * (EMFILE, ENFILE) or no memory (ENOBUFS, ENOMEM) for a new connection.
 *
 * Pausing alone (worker.c stops polling the listening sockets for
 * WORKER_EMFILE_PAUSE_MS) would leave the clients queued in the kernel's
 * backlog hanging for as long as descriptors stay short, and then
 * dropped without a word.  So the worker keeps one descriptor in reserve
 * (/dev/null, opened at start): at EMFILE it gives it up, and with the
 * slot it frees takes each waiting connection (up to a batch), tells it
 * the server is full (HTTP 503 with Retry-After, or Redis' own
 * "-ERR max number of clients reached") and closes it; then it takes the
 * reserve back, which cannot fail, since the slot it needs was just
 * freed and this process has no other thread.  The connections already
 * open are served throughout; once descriptors are free again, accepting
 * resumes as before.
 *
 * Each refusal counts in rcp_connections_refused_total.  The line saying
 * so is rate-limited: at most one per
 * WORKER_ACCEPT_WARN_MS, the next one counting those dropped in between
 * ("and N more like it"), as the backend's warnings are; a flood that
 * keeps the worker at its limit cannot flood the log too.
 */
#include "rcp_autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "worker_conn.h"

#define WORKER_ACCEPT_WARN_MS 1000

void
worker_accept_reserve_open(struct worker *w)
{
    if (w->accept_reserve_fd >= 0) {
        return;
    }
    w->accept_reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (w->accept_reserve_fd < 0) {
        log_warn("open(/dev/null) failed: %s; no descriptor in reserve to "
                 "refuse clients with when descriptors run out",
                 strerror(errno));
    }
}

void
worker_accept_reserve_close(struct worker *w)
{
    if (w->accept_reserve_fd >= 0) {
        (void) close(w->accept_reserve_fd);
        w->accept_reserve_fd = -1;
    }
}

/* Takes the waiting connections of lfd, up to a batch, and refuses
 * them: the answer goes out at once (the socket buffer is empty), what
 * the client sent is read first so that the close is not a reset that
 * could overtake the answer.  The number refused. */
static unsigned
worker_accept_shed(struct worker *w, int lfd, const struct worker_proto *proto)
{
    static const char http_full[] = "HTTP/1.1 503 Service Unavailable\r\n"
                                    "Content-Length: 0\r\n"
                                    "Retry-After: 1\r\n"
                                    "Cache-Status: redis-cache-proxy\r\n"
                                    "Connection: close\r\n\r\n";
    static const char resp_full[] = "-ERR max number of clients reached\r\n";
    const char *msg = proto == &worker_http_proto ? http_full : resp_full;
    size_t      len = proto == &worker_http_proto ? sizeof(http_full) - 1
                                                  : sizeof(resp_full) - 1;
    unsigned    shed = 0;

    worker_accept_reserve_close(w);
    for (int i = 0; i < WORKER_ACCEPT_BATCH; i++) {
        char    sink[512];
        int     fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        ssize_t n;

        if (fd < 0) {
            if (errno != EAGAIN && errno != EINTR && errno != EMFILE
                && errno != ENFILE && errno != ECONNABORTED) {
                log_debug("accept4() of a connection to refuse failed: %s",
                          strerror(errno));
            }
            break;
        }
        /* Counted before the answer goes out, so that a client that
         * saw it finds it in the metrics. */
        metrics_count_refused(w->params->metrics, 1);
        n = recv(fd, sink, sizeof(sink), MSG_DONTWAIT);
        if (n < 0 && errno != EAGAIN) {
            log_debug("recv() on a refused connection failed: %s",
                      strerror(errno));
        }
        if (send(fd, msg, len, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
            log_debug("send() of a refusal failed: %s", strerror(errno));
        } else if (shutdown(fd, SHUT_WR) != 0) {
            log_debug("shutdown() of a refused connection failed: %s",
                      strerror(errno));
        }
        if (close(fd) != 0) {
            log_debug("close() of a refused connection failed: %s",
                      strerror(errno));
        }
        shed++;
    }
    worker_accept_reserve_open(w);
    return shed;
}

void
worker_accept_exhausted(struct worker *w, int lfd,
                        const struct worker_proto *proto, int err,
                        int pause_ms)
{
    uint64_t now_ms = event_now_ms(&w->loop);
    unsigned shed = 0;

    if ((err == EMFILE || err == ENFILE) && w->accept_reserve_fd >= 0) {
        shed = worker_accept_shed(w, lfd, proto);
    }
    w->accept_refused += shed;
    if (w->accept_warned_ms != 0
        && now_ms - w->accept_warned_ms < WORKER_ACCEPT_WARN_MS) {
        w->accept_warns_dropped++;
        return;
    }
    if (w->accept_warns_dropped > 0) {
        log_error("accept4() failed: %s; pausing accepts for %d ms, %" PRIu64
                  " connections refused (and %" PRIu64 " more like it)",
                  strerror(err), pause_ms, w->accept_refused,
                  w->accept_warns_dropped);
    } else {
        log_error("accept4() failed: %s; pausing accepts for %d ms, %" PRIu64
                  " connections refused",
                  strerror(err), pause_ms, w->accept_refused);
    }
    w->accept_warned_ms = now_ms;
    w->accept_warns_dropped = 0;
    w->accept_refused = 0;
}
