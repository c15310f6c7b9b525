/*
 * fuzz_replay: runs every file of a fuzz corpus through a harness's
 * LLVMFuzzerTestOneInput(), as libFuzzer does when given a corpus to
 * replay, from a plain C main(): make check exercises the corpora and
 * the harnesses' oracles (whole, split and byte-at-a-time parses agree)
 * with gcc, no clang or libFuzzer needed.  A harness reports a broken
 * oracle by aborting, which fails the test and names the last file read.
 *
 * Each input is an exact-size heap copy, as libFuzzer hands it over, so
 * the sanitizer build (make check-sanitizers) catches a read past its
 * end.  Usage: fuzz_replay [DIR...]; without arguments, the directory
 * the program was built for (FUZZ_REPLAY_CORPUS).
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Reads path into an exact-size heap buffer; 0 or -errno. */
static int
fuzz_replay_read(const char *path, uint8_t **out, size_t *out_len)
{
    FILE    *f = fopen(path, "rb");
    uint8_t *data = NULL;
    size_t   len = 0, cap = 0;
    int      rc = 0;

    if (f == NULL) {
        return -errno;
    }
    for (;;) {
        if (len == cap) {
            uint8_t *bigger;

            cap = cap == 0 ? 4096 : cap * 2;
            bigger = realloc(data, cap);
            if (bigger == NULL) {
                rc = -ENOMEM;
                break;
            }
            data = bigger;
        }
        size_t n = fread(data + len, 1, cap - len, f);

        len += n;
        if (n == 0) {
            if (ferror(f)) {
                rc = -EIO;
            }
            break;
        }
    }
    fclose(f);
    if (rc != 0) {
        free(data);
        return rc;
    }
    /* An exact-size copy: nothing readable past the input. */
    *out = malloc(len > 0 ? len : 1);
    if (*out == NULL) {
        free(data);
        return -ENOMEM;
    }
    if (len > 0) {
        memcpy(*out, data, len);
    }
    free(data);
    *out_len = len;
    return 0;
}

static int
fuzz_replay_filter(const struct dirent *d)
{
    return d->d_name[0] != '.';
}

/* Replays every file of dir in name order; returns the number of files,
 * or -1 after printing why it could not. */
static long
fuzz_replay_dir(const char *dir)
{
    struct dirent **names;
    int             n = scandir(dir, &names, fuzz_replay_filter, alphasort);
    long            done = 0;

    if (n < 0) {
        fprintf(stderr, "fuzz_replay: scandir(%s) failed: %s\n", dir,
                strerror(errno));
        return -1;
    }
    for (int i = 0; i < n; i++) {
        char     path[4096];
        uint8_t *data = NULL;
        size_t   len = 0;
        int      rc;

        snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
        rc = fuzz_replay_read(path, &data, &len);
        if (rc != 0) {
            fprintf(stderr, "fuzz_replay: reading %s failed: %s\n", path,
                    strerror(-rc));
            done = -1;
        } else {
            /* Named first, so an abort in the harness says which file. */
            fprintf(stderr, "%s\n", path);
            LLVMFuzzerTestOneInput(data, len);
            free(data);
            if (done >= 0) {
                done++;
            }
        }
        free(names[i]);
    }
    free(names);
    return done;
}

int
main(int argc, char **argv)
{
    const char *dflt[] = { FUZZ_REPLAY_CORPUS };
    const char **dirs = argc > 1 ? (const char **) argv + 1 : dflt;
    int          ndirs = argc > 1 ? argc - 1 : 1;
    long         total = 0;

    for (int i = 0; i < ndirs; i++) {
        long n = fuzz_replay_dir(dirs[i]);

        if (n < 0) {
            return 1;
        }
        if (n == 0) {
            fprintf(stderr, "fuzz_replay: %s is empty\n", dirs[i]);
            return 1;
        }
        total += n;
    }
    printf("fuzz_replay: %ld inputs replayed, every oracle held\n", total);
    return 0;
}
