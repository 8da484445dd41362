/*
 * frozen_host.c: a build command's view of the host, made the same on every run (Linux x86-64).
 *
 * Loaded with LD_PRELOAD into a build command that snapshots a running program (componentize-py
 * pre-initialises CPython and stores its heap in the component). Whatever the host tells that
 * program ends up in the snapshot, so three things are fixed here:
 *
 *   - time: the wall clock reads SOURCE_DATE_EPOCH, the monotonic clocks a constant;
 *   - entropy: getrandom() returns the same bytes for the same length, every call;
 *   - file metadata: stat results carry SOURCE_DATE_EPOCH as every time stamp, device 1, and an
 *     inode number made from the file's path (relative to ENARX_FREEZE_ROOT, with the random part
 *     of temporary directory names dropped), its type and size, and sizes as ext4 would give
 *     them (a directory is 4 KiB); directory listings come sorted;
 *   - bytecode caches: creating a __pycache__ directory or a .pyc file fails (EACCES), so a build
 *     never leaves one behind for the next build to load instead of the source (Python carries on
 *     without writing it).
 *
 * Rust programs (wasmtime) make these system calls themselves, without libc, so overriding libc
 * functions is not enough. A seccomp filter traps the calls instead, and the SIGSYS handler below
 * answers them; the handler makes the real call (for stat and getdents) from one instruction,
 * det_after's predecessor, which the filter lets through. vDSO clocks are turned off by telling
 * callers of getauxval() there is no vDSO, and libc's own clock functions are overridden.
 *
 * A program started from a frozen process (exec) inherits the filter but not the handler, and is
 * killed by SIGSYS at its first stat: enarx-pkg reports that as such. Once the filter is in place
 * the library writes "frozen" to ENARX_FREEZE_REPORT_FD, so that a command which never loaded it
 * (a static binary) is not taken for a frozen one.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

/* raw(nr, a1..a6): one system call from the one instruction the filter allows. */
__asm__(".text\n.globl frozen_raw\n.type frozen_raw,@function\nfrozen_raw:\n"
        "mov %rdi,%rax\nmov %rsi,%rdi\nmov %rdx,%rsi\nmov %rcx,%rdx\nmov %r8,%r10\nmov %r9,%r8\n"
        "mov 8(%rsp),%r9\nsyscall\n.globl frozen_after\nfrozen_after:\nret\n");
long frozen_raw(long nr, long a1, long a2, long a3, long a4, long a5, long a6);
extern char frozen_after[];

static int64_t epoch = 315532800; /* 1980-01-01, as zip; SOURCE_DATE_EPOCH replaces it */
static char root[4096];
static size_t root_len;

/* --- entropy ----------------------------------------------------------------------------- */

static long fill_random(unsigned char *buf, size_t len) {
    uint64_t x = 0x9e3779b97f4a7c15ULL ^ len;
    for (size_t i = 0; i < len; i++) {
        if (i % 8 == 0) { /* splitmix64 */
            x += 0x9e3779b97f4a7c15ULL;
            uint64_t z = x;
            z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
            z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
            x = z ^ (z >> 31);
        }
        buf[i] = (unsigned char)(x >> (8 * (i % 8)));
    }
    return (long)len;
}

/* --- clocks --------------------------------------------------------------------------------- */

static int is_wall(long clk) { return clk == CLOCK_REALTIME || clk == CLOCK_REALTIME_COARSE || clk == CLOCK_TAI; }
static int is_monotonic(long clk) {
    return clk == CLOCK_MONOTONIC || clk == CLOCK_MONOTONIC_RAW || clk == CLOCK_MONOTONIC_COARSE ||
           clk == CLOCK_BOOTTIME;
}

static long frozen_clock(long clk, struct timespec *ts) {
    if (is_wall(clk)) { ts->tv_sec = epoch; ts->tv_nsec = 0; return 0; }
    if (is_monotonic(clk)) { ts->tv_sec = 1000; ts->tv_nsec = 0; return 0; }
    return frozen_raw(SYS_clock_gettime, clk, (long)ts, 0, 0, 0, 0);
}

