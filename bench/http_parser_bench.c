/*
 * http_parser_bench: cost of http_parse_request() on representative
 * request heads, whole in one call as the worker usually sees them.
 *
 * Prints ns/request for each request below.  Built by
 * `make bench/http_parser_bench`, not by `all`.
 *
 *   usage: bench/http_parser_bench [iterations [request]]
 *
 * request is an index into bench_requests to time only that one, which is
 * how to count instructions per request with callgrind:
 *
 *   valgrind --tool=callgrind --toggle-collect=http_parse_request \
 *       bench/http_parser_bench 100000 0
 *
 * and divide the total Ir by the iterations.  Every parse must end in
 * DONE with the expected head length, or the bench exits 1: a parser made
 * fast by being wrong is not measured.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http_parser.h"

struct bench_request {
    const char *name;
    const char *head;
};

static const struct bench_request bench_requests[] = {
    { "hit",
      "GET /key:000000000001 HTTP/1.1\r\nHost: x\r\n\r\n" },
    { "curl",
      "GET /key:000000000001 HTTP/1.1\r\n"
      "Host: 127.0.0.1:8080\r\n"
      "User-Agent: curl/7.88.1\r\n"
      "Accept: */*\r\n\r\n" },
    { "wrk",
      "GET /key:000000000001 HTTP/1.1\r\n"
      "Host: 127.0.0.1:8080\r\n\r\n" },
    { "browser",
      "GET /key:000000000001?v=2 HTTP/1.1\r\n"
      "Host: cache.example.com\r\n"
      "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:109.0) "
      "Gecko/20100101 Firefox/115.0\r\n"
      "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,"
      "*/*;q=0.8\r\n"
      "Accept-Language: en-US,en;q=0.5\r\n"
      "Accept-Encoding: gzip, deflate, br\r\n"
      "Connection: keep-alive\r\n"
      "Cache-Control: max-age=0\r\n\r\n" },
    { "put",
      "PUT /key:000000000001 HTTP/1.1\r\n"
      "Host: 127.0.0.1:8080\r\n"
      "Content-Type: application/octet-stream\r\n"
      "Content-Length: 1024\r\n"
      "Connection: close\r\n\r\n" },
};

#define BENCH_N_REQUESTS \
    (sizeof(bench_requests) / sizeof(bench_requests[0]))

static double
bench_now(void)
{
    struct timespec ts;

    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) {
        perror("clock_gettime");
        exit(1);
    }
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Parses r iterations times; returns seconds, or exits on a bad parse. */
static double
bench_run(const struct bench_request *r, uint64_t iterations)
{
    size_t len = strlen(r->head);
    struct http_parse st;
    struct http_request req;
    double start = bench_now();

    for (uint64_t i = 0; i < iterations; i++) {
        http_parse_init(&st);
        if (http_parse_request(&st, r->head, len, &req) != HTTP_PARSE_DONE
            || req.head_len != len) {
            fprintf(stderr, "http_parser_bench: %s: not DONE at %zu bytes "
                    "(status %d)\n", r->name, len, req.status);
            exit(1);
        }
    }
    return bench_now() - start;
}

int
main(int argc, char **argv)
{
    uint64_t iterations = 2000000;
    long only = -1;

    if (argc > 1) {
        iterations = strtoull(argv[1], NULL, 10);
    }
    if (argc > 2) {
        only = strtol(argv[2], NULL, 10);
        if (only < 0 || (size_t)only >= BENCH_N_REQUESTS) {
            fprintf(stderr, "http_parser_bench: request 0..%zu\n",
                    BENCH_N_REQUESTS - 1);
            return 2;
        }
    }
    if (iterations == 0) {
        fprintf(stderr, "usage: %s [iterations [request]]\n", argv[0]);
        return 2;
    }
    for (size_t k = 0; k < BENCH_N_REQUESTS; k++) {
        const struct bench_request *r = &bench_requests[k];
        double secs;

        if (only >= 0 && (size_t)only != k) {
            continue;
        }
        /* A short warm-up so the first timing is not of cold caches. */
        bench_run(r, iterations / 10 + 1);
        secs = bench_run(r, iterations);
        printf("%-8s %4zu bytes  %7.1f ns/request  %6.2f ns/byte\n",
               r->name, strlen(r->head), secs * 1e9 / (double)iterations,
               secs * 1e9 / (double)iterations / (double)strlen(r->head));
    }
    return 0;
}
