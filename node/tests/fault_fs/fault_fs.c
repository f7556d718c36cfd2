/*
 * fault_fs: a file system layer for the tests that drive the `liaison` binary, loaded with
 * LD_PRELOAD. It sees every file operation the process makes under one directory and can
 *
 *  - keep only what was synced (power loss): a shadow copy of the directory receives a file's
 *    written bytes only when the file is fsync'ed or fdatasync'ed (through any descriptor:
 *    a sync covers the whole file, as the kernel's does). sync_file_range makes nothing
 *    durable, as on a real power cut it does not either (it neither flushes the disk's cache
 *    nor the file's size). Creating, renaming and removing files and directories reach the
 *    shadow at once. After the process is killed, the shadow is what a machine that lost
 *    power at that moment would find on its disk. (LazyFS is the reference for this model.)
 *  - fail syncs: while a control file exists, fsync and fdatasync of watched files fail with
 *    ENOSPC and sync nothing (as they can on a full disk with delayed allocation, or on a
 *    thinly provisioned or network volume).
 *  - run out of space: a control file states the bytes the file system has free; whenever the
 *    test rewrites it, files under ROOT may grow by that much from then on. Writes beyond it
 *    fail with ENOSPC, and statvfs reports what is left (never more than the real disk has).
 *
 * Environment:
 *   FAULT_FS_ROOT    absolute directory whose files are watched (required)
 *   FAULT_FS_SHADOW  absolute directory that receives only synced bytes (power loss mode)
 *   FAULT_FS_FAIL_SYNC  file whose existence makes syncs fail (failing syncs mode)
 *   FAULT_FS_SPACE   file holding the free bytes, in decimal; read again when it changes (checked
 *                    at most every 20 ms) (disk space mode)
 *
 * Test equipment, not used by the node: the tests build it with the machine's C compiler
 * (`cc -shared -fPIC`, see node/tests/common/fault_fs.rs).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define MAX_FDS 65536
#define MAX_FILES 4096

static char root[PATH_MAX];
static size_t root_len;
static char shadow[PATH_MAX];
static int shadow_on;
static char space_file[PATH_MAX];
static int space_on;
static char fail_sync_file[PATH_MAX];
static int fail_sync_on;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

/* Watched descriptors: the path each names, or NULL. */
static char *fd_path[MAX_FDS];

/* Files written since their last sync: path and the written extent. */
struct dirty {
    char *path;
    off_t lo, hi;
};
static struct dirty dirty[MAX_FILES];

/* The free space the space file last stated, and the growth of watched files since. */
static int64_t space_limit = INT64_MAX;
static int64_t grown;
static struct timespec space_read_at;
static int space_seen;
static ino_t space_ino;
static struct timespec space_mtime;
static off_t space_size;

static int (*real_open)(const char *, int, ...);
static int (*real_open64)(const char *, int, ...);
static int (*real_openat)(int, const char *, int, ...);
static int (*real_openat64)(int, const char *, int, ...);
static int (*real_close)(int);
static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_writev)(int, const struct iovec *, int);
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*real_pwrite64)(int, const void *, size_t, off_t);
static int (*real_ftruncate)(int, off_t);
static int (*real_ftruncate64)(int, off_t);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static int (*real_rename)(const char *, const char *);
static int (*real_renameat)(int, const char *, int, const char *);
static int (*real_unlink)(const char *);
static int (*real_unlinkat)(int, const char *, int);
static int (*real_mkdir)(const char *, mode_t);
static int (*real_statvfs)(const char *, struct statvfs *);
static int (*real_statvfs64)(const char *, struct statvfs64 *);
static int (*real_fstatvfs)(int, struct statvfs *);
static int (*real_fstatvfs64)(int, struct statvfs64 *);

#define LOAD(name) real_##name = dlsym(RTLD_NEXT, #name)