/* --- file metadata ------------------------------------------------------------------------- */

static size_t append(char *dst, size_t at, size_t cap, const char *src) {
    while (*src && at + 1 < cap) dst[at++] = *src++;
    dst[at] = 0;
    return at;
}

/* The path an open descriptor names (AT_FDCWD: the working directory); "" when unknown. */
static size_t fd_path(long fd, char *out, size_t cap) {
    long r;
    if (fd == AT_FDCWD) {
        r = frozen_raw(SYS_getcwd, (long)out, (long)cap, 0, 0, 0, 0);
        if (r < 0) out[0] = 0;
        return r < 0 ? 0 : strnlen(out, cap);
    }
    char link[40] = "/proc/self/fd/", digits[24];
    int n = 0;
    unsigned long v = (unsigned long)fd;
    do { digits[n++] = (char)('0' + v % 10); v /= 10; } while (v && n < 20);
    size_t at = 14;
    while (n) link[at++] = digits[--n];
    link[at] = 0;
    r = frozen_raw(SYS_readlink, (long)link, (long)out, (long)cap - 1, 0, 0, 0);
    out[r < 0 ? 0 : r] = 0;
    return r < 0 ? 0 : (size_t)r;
}

static int tmp_component(const char *s, size_t len) { /* ".tmpXXXXXX", as Rust's tempfile names them */
    if (len != 10 || memcmp(s, ".tmp", 4) != 0) return 0;
    for (size_t i = 4; i < 10; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))) return 0;
    }
    return 1;
}

/* FNV-1a over the path (from ENARX_FREEZE_ROOT or the last temporary directory, whose random name
 * is dropped), the file's type and size. */
static uint64_t stable_ino(long dirfd, const char *path, uint64_t size, uint32_t mode) {
    char buf[8192];
    size_t at = 0;
    if (!path || path[0] != '/') at = fd_path(dirfd, buf, sizeof buf);
    if (path && path[0]) {
        if (path[0] != '/') at = append(buf, at, sizeof buf, "/");
        at = append(buf, at, sizeof buf, path);
    }
    buf[at] = 0;
    while (at > 1 && buf[at - 1] == '/') buf[--at] = 0;
    uint64_t h = 0xcbf29ce484222325ULL;
    size_t i = 0;
    if (root_len && at >= root_len && memcmp(buf, root, root_len) == 0 && (buf[root_len] == '/' || !buf[root_len]))
        i = root_len;
    while (i < at) {
        size_t end = i + 1;
        while (end < at && buf[end] != '/') end++;
        size_t from = i + (buf[i] == '/'), len = end - from;
        size_t keep = len;
        if (tmp_component(buf + from, len)) { h = 0xcbf29ce484222325ULL; keep = 4; } /* where it is does not count */
        h ^= '/'; h *= 0x100000001b3ULL;
        for (size_t k = 0; k < keep; k++) { h ^= (unsigned char)buf[from + k]; h *= 0x100000001b3ULL; }
        i = end;
    }
    h ^= size; h *= 0x100000001b3ULL;
    h ^= (mode & S_IFMT); h *= 0x100000001b3ULL;
    return h | 1;
}

static void freeze_ts(struct timespec *t) { t->tv_sec = epoch; t->tv_nsec = 0; }
static void freeze_sx(struct statx_timestamp *t) { t->tv_sec = epoch; t->tv_nsec = 0; }

/* Sizes as ext4 gives them, whatever the filesystem: a directory is one 4 KiB block. */
static uint64_t frozen_size(uint64_t size, uint32_t mode) { return S_ISDIR(mode) ? 4096 : size; }
static uint64_t frozen_blocks(uint64_t size) { return (size + 4095) / 4096 * 8; }

static void freeze_stat(struct stat *st, long dirfd, const char *path) {
    st->st_size = (off_t)frozen_size((uint64_t)st->st_size, st->st_mode);
    st->st_blocks = (blkcnt_t)frozen_blocks((uint64_t)st->st_size);
    st->st_blksize = 4096;
    st->st_ino = stable_ino(dirfd, path, (uint64_t)st->st_size, st->st_mode);
    st->st_dev = 1;
    freeze_ts(&st->st_atim); freeze_ts(&st->st_mtim); freeze_ts(&st->st_ctim);
}

