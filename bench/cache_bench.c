/*
 * cache_bench: throughput of the shared-memory cache, and its overhead.
 *
 * Prints hits/s (cache_get on present keys, uniformly random, and on one
 * hot key as a load generator hammering one URL would) and inserts/s
 * (cache_set of new keys into a full cache, so each one also evicts),
 * with 1 and with N processes on one segment (each process does ops
 * operations), the aggregate of each and its ratio to 1 process, and the
 * bytes each entry costs beyond its key and value.  A ratio above 1 means
 * the cache scales with processes; N may exceed the cores, to read the
 * trend.  It also prints how long one cache line takes to go from one
 * process to another (two processes passing a counter back and forth):
 * what every shared write costs on this machine.  Built by `make bench/cache_bench`, not by `all`.
 *
 *   usage: bench/cache_bench [-p N] [-r RUNS] [-w WORKLOADS]
 *                            [capacity [value_bytes [ops]]]
 *
 * -p N (default 2): the second process count.  -r RUNS (default 1):
 * repeat each measurement and report the median aggregate.  -w: run only
 * the workloads named by these letters: r (random hits), h (one hot
 * key), i (inserts that evict); default rhi.
 *
 * It includes cache_arena.h (an internal header) only to size the arena
 * for the overhead formula.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cache.h"
#include "cache_arena.h"

#define BENCH_KEY_BYTES 16

struct bench {
    struct cache  *cache;           /* owned */
    char          *keys;            /* owned: capacity * 2 keys */
    unsigned char *value;           /* owned */
    uint32_t       capacity;
    size_t         value_bytes;
    uint64_t       ops;
};

static double
bench_now(void)
{
    struct timespec ts;

    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) {
        perror("clock_gettime");
        exit(1);
    }
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static const char *
bench_key(const struct bench *b, uint64_t i)
{
    return b->keys + i * BENCH_KEY_BYTES;
}

static uint64_t
bench_next(uint64_t *state)
{
    /* xorshift64: cheap, so the loop measures the cache. */
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    return *state;
}

/* ops hits over keys 0 .. capacity-1, or on key 0 alone when hot;
 * returns failures. */
static uint64_t
bench_lookups(const struct bench *b, uint64_t seed, int hot)
{
    unsigned char *buf = malloc(b->value_bytes + 1);
    struct cache_lookup lookup = { .dst = buf,
                                   .dst_cap = b->value_bytes + 1 };
    uint64_t state = seed, failed = 0, now = cache_clock_ms();

    if (buf == NULL) {
        return b->ops;
    }
    for (uint64_t n = 0; n < b->ops; n++) {
        uint64_t i = hot ? 0 : bench_next(&state) % b->capacity;

        if (cache_get(b->cache, bench_key(b, i), BENCH_KEY_BYTES - 1, now,
                      &lookup) != CACHE_HIT) {
            failed++;
        }
    }
    free(buf);
    return failed;
}

/* Inserts keys first .. first+count-1 (wrapping in the key table). */
static uint64_t
bench_inserts(const struct bench *b, uint64_t first, uint64_t count)
{
    uint64_t failed = 0, now = cache_clock_ms();

    for (uint64_t n = 0; n < count; n++) {
        uint64_t i = (first + n) % (2 * (uint64_t) b->capacity);

        if (cache_set(b->cache, bench_key(b, i), BENCH_KEY_BYTES - 1,
                      b->value, b->value_bytes, now) != CACHE_STORED) {
            failed++;
        }
    }
    return failed;
}

enum bench_kind {
    BENCH_LOOKUPS,
    BENCH_HOT_LOOKUPS,
    BENCH_INSERTS,
};

static double
bench_cpu_now(void)
{
    struct timespec ts;

    if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) != 0) {
        perror("clock_gettime");
        exit(1);
    }
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

/* Runs kind in procs processes (slots 1..procs) at once; returns wall
 * seconds, and in *cpu_secs the CPU seconds they used together (on a
 * shared machine, CPU time per operation shows what contention costs
 * even when other load takes the CPUs away).  A process that saw a
 * failure exits 1 and the bench stops. */
