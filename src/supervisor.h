/*
 * supervisor: the parent process.  Opens the listening sockets, creates
 * the cache segment and the metrics slots, forks the workers, then runs a
 * libuv loop for signals, reaping and respawn, reload, and the admin
 * port.  This header is all the rest of the program sees of it: uv.h is
 * included by the supervisor's own files only (supervisor_internal.h).
 */
#ifndef RCP_SUPERVISOR_H
#define RCP_SUPERVISOR_H

#include "config.h"

/* The --redis-tls-* files, when TLS to Redis is on: each is loaded as a
 * worker will load it, so a missing or malformed one is a bad value at
 * start (and a refused reload) rather than workers that cannot
 * initialise.  0, or -EINVAL with err holding one line that names the
 * option and the file. */
int supervisor_check_tls_files(const struct config *cfg, char *err,
                               size_t err_len);

/* Runs until SIGTERM/SIGINT.  argv and envp are kept to re-read the
 * configuration on SIGHUP.  Returns the process exit status: 0 after a
 * graceful stop, 1 on a run-time failure (logged). */
int supervisor_run(struct config *cfg, int argc, char *const argv[],
                   char *const envp[]);

#endif