static void freeze_statx(struct statx *sx, long dirfd, const char *path) {
    sx->stx_size = frozen_size(sx->stx_size, sx->stx_mode);
    sx->stx_blocks = frozen_blocks(sx->stx_size);
    sx->stx_blksize = 4096;
    sx->stx_ino = stable_ino(dirfd, path, sx->stx_size, sx->stx_mode);
    sx->stx_dev_major = 0; sx->stx_dev_minor = 1;
    freeze_sx(&sx->stx_atime); freeze_sx(&sx->stx_btime); freeze_sx(&sx->stx_ctime); freeze_sx(&sx->stx_mtime);
}

/* Directory listings, sorted by name whatever the filesystem's order. The first getdents64 at
 * position 0 reads the whole directory into a mapping, sorts it, and later calls on that descriptor
 * are answered from it; a listing too large (or a descriptor number too high) passes through as the
 * kernel gives it. */
struct dirent64_head { uint64_t ino; int64_t off; unsigned short reclen; unsigned char type; char name[]; };
enum { LISTINGS = 1024, LISTING_BYTES = 4 << 20, LISTING_ENTRIES = 32768 };
struct listing { unsigned char *data; uint32_t *at; long entries, next; };
static struct listing listings[LISTINGS];

static void listing_free(struct listing *l) {
    if (l->data) frozen_raw(SYS_munmap, (long)l->data, LISTING_BYTES + LISTING_ENTRIES * 4L, 0, 0, 0, 0);
    l->data = NULL; l->at = NULL; l->entries = l->next = 0;
}

static int by_name(const struct listing *l, uint32_t a, uint32_t b) {
    return strcmp(((struct dirent64_head *)(l->data + a))->name, ((struct dirent64_head *)(l->data + b))->name);
}

static void sort_listing(struct listing *l) { /* heap sort: no recursion, no allocation */
    uint32_t *a = l->at;
    long n = l->entries;
    for (long start = n / 2 - 1, end = n; end > 1;) {
        long root;
        if (start >= 0) root = start--;
        else { uint32_t t = a[0]; a[0] = a[--end]; a[end] = t; root = 0; }
        for (long child; (child = 2 * root + 1) < end; root = child) {
            if (child + 1 < end && by_name(l, a[child], a[child + 1]) < 0) child++;
            if (by_name(l, a[root], a[child]) >= 0) break;
            uint32_t t = a[root]; a[root] = a[child]; a[child] = t;
        }
    }
}