__attribute__((constructor)) static void init(void) {
    LOAD(open);
    LOAD(open64);
    LOAD(openat);
    LOAD(openat64);
    LOAD(close);
    LOAD(write);
    LOAD(writev);
    LOAD(pwrite);
    LOAD(pwrite64);
    LOAD(ftruncate);
    LOAD(ftruncate64);
    LOAD(fsync);
    LOAD(fdatasync);
    LOAD(rename);
    LOAD(renameat);
    LOAD(unlink);
    LOAD(unlinkat);
    LOAD(mkdir);
    LOAD(statvfs);
    LOAD(statvfs64);
    LOAD(fstatvfs);
    LOAD(fstatvfs64);
    const char *r = getenv("FAULT_FS_ROOT");
    if (r && r[0] == '/') {
        snprintf(root, sizeof root, "%s", r);
        root_len = strlen(root);
        while (root_len > 1 && root[root_len - 1] == '/') root[--root_len] = 0;
    }
    const char *s = getenv("FAULT_FS_SHADOW");
    if (s && s[0] == '/' && root_len) {
        snprintf(shadow, sizeof shadow, "%s", s);
        shadow_on = 1;
    }
    const char *f = getenv("FAULT_FS_FAIL_SYNC");
    if (f && f[0] == '/' && root_len) {
        snprintf(fail_sync_file, sizeof fail_sync_file, "%s", f);
        fail_sync_on = 1;
    }
    const char *q = getenv("FAULT_FS_SPACE");
    if (q && q[0] == '/' && root_len) {
        snprintf(space_file, sizeof space_file, "%s", q);
        space_on = 1;
    }
}

/* `path` made absolute against `dirfd`, into `out`. */
static int resolve(int dirfd, const char *path, char *out) {
    if (!path) return -1;
    if (path[0] == '/') {
        snprintf(out, PATH_MAX, "%s", path);
        return 0;
    }
    char base[PATH_MAX];
    if (dirfd == AT_FDCWD) {
        if (!getcwd(base, sizeof base)) return -1;
    } else {
        char link[64];
        snprintf(link, sizeof link, "/proc/self/fd/%d", dirfd);
        ssize_t n = readlink(link, base, sizeof base - 1);
        if (n < 0) return -1;
        base[n] = 0;
    }
    size_t bl = strlen(base), pl = strlen(path);
    if (bl + 1 + pl >= PATH_MAX) return -1;
    memcpy(out, base, bl);
    out[bl] = '/';
    memcpy(out + bl + 1, path, pl + 1);
    return 0;
}

static int watched(const char *abs) {
    return root_len && strncmp(abs, root, root_len) == 0 &&
           (abs[root_len] == '/' || abs[root_len] == 0);
}

/* The shadow path of a watched path. */
static void shadow_of(const char *abs, char *out) {
    snprintf(out, PATH_MAX, "%s%s", shadow, abs + root_len);
}

static struct dirty *dirty_of(const char *abs, int make) {
    struct dirty *free_slot = NULL;
    for (int i = 0; i < MAX_FILES; i++) {
        if (dirty[i].path && strcmp(dirty[i].path, abs) == 0) return &dirty[i];
        if (!dirty[i].path && !free_slot) free_slot = &dirty[i];
    }
    if (!make || !free_slot) return NULL;
    free_slot->path = strdup(abs);
    free_slot->lo = -1;
    free_slot->hi = -1;
    return free_slot;
}

static void forget_dirty(const char *abs) {
    struct dirty *d = dirty_of(abs, 0);
    if (d) {
        free(d->path);
        d->path = NULL;
    }
}

static void note_written(int fd, off_t off, size_t len) {
    if (!shadow_on || fd < 0 || fd >= MAX_FDS || !fd_path[fd]) return;
    struct dirty *d = dirty_of(fd_path[fd], 1);
    if (!d) return;
    if (d->lo < 0 || off < d->lo) d->lo = off;
    if ((off_t)(off + len) > d->hi) d->hi = off + len;
}

/* Copies what was written to `fd`'s file since its last sync into the shadow. */
static void sync_to_shadow(int fd) {
    if (!shadow_on || fd < 0 || fd >= MAX_FDS || !fd_path[fd]) return;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return;
    char sh[PATH_MAX];
    shadow_of(fd_path[fd], sh);
    int out = real_open(sh, O_WRONLY | O_CREAT, 0600);
    if (out < 0) return;
    struct dirty *d = dirty_of(fd_path[fd], 0);
    if (d && d->lo >= 0) {
        int in = real_open(fd_path[fd], O_RDONLY);
        if (in >= 0) {
            char buf[65536];
            off_t at = d->lo;
            off_t end = d->hi < st.st_size ? d->hi : st.st_size;
            while (at < end) {
                size_t want = (size_t)(end - at) < sizeof buf ? (size_t)(end - at) : sizeof buf;
                ssize_t n = pread(in, buf, want, at);
                if (n <= 0) break;
                real_pwrite(out, buf, (size_t)n, at);
                at += n;
            }
            real_close(in);
        }
        d->lo = d->hi = -1;
    }
    real_ftruncate(out, st.st_size);
    real_close(out);
}

