/*
 * worker: one pre-forked worker process.  Owns its epoll loop (event.h),
 * its client connections on the shared listening sockets, and its backend
 * connection.  Single-threaded: everything below runs on the loop.
 */
#ifndef RCP_WORKER_H
#define RCP_WORKER_H

#include <stdint.h>

#include "cache.h"
#include "config.h"
#include "metrics.h"

/* What the supervisor hands a worker at fork time.  Everything is
 * borrowed: it was created before the fork and lives as long as the
 * process. */
struct http_auth;

struct worker_params {
    const struct config     *cfg;
    uint32_t                 index;     /* 1.., for logs and ps */
    uint32_t                 slot;      /* cache and metrics slot */
    int                      http_fd;   /* listening, or -1 */
    int                      resp_fd;   /* listening, or -1 */
    int                      ready_fd;  /* write end: one byte when
                                           serving, then closed; -1 */
    int                      access_fd; /* write end of the access-log
                                           pipe (non-blocking), -1 */
    struct cache            *cache;
    struct metrics_slot_shm *metrics;
    int64_t                 *clients;     /* shared count, atomics */
    const struct metrics    *metrics_all; /* every slot, for INFO */
    long                     supervisor_pid;
    double                   start_time; /* supervisor's, epoch s */
    struct http_auth        *http_auth;  /* --http-auth-file, parsed by
                                            the supervisor: after fork
                                            the worker's own copy */
};

/* Exit statuses of a worker process. */
#define WORKER_EXIT_OK   0
#define WORKER_EXIT_FAIL 1
/* Cannot initialise: not respawned in a loop. */
#define WORKER_EXIT_FATAL 2

/* Serves until SIGTERM/SIGINT and a graceful drain; returns the exit
 * status.  The caller (the child side of the fork) passes it to _exit. */
int worker_run(const struct worker_params *params);

#endif
