/* A disk that is slow, stuck or full, for the outbox benchmarks and tests (LD_PRELOAD).
 *
 * Built by bench/fault_shim.py. Environment, all optional:
 *   LABEDGE_FSYNC_DELAY_MS  every fsync/fdatasync first sleeps this long (an SD card under load)
 *   LABEDGE_FSYNC_HOLD      path: while this file exists, fsync/fdatasync wait (a stuck disk)
 *   LABEDGE_FSYNC_HELD      path: created when an fsync starts waiting on LABEDGE_FSYNC_HOLD
 *   LABEDGE_ENOSPC          path: while this file exists, writes to files whose path contains
 *                           "outbox.sqlite3" fail with ENOSPC (a full disk)
 *   LABEDGE_ENOSPC_MATCH    the part of a path that LABEDGE_ENOSPC refuses writes to, instead of
 *                           "outbox.sqlite3" (e.g. a data folder)
 *   LABEDGE_FSYNC_COUNT     path: rewritten with the number of fsyncs seen, after each one
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

static long fsyncs;

static void nap_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

static int exists(const char *path) {
    struct stat st;
    return path != NULL && path[0] != '\0' && stat(path, &st) == 0;
}

static void touch(const char *path, long value) {
    if (path == NULL || path[0] == '\0') return;
    FILE *f = fopen(path, "w");
    if (f != NULL) {
        fprintf(f, "%ld\n", value);
        fclose(f);
    }
}

static void slow_sync(void) {
    int saved = errno;
    const char *delay = getenv("LABEDGE_FSYNC_DELAY_MS");
    const char *hold = getenv("LABEDGE_FSYNC_HOLD");
    if (exists(hold)) {
        touch(getenv("LABEDGE_FSYNC_HELD"), 1);
        while (exists(hold)) nap_ms(10);
    }
    if (delay != NULL && atol(delay) > 0) nap_ms(atol(delay));
    __atomic_add_fetch(&fsyncs, 1, __ATOMIC_SEQ_CST);
    touch(getenv("LABEDGE_FSYNC_COUNT"), __atomic_load_n(&fsyncs, __ATOMIC_SEQ_CST));
    errno = saved;
}

static int refused(int fd) {
    const char *flag = getenv("LABEDGE_ENOSPC");
    if (!exists(flag)) return 0;
    char link[64], path[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n < 0) return 0;
    path[n] = '\0';
    const char *match = getenv("LABEDGE_ENOSPC_MATCH");
    return strstr(path, match != NULL && match[0] != '\0' ? match : "outbox.sqlite3") != NULL;
}

typedef int (*sync_fn)(int);
typedef ssize_t (*write_fn)(int, const void *, size_t);
typedef ssize_t (*pwrite_fn)(int, const void *, size_t, off_t);
typedef ssize_t (*pwrite64_fn)(int, const void *, size_t, off64_t);

#define REAL(name, type) static type real_##name; \
    if (!real_##name) real_##name = (type)dlsym(RTLD_NEXT, #name)

int fsync(int fd) {
    REAL(fsync, sync_fn);
    slow_sync();
    return real_fsync(fd);
}

int fdatasync(int fd) {
    REAL(fdatasync, sync_fn);
    slow_sync();
    return real_fdatasync(fd);
}

ssize_t write(int fd, const void *buf, size_t count) {
    REAL(write, write_fn);
    if (refused(fd)) { errno = ENOSPC; return -1; }
    return real_write(fd, buf, count);
}

ssize_t pwrite(int fd, const void *buf, size_t count, off_t offset) {
    REAL(pwrite, pwrite_fn);
    if (refused(fd)) { errno = ENOSPC; return -1; }
    return real_pwrite(fd, buf, count, offset);
}

ssize_t pwrite64(int fd, const void *buf, size_t count, off64_t offset) {
    REAL(pwrite64, pwrite64_fn);
    if (refused(fd)) { errno = ENOSPC; return -1; }
    return real_pwrite64(fd, buf, count, offset);
}
