/*
 * exec_stage.c: the last stage of every container process.
 *
 * Python sets up the container (namespaces, rootfs, pivot_root) and then replaces itself
 * with this small static program, run from a sealed memfd.  From here on no host
 * interpreter or shared library is mapped into the container (CVE-2019-5736), and a
 * container parked between `create` and `start` costs ~100 KiB (PSS; linked against musl).
 *
 * The stage is told what to do by a "plan": NUL-separated key=value records that Python
 * wrote into a memfd whose number is argv[1].  It applies the process settings that must
 * come last (rlimits, user and groups, capabilities, umask, cwd, no_new_privs), resolves
 * the program like execvp, reports {"type":"ready"} or {"type":"error","msg":...} on the
 * sync socket, then blocks opening exec.fifo until `pyrunc start` opens the other end,
 * closes every fd but 0-2 (and --preserve-fds), and execs the user's program.
 *
 * Plan keys (repeatable ones marked *):
 *   sync=FD  fifo=FD (an O_PATH handle of exec.fifo, reopened through /proc/self/fd/FD)
 *   fifo_proc=FD (a detached procfs to reopen it through, for a container whose /proc
 *   is no procfs of its own; without it the container's /proc)
 *   preserve=N  arg=S*  env=S*  cwd=PATH  uid=N  gid=N  group=N*
 *   setgroups=0|1  umask=N  nnp=1  rlimit=RES,SOFT,HARD*  caps=1  cap_last=N
 *   cap_bnd=HEX  cap_eff=HEX  cap_prm=HEX  cap_inh=HEX  cap_amb=HEX
 *   seccomp_fd=FD (a memfd holding a struct sock_filter program)  seccomp_flags=N (for
 *   seccomp(2): SECCOMP_FILTER_FLAG_*).  Like runc, the filter is loaded as the very last
 *   step with nnp=1; without it loading needs CAP_SYS_ADMIN, so it comes just before the
 *   user and capabilities change.  With SECCOMP_FILTER_FLAG_NEW_LISTENER (seccomp notify)
 *   it is loaded there too, and the listener fd goes to the parent as {"type":"seccomp"}
 *   with SCM_RIGHTS, before "ready" (the parent hands it to the listenerPath agent).
 *   hook_state=JSON  shook=PATH* (starts a startContainer hook)  shook_arg=S*
 *   shook_env=S*  shook_inherit=1 (no env of its own: the program's, HOME included, as
 *   runc)  shook_timeout=SECONDS.  As in runc the hooks run as the container's user, under
 *   its seccomp filter, with no fd but 0-2 (and --preserve-fds) open.
 * and for `pyrunc exec` (join a running container instead of building one):
 *   cgroup_fd=FD* (an open cgroup.procs to join)  ns=FD,CLONE_FLAG* (setns, in order)
 *   fork=1 (fork after joining, so the pid and time namespaces apply; the first process
 *   reports {"type":"pid","pid":N} and exits)  tty=1 (a pty from the container's devpts,
 *   its master sent as {"type":"console"} with SCM_RIGHTS)  console=HEIGHT,WIDTH
 *   cpu=N* (execCPUAffinity.final: the CPUs to run on once in the container's cgroup)
 * and for a container that joins a pid namespace (procfs_pidns.py), instead of a process:
 *   procfs=1 with sync=FD and ns=FD,CLONE_NEWPID: fsopen("proc") from inside that
 *   namespace (setns + fork), the filesystem context sent back as {"type":"procfs"} with
 *   SCM_RIGHTS; the init configures and mounts it.
 *
 * What goes back to `start` through exec.fifo: "0" when the program is about to be exec'd,
 * or "1" and an error text when a startContainer hook failed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <limits.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef SYS_close_range
#define SYS_close_range 436
#endif
/* the new mount API (Linux 5.2); the same numbers on every architecture */
#ifndef SYS_fsopen
#define SYS_fsopen 430
#define SYS_fsconfig 431
#define SYS_fsmount 432
#endif
#define FSOPEN_CLOEXEC_ 1
#define FSMOUNT_CLOEXEC_ 1
#define FSCONFIG_CMD_CREATE_ 6
#define MOUNT_ATTR_RONOEXEC_ 0xf /* RDONLY | NOSUID | NODEV | NOEXEC */
#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_RAISE 2
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif

#define MAX_ITEMS 4096

#define MAX_HOOKS 32
#define MAX_HOOK_ITEMS 256

struct hook {
    const char *path;
    char *argv[MAX_HOOK_ITEMS + 1];
    int argc;
    char *envp[MAX_HOOK_ITEMS + 1];
    int envc, inherit;
    long timeout;
};

#define MAX_NS 16

struct plan {
    int ns_fds[MAX_NS], ns_flags[MAX_NS], nns;
    int cgroup_fds[MAX_NS], ncgroups;
    int fork_after_join, tty, procfs;
    cpu_set_t cpus;
    int ncpus;
    unsigned short rows, cols;
    struct hook hooks[MAX_HOOKS];
    int nhooks;
    const char *hook_state;
    int sync_fd, fifo_proc_fd, fifo_fd, preserve, seccomp_fd, seccomp_flags;
    char *argv[MAX_ITEMS + 1];
    int argc;
    char *envp[MAX_ITEMS + 1];
    int envc;
    const char *cwd;
    long uid, gid;
    gid_t groups[MAX_ITEMS];
    int ngroups, set_groups;
    long umask_value;
    int nnp, caps, cap_last;
    uint64_t cap_bnd, cap_eff, cap_prm, cap_inh, cap_amb;
    struct { int resource; rlim_t soft, hard; } rlimits[64];
    int nrlimits;
};