static double
bench_parallel(struct bench *b, int procs, enum bench_kind kind,
               double *cpu_secs)
{
    pid_t *pids = calloc((size_t) procs, sizeof(*pids));
    int go[2], res[2];
    double start;
    char c = 'g';

    if (pids == NULL) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    if (pipe(go) != 0 || pipe(res) != 0) {
        perror("pipe");
        exit(1);
    }
    for (int p = 0; p < procs; p++) {
        pids[p] = fork();
        if (pids[p] < 0) {
            perror("fork");
            exit(1);
        }
        if (pids[p] == 0) {
            uint64_t failed;
            double cpu;
            ssize_t n;

            close(go[1]);
            close(res[0]);
            cache_attach(b->cache, (uint32_t) p + 1);
            do {
                n = read(go[0], &c, 1);     /* start together */
            } while (n < 0 && errno == EINTR);
            cpu = bench_cpu_now();
            if (kind == BENCH_INSERTS) {
                /* Each process its own half of the spare keys. */
                failed = bench_inserts(b, b->capacity + (uint64_t) p
                                       * b->capacity / (uint64_t) procs,
                                       b->ops);
            } else {
                failed = bench_lookups(b, 0x9e3779b97f4a7c15u * (p + 1),
                                       kind == BENCH_HOT_LOOKUPS);
            }
            cpu = bench_cpu_now() - cpu;
            if (write(res[1], &cpu, sizeof(cpu)) != (ssize_t) sizeof(cpu)) {
                _exit(1);
            }
            _exit(failed == 0 ? 0 : 1);
        }
    }
    close(go[0]);
    close(res[1]);
    start = bench_now();
    if (close(go[1]) != 0) {        /* EOF releases every child */
        perror("close");
        exit(1);
    }
    (void) c;
    for (int p = 0; p < procs; p++) {
        int status;

        if (waitpid(pids[p], &status, 0) != pids[p] || !WIFEXITED(status)
            || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "bench process %d failed\n", p);
            exit(1);
        }
    }
    *cpu_secs = 0;
    for (int p = 0; p < procs; p++) {
        double cpu;

        if (read(res[0], &cpu, sizeof(cpu)) != (ssize_t) sizeof(cpu)) {
            fprintf(stderr, "bench process %d sent no CPU time\n", p);
            exit(1);
        }
        *cpu_secs += cpu;
    }
    close(res[0]);
    free(pids);
    return bench_now() - start;
}

/* Nanoseconds for one cache line to move from one process to another:
 * two processes take turns incrementing a shared counter, each waiting
 * for the other's turn, rounds times. */
static double
bench_line_transfer_ns(uint64_t rounds)
{
    uint64_t *turn = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
                          MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    double start, secs;
    pid_t pid;
    int status;

    if (turn == MAP_FAILED) {
        perror("mmap");
        exit(1);
    }
    pid = fork();
    if (pid < 0) {
        perror("fork");
        exit(1);
    }
    start = bench_now();
    for (uint64_t i = pid == 0 ? 1 : 0; i < 2 * rounds; i += 2) {
        while (__atomic_load_n(turn, __ATOMIC_ACQUIRE) != i) {
            /* the other's turn */
        }
        __atomic_store_n(turn, i + 1, __ATOMIC_RELEASE);
    }
    if (pid == 0) {
        _exit(0);
    }
    secs = bench_now() - start;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) {
        fprintf(stderr, "line transfer process failed\n");
        exit(1);
    }
    (void) munmap(turn, 4096);
    return secs * 1e9 / (2.0 * (double) rounds);
}

static void
bench_fill(struct bench *b)
{
    if (cache_flush(b->cache) != CACHE_DELETED
        || bench_inserts(b, 0, b->capacity) != 0) {
        fprintf(stderr, "fill failed\n");
        exit(1);
    }
}

static int
bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;

    return (x > y) - (x < y);
}

