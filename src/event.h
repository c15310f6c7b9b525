/*
 * event: a worker's single-threaded epoll loop with fd watchers and
 * one-shot millisecond timers kept in a binary min-heap.  The loop's clock
 * (event_now_ms) is read once per iteration, so a callback never pays
 * for clock_gettime() and all work of one iteration sees one "now".
 *
 * Ownership: watchers and timers are embedded in the caller's objects;
 * the loop only borrows them between start and stop.  A callback may
 * stop or start any watcher or timer, including its own.
 */
#ifndef RCP_EVENT_H
#define RCP_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EVENT_READ  0x1u
#define EVENT_WRITE 0x2u

struct event_loop;
struct event_io;
struct event_timer;

/* events: EVENT_READ and/or EVENT_WRITE that are ready (errors and
 * hang-ups are reported as both, so the owner's read or write sees them). */
typedef void (*event_io_cb)(struct event_loop *loop, struct event_io *io,
                            unsigned events);
typedef void (*event_timer_cb)(struct event_loop  *loop,
                               struct event_timer *timer);
/* Runs before each epoll_wait() (event_loop_run). */
typedef void (*event_before_poll_cb)(struct event_loop *loop, void *arg);

struct event_io {
    int         fd;         /* borrowed: owner closes it */
    unsigned    mask;       /* EVENT_READ | EVENT_WRITE wanted */
    bool        registered; /* in the epoll set */
    event_io_cb cb;
    void       *data; /* borrowed: owner's object */
};

struct event_timer {
    uint64_t       when_ms;    /* event_now_ms() deadline */
    size_t         heap_index; /* SIZE_MAX when not started */
    event_timer_cb cb;
    void          *data; /* borrowed: owner's object */
};

struct epoll_event;

struct event_loop {
    int                  epoll_fd; /* owned */
    uint64_t             now_ms;   /* CLOCK_MONOTONIC, per iteration */
    struct event_timer **heap;     /* owned array, borrowed timers */
    size_t               heap_len;
    size_t               heap_cap;
    bool                 stop; /* event_loop_run returns */
    /* epoll_wait() results being dispatched: stopping a watcher clears
     * its entries in [ready_next, ready_len), so no event reaches a
     * watcher stopped (or freed) earlier in the same iteration. */
    struct epoll_event  *ready; /* owned array */
    size_t               ready_next;
    size_t               ready_len;
};

/* 0 or -errno. */
int  event_loop_init(struct event_loop *loop);
void event_loop_fini(struct event_loop *loop);

/* Runs until event_loop_stop().  Returns 0, or -errno if epoll_wait()
 * fails for a reason other than EINTR.  before_poll, if not NULL, runs
 * before each wait (deferred frees, flushing). */
int  event_loop_run(struct event_loop *loop, event_before_poll_cb before_poll,
                    void *arg);
void event_loop_stop(struct event_loop *loop);
uint64_t event_now_ms(const struct event_loop *loop);
void     event_update_time(struct event_loop *loop);

void event_io_init(struct event_io *io, int fd, event_io_cb cb, void *data);
/* Sets the wanted mask (0 removes the fd from the set).  0 or -errno. */
int  event_io_set(struct event_loop *loop, struct event_io *io, unsigned mask);
/* Removes the fd from the set; call before closing it. */
void event_io_stop(struct event_loop *loop, struct event_io *io);

void event_timer_init(struct event_timer *timer, event_timer_cb cb,
                      void *data);
/* (Re)arms the timer after_ms from now.  0 or -ENOMEM. */
int  event_timer_start(struct event_loop *loop, struct event_timer *timer,
                       uint64_t after_ms);
void event_timer_stop(struct event_loop *loop, struct event_timer *timer);
bool event_timer_active(const struct event_timer *timer);

#endif