/* Zero-initialised (in .bss, not .data: the binary and every parked container's memfd
 * copy of it stay ~200 KiB smaller); the fields whose "unset" is -1 are set by main. */
static struct plan plan;

/* The length of the UTF-8 sequence that byte c starts (1 for ASCII and for a stray byte). */
static size_t utf8_len(unsigned char c)
{
    return c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
}

/* End s (a string that snprintf truncated to fill its buffer of `size` bytes) with "...",
 * cut before a UTF-8 sequence rather than inside one. */
static void utf8_trim(char *s, size_t size)
{
    size_t end = strlen(s);
    if (size < 4)
        return;
    if (end > size - 4)
        end = size - 4;
    while (end > 0 && ((unsigned char)s[end] & 0xc0) == 0x80)
        end--; /* s[end] continues a sequence: cut before the byte that starts it */
    memcpy(s + end, "...", 4);
}

/* Write a JSON message on the sync socket (one datagram).  A long text is cut between
 * two UTF-8 sequences, never inside one, so the parent can always decode it. */
static void send_msg(const char *type, const char *text)
{
    char buf[4096];
    size_t n = 0;
    if (plan.sync_fd < 0)
        return;
    n += snprintf(buf, sizeof(buf), "{\"type\":\"%s\"", type);
    if (text) {
        n += snprintf(buf + n, sizeof(buf) - n, ",\"msg\":\"");
        for (const char *p = text; *p;) {
            unsigned char c = (unsigned char)*p;
            size_t len = utf8_len(c);
            if (n + len + 16 > sizeof(buf)) { /* room for '...', '"' and '}' */
                memcpy(buf + n, "...", 3);
                n += 3;
                break;
            }
            if (c == '"' || c == '\\') {
                buf[n++] = '\\';
                buf[n++] = (char)c;
                p++;
            } else if (c < 0x20) {
                n += snprintf(buf + n, sizeof(buf) - n, "\\u%04x", c);
                p++;
            } else {
                for (size_t i = 0; i < len && *p; i++)
                    buf[n++] = *p++;
            }
        }
        buf[n++] = '"';
    }
    buf[n++] = '}';
    if (write(plan.sync_fd, buf, n) < 0) {
        /* the parent is gone; nothing more to tell */
    }
}

/* Report a failure: on the sync socket before "ready", on stderr after it.  Then exit. */
static void __attribute__((noreturn, format(printf, 2, 3))) fail(int code, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n >= (int)sizeof(msg))
        utf8_trim(msg, sizeof(msg));
    if (plan.sync_fd >= 0) {
        send_msg("error", msg);
    } else {
        dprintf(2, "pyrunc: %s\n", msg);
    }
    _exit(code);
}

static long parse_long(const char *key, const char *s)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end)
        fail(1, "exec stage: bad plan value %s=%s", key, s);
    return v;
}

static uint64_t parse_hex(const char *key, const char *s)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 16);
    if (errno || *end)
        fail(1, "exec stage: bad plan value %s=%s", key, s);
    return v;
}

static void parse_rlimit(char *s)
{
    char *soft = strchr(s, ','), *hard;
    if (!soft || !(hard = strchr(soft + 1, ',')) || plan.nrlimits >= 64)
        fail(1, "exec stage: bad rlimit %s", s);
    *soft++ = 0;
    *hard++ = 0;
    plan.rlimits[plan.nrlimits].resource = (int)parse_long("rlimit", s);
    plan.rlimits[plan.nrlimits].soft = strtoull(soft, NULL, 10);
    plan.rlimits[plan.nrlimits].hard = strtoull(hard, NULL, 10);
    plan.nrlimits++;
}

static char *read_plan(int fd, size_t *len)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        fail(1, "exec stage: plan fd: %s", strerror(errno));
    /* the plan is a sealed memfd from pyrunc; anything else (a container running
     * /proc/self/exe with a stray fd number) is refused rather than read or waited on */
    if (!S_ISREG(st.st_mode) || fcntl(fd, F_GET_SEALS) <= 0)
        fail(1, "exec stage: fd %d is not a pyrunc plan; this program is run by pyrunc only",
             fd);
    char *buf = malloc(st.st_size + 1);
    if (!buf)
        fail(1, "exec stage: out of memory");
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t n = pread(fd, buf + got, st.st_size - got, got);
        if (n <= 0)
            fail(1, "exec stage: reading plan: %s", n < 0 ? strerror(errno) : "short read");
        got += n;
    }
    buf[got] = 0;
    *len = got;
    close(fd);
    return buf;
}