static int load_listing(struct listing *l, long fd) { /* 0: loaded; -1: pass through */
    long map = frozen_raw(SYS_mmap, 0, LISTING_BYTES + LISTING_ENTRIES * 4L, PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (map < 0 && map > -4096) return -1;
    l->data = (unsigned char *)map;
    l->at = (uint32_t *)(l->data + LISTING_BYTES);
    long used = 0;
    for (;;) {
        long r = frozen_raw(SYS_getdents64, fd, (long)(l->data + used), LISTING_BYTES - used, 0, 0, 0);
        if (r < 0 || (r == 0 && used == LISTING_BYTES)) { listing_free(l); frozen_raw(SYS_lseek, fd, 0, SEEK_SET, 0, 0, 0); return -1; }
        if (r == 0) break;
        for (long p = used; p < used + r; p += ((struct dirent64_head *)(l->data + p))->reclen) {
            if (l->entries == LISTING_ENTRIES) { listing_free(l); frozen_raw(SYS_lseek, fd, 0, SEEK_SET, 0, 0, 0); return -1; }
            l->at[l->entries++] = (uint32_t)p;
        }
        used += r;
    }
    sort_listing(l);
    return 0;
}

static long frozen_getdents(long fd, unsigned char *buf, long count) {
    if (fd < 0 || fd >= LISTINGS) return frozen_raw(SYS_getdents64, fd, (long)buf, count, 0, 0, 0);
    struct listing *l = &listings[fd];
    if (frozen_raw(SYS_lseek, fd, 0, SEEK_CUR, 0, 0, 0) == 0) { /* a fresh descriptor, or rewound */
        listing_free(l);
        if (load_listing(l, fd) != 0) return frozen_raw(SYS_getdents64, fd, (long)buf, count, 0, 0, 0);
    } else if (!l->data) {
        return frozen_raw(SYS_getdents64, fd, (long)buf, count, 0, 0, 0);
    }
    long out = 0;
    while (l->next < l->entries) {
        struct dirent64_head *d = (struct dirent64_head *)(l->data + l->at[l->next]);
        if (out + d->reclen > count) break;
        memcpy(buf + out, d, d->reclen);
        ((struct dirent64_head *)(buf + out))->off = l->next + 1;
        out += d->reclen;
        l->next++;
    }
    if (out == 0 && l->next < l->entries) return -EINVAL; /* the caller's buffer holds no entry */
    if (l->next == l->entries && out == 0) listing_free(l);
    return out;
}

/* A .pyc (or Python's temporary name for one, "x.pyc.NNN") or a __pycache__ directory. */
static const char *last_component(const char *path) {
    const char *base = path;
    for (const char *p = path; *p; p++)
        if (*p == '/' && p[1]) base = p + 1;
    return base;
}
static int bytecode_cache(const char *path) {
    if (!path) return 0;
    const char *base = last_component(path);
    if (strncmp(base, "__pycache__", 11) == 0 && (base[11] == 0 || base[11] == '/')) return 1;
    for (const char *p = base; *p; p++)
        if (strncmp(p, ".pyc", 4) == 0 && (p[4] == 0 || p[4] == '.')) return 1;
    return 0;
}

struct open_how_head { uint64_t flags, mode, resolve; };

/* --- the trap ------------------------------------------------------------------------------- */

static void on_sigsys(int sig, siginfo_t *info, void *context) {
    (void)sig;
    greg_t *g = ((ucontext_t *)context)->uc_mcontext.gregs;
    long nr = info->si_syscall;
    long a1 = g[REG_RDI], a2 = g[REG_RSI], a3 = g[REG_RDX], a4 = g[REG_R10], a5 = g[REG_R8], a6 = g[REG_R9];
    long r;
    switch (nr) {
    case SYS_getrandom: r = fill_random((unsigned char *)a1, (size_t)a2); break;
    case SYS_clock_gettime: r = frozen_clock(a1, (struct timespec *)a2); break;
    case SYS_gettimeofday:
        r = 0;
        if (a1) { ((struct timeval *)a1)->tv_sec = epoch; ((struct timeval *)a1)->tv_usec = 0; }
        break;
    case SYS_time: r = epoch; if (a1) *(time_t *)a1 = epoch; break;
    case SYS_statx:
        r = frozen_raw(nr, a1, a2, a3, a4, a5, a6);
        if (r == 0) freeze_statx((struct statx *)a5, a1, (const char *)a2);
        break;
    case SYS_newfstatat:
        r = frozen_raw(nr, a1, a2, a3, a4, a5, a6);
        if (r == 0) freeze_stat((struct stat *)a3, a1, (const char *)a2);
        break;
    case SYS_fstat:
        r = frozen_raw(nr, a1, a2, a3, a4, a5, a6);
        if (r == 0) freeze_stat((struct stat *)a2, a1, "");
        break;
    case SYS_stat: case SYS_lstat:
        r = frozen_raw(nr, a1, a2, a3, a4, a5, a6);
        if (r == 0) freeze_stat((struct stat *)a2, AT_FDCWD, (const char *)a1);
        break;
    case SYS_open: case SYS_creat:
        r = (nr == SYS_creat || (a2 & O_CREAT)) && bytecode_cache((const char *)a1)
                ? -EACCES : frozen_raw(nr, a1, a2, a3, a4, a5, a6);
        break;
    case SYS_openat:
        r = (a3 & O_CREAT) && bytecode_cache((const char *)a2) ? -EACCES : frozen_raw(nr, a1, a2, a3, a4, a5, a6);
        break;
    case SYS_openat2:
        r = a3 && (((struct open_how_head *)a3)->flags & O_CREAT) && bytecode_cache((const char *)a2)
                ? -EACCES : frozen_raw(nr, a1, a2, a3, a4, a5, a6);
        break;
    case SYS_mkdir: r = bytecode_cache((const char *)a1) ? -EACCES : frozen_raw(nr, a1, a2, a3, a4, a5, a6); break;
    case SYS_mkdirat: r = bytecode_cache((const char *)a2) ? -EACCES : frozen_raw(nr, a1, a2, a3, a4, a5, a6); break;
    case SYS_getdents64: r = frozen_getdents(a1, (unsigned char *)a2, a3); break;
    default: r = -ENOSYS;
    }
    g[REG_RAX] = r;
}

/* --- libc's own entry points (they would read the vDSO, which no trap sees) ------------------ */

int clock_gettime(clockid_t clk, struct timespec *ts) {
    long r = frozen_clock(clk, ts);
    if (r < 0) { errno = (int)-r; return -1; }
    return 0;
}
int gettimeofday(struct timeval *restrict tv, void *restrict tz) {
    (void)tz;
    tv->tv_sec = epoch; tv->tv_usec = 0;
    return 0;
}
time_t time(time_t *t) { if (t) *t = epoch; return epoch; }
unsigned long getauxval(unsigned long type) {
    static unsigned long (*next)(unsigned long);
    if (type == AT_SYSINFO_EHDR) return 0; /* no vDSO: Rust's rustix then makes real (trapped) calls */
    if (!next) next = (unsigned long (*)(unsigned long))dlsym(RTLD_NEXT, "getauxval");
    return next ? next(type) : 0;
}

/* --- installing the filter, before the program's first thread ------------------------------ */

static void say(const char *text) { if (write(2, text, strlen(text)) < 0) return; }

/* Say why on stderr and stop: a build that is not frozen must not pass for one. */
static void fail(const char *what) {
    say("enarx-pkg frozen host: cannot ");
    say(what);
    say(" (is seccomp allowed here?); set [build] deterministic = false to build without the frozen host\n");
    _exit(125);
}

__attribute__((constructor)) static void frozen_install(void) {
    const char *e = getenv("SOURCE_DATE_EPOCH"), *r = getenv("ENARX_FREEZE_ROOT");
    if (e && *e) epoch = strtoll(e, NULL, 10);
    if (r && *r && strlen(r) < sizeof root) { strcpy(root, r); root_len = strlen(root); }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_sigsys;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGSYS, &sa, NULL) != 0) fail("install the SIGSYS handler");

    static const unsigned trapped[] = {SYS_getrandom, SYS_clock_gettime, SYS_gettimeofday, SYS_time, SYS_statx,
                                       SYS_newfstatat, SYS_fstat, SYS_stat, SYS_lstat, SYS_getdents64,
                                       SYS_open, SYS_creat, SYS_openat, SYS_openat2, SYS_mkdir, SYS_mkdirat};
    enum { N = sizeof trapped / sizeof trapped[0] };
    uint64_t ip = (uint64_t)(uintptr_t)frozen_after;
    struct sock_filter f[N + 11];
    int k = 0;
    f[k++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
    f[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0);
    f[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
    f[k++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
    for (int i = 0; i < N; i++) /* a trapped number jumps over the rest and the ALLOW to the IP check */
        f[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, trapped[i], (unsigned char)(N - i), 0);
    f[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    f[k++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, instruction_pointer));
    f[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)ip, 0, 3);
    f[k++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, instruction_pointer) + 4);
    f[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)(ip >> 32), 0, 1);
    f[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    f[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRAP);
    struct sock_fprog prog = {(unsigned short)k, f};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) fail("set no_new_privs");
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &prog) != 0)
        fail("install the seccomp filter");
    const char *report = getenv("ENARX_FREEZE_REPORT_FD"); /* tell enarx-pkg the command is frozen */
    if (report && *report && write(atoi(report), "frozen\n", 7) < 0) fail("report to enarx-pkg");
}