static double
bench_median(double *v, int n)
{
    qsort(v, (size_t) n, sizeof(v[0]), bench_cmp_double);
    return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Median aggregate ops/s of runs runs of kind with procs processes, and
 * in *cpu_ns the median CPU nanoseconds per operation. */
static double
bench_measure(struct bench *b, int procs, enum bench_kind kind, int runs,
              double *cpu_ns)
{
    double rates[32], cpu[32];

    for (int r = 0; r < runs; r++) {
        double secs;

        if (kind != BENCH_HOT_LOOKUPS) {
            bench_fill(b);          /* lookups hit, inserts evict */
        }
        secs = bench_parallel(b, procs, kind, &cpu[r]);
        rates[r] = (double) b->ops * procs / secs;
        cpu[r] = cpu[r] * 1e9 / ((double) b->ops * procs);
    }
    *cpu_ns = bench_median(cpu, runs);
    return bench_median(rates, runs);
}

/* The first three fields of /proc/loadavg and a newline, for the report:
 * on a shared machine, figures mean little without the load they saw. */
static const char *
bench_loadavg(void)
{
    static char line[64];
    FILE *f = fopen("/proc/loadavg", "re");
    int fields = 0;

    snprintf(line, sizeof(line), "unknown\n");
    if (f == NULL) {
        return line;
    }
    if (fgets(line, sizeof(line), f) != NULL) {
        for (char *c = line; *c != '\0'; c++) {
            if (*c == ' ' && ++fields == 3) {
                c[0] = '\n';
                c[1] = '\0';
                break;
            }
        }
    }
    (void) fclose(f);
    return line;
}

static void
bench_usage(const char *argv0)
{
    fprintf(stderr, "usage: %s [-p N] [-r RUNS] [-w rhi] [capacity "
            "[value_bytes [ops]]]\n", argv0);
}

int
main(int argc, char **argv)
{
    static const struct {
        enum bench_kind kind;
        char            letter;
        const char     *name;
    } workloads[] = {
        { BENCH_LOOKUPS, 'r', "random hits" },
        { BENCH_HOT_LOOKUPS, 'h', "one hot key" },
        { BENCH_INSERTS, 'i', "inserts that evict" },
    };
    const char *which = "rhi";
    struct cache_params params = {
        .capacity = 100000,
        .max_memory_bytes = 64u << 20,
        .max_value_bytes = 1u << 20,
        .ttl_ms = 3600 * 1000,
        .worker_slots = 4,
        .lock_timeout_ms = 1000,
    };
    struct bench b;
    struct cache_stats stats;
    size_t arena_bytes, kv, block, segment;
    double fixed;
    int rc, opt, procs = 2, runs = 1;

    memset(&b, 0, sizeof(b));
    while ((opt = getopt(argc, argv, "p:r:w:h")) != -1) {
        switch (opt) {
        case 'p':
            procs = atoi(optarg);
            break;
        case 'r':
            runs = atoi(optarg);
            break;
        case 'w':
            which = optarg;
            if (which[strspn(which, "rhi")] != '\0') {
                fprintf(stderr, "%s: -w takes the letters r, h and i\n",
                        argv[0]);
                return 2;
            }
            break;
        default:
            bench_usage(argv[0]);
            return opt == 'h' ? 0 : 2;
        }
    }
    if (procs < 1 || procs > 1024 || runs < 1 || runs > 32) {
        fprintf(stderr, "%s: -p must be 1..1024 and -r 1..32\n", argv[0]);
        return 2;
    }
    argc -= optind - 1;
    argv += optind - 1;
    b.capacity = argc > 1 ? (uint32_t) strtoul(argv[1], NULL, 10) : 100000;
    b.value_bytes = argc > 2 ? strtoul(argv[2], NULL, 10) : 100;
    b.ops = argc > 3 ? strtoull(argv[3], NULL, 10) : 3000000;
    if (b.capacity < 2 || b.ops < 1) {
        bench_usage(argv[0]);
        return 2;
    }
    kv = BENCH_KEY_BYTES - 1 + b.value_bytes;
    params.capacity = b.capacity;
    params.worker_slots = (uint32_t) procs + 1;
    /* Exactly enough budget for capacity entries: inserts into a full
     * cache evict by count and by bytes at once. */
    params.max_memory_bytes = (uint64_t) kv * b.capacity;
    rc = cache_create(&params, &b.cache);
    if (rc != 0) {
        fprintf(stderr, "cache_create: %s\n", strerror(-rc));
        return 1;
    }
    b.keys = malloc((size_t) b.capacity * 2 * BENCH_KEY_BYTES);
    b.value = malloc(b.value_bytes + 1);
    if (b.keys == NULL || b.value == NULL) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    for (uint64_t i = 0; i < 2 * (uint64_t) b.capacity; i++) {
        snprintf(b.keys + i * BENCH_KEY_BYTES, BENCH_KEY_BYTES,
                 "key:%011ju", (uintmax_t) i);
    }
    memset(b.value, 'v', b.value_bytes);

    printf("capacity %u keys, key %d B, value %zu B, %ju ops per "
           "process, median of %d run%s\n", b.capacity, BENCH_KEY_BYTES - 1,
           b.value_bytes, (uintmax_t) b.ops, runs, runs > 1 ? "s" : "");
    printf("load average before: %s", bench_loadavg());
    printf("%-19s %13s %13s %7s %12s %12s\n", "workload", "1 process/s",
           "N procs/s", "N vs 1", "CPU ns/op 1", "CPU ns/op N");
    for (size_t w = 0; w < sizeof(workloads) / sizeof(workloads[0]); w++) {
        double one, many, cpu_one, cpu_many;

        if (strchr(which, workloads[w].letter) == NULL) {
            continue;
        }
        bench_fill(&b);
        one = bench_measure(&b, 1, workloads[w].kind, runs, &cpu_one);
        many = cpu_many = 0;
        if (procs > 1) {
            many = bench_measure(&b, procs, workloads[w].kind, runs,
                                 &cpu_many);
        } else {
            many = one;
            cpu_many = cpu_one;
        }
        printf("%-19s %13.0f %13.0f %6.2fx %12.0f %12.0f\n",
               workloads[w].name, one, many, many / one, cpu_one, cpu_many);
        fflush(stdout);
    }
    printf("N = %d; load average after: %s", procs, bench_loadavg());
    printf("one cache line from one process to another: %.0f ns\n",
           bench_line_transfer_ns(1000000));
    cache_stats(b.cache, &stats);
    {
        char err[256];

        if (cache_check(b.cache, err, sizeof(err)) != 0) {
            fprintf(stderr, "cache_check: %s\n", err);
            return 1;
        }
    }

    /*
     * Overhead per entry beyond its key and value bytes:
     *   (segment_bytes - arena_bytes) / capacity      slot, index share,
     *                                                 header + workers
     * + 4 + (round_up(kv + 4, 8) - (kv + 4))          block header and
     *                                                 rounding (<= 11 B;
     *                                                 15 B if kv < 12)
     * The arena itself is max_memory_bytes + 16 B per entry, the 16 B
     * reserved for that second term.
     */
    segment = cache_segment_bytes(b.cache);
    arena_bytes = cache_arena_region_bytes(params.max_memory_bytes
                      + (uint64_t) b.capacity * CACHE_ARENA_ENTRY_SLACK);
    fixed = (double) (segment - arena_bytes) / b.capacity;
    block = (kv + 4 + 7) / 8 * 8;
    if (block < 16) {
        block = 16;
    }
    printf("segment %zu B, arena %zu B, max_memory %ju B\n", segment,
           arena_bytes, (uintmax_t) params.max_memory_bytes);
    printf("overhead per entry: (segment - arena) / capacity = %.2f B, "
           "+ allocator %zu B (header 4 + rounding %zu) = %.2f B\n",
           fixed, block - kv, block - kv - 4, fixed + (double) (block - kv));
    printf("segment bytes beyond max_memory per entry (incl. the 16 B "
           "arena reserve): %.2f B\n",
           (double) (segment - params.max_memory_bytes) / b.capacity);
    printf("after the runs: %ju entries, %ju bytes, %ju evictions\n",
           (uintmax_t) stats.entries, (uintmax_t) stats.bytes,
           (uintmax_t) stats.evictions);
    cache_destroy(b.cache);
    free(b.keys);
    free(b.value);
    return 0;
}