static void parse_plan(char *buf, size_t len)
{
    for (char *rec = buf, *next; rec < buf + len; rec = next) {
        next = rec + strlen(rec) + 1;
        char *val = strchr(rec, '=');
        if (!val)
            continue;
        *val++ = 0;
        if (!strcmp(rec, "arg")) {
            if (plan.argc >= MAX_ITEMS)
                fail(1, "exec stage: too many args");
            plan.argv[plan.argc++] = val;
        } else if (!strcmp(rec, "env")) {
            if (plan.envc >= MAX_ITEMS)
                fail(1, "exec stage: too many env entries");
            plan.envp[plan.envc++] = val;
        } else if (!strcmp(rec, "group")) {
            if (plan.ngroups >= MAX_ITEMS)
                fail(1, "exec stage: too many groups");
            plan.groups[plan.ngroups++] = (gid_t)parse_long(rec, val);
        } else if (!strcmp(rec, "shook")) {
            if (plan.nhooks >= MAX_HOOKS)
                fail(1, "exec stage: too many startContainer hooks");
            plan.hooks[plan.nhooks++].path = val;
        } else if (!strncmp(rec, "shook_", 6)) {
            struct hook *h = plan.nhooks ? &plan.hooks[plan.nhooks - 1] : NULL;
            if (!h)
                fail(1, "exec stage: %s before shook", rec);
            if (!strcmp(rec, "shook_arg") && h->argc < MAX_HOOK_ITEMS)
                h->argv[h->argc++] = val;
            else if (!strcmp(rec, "shook_env") && h->envc < MAX_HOOK_ITEMS)
                h->envp[h->envc++] = val;
            else if (!strcmp(rec, "shook_inherit"))
                h->inherit = (int)parse_long(rec, val);
            else if (!strcmp(rec, "shook_timeout"))
                h->timeout = parse_long(rec, val);
            else
                fail(1, "exec stage: bad hook record %s", rec);
        } else if (!strcmp(rec, "ns")) {
            char *comma = strchr(val, ',');
            if (!comma || plan.nns >= MAX_NS)
                fail(1, "exec stage: bad ns record %s", val);
            *comma = 0;
            plan.ns_fds[plan.nns] = (int)parse_long(rec, val);
            plan.ns_flags[plan.nns++] = (int)parse_long(rec, comma + 1);
        } else if (!strcmp(rec, "cgroup_fd")) {
            if (plan.ncgroups >= MAX_NS)
                fail(1, "exec stage: too many cgroups");
            plan.cgroup_fds[plan.ncgroups++] = (int)parse_long(rec, val);
        } else if (!strcmp(rec, "console")) {
            char *comma = strchr(val, ',');
            if (!comma)
                fail(1, "exec stage: bad console record %s", val);
            *comma = 0;
            plan.rows = (unsigned short)parse_long(rec, val);
            plan.cols = (unsigned short)parse_long(rec, comma + 1);
        } else if (!strcmp(rec, "cpu")) {
            long cpu = parse_long(rec, val);
            if (cpu < 0 || cpu >= CPU_SETSIZE)
                fail(1, "exec stage: bad cpu %s", val);
            CPU_SET((int)cpu, &plan.cpus);
            plan.ncpus++;
        } else if (!strcmp(rec, "fork")) plan.fork_after_join = (int)parse_long(rec, val);
        else if (!strcmp(rec, "tty")) plan.tty = (int)parse_long(rec, val);
        else if (!strcmp(rec, "procfs")) plan.procfs = (int)parse_long(rec, val);
        else if (!strcmp(rec, "hook_state")) plan.hook_state = val;
        else if (!strcmp(rec, "rlimit")) parse_rlimit(val);
        else if (!strcmp(rec, "sync")) plan.sync_fd = (int)parse_long(rec, val);
        else if (!strcmp(rec, "fifo_proc")) plan.fifo_proc_fd = (int)parse_long(rec, val);
        else if (!strcmp(rec, "fifo")) plan.fifo_fd = (int)parse_long(rec, val);
        else if (!strcmp(rec, "preserve")) plan.preserve = (int)parse_long(rec, val);
        else if (!strcmp(rec, "seccomp_fd")) plan.seccomp_fd = (int)parse_long(rec, val);
        else if (!strcmp(rec, "seccomp_flags")) plan.seccomp_flags = (int)parse_long(rec, val);
        else if (!strcmp(rec, "cwd")) plan.cwd = val;
        else if (!strcmp(rec, "uid")) plan.uid = parse_long(rec, val);
        else if (!strcmp(rec, "gid")) plan.gid = parse_long(rec, val);
        else if (!strcmp(rec, "setgroups")) plan.set_groups = (int)parse_long(rec, val);
        else if (!strcmp(rec, "umask")) plan.umask_value = parse_long(rec, val);
        else if (!strcmp(rec, "nnp")) plan.nnp = (int)parse_long(rec, val);
        else if (!strcmp(rec, "caps")) plan.caps = (int)parse_long(rec, val);
        else if (!strcmp(rec, "cap_last")) plan.cap_last = (int)parse_long(rec, val);
        else if (!strcmp(rec, "cap_bnd")) plan.cap_bnd = parse_hex(rec, val);
        else if (!strcmp(rec, "cap_eff")) plan.cap_eff = parse_hex(rec, val);
        else if (!strcmp(rec, "cap_prm")) plan.cap_prm = parse_hex(rec, val);
        else if (!strcmp(rec, "cap_inh")) plan.cap_inh = parse_hex(rec, val);
        else if (!strcmp(rec, "cap_amb")) plan.cap_amb = parse_hex(rec, val);
        else
            fail(1, "exec stage: unknown plan key %s", rec);
    }
    plan.argv[plan.argc] = NULL;
    plan.envp[plan.envc] = NULL;
}

/* Python leaves some signals ignored (SIGPIPE, SIGXFSZ); the program must start clean. */
static void reset_signals(void)
{
    sigset_t all;
    struct sigaction dfl;
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++)
        sigaction(sig, &dfl, NULL); /* SIGKILL/SIGSTOP and the libc-reserved ones fail: fine */
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
}

static const char *rlimit_name(int resource)
{
    static const char *names[] = {"RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_DATA", "RLIMIT_STACK",
                                  "RLIMIT_CORE", "RLIMIT_RSS", "RLIMIT_NPROC", "RLIMIT_NOFILE",
                                  "RLIMIT_MEMLOCK", "RLIMIT_AS", "RLIMIT_LOCKS",
                                  "RLIMIT_SIGPENDING", "RLIMIT_MSGQUEUE", "RLIMIT_NICE",
                                  "RLIMIT_RTPRIO", "RLIMIT_RTTIME"};
    return resource >= 0 && resource < 16 ? names[resource] : "RLIMIT_?";
}

