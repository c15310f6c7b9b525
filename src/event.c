/*
 * event: owns a worker's epoll set and its timer heap.
 *
 * One iteration of event_loop_run():
 *
 *   read clock -> run due timers -> before_poll -> epoll_wait(nearest
 *   timer) -> read clock -> dispatch ready fds -> (again)
 *
 * Invariants:
 * - io->registered is true exactly when io->fd is in the epoll set, and
 *   then io->mask is the interest registered with the kernel.  The set
 *   is level-triggered, so an owner that leaves bytes unread is simply
 *   called again; nothing is lost if we stop dispatching early.
 * - heap[i]->heap_index == i for every i < heap_len, every other timer
 *   has heap_index SIZE_MAX, and heap[0] has the smallest when_ms.
 * - While fds are dispatched, ready[ready_next .. ready_len) holds the
 *   events not yet delivered.  Stopping a watcher clears its entries
 *   there: a callback may stop and free another watcher (or itself)
 *   whose event is still pending in this batch, and that event must
 *   never reach it.  The scan is bounded by EVENT_READY_MAX.
 * - A timer pass runs at most the timers present when it starts, so a
 *   callback that re-arms itself with 0 ms cannot starve the fds.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "event.h"
#include "log.h"

#define EVENT_READY_MAX 256
#define EVENT_HEAP_MIN  16

static void
event_heap_swap(struct event_loop *loop, size_t a, size_t b)
{
    struct event_timer *t = loop->heap[a];

    loop->heap[a] = loop->heap[b];
    loop->heap[b] = t;
    loop->heap[a]->heap_index = a;
    loop->heap[b]->heap_index = b;
}

static void
event_heap_up(struct event_loop *loop, size_t i)
{
    while (i > 0) {
        size_t parent = (i - 1) / 2;

        if (loop->heap[parent]->when_ms <= loop->heap[i]->when_ms) {
            break;
        }
        event_heap_swap(loop, i, parent);
        i = parent;
    }
}

static void
event_heap_down(struct event_loop *loop, size_t i)
{
    for (;;) {
        size_t left = 2 * i + 1;
        size_t right = left + 1;
        size_t min = i;

        if (left < loop->heap_len
            && loop->heap[left]->when_ms < loop->heap[min]->when_ms) {
            min = left;
        }
        if (right < loop->heap_len
            && loop->heap[right]->when_ms < loop->heap[min]->when_ms) {
            min = right;
        }
        if (min == i) {
            break;
        }
        event_heap_swap(loop, i, min);
        i = min;
    }
}

static void
event_heap_remove(struct event_loop *loop, struct event_timer *timer)
{
    size_t i = timer->heap_index;
    size_t last = loop->heap_len - 1;

    assert(i < loop->heap_len && loop->heap[i] == timer);
    if (i != last) {
        event_heap_swap(loop, i, last);
    }
    loop->heap_len--;
    timer->heap_index = SIZE_MAX;
    if (i < loop->heap_len) {
        /* The element moved into i may belong above or below it. */
        struct event_timer *moved = loop->heap[i];

        event_heap_up(loop, i);
        event_heap_down(loop, moved->heap_index);
    }
}

void
event_update_time(struct event_loop *loop)
{
    struct timespec ts;

    /* CLOCK_MONOTONIC cannot fail with a valid clock id and pointer. */
    (void) clock_gettime(CLOCK_MONOTONIC, &ts);
    loop->now_ms =
        (uint64_t) ts.tv_sec * 1000u + (uint64_t) ts.tv_nsec / 1000000u;
}

uint64_t
event_now_ms(const struct event_loop *loop)
{
    return loop->now_ms;
}

int
event_loop_init(struct event_loop *loop)
{
    memset(loop, 0, sizeof(*loop));
    loop->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    if (loop->epoll_fd < 0) {
        return -errno;
    }
    loop->ready = calloc(EVENT_READY_MAX, sizeof(*loop->ready));
    if (loop->ready == NULL) {
        (void) close(loop->epoll_fd);
        loop->epoll_fd = -1;
        return -ENOMEM;
    }
    event_update_time(loop);
    return 0;
}

void
event_loop_fini(struct event_loop *loop)
{
    size_t i;

    /* Timers still armed are the owners' to free; just forget them. */
    for (i = 0; i < loop->heap_len; i++) {
        loop->heap[i]->heap_index = SIZE_MAX;
    }
    free(loop->heap);
    loop->heap = NULL;
    loop->heap_len = 0;
    loop->heap_cap = 0;
    free(loop->ready);
    loop->ready = NULL;
    if (loop->epoll_fd >= 0 && close(loop->epoll_fd) != 0) {
        log_warn("close(epoll fd %d) failed: %s", loop->epoll_fd,
                 strerror(errno));
    }
    loop->epoll_fd = -1;
}

void
event_loop_stop(struct event_loop *loop)
{
    loop->stop = true;
}

void
event_io_init(struct event_io *io, int fd, event_io_cb cb, void *data)
{
    io->fd = fd;
    io->mask = 0;
    io->registered = false;
    io->cb = cb;
    io->data = data;
}

/* Clears io's undelivered events of the batch being dispatched. */
static void
event_io_forget(struct event_loop *loop, const struct event_io *io)
{
    size_t i;

    for (i = loop->ready_next; i < loop->ready_len; i++) {
        if (loop->ready[i].data.ptr == io) {
            loop->ready[i].data.ptr = NULL;
        }
    }
}

