/*
 * shim_front.c: containerd-shim-pyrunc-v2, the binary containerd runs for a shim's
 * `start` and `delete`, once each per container, the client's end of the starter
 * protocol (shim/starter.py).
 *
 * A Python interpreter costs those two calls ~12 ms of CPU each; a warm Python process per
 * (containerd address, namespace), the starter, does their work instead, and this front
 * only relays: for `start` and `delete`, with flags parsed as shim.cli.Flags parses them,
 * it sends its cwd, argv[1:] and environment to the starter's socket,
 *     /run/containerd/s/<sha256_hex(ADDRESS "/" NAMESPACE "/pyrunc-starter")>
 * and acts on the one reply: b"0" + BYTES (BYTES to stdout, exit 0), b"1" + TEXT (TEXT to
 * stderr, exit 1).  Everything else (-v, serve, a flag it does not know or that Flags
 * would refuse, an address or namespace whose key is not that string, no starter, a
 * starter of another user, b"F", no or a bad reply, 60 s without one) execs the Python
 * shim, containerd-shim-pyrunc-v2-py beside this binary's real path, with the same
 * arguments: it does all of that itself, as it did before there was a front.
 *
 * No allocation: fixed buffers, bounds checked; every fd CLOEXEC; EINTR retried.  Its own
 * failure with no fallback left (no Python shim to exec, the reply not written) is one
 * line on stderr and exit 1.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "sha256.c"

#define PROG "containerd-shim-pyrunc-v2"
#define PYTHON_SHIM PROG "-py"
#define STARTER_DIR "/run/containerd/s/"
#define STARTER_KEY_SUFFIX "/pyrunc-starter"
#define MAGIC "pyrunc-starter/1"
#define REQUEST_MAX (1 << 20)
#define REPLY_MAX (64 << 10)
#define TIMEOUT_MS 60000

extern char **environ;

static char request[REQUEST_MAX];
static char reply[REPLY_MAX + 1]; /* + the "\n" after a failure's text */
static char drain[16 << 10];

/* shim.cli.Flags' names */
static const char *const string_flags[] = {
    "namespace", "address", "publish-binary", "id", "bundle", "socket", "state-root",
    "idle-timeout", "warm-worker", NULL,
};
static const char *const bool_flags[] = {"debug", "v", "version", NULL};

struct flags {
    const char *namespace, *address, *action;
    int version;
};

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* One line on stderr, written at once. */
static void say(const char *fmt, ...)
{
    char line[PATH_MAX + 256];
    va_list ap;
    int n;
    size_t done = 0;

    va_start(ap, fmt);
    n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n > sizeof(line) - 2)
        n = (int)sizeof(line) - 2;
    line[n++] = '\n';
    while (done < (size_t)n) {
        ssize_t w = write(2, line + done, (size_t)n - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        done += (size_t)w;
    }
}

/* The Python shim, with our argv (its argv[0] its own path): never returns. */
static void __attribute__((noreturn)) exec_python(int argc, char **argv)
{
    static const char name[] = PYTHON_SHIM;
    char path[PATH_MAX];
    char *no_args[2] = {NULL, NULL};
    ssize_t n = readlink("/proc/self/exe", path, sizeof(path));
    char *slash;

    if (n < 0) {
        say(PROG ": cannot find the Python shim: /proc/self/exe: %s", strerror(errno));
        exit(1);
    }
    if ((size_t)n >= sizeof(path)) {
        say(PROG ": cannot find the Python shim: /proc/self/exe: name too long");
        exit(1);
    }
    path[n] = '\0';
    slash = strrchr(path, '/');
    if (slash == NULL || (size_t)(slash + 1 - path) + sizeof(name) > sizeof(path)) {
        say(PROG ": cannot find the Python shim beside %s", path);
        exit(1);
    }
    memcpy(slash + 1, name, sizeof(name));
    if (argc < 1) /* an execve with no argv[0] */
        argv = no_args;
    argv[0] = path;
    execve(path, argv, environ);
    say(PROG ": cannot run %s: %s", path, strerror(errno));
    exit(1);
}

static int is_one_of(const char *const *names, const char *name, size_t len)
{
    for (; *names; names++)
        if (strlen(*names) == len && memcmp(*names, name, len) == 0)
            return 1;
    return 0;
}

/* shim.cli.Flags: 1 and f filled where it parses argv, 0 where it raises (the Python
 * shim then says why).  Only what the front needs is kept; the starter parses again. */