static void apply_rlimits(void)
{
    for (int i = 0; i < plan.nrlimits; i++) {
        struct rlimit rl = {plan.rlimits[i].soft, plan.rlimits[i].hard};
        if (setrlimit(plan.rlimits[i].resource, &rl) < 0) {
            if (errno == EPERM)
                fail(1, "setrlimit %s: raising the hard limit needs CAP_SYS_RESOURCE, "
                        "which this runtime does not have: %s",
                     rlimit_name(plan.rlimits[i].resource), strerror(errno));
            fail(1, "setrlimit %s: %s", rlimit_name(plan.rlimits[i].resource), strerror(errno));
        }
    }
}

static void set_capabilities(void)
{
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    data[0].effective = (uint32_t)plan.cap_eff;
    data[1].effective = (uint32_t)(plan.cap_eff >> 32);
    data[0].permitted = (uint32_t)plan.cap_prm;
    data[1].permitted = (uint32_t)(plan.cap_prm >> 32);
    data[0].inheritable = (uint32_t)plan.cap_inh;
    data[1].inheritable = (uint32_t)(plan.cap_inh >> 32);
    if (syscall(SYS_capset, &hdr, data) < 0)
        fail(1, "capset: %s", strerror(errno));
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
        fail(1, "clearing ambient capabilities: %s", strerror(errno));
    for (int cap = 0; cap <= plan.cap_last && cap < 64; cap++)
        if ((plan.cap_amb >> cap) & 1)
            /* best effort, as in runc: the kernel refuses a capability that is not also
             * permitted and inheritable, and an ambient set is only ever a convenience */
            prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0);
}

/* Bounding set first (needs CAP_SETPCAP), then ids (keeping caps), then the other sets. */
static void change_identity(void)
{
    if (plan.caps) {
        for (int cap = 0; cap <= plan.cap_last && cap < 64; cap++)
            if (!((plan.cap_bnd >> cap) & 1))
                if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
                    fail(1, "dropping capability %d from the bounding set: %s", cap,
                         strerror(errno));
        if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
            fail(1, "PR_SET_KEEPCAPS: %s", strerror(errno));
    }
    if (plan.set_groups && setgroups(plan.ngroups, plan.groups) < 0)
        fail(1, "setgroups: %s", strerror(errno));
    if (plan.gid >= 0 && setresgid(plan.gid, plan.gid, plan.gid) < 0)
        fail(1, "setresgid %ld: %s", plan.gid, strerror(errno));
    if (plan.uid >= 0 && setresuid(plan.uid, plan.uid, plan.uid) < 0)
        fail(1, "setresuid %ld: %s", plan.uid, strerror(errno));
    if (plan.caps) {
        if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0)
            fail(1, "PR_SET_KEEPCAPS: %s", strerror(errno));
        set_capabilities();
    }
}

/* Change to the working directory and make sure it is inside the container's root:
 * a cwd reached through a leaked fd reads "(unreachable)" or fails (CVE-2024-21626). */
static void enter_cwd(void)
{
    char buf[4096];
    const char *cwd = plan.cwd ? plan.cwd : "/";
    if (chdir(cwd) < 0)
        fail(1, "chdir to cwd (\"%s\") set in config.json failed: %s", cwd, strerror(errno));
    if (!getcwd(buf, sizeof(buf)) || buf[0] != '/')
        fail(1, "cwd \"%s\" is outside the container's root", cwd);
}

/* The process's own PATH, "" when its env has none: as runc (Go's exec.LookPath over the
 * process env), no default PATH, so a bare name is then found nowhere. */
static const char *env_path(void)
{
    for (int i = 0; i < plan.envc; i++)
        if (!strncmp(plan.envp[i], "PATH=", 5))
            return plan.envp[i] + 5;
    return "";
}

/* runc's HOME: a process whose env has no HOME (or an empty one) gets the home directory
 * of its uid's entry in the container's /etc/passwd, "/" when there is none.  Read as the
 * container's root, in its mount namespace; only a regular file is read (a fifo planted
 * there must not hang the stage), and at most 1 MiB of it. */
static void set_home(void)
{
    static char home[4096 + 6] = "HOME=/";
    int slot = -1;
    for (int i = 0; i < plan.envc; i++) {
        if (strncmp(plan.envp[i], "HOME=", 5))
            continue;
        if (plan.envp[i][5])
            return;
        slot = i;
    }
    int fd = open("/etc/passwd", O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    struct stat st;
    if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
        size_t cap = st.st_size < (1 << 20) ? (size_t)st.st_size : (1 << 20);
        char *buf = malloc(cap + 1);
        ssize_t n = buf ? read(fd, buf, cap) : -1;
        for (char *line = buf, *next; n > 0 && line < buf + n; line = next) {
            char *end = memchr(line, '\n', buf + n - line);
            next = end ? end + 1 : buf + n;
            if (end)
                *end = 0;
            else
                buf[n] = 0;
            /* name:password:uid:gid:gecos:home:shell */
            char *field[7] = {line};
            int nf = 1;
            for (char *c = line; *c && nf < 7; c++)
                if (*c == ':') {
                    *c = 0;
                    field[nf++] = c + 1;
                }
            char *uid_end;
            if (nf < 6 || !*field[2])
                continue;
            long uid = strtol(field[2], &uid_end, 10);
            if (*uid_end || uid != (plan.uid < 0 ? 0 : plan.uid))
                continue;
            snprintf(home, sizeof(home), "HOME=%s", field[5]);
            break;
        }
        free(buf);
    }
    if (fd >= 0)
        close(fd);
    if (slot < 0) {
        if (plan.envc >= MAX_ITEMS)
            fail(1, "exec stage: too many env entries");
        slot = plan.envc++;
        plan.envp[plan.envc] = NULL;
    }
    plan.envp[slot] = home;
}