static int64_t file_size(int fd) {
    struct stat st;
    return fstat(fd, &st) == 0 ? (int64_t)st.st_size : 0;
}

/* Reads the space file again when it changed (at most every 20 ms): its number is the free
 * space the file system has from the moment it was written, so the growth counted so far is
 * reset. */
static void read_space(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    int64_t ms = (now.tv_sec - space_read_at.tv_sec) * 1000 +
                 (now.tv_nsec - space_read_at.tv_nsec) / 1000000;
    if (space_read_at.tv_sec != 0 && ms < 20) return;
    space_read_at = now;
    struct stat st;
    if (stat(space_file, &st) != 0) return;
    if (space_seen && st.st_ino == space_ino && st.st_mtim.tv_sec == space_mtime.tv_sec &&
        st.st_mtim.tv_nsec == space_mtime.tv_nsec && st.st_size == space_size)
        return;
    int f = real_open(space_file, O_RDONLY);
    if (f < 0) return;
    char buf[64] = {0};
    ssize_t n = read(f, buf, sizeof buf - 1);
    real_close(f);
    if (n <= 0) return;
    space_seen = 1;
    space_ino = st.st_ino;
    space_mtime = st.st_mtim;
    space_size = st.st_size;
    space_limit = strtoll(buf, NULL, 10);
    grown = 0;
}

/* Whether `fd` may grow to `end`; counts the growth if so. */
static int may_grow(int fd, int64_t end) {
    if (!space_on || fd < 0 || fd >= MAX_FDS || !fd_path[fd]) return 1;
    read_space();
    int64_t growth = end - file_size(fd);
    if (growth <= 0) return 1;
    if (grown + growth > space_limit) return 0;
    grown += growth;
    return 1;
}

static int64_t space_left(void) {
    read_space();
    int64_t left = space_limit - grown;
    return left < 0 ? 0 : left;
}

static void track(int fd, const char *abs) {
    if (fd < 0 || fd >= MAX_FDS) return;
    free(fd_path[fd]);
    fd_path[fd] = watched(abs) ? strdup(abs) : NULL;
}

static int opened(int fd, const char *abs, int flags, int existed) {
    if (fd < 0 || !watched(abs)) return fd;
    pthread_mutex_lock(&lock);
    track(fd, abs);
    if (shadow_on && (flags & O_CREAT) && !existed) {
        char sh[PATH_MAX];
        shadow_of(abs, sh);
        int s = real_open(sh, O_WRONLY | O_CREAT, 0600);
        if (s >= 0) real_close(s);
    }
    if (shadow_on && (flags & O_TRUNC) && existed) note_written(fd, 0, 0);
    pthread_mutex_unlock(&lock);
    return fd;
}

#define OPEN_BODY(call)                                                    \
    mode_t mode = 0;                                                       \
    if (flags & (O_CREAT | O_TMPFILE)) {                                   \
        va_list ap;                                                        \
        va_start(ap, flags);                                               \
        mode = va_arg(ap, mode_t);                                         \
        va_end(ap);                                                        \
    }                                                                      \
    char abs[PATH_MAX];                                                    \
    int existed = 1;                                                       \
    if (resolve(dirfd, path, abs) == 0 && watched(abs))                    \
        existed = access(abs, F_OK) == 0;                                  \
    else                                                                   \
        abs[0] = 0;                                                        \
    int fd = call;                                                         \
    return abs[0] ? opened(fd, abs, flags, existed) : fd;

int open(const char *path, int flags, ...) {
    int dirfd = AT_FDCWD;
    OPEN_BODY(real_open(path, flags, mode))
}
int open64(const char *path, int flags, ...) {
    int dirfd = AT_FDCWD;
    OPEN_BODY(real_open64(path, flags, mode))
}
int openat(int dirfd, const char *path, int flags, ...) {
    OPEN_BODY(real_openat(dirfd, path, flags, mode))
}
int openat64(int dirfd, const char *path, int flags, ...) {
    OPEN_BODY(real_openat64(dirfd, path, flags, mode))
}

int close(int fd) {
    if (fd >= 0 && fd < MAX_FDS && fd_path[fd]) {
        pthread_mutex_lock(&lock);
        free(fd_path[fd]);
        fd_path[fd] = NULL;
        pthread_mutex_unlock(&lock);
    }
    return real_close(fd);
}