static int parse_flags(int argc, char **argv, struct flags *f)
{
    int i;

    f->namespace = f->address = f->action = "";
    f->version = 0;
    for (i = 1; i < argc; i++) {
        const char *arg = argv[i], *name, *eq, *value;
        size_t len;

        if (arg[0] != '-' || strcmp(arg, "-") == 0 || strcmp(arg, "--") == 0) {
            if (strcmp(arg, "--") == 0)
                arg = i + 1 < argc ? argv[i + 1] : "";
            f->action = arg;
            return 1;
        }
        for (name = arg; *name == '-'; name++)
            ;
        eq = strchr(name, '=');
        len = eq ? (size_t)(eq - name) : strlen(name);
        value = eq ? eq + 1 : NULL;
        if (is_one_of(bool_flags, name, len)) {
            /* value.lower() in ("1", "t", "true"): only ASCII lowers into those */
            if (value == NULL || strcmp(value, "1") == 0 || strcasecmp(value, "t") == 0
                    || strcasecmp(value, "true") == 0)
                if (name[0] == 'v')
                    f->version = 1;
        } else if (is_one_of(string_flags, name, len)) {
            if (value == NULL) {
                if (i + 1 >= argc)
                    return 0;
                value = argv[++i];
            }
            if (len == 9 && memcmp(name, "namespace", 9) == 0)
                f->namespace = value;
            else if (len == 7 && memcmp(name, "address", 7) == 0)
                f->address = value;
        } else {
            return 0;
        }
    }
    return 1;
}

/* Whether s is strict UTF-8 (Python's decoder: no overlong form, surrogate, or code
 * point past U+10FFFF), so that Python's str of it encodes back to the same bytes. */
static int is_utf8(const unsigned char *s)
{
    while (*s) {
        unsigned char c = *s++, lo = 0x80, hi = 0xbf;
        int more;

        if (c < 0x80)
            continue;
        if (c >= 0xc2 && c <= 0xdf)
            more = 1;
        else if (c >= 0xe0 && c <= 0xef) {
            more = 2;
            if (c == 0xe0)
                lo = 0xa0;
            else if (c == 0xed)
                hi = 0x9f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            more = 3;
            if (c == 0xf0)
                lo = 0x90;
            else if (c == 0xf4)
                hi = 0x8f;
        } else {
            return 0;
        }
        if (*s < lo || *s > hi)
            return 0;
        for (s++, more--; more > 0; s++, more--)
            if (*s < 0x80 || *s > 0xbf)
                return 0;
    }
    return 1;
}

/* The starter's socket path, 1 when ADDRESS "/" NAMESPACE "/pyrunc-starter" is the key
 * Python's paths.join(address, namespace, "pyrunc-starter") makes, 0 when not. */
static int starter_path(const struct flags *f, struct sockaddr_un *sa)
{
    char key[PATH_MAX * 2];
    char hex[65];
    size_t alen = strlen(f->address), nlen = strlen(f->namespace);
    size_t klen = alen + 1 + nlen + sizeof(STARTER_KEY_SUFFIX) - 1;

    if (alen == 0 || f->address[alen - 1] == '/' || nlen == 0
            || strchr(f->namespace, '/') != NULL || klen >= sizeof(key)
            || !is_utf8((const unsigned char *)f->address)
            || !is_utf8((const unsigned char *)f->namespace))
        return 0;
    memcpy(key, f->address, alen);
    key[alen] = '/';
    memcpy(key + alen + 1, f->namespace, nlen);
    memcpy(key + alen + 1 + nlen, STARTER_KEY_SUFFIX, sizeof(STARTER_KEY_SUFFIX) - 1);
    sha256_hex_digest((const unsigned char *)key, klen, hex);
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    memcpy(sa->sun_path, STARTER_DIR, sizeof(STARTER_DIR) - 1);
    memcpy(sa->sun_path + sizeof(STARTER_DIR) - 1, hex, sizeof(hex)); /* fits: 83 < 108 */
    return 1;
}

/* Append s and its NUL to request at *len: 0 when it does not fit. */
static int put(size_t *len, const char *s)
{
    size_t n = strlen(s) + 1;

    if (n > REQUEST_MAX - *len)
        return 0;
    memcpy(request + *len, s, n);
    *len += n;
    return 1;
}

static int put_count(size_t *len, unsigned long count)
{
    char digits[24];

    snprintf(digits, sizeof(digits), "%lu", count);
    return put(len, digits);
}

/* The request (PROTOCOL.md): its length, or 0 when it cannot be made (then the Python
 * shim does the work, and finds what failed itself). */