/* runc's fixStdioPermissions, for a terminal: the pty the program gets as its stdio
 * becomes its user's (the gid stays).  Pipes and files are left alone: they are the
 * caller's, often host files.  Errors a user namespace or a read-only /dev give are
 * skipped, as runc does. */
static void chown_terminal(void)
{
    struct stat null_st, st;
    int have_null = stat("/dev/null", &null_st) == 0;
    if (plan.uid < 0)
        return;
    for (int fd = 0; fd < 3; fd++) {
        if (fstat(fd, &st) < 0 || !isatty(fd) || st.st_uid == (uid_t)plan.uid ||
            (have_null && st.st_rdev == null_st.st_rdev))
            continue;
        if (fchown(fd, (uid_t)plan.uid, (gid_t)-1) < 0 && errno != EINVAL && errno != EPERM &&
            errno != EROFS)
            fail(1, "chown of the terminal to uid %ld: %s", plan.uid, strerror(errno));
    }
}

static int is_runnable(const char *path, int *err)
{
    struct stat st;
    if (stat(path, &st) < 0) {
        *err = errno;
        return 0;
    }
    if (S_ISDIR(st.st_mode)) {
        *err = EACCES;
        return 0;
    }
    if (access(path, X_OK) < 0) {
        *err = errno;
        return 0;
    }
    return 1;
}

/* strerror() as Go spells errors, in lower case ("no such file or directory"): docker
 * matches runc's words case-sensitively to exit with 127 instead of 125. */
static const char *go_strerror(int err)
{
    static char buf[128];
    snprintf(buf, sizeof(buf), "%s", strerror(err));
    if (buf[0] >= 'A' && buf[0] <= 'Z')
        buf[0] = (char)(buf[0] - 'A' + 'a');
    return buf;
}

/* execvp's lookup, done before "ready" so that create reports a missing program the way
 * runc does, with the words engines map to exit codes 127 and 126. */
static char *resolve_program(void)
{
    static char found[4096];
    const char *name = plan.argv[0];
    int err = ENOENT, saw_eacces = 0;
    if (!name || !*name)
        fail(1, "process.args is empty");
    if (strchr(name, '/')) {
        if (is_runnable(name, &err))
            return (char *)name;
        if (err == EACCES)
            fail(1, "exec: \"%s\": permission denied", name);
        fail(1, "exec: \"%s\": %s", name, go_strerror(err));
    }
    const char *p = env_path();
    /* an empty PATH has no entry at all; an empty entry in one is "." */
    for (int more = *p != 0; more; ) {
        const char *end = strchrnul(p, ':');
        size_t dlen = end - p;
        if (dlen == 0)
            snprintf(found, sizeof(found), "%s", name);
        else
            snprintf(found, sizeof(found), "%.*s/%s", (int)dlen, p, name);
        if (is_runnable(found, &err))
            return found;
        if (err == EACCES)
            saw_eacces = 1;
        more = *end != 0;
        p = end + 1;
    }
    if (saw_eacces)
        fail(1, "exec: \"%s\": permission denied", name);
    fail(1, "exec: \"%s\": executable file not found in $PATH", name);
}

static void die_on_signal(int sig) { _exit(128 + sig); }

/* As pid 1 of its namespace the parked stage would ignore every signal it has no handler
 * for, so `kill ID TERM` on a created container would do nothing.  Like runc's parked
 * init, let the default-fatal signals end it.  execve resets these handlers. */
static void fatal_signals_while_parked(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = die_on_signal;
    for (int sig = 1; sig < SIGRTMIN; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP || sig == SIGCHLD || sig == SIGWINCH ||
            sig == SIGURG || sig == SIGCONT || sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU)
            continue;
        sigaction(sig, &sa, NULL);
    }
}

static long monotonic_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec * 1000L + now.tv_nsec / 1000000;
}

/* Write the state to the hook's stdin, no longer than its timeout (seconds, 0: none): a
 * hook need not read it, and a state larger than the pipe must not hold the timeout off.
 * Returns the milliseconds spent. */
static long feed_hook(int fd, const char *data, long timeout)
{
    long start = monotonic_ms();
    size_t left = data ? strlen(data) : 0;
    fcntl(fd, F_SETFL, O_NONBLOCK);
    while (left) {
        ssize_t n = write(fd, data, left);
        if (n > 0) {
            data += n;
            left -= (size_t)n;
            continue;
        }
        if (n < 0 && errno != EAGAIN && errno != EINTR)
            break; /* EPIPE: the hook is gone or closed its stdin */
        long spent = monotonic_ms() - start;
        if (timeout > 0 && spent >= timeout * 1000)
            break;
        long wait_ms = timeout > 0 ? timeout * 1000 - spent : -1;
        struct pollfd p = {fd, POLLOUT, 0};
        /* POLLOUT once there is room, POLLERR once the reader is gone; a filter that
         * refuses poll: the blocking write, as before */
        if (poll(&p, 1, wait_ms > INT_MAX ? INT_MAX : (int)wait_ms) < 0 && errno != EINTR)
            fcntl(fd, F_SETFL, 0);
    }
    return monotonic_ms() - start;
}

