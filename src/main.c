/*
 * main: argv and the environment -> struct config -> supervisor_run().
 *
 * Owns the process exit status of everything that happens before the
 * supervisor starts: 0 for --help, --version and a valid --check-config;
 * 2 for a bad flag or value (one line on stderr, as DESIGN.md says); 1
 * for an invalid configuration under --check-config, whose job is to say
 * "invalid" rather than to refuse to start.  From then on the status is
 * the supervisor's.
 */
#include "rcp_autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "http_auth.h"
#include "supervisor.h"

extern char **environ;

/* What --help, --version and --check-config wrote must reach stdout;
 * a full disk or a closed pipe is a failure, not a silent success. */
static int
main_flush_stdout(void)
{
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "redis-cache-proxy: cannot write to stdout\n");
        return 1;
    }
    return 0;
}

int
main(int argc, char **argv)
{
    struct config  cfg;
    char           err[CONFIG_ERR_MAX];
    enum config_rc rc;

    config_defaults(&cfg);
    rc = config_load(&cfg, argc, argv, environ, err, sizeof(err));
    switch (rc) {
    case CONFIG_HELP:
        config_usage(stdout, "redis-cache-proxy");
        return main_flush_stdout();
    case CONFIG_VERSION:
        printf("redis-cache-proxy %s\n", PACKAGE_VERSION);
        return main_flush_stdout();
    case CONFIG_ERROR:
        fprintf(stderr, "redis-cache-proxy: %s\n", err);
        return cfg.check_config ? 1 : 2;
    case CONFIG_OK:
        break;
    }

    /* The credential file is the one option whose value is a file to
     * parse: a file that cannot be used is a bad value (each worker
     * reads it again, so a reload sees the new one). */
    if (cfg.http_auth_file[0] != '\0') {
        struct http_auth *auth = NULL;

        if (http_auth_load_file(cfg.http_auth_file, &auth, err, sizeof(err))
            != 0) {
            fprintf(stderr, "redis-cache-proxy: --http-auth-file: %s\n", err);
            return cfg.check_config ? 1 : 2;
        }
        http_auth_free(auth);
    }
    if (supervisor_check_tls_files(&cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "redis-cache-proxy: %s\n", err);
        return cfg.check_config ? 1 : 2;
    }
    if (cfg.check_config) {
        config_print(&cfg, stdout);
        return main_flush_stdout();
    }
    return supervisor_run(&cfg, argc, argv, environ);
}