static size_t make_request(int argc, char **argv)
{
    char cwd[PATH_MAX];
    size_t len = 0;
    unsigned long m = 0;
    char **e;
    int i;

    if (getcwd(cwd, sizeof(cwd)) == NULL)
        return 0;
    for (e = environ; *e; e++)
        m++;
    if (!put(&len, MAGIC) || !put(&len, cwd) || !put_count(&len, (unsigned long)(argc - 1)))
        return 0;
    for (i = 1; i < argc; i++)
        if (!put(&len, argv[i]))
            return 0;
    if (!put_count(&len, m))
        return 0;
    for (e = environ; *e; e++)
        if (!put(&len, *e))
            return 0;
    return len;
}

static long long now_ms(void)
{
    struct timespec ts;

    if (clock_gettime(CLOCK_MONOTONIC, &ts) < 0)
        return -1;
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Connect to the starter, send the request, wait for its reply: the reply's length, or
 * -1 for the Python shim to do the work (no starter, not ours, a failure, a timeout). */
static ssize_t ask_starter(const struct sockaddr_un *sa, size_t len)
{
    struct timeval connect_timeout = {TIMEOUT_MS / 1000, 0};
    struct ucred peer;
    socklen_t peer_len = sizeof(peer);
    struct pollfd pfd;
    long long deadline = now_ms(), left;
    ssize_t n = -1;
    int fd, rc;

    if (deadline < 0)
        return -1;
    deadline += TIMEOUT_MS;
    fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    /* a starter whose backlog is full: connect waits, as long as the whole exchange may */
    if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &connect_timeout,
                   sizeof(connect_timeout)) < 0)
        goto out;
    do
        rc = connect(fd, (const struct sockaddr *)sa, sizeof(*sa));
    while (rc < 0 && errno == EINTR);
    if (rc < 0 && errno != EISCONN)
        goto out;
    /* the environment goes only to a starter of our own user (root's, from containerd) */
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &peer_len) < 0
            || peer_len != sizeof(peer) || peer.uid != geteuid())
        goto out;
    if (len > (100 << 10)) {
        /* past the default send buffer (net.core.wmem_default): root (containerd's shims)
         * may pass net.core.wmem_max, anyone else up to it (then a send too large fails,
         * and the Python shim does the work) */
        int size = (int)len + (64 << 10);
        if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof(size)) < 0
                && setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size)) < 0)
            goto out;
    }
    /* one message into a fresh connection's empty queue: never waits */
    do
        n = send(fd, request, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    if (n < 0 || (size_t)n != len) {
        n = -1;
        goto out;
    }
    n = -1;
    pfd.fd = fd;
    pfd.events = POLLIN;
    for (;;) {
        left = now_ms();
        if (left < 0)
            goto out;
        left = deadline - left;
        if (left <= 0)
            goto out;
        rc = poll(&pfd, 1, (int)left);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc <= 0)
            goto out;
        break;
    }
    do
        n = recv(fd, reply, REPLY_MAX, MSG_TRUNC | MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    if (n > REPLY_MAX)
        n = -1;
out:
    close(fd);
    return n;
}

/* Write all of buf to fd: 0, or -1 with errno. */
static int write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t w = write(fd, buf, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        buf += w;
        len -= (size_t)w;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct flags f;
    struct sockaddr_un sa;
    size_t len;
    ssize_t n, r;

    if (!parse_flags(argc, argv, &f) || f.version
            || (strcmp(f.action, "start") != 0 && strcmp(f.action, "delete") != 0)
            || !starter_path(&f, &sa))
        exec_python(argc, argv);
    if (f.action[0] == 's') {
        /* the runtime options (unused); the Python shim, if it runs, finds EOF */
        do
            r = read(0, drain, sizeof(drain));
        while (r > 0 || (r < 0 && errno == EINTR));
    }
    len = make_request(argc, argv);
    if (len == 0)
        exec_python(argc, argv);
    n = ask_starter(&sa, len);
    if (n < 1 || (reply[0] != '0' && reply[0] != '1'))
        exec_python(argc, argv);
    if (reply[0] == '0') {
        if (write_all(1, reply + 1, (size_t)n - 1) < 0) {
            say(PROG ": %s: cannot write the reply: %s", f.action, strerror(errno));
            return 1;
        }
        return 0;
    }
    reply[n] = '\n';
    write_all(2, reply + 1, (size_t)n); /* nowhere to report a failure to */
    return 1;
}