/* Run one startContainer hook with the state JSON on its stdin; 0 or an error text. */
static const char *run_hook(struct hook *h, char *err, size_t errlen)
{
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) < 0)
        return strerror(errno);
    pid_t pid = fork();
    if (pid < 0)
        return strerror(errno);
    if (pid == 0) {
        dup2(pipefd[0], 0);
        char *default_argv[] = {(char *)h->path, NULL};
        h->argv[h->argc] = NULL;
        h->envp[h->envc] = NULL;
        execve(h->path, h->argc ? h->argv : default_argv, h->inherit ? plan.envp : h->envp);
        dprintf(2, "pyrunc: hook %s: %s\n", h->path, strerror(errno));
        _exit(127);
    }
    close(pipefd[0]);
    signal(SIGPIPE, SIG_IGN);
    long waited_ms = feed_hook(pipefd[1], plan.hook_state, h->timeout);
    close(pipefd[1]);
    signal(SIGPIPE, SIG_DFL);
    int status;
    struct timespec tick = {0, 1000000};
    for (;; waited_ms++) {
        pid_t r = waitpid(pid, &status, h->timeout > 0 ? WNOHANG : 0);
        if (r == pid)
            break;
        if (r < 0 && errno != EINTR)
            return strerror(errno);
        if (h->timeout > 0 && waited_ms >= h->timeout * 1000) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            snprintf(err, errlen, "timed out after %lds", h->timeout);
            return err;
        }
        if (r == 0)
            nanosleep(&tick, NULL);
    }
    if (WIFSIGNALED(status)) {
        snprintf(err, errlen, "killed by signal %d", WTERMSIG(status));
        return err;
    }
    if (WEXITSTATUS(status)) {
        snprintf(err, errlen, "exit status %d", WEXITSTATUS(status));
        return err;
    }
    return NULL;
}

/* exec.fifo's write end after "0": kept open (O_CLOEXEC) until execve, so that `start`,
 * which reads to EOF, runs the poststart hooks only once the program has been executed */
static int fifo_keep = -1;

/* wait_for_start opens exec.fifo after "ready", under the container's RLIMIT_NOFILE: make
 * sure now, while create can still fail, that an fd can be had (runc's create fails too).
 * F_DUPFD takes the lowest free fd below the limit, as open does.  Only EMFILE and EINVAL
 * (no fd below the limit) count: a seccomp profile may refuse fcntl itself. */
static void check_fd_room(void)
{
    int probe = fcntl(plan.fifo_fd, F_DUPFD_CLOEXEC, 0);
    if (probe >= 0)
        close(probe);
    else if (errno == EMFILE || errno == EINVAL)
        fail(1, "process.rlimits: RLIMIT_NOFILE leaves no file descriptor free to wait for "
                "start with: %s", strerror(EMFILE));
}

/* Park until `pyrunc start` opens the fifo for reading, run the startContainer hooks, and
 * tell `start` how that went. */
static void wait_for_start(void)
{
    char msg[1024], err[256];
    fatal_signals_while_parked();
    int fd;
    /* reopen our O_PATH handle of exec.fifo: the parked stage then holds no host
     * directory that a ptrace-capable process in the container could climb out of */
    char path[64];
    if (plan.fifo_proc_fd >= 0) {
        snprintf(path, sizeof(path), "self/fd/%d", plan.fifo_fd);
        fd = openat(plan.fifo_proc_fd, path, O_WRONLY | O_CLOEXEC);
    } else {
        snprintf(path, sizeof(path), "/proc/self/fd/%d", plan.fifo_fd);
        fd = open(path, O_WRONLY | O_CLOEXEC);
    }
    if (fd < 0)
        fail(1, "open exec.fifo: %s", strerror(errno));
    /* the handles go before any hook runs: a hook sees no fd of ours (fd is O_CLOEXEC) */
    if (plan.fifo_proc_fd >= 0)
        close(plan.fifo_proc_fd);
    if (plan.fifo_fd >= 0)
        close(plan.fifo_fd);
    plan.fifo_proc_fd = plan.fifo_fd = -1;
    /* the parked handlers stay: execve resets them, and nothing between here and execve
     * should lengthen the time from `start` to the program */
    for (int i = 0; i < plan.nhooks; i++) {
        const char *why = run_hook(&plan.hooks[i], err, sizeof(err));
        if (why) {
            int n = snprintf(msg, sizeof(msg), "1hooks.startContainer[%d]: %s: %s", i,
                             plan.hooks[i].path, why);
            if (n >= (int)sizeof(msg)) { /* a long hook path: cut, never read past msg */
                utf8_trim(msg, sizeof(msg));
                n = (int)strlen(msg);
            }
            if (write(fd, msg, n) < 0) {
                /* start is gone; nothing to tell */
            }
            _exit(1);
        }
    }
    if (write(fd, "0", 1) != 1)
        fail(1, "write exec.fifo: %s", strerror(errno));
    fifo_keep = fd;
}

/* One message with an fd attached (SCM_RIGHTS) on the sync socket. */
static void send_fd(const char *body, int fd, const char *what)
{
    struct iovec iov = {(void *)body, strlen(body)};
    char cbuf[CMSG_SPACE(sizeof(int))];
    memset(cbuf, 0, sizeof(cbuf));
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
                        .msg_controllen = sizeof(cbuf)};
    struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &fd, sizeof(int));
    if (sendmsg(plan.sync_fd, &mh, 0) < 0)
        fail(1, "sending the %s: %s", what, strerror(errno));
}