int
event_io_set(struct event_loop *loop, struct event_io *io, unsigned mask)
{
    struct epoll_event ev;
    int                op;

    mask &= EVENT_READ | EVENT_WRITE;
    if (mask == 0) {
        int rc = 0;

        if (io->registered) {
            /* EPOLL_CTL_DEL ignores ev, but kernels before 2.6.9 wanted
             * a non-NULL pointer; passing one costs nothing. */
            memset(&ev, 0, sizeof(ev));
            if (epoll_ctl(loop->epoll_fd, EPOLL_CTL_DEL, io->fd, &ev) != 0) {
                rc = -errno;
            }
            io->registered = false;
        }
        io->mask = 0;
        event_io_forget(loop, io);
        return rc;
    }
    if (io->registered && io->mask == mask) {
        return 0;
    }

    memset(&ev, 0, sizeof(ev));
    ev.events = ((mask & EVENT_READ) ? EPOLLIN : 0u)
                | ((mask & EVENT_WRITE) ? EPOLLOUT : 0u);
    ev.data.ptr = io;
    op = io->registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    if (epoll_ctl(loop->epoll_fd, op, io->fd, &ev) != 0) {
        return -errno;
    }
    io->registered = true;
    io->mask = mask;
    return 0;
}

void
event_io_stop(struct event_loop *loop, struct event_io *io)
{
    int rc = event_io_set(loop, io, 0);

    if (rc != 0) {
        /* ENOENT/EBADF: the fd was closed first, which already took it
         * out of the set; the watcher is stopped either way. */
        log_debug("epoll_ctl(DEL, fd %d) failed: %s", io->fd, strerror(-rc));
    }
}

void
event_timer_init(struct event_timer *timer, event_timer_cb cb, void *data)
{
    timer->when_ms = 0;
    timer->heap_index = SIZE_MAX;
    timer->cb = cb;
    timer->data = data;
}

bool
event_timer_active(const struct event_timer *timer)
{
    return timer->heap_index != SIZE_MAX;
}

int
event_timer_start(struct event_loop *loop, struct event_timer *timer,
                  uint64_t after_ms)
{
    uint64_t when_ms = loop->now_ms + after_ms;

    if (when_ms < loop->now_ms) {
        when_ms = UINT64_MAX;
    }
    if (event_timer_active(timer)) {
        uint64_t old_ms = timer->when_ms;

        timer->when_ms = when_ms;
        if (when_ms < old_ms) {
            event_heap_up(loop, timer->heap_index);
        } else {
            event_heap_down(loop, timer->heap_index);
        }
        return 0;
    }
    if (loop->heap_len == loop->heap_cap) {
        size_t cap = loop->heap_cap ? loop->heap_cap * 2 : EVENT_HEAP_MIN;
        struct event_timer **heap = realloc(loop->heap, cap * sizeof(*heap));

        if (heap == NULL) {
            return -ENOMEM;
        }
        loop->heap = heap;
        loop->heap_cap = cap;
    }
    timer->when_ms = when_ms;
    timer->heap_index = loop->heap_len;
    loop->heap[loop->heap_len++] = timer;
    event_heap_up(loop, timer->heap_index);
    return 0;
}

void
event_timer_stop(struct event_loop *loop, struct event_timer *timer)
{
    if (event_timer_active(timer)) {
        event_heap_remove(loop, timer);
    }
}

static void
event_run_timers(struct event_loop *loop)
{
    size_t budget = loop->heap_len;

    while (budget-- > 0 && loop->heap_len > 0 && !loop->stop) {
        struct event_timer *timer = loop->heap[0];

        if (timer->when_ms > loop->now_ms) {
            break;
        }
        /* Unlinked before the call, so the callback may re-arm it. */
        event_heap_remove(loop, timer);
        timer->cb(loop, timer);
    }
}

static int
event_poll_timeout_ms(const struct event_loop *loop)
{
    uint64_t when_ms;

    if (loop->heap_len == 0) {
        return -1;
    }
    when_ms = loop->heap[0]->when_ms;
    if (when_ms <= loop->now_ms) {
        return 0;
    }
    if (when_ms - loop->now_ms > (uint64_t) INT_MAX) {
        return INT_MAX;
    }
    return (int) (when_ms - loop->now_ms);
}

static void
event_dispatch(struct event_loop *loop, size_t n)
{
    size_t i;

    loop->ready_len = n;
    for (i = 0; i < n && !loop->stop; i++) {
        struct event_io *io = loop->ready[i].data.ptr;
        uint32_t         got = loop->ready[i].events;
        unsigned         events = 0;

        loop->ready_next = i + 1;
        if (io == NULL || !io->registered) {
            continue;
        }
        if (got & (EPOLLERR | EPOLLHUP)) {
            events = EVENT_READ | EVENT_WRITE;
        }
        if (got & (EPOLLIN | EPOLLRDHUP | EPOLLPRI)) {
            events |= EVENT_READ;
        }
        if (got & EPOLLOUT) {
            events |= EVENT_WRITE;
        }
        /* An earlier callback may have narrowed the mask since the
         * kernel reported this event. */
        events &= io->mask;
        if (events != 0) {
            io->cb(loop, io, events);
        }
    }
    loop->ready_next = 0;
    loop->ready_len = 0;
}

int
event_loop_run(struct event_loop *loop, event_before_poll_cb before_poll,
               void *arg)
{
    /* A stop asked for before the call is honoured; the flag is
     * consumed on return so the next call runs again. */
    for (;;) {
        int n;

        event_update_time(loop);
        event_run_timers(loop);
        if (loop->stop) {
            break;
        }
        if (before_poll != NULL) {
            before_poll(loop, arg);
            if (loop->stop) {
                break;
            }
        }
        n = epoll_wait(loop->epoll_fd, loop->ready, EVENT_READY_MAX,
                       event_poll_timeout_ms(loop));
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        event_update_time(loop);
        event_dispatch(loop, (size_t) n);
        if (loop->stop) {
            break;
        }
    }
    loop->stop = false;
    return 0;
}