static ssize_t positioned(int fd, const void *buf, size_t len, off_t off, int use64) {
    pthread_mutex_lock(&lock);
    if (!may_grow(fd, (int64_t)off + (int64_t)len)) {
        pthread_mutex_unlock(&lock);
        errno = ENOSPC;
        return -1;
    }
    ssize_t n = use64 ? real_pwrite64(fd, buf, len, off) : real_pwrite(fd, buf, len, off);
    if (n > 0) note_written(fd, off, (size_t)n);
    pthread_mutex_unlock(&lock);
    return n;
}

ssize_t pwrite(int fd, const void *buf, size_t len, off_t off) {
    return positioned(fd, buf, len, off, 0);
}
ssize_t pwrite64(int fd, const void *buf, size_t len, off_t off) {
    return positioned(fd, buf, len, off, 1);
}

ssize_t write(int fd, const void *buf, size_t len) {
    if (fd < 0 || fd >= MAX_FDS || !fd_path[fd]) return real_write(fd, buf, len);
    pthread_mutex_lock(&lock);
    off_t at = (fcntl(fd, F_GETFL) & O_APPEND) ? file_size(fd) : lseek(fd, 0, SEEK_CUR);
    if (!may_grow(fd, (int64_t)at + (int64_t)len)) {
        pthread_mutex_unlock(&lock);
        errno = ENOSPC;
        return -1;
    }
    ssize_t n = real_write(fd, buf, len);
    if (n > 0) note_written(fd, at, (size_t)n);
    pthread_mutex_unlock(&lock);
    return n;
}

ssize_t writev(int fd, const struct iovec *iov, int count) {
    if (fd < 0 || fd >= MAX_FDS || !fd_path[fd]) return real_writev(fd, iov, count);
    size_t len = 0;
    for (int i = 0; i < count; i++) len += iov[i].iov_len;
    pthread_mutex_lock(&lock);
    off_t at = (fcntl(fd, F_GETFL) & O_APPEND) ? file_size(fd) : lseek(fd, 0, SEEK_CUR);
    if (!may_grow(fd, (int64_t)at + (int64_t)len)) {
        pthread_mutex_unlock(&lock);
        errno = ENOSPC;
        return -1;
    }
    ssize_t n = real_writev(fd, iov, count);
    if (n > 0) note_written(fd, at, (size_t)n);
    pthread_mutex_unlock(&lock);
    return n;
}

static int truncated(int fd, off_t len, int use64) {
    pthread_mutex_lock(&lock);
    int64_t before = (fd >= 0 && fd < MAX_FDS && fd_path[fd]) ? file_size(fd) : 0;
    if (!may_grow(fd, len)) {
        pthread_mutex_unlock(&lock);
        errno = ENOSPC;
        return -1;
    }
    int r = use64 ? real_ftruncate64(fd, len) : real_ftruncate(fd, len);
    if (r == 0 && fd >= 0 && fd < MAX_FDS && fd_path[fd]) {
        if (space_on && len < before) grown -= before - len;
        note_written(fd, len, 0);
    }
    pthread_mutex_unlock(&lock);
    return r;
}

int ftruncate(int fd, off_t len) { return truncated(fd, len, 0); }
int ftruncate64(int fd, off_t len) { return truncated(fd, len, 1); }

/* Whether a sync of `fd` must fail now. */
static int sync_fails(int fd) {
    return fail_sync_on && fd >= 0 && fd < MAX_FDS && fd_path[fd] && access(fail_sync_file, F_OK) == 0;
}

int fsync(int fd) {
    if (sync_fails(fd)) {
        errno = ENOSPC;
        return -1;
    }
    int r = real_fsync(fd);
    if (r == 0) {
        pthread_mutex_lock(&lock);
        sync_to_shadow(fd);
        pthread_mutex_unlock(&lock);
    }
    return r;
}

int fdatasync(int fd) {
    if (sync_fails(fd)) {
        errno = ENOSPC;
        return -1;
    }
    int r = real_fdatasync(fd);
    if (r == 0) {
        pthread_mutex_lock(&lock);
        sync_to_shadow(fd);
        pthread_mutex_unlock(&lock);
    }
    return r;
}

static void renamed(const char *from, const char *to) {
    if (!watched(from) || !watched(to)) return;
    pthread_mutex_lock(&lock);
    if (shadow_on) {
        char sf[PATH_MAX], st[PATH_MAX];
        shadow_of(from, sf);
        shadow_of(to, st);
        real_rename(sf, st);
        struct dirty *d = dirty_of(from, 0);
        forget_dirty(to);
        if (d) {
            free(d->path);
            d->path = strdup(to);
        }
    }
    for (int fd = 0; fd < MAX_FDS; fd++) {
        if (fd_path[fd] && strcmp(fd_path[fd], from) == 0) {
            free(fd_path[fd]);
            fd_path[fd] = strdup(to);
        }
    }
    pthread_mutex_unlock(&lock);
}