/* The filter, read from its memfd first so that the fds can be closed before it is
 * installed (a profile may deny close_range, as runtime-tools' default one does). */
static struct sock_fprog seccomp_prog;

static void read_seccomp(void)
{
    struct stat st;
    if (fstat(plan.seccomp_fd, &st) < 0)
        fail(1, "seccomp program: %s", strerror(errno));
    struct sock_filter *insns = malloc(st.st_size ? st.st_size : 1);
    if (!insns || pread(plan.seccomp_fd, insns, st.st_size, 0) != st.st_size)
        fail(1, "reading seccomp program: %s", strerror(errno));
    seccomp_prog.len = (unsigned short)(st.st_size / sizeof(*insns));
    seccomp_prog.filter = insns;
    close(plan.seccomp_fd);
    plan.seccomp_fd = -1;
}

static void load_seccomp(void)
{
    long listener = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, plan.seccomp_flags,
                            &seccomp_prog);
    if (listener < 0)
        fail(1, "loading seccomp filter: %s", strerror(errno));
    if (plan.seccomp_flags & SECCOMP_FILTER_FLAG_NEW_LISTENER) {
        send_fd("{\"type\":\"seccomp\"}", (int)listener, "seccomp listener fd");
        close((int)listener);
    }
    free(seccomp_prog.filter);
    seccomp_prog.filter = NULL;
}

/* Close every fd from 3 + preserve on except those in keep (-1 entries ignored).  The
 * intermediate already marked them all close-on-exec: this is the second wall, and it runs
 * before the seccomp filter is installed (a profile may deny close_range, as runtime-tools'
 * default one does). */
static void close_fds_except(int *keep, int nkeep)
{
    unsigned int next = 3 + plan.preserve;
    for (;;) {
        int stop = -1; /* the lowest kept fd at or above next */
        for (int i = 0; i < nkeep; i++)
            if (keep[i] >= (int)next && (stop < 0 || keep[i] < stop))
                stop = keep[i];
        if (stop < 0) {
            syscall(SYS_close_range, next, ~0U, 0);
            return;
        }
        if (stop > (int)next)
            syscall(SYS_close_range, next, stop - 1, 0);
        next = stop + 1;
    }
}

/* `pyrunc exec`: enter the container's cgroups and namespaces, then fork so that the pid
 * and time namespaces apply to the process that will run the program. */
static void join_container(void)
{
    for (int i = 0; i < plan.ncgroups; i++) {
        if (write(plan.cgroup_fds[i], "0", 1) != 1)
            fail(1, "joining the container's cgroup: %s", strerror(errno));
        close(plan.cgroup_fds[i]);
    }
    for (int i = 0; i < plan.nns; i++) {
        if (setns(plan.ns_fds[i], plan.ns_flags[i]) < 0)
            fail(1, "joining the container's namespace (%#x): %s", plan.ns_flags[i],
                 strerror(errno));
        close(plan.ns_fds[i]);
    }
    if (!plan.fork_after_join)
        return;
    /* the child waits (stopped) until its pid is sent: the parent of `create` takes the
     * last "pid" before "ready" as the container's.  No fd for this: a process in the
     * joined pid namespace can look at both of them. */
    pid_t pid = fork();
    if (pid < 0)
        fail(1, "fork: %s", strerror(errno));
    if (pid > 0) {
        int status;
        while (waitpid(pid, &status, WUNTRACED) < 0 && errno == EINTR)
            ;
        char msg[64];
        int n = snprintf(msg, sizeof(msg), "{\"type\":\"pid\",\"pid\":%d}", pid);
        if (write(plan.sync_fd, msg, n) < 0) {
            /* the parent is gone: the child will fail to report too */
        }
        kill(pid, SIGCONT);
        _exit(0);
    }
    raise(SIGSTOP);
}

/* Make this process's root and cwd an empty, read-only tmpfs mount that is attached
 * nowhere: through /proc/PID/root a process in the joined pid namespace then finds
 * nothing, and ".." from the root of a mount without a parent stays where it is. */
static void leave_host_root(void)
{
    int fs = (int)syscall(SYS_fsopen, "tmpfs", FSOPEN_CLOEXEC_);
    if (fs < 0)
        fail(1, "procfs helper: fsopen tmpfs: %s", strerror(errno));
    if (syscall(SYS_fsconfig, fs, FSCONFIG_CMD_CREATE_, NULL, NULL, 0) < 0)
        fail(1, "procfs helper: creating a tmpfs: %s", strerror(errno));
    int mnt = (int)syscall(SYS_fsmount, fs, FSMOUNT_CLOEXEC_, MOUNT_ATTR_RONOEXEC_);
    if (mnt < 0)
        fail(1, "procfs helper: fsmount tmpfs: %s", strerror(errno));
    close(fs);
    if (fchdir(mnt) < 0 || chroot(".") < 0)
        fail(1, "procfs helper: entering an empty root: %s", strerror(errno));
    close(mnt);
}

/* procfs=1: a procfs belongs to the pid namespace of the process that calls
 * fsopen("proc") (before Linux 6.18 there is no other way to choose it).  The Python
 * init must stay out of a pid namespace the container joins (a process there with
 * CAP_SYS_PTRACE could reach the host's interpreter and root through /proc), so this
 * stage, run from its sealed memfd, does it: keeping no fd but the sync socket and the
 * namespace, and no host root, it joins the namespace, forks, and the child sends the
 * context it opened there.  Never returns. */
