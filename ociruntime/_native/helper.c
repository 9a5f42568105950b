/*
 * helper.c: the system calls Python's os module lacks, for the extension module
 * ociruntime._native._sys (sysmodule.c) and the CFFI module ociruntime._native._helper
 * (devices_bpf.py's bpf).  Each function is a thin wrapper that returns
 * -1 with errno set on failure; Python turns that into OSError.  No policy
 * lives here: Python decides what to call and in which order.
 */
#ifndef _GNU_SOURCE /* Python.h defines it too (sysmodule.c includes this file) */
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_openat2
#define SYS_openat2 437
#endif
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif
#ifndef SYS_close_range
#define SYS_close_range 436
#endif
#ifndef SYS_execveat
#define SYS_execveat 322
#endif
#ifndef SYS_open_tree
#define SYS_open_tree 428
#endif
#ifndef SYS_move_mount
#define SYS_move_mount 429
#endif
#ifndef SYS_sched_setattr
#define SYS_sched_setattr 314
#endif

struct pyrunc_open_how {
    uint64_t flags;
    uint64_t mode;
    uint64_t resolve;
};

struct pyrunc_mount_attr {
    uint64_t attr_set;
    uint64_t attr_clr;
    uint64_t propagation;
    uint64_t userns_fd;
};

static int pr_unshare(int flags) { return unshare(flags); }

static int pr_setns(int fd, int nstype) { return setns(fd, nstype); }

static int pr_mount(const char *source, const char *target, const char *fstype,
                    unsigned long flags, const char *data)
{
    return mount(source, target, fstype, flags, data);
}

static int pr_umount2(const char *target, int flags) { return umount2(target, flags); }

static int pr_pivot_root(const char *new_root, const char *put_old)
{
    return (int)syscall(SYS_pivot_root, new_root, put_old);
}

static int pr_openat2(int dirfd, const char *path, uint64_t flags, uint64_t mode,
                      uint64_t resolve)
{
    struct pyrunc_open_how how = {flags, mode, resolve};
    return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
}

static int pr_mount_setattr(int dirfd, const char *path, unsigned int flags,
                            uint64_t attr_set, uint64_t attr_clr, uint64_t propagation,
                            uint64_t userns_fd)
{
    struct pyrunc_mount_attr attr = {attr_set, attr_clr, propagation, userns_fd};
    return (int)syscall(SYS_mount_setattr, dirfd, path, flags, &attr, sizeof(attr));
}

static int pr_open_tree(int dirfd, const char *path, unsigned int flags)
{
    return (int)syscall(SYS_open_tree, dirfd, path, flags);
}

static int pr_move_mount(int from_dirfd, const char *from_path, int to_dirfd,
                         const char *to_path, unsigned int flags)
{
    return (int)syscall(SYS_move_mount, from_dirfd, from_path, to_dirfd, to_path, flags);
}

static int pr_sethostname(const char *name, size_t len) { return sethostname(name, len); }

static int pr_setdomainname(const char *name, size_t len) { return setdomainname(name, len); }

static int pr_prctl(int option, unsigned long a2, unsigned long a3, unsigned long a4,
                    unsigned long a5)
{
    return prctl(option, a2, a3, a4, a5);
}

static int pr_close_range(unsigned int first, unsigned int last, int flags)
{
    return (int)syscall(SYS_close_range, first, last, flags);
}

/* sched_setattr(2) on the calling thread (process.scheduler); glibc has no wrapper. */
static int pr_sched_setattr(uint32_t policy, uint64_t flags, int32_t nice, uint32_t priority,
                            uint64_t runtime, uint64_t deadline, uint64_t period)
{
    struct {
        uint32_t size, sched_policy;
        uint64_t sched_flags;
        int32_t sched_nice;
        uint32_t sched_priority;
        uint64_t sched_runtime, sched_deadline, sched_period;
    } attr = {sizeof(attr), policy, flags, nice, priority, runtime, deadline, period};
    return (int)syscall(SYS_sched_setattr, 0, &attr, 0);
}

static int pr_ioprio_set(int which, int who, int ioprio)
{
    return (int)syscall(SYS_ioprio_set, which, who, ioprio);
}

static int pr_personality(unsigned long persona)
{
    return (int)syscall(SYS_personality, persona);
}

/* keyctl(KEYCTL_JOIN_SESSION_KEYRING, name): a new session keyring; returns its serial. */
static int pr_join_session_keyring(const char *name)
{
    return (int)syscall(SYS_keyctl, 1, name, 0, 0, 0);
}

/* bpf(2): load or attach a cgroup device program; Python builds the bpf_attr union. */
__attribute__((unused)) /* CFFI's only (cgroups/devices_bpf.py) */
static long pr_bpf(int cmd, void *attr, unsigned int size)
{
    return syscall(SYS_bpf, cmd, attr, size);
}

/* keyctl(KEYCTL_SETPERM, serial, perm) */
static int pr_keyctl_setperm(int serial, uint32_t perm)
{
    return (int)syscall(SYS_keyctl, 5, serial, perm, 0, 0);
}

/* set_mempolicy(2) for linux.memoryPolicy; nodemask is a bitmap of maxnode bits. */
static int pr_set_mempolicy(int mode, const unsigned long *nodemask, unsigned long maxnode)
{
    return (int)syscall(SYS_set_mempolicy, mode, nodemask, maxnode);
}

/* Replace this process with the program open at fd (the sealed exec-stage memfd). */
static int pr_execveat(int fd, char *const argv[], char *const envp[])
{
    return (int)syscall(SYS_execveat, fd, "", argv, envp, AT_EMPTY_PATH);
}

/* Bring up "lo" in the current network namespace (what `ip link set lo up` does). */
static int pr_loopback_up(void)
{
    struct ifreq ifr;
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    memset(&ifr, 0, sizeof(ifr));
    strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
    if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
        goto fail;
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
        goto fail;
    close(fd);
    return 0;
fail:
    {
        int saved = errno;
        close(fd);
        errno = saved;
    }
    return -1;
}