int rename(const char *from, const char *to) {
    char a[PATH_MAX], b[PATH_MAX];
    int ok = resolve(AT_FDCWD, from, a) == 0 && resolve(AT_FDCWD, to, b) == 0;
    int r = real_rename(from, to);
    if (r == 0 && ok) renamed(a, b);
    return r;
}

int renameat(int fromfd, const char *from, int tofd, const char *to) {
    char a[PATH_MAX], b[PATH_MAX];
    int ok = resolve(fromfd, from, a) == 0 && resolve(tofd, to, b) == 0;
    int r = real_renameat(fromfd, from, tofd, to);
    if (r == 0 && ok) renamed(a, b);
    return r;
}

static void removed(const char *abs, int dir, int64_t size) {
    if (!watched(abs)) return;
    pthread_mutex_lock(&lock);
    if (shadow_on) {
        char sh[PATH_MAX];
        shadow_of(abs, sh);
        if (dir)
            rmdir(sh);
        else
            real_unlink(sh);
        forget_dirty(abs);
    }
    if (space_on && !dir) grown -= size;
    pthread_mutex_unlock(&lock);
}

static int64_t size_at(const char *abs) {
    struct stat st;
    return stat(abs, &st) == 0 && S_ISREG(st.st_mode) ? (int64_t)st.st_size : 0;
}

int unlink(const char *path) {
    char abs[PATH_MAX];
    int ok = resolve(AT_FDCWD, path, abs) == 0;
    int64_t size = ok ? size_at(abs) : 0;
    int r = real_unlink(path);
    if (r == 0 && ok) removed(abs, 0, size);
    return r;
}

int unlinkat(int dirfd, const char *path, int flags) {
    char abs[PATH_MAX];
    int ok = resolve(dirfd, path, abs) == 0;
    int64_t size = ok ? size_at(abs) : 0;
    int r = real_unlinkat(dirfd, path, flags);
    if (r == 0 && ok) removed(abs, (flags & AT_REMOVEDIR) != 0, size);
    return r;
}

int mkdir(const char *path, mode_t mode) {
    int r = real_mkdir(path, mode);
    char abs[PATH_MAX];
    if (r == 0 && shadow_on && resolve(AT_FDCWD, path, abs) == 0 && watched(abs)) {
        char sh[PATH_MAX];
        shadow_of(abs, sh);
        real_mkdir(sh, mode);
    }
    return r;
}

static void limit_space(unsigned long frsize, fsblkcnt_t *bfree, fsblkcnt_t *bavail) {
    if (!space_on || frsize == 0) return;
    pthread_mutex_lock(&lock);
    fsblkcnt_t left = (fsblkcnt_t)(space_left() / (int64_t)frsize);
    pthread_mutex_unlock(&lock);
    if (*bfree > left) *bfree = left;
    if (*bavail > left) *bavail = left;
}

int statvfs(const char *path, struct statvfs *buf) {
    int r = real_statvfs(path, buf);
    char abs[PATH_MAX];
    if (r == 0 && resolve(AT_FDCWD, path, abs) == 0 && watched(abs))
        limit_space(buf->f_frsize, &buf->f_bfree, &buf->f_bavail);
    return r;
}

int statvfs64(const char *path, struct statvfs64 *buf) {
    int r = real_statvfs64(path, buf);
    char abs[PATH_MAX];
    if (r == 0 && resolve(AT_FDCWD, path, abs) == 0 && watched(abs))
        limit_space(buf->f_frsize, &buf->f_bfree, &buf->f_bavail);
    return r;
}

int fstatvfs(int fd, struct statvfs *buf) {
    int r = real_fstatvfs(fd, buf);
    if (r == 0 && fd >= 0 && fd < MAX_FDS && fd_path[fd])
        limit_space(buf->f_frsize, &buf->f_bfree, &buf->f_bavail);
    return r;
}

int fstatvfs64(int fd, struct statvfs64 *buf) {
    int r = real_fstatvfs64(fd, buf);
    if (r == 0 && fd >= 0 && fd < MAX_FDS && fd_path[fd])
        limit_space(buf->f_frsize, &buf->f_bfree, &buf->f_bavail);
    return r;
}