static void __attribute__((noreturn)) procfs_context(void)
{
    if (plan.nns != 1 || plan.ns_flags[0] != CLONE_NEWPID || plan.sync_fd < 0)
        fail(1, "exec stage: procfs=1 needs sync= and one pid namespace in ns=");
    int keep[] = {plan.sync_fd, plan.ns_fds[0]};
    for (int fd = 0; fd < 3; fd++)
        if (fd != keep[0] && fd != keep[1])
            close(fd);
    plan.preserve = 0;
    close_fds_except(keep, 2);
    leave_host_root();
    if (setns(plan.ns_fds[0], CLONE_NEWPID) < 0)
        fail(1, "joining the pid namespace: %s", strerror(errno));
    close(plan.ns_fds[0]);
    pid_t pid = fork();
    if (pid < 0)
        fail(1, "fork: %s", strerror(errno));
    if (pid == 0) {
        int fs = (int)syscall(SYS_fsopen, "proc", FSOPEN_CLOEXEC_);
        if (fs < 0)
            fail(1, "fsopen proc in the joined pid namespace: %s", strerror(errno));
        send_fd("{\"type\":\"procfs\"}", fs, "procfs context");
        _exit(0);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            _exit(1);
    _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 1);
}

/* A pty from the container's own devpts for `exec -t`: the master goes to the parent. */
static void make_terminal(void)
{
    int master = open("/dev/pts/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master < 0)
        fail(1, "opening /dev/pts/ptmx in the container: %s", strerror(errno));
    int unlock = 0;
    if (ioctl(master, TIOCSPTLCK, &unlock) < 0)
        fail(1, "unlocking the pty: %s", strerror(errno));
    int peer = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY);
    if (peer < 0)
        fail(1, "opening the pty peer: %s", strerror(errno));
    if (plan.rows || plan.cols) {
        struct winsize ws = {plan.rows, plan.cols, 0, 0};
        ioctl(master, TIOCSWINSZ, &ws);
    }
    send_fd("{\"type\":\"console\"}", master, "pty master");
    close(master);
    if (setsid() < 0)
        fail(1, "setsid: %s", strerror(errno));
    if (ioctl(peer, TIOCSCTTY, 0) < 0)
        fail(1, "making the pty the controlling terminal: %s", strerror(errno));
    for (int fd = 0; fd < 3; fd++)
        dup2(peer, fd);
    if (peer > 2)
        close(peer);
}

int main(int argc, char **argv)
{
    size_t len;
    plan.sync_fd = plan.fifo_proc_fd = plan.fifo_fd = plan.seccomp_fd = -1;
    plan.uid = plan.gid = plan.umask_value = -1;
    if (argc < 2)
        fail(1, "exec stage: usage: %s PLAN_FD", argv[0]);
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    reset_signals();
    char *buf = read_plan((int)parse_long("plan fd", argv[1]), &len);
    parse_plan(buf, len);
    if (plan.procfs)
        procfs_context();

    if (plan.argc == 0) {
        /* a config without `process`: park until killed; `start` refuses to start it */
        send_msg("ready", NULL);
        close(plan.sync_fd);
        fatal_signals_while_parked();
        for (;;)
            pause();
    }
    if (plan.nns || plan.ncgroups || plan.fork_after_join)
        join_container();
    if (plan.ncpus && sched_setaffinity(0, sizeof(plan.cpus), &plan.cpus) < 0)
        fail(1, "execCPUAffinity.final: sched_setaffinity: %s", strerror(errno));
    if (plan.tty)
        make_terminal();
    apply_rlimits();
    chown_terminal();
    set_home();
    enter_cwd();
    int seccomp_late = 0, fds_closed = 0;
    if (plan.seccomp_fd >= 0) {
        read_seccomp();
        if (!plan.nnp || (plan.seccomp_flags & SECCOMP_FILTER_FLAG_NEW_LISTENER)) {
            /* loaded while still privileged (runc's order), and able to hand over a
             * listener fd: what the stage still needs stays open */
            int keep[] = {plan.sync_fd, plan.fifo_fd, plan.fifo_proc_fd};
            close_fds_except(keep, 3);
            fds_closed = 1; /* wait_for_start closes the fifo handles, execve exec.fifo */
            load_seccomp();
        } else {
            seccomp_late = 1;
        }
    }
    change_identity();
    if (plan.umask_value >= 0)
        umask((mode_t)plan.umask_value);
    if (plan.nnp && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        fail(1, "PR_SET_NO_NEW_PRIVS: %s", strerror(errno));
    char *program = resolve_program();
    if (plan.fifo_fd >= 0)
        check_fd_room();

    send_msg("ready", NULL);
    close(plan.sync_fd);
    plan.sync_fd = -1;

    if (seccomp_late && plan.nhooks) {
        /* runc runs the startContainer hooks under the container's filter: load it now */
        int keep[] = {plan.fifo_fd, plan.fifo_proc_fd};
        close_fds_except(keep, 2);
        fds_closed = 1;
        load_seccomp();
        seccomp_late = 0;
    }
    if (plan.fifo_fd >= 0)
        wait_for_start();
    /* all but exec.fifo, which execve closes (runtime-tools validation/poststart) */
    if (!fds_closed)
        close_fds_except(&fifo_keep, 1);
    if (seccomp_late)
        load_seccomp();
    execve(program, plan.argv, plan.envp);
    if (errno == EACCES)
        fail(126, "exec: \"%s\": permission denied", plan.argv[0]);
    fail(127, "exec: \"%s\": %s", plan.argv[0], go_strerror(errno));
}
