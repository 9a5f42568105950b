/*
 * sigsock.c: the signals and unix sockets pyrunc needs, without CPython's private
 * _signal and _socket modules and without cffi; part of ociruntime._native._sys
 * (included by sysmodule.c, whose SIGSOCK_METHODS and add_sigsock_constants it defines).
 *
 * The public `signal` and `socket` modules import enum, functools, collections and
 * selectors (~5-9 ms of CPU on every call that needs them); kill and `shim start` load
 * this module instead (~0.2 ms).  Like helper.c it holds no policy: each function is
 * one system call (or a few that belong together) and raises OSError.
 * No '#' formats (PyArg_ParseTuple, Py_BuildValue): built with 3.13's headers, the abi3
 * module calls the functions that 3.12 and older refuse them in (SystemError
 * "PY_SSIZE_T_CLEAN macro must be defined"), whatever PY_SSIZE_T_CLEAN says.
 */
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif

/* ---- signals ------------------------------------------------------------------------ */

/* the pidfd forward_signals() sends to; read by the handler, so set before it is armed */
static volatile int forward_pidfd = -1;

static void forward(int sig)
{
    int saved = errno;
    /* a raw system call: async-signal-safe; ESRCH once the process is gone and reaped
     * (never another process that got its pid: that is what the pidfd is for) */
    syscall(SYS_pidfd_send_signal, forward_pidfd, sig, NULL, 0);
    errno = saved;
}

static PyObject *py_pidfd_send_signal(PyObject *self, PyObject *args)
{
    int pidfd, sig;
    if (!PyArg_ParseTuple(args, "ii:pidfd_send_signal", &pidfd, &sig))
        return NULL;
    if (syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0) < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    RETURN_NONE;
}

/* forward_signals(pidfd, signals): from now on each of these signals that reaches this
 * process is sent on to pidfd's process, from a C handler (SA_RESTART: a waitpid or read
 * in progress goes on).  Nothing is blocked, so whatever this process starts later (a
 * hook) inherits no signal mask, and execve resets the handled signals to their default.
 * The pidfd is kept (and used) for the life of the process. */
static PyObject *py_forward_signals(PyObject *self, PyObject *args)
{
    int pidfd;
    PyObject *signals, *iter, *item;
    struct sigaction sa;
    if (!PyArg_ParseTuple(args, "iO:forward_signals", &pidfd, &signals))
        return NULL;
    forward_pidfd = pidfd;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = forward;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    iter = PyObject_GetIter(signals);
    if (iter == NULL)
        return NULL;
    while ((item = PyIter_Next(iter)) != NULL) {
        long sig = PyLong_AsLong(item);
        Py_DECREF(item);
        if (sig == -1 && PyErr_Occurred())
            break;
        if (sig <= 0 || sig >= NSIG || sigaction((int)sig, &sa, NULL) < 0) {
            if (sig <= 0 || sig >= NSIG)
                errno = EINVAL;
            PyErr_SetFromErrno(PyExc_OSError);
            break;
        }
    }
    Py_DECREF(iter);
    if (PyErr_Occurred())
        return NULL;
    RETURN_NONE;
}

/* The names runc 1.1 takes (golang.org/x/sys/unix's table: the kernel's, one a number,
 * none for the real-time signals: not libc's second names IOT, CLD, POLL, nor RTMIN and
 * RTMAX), with this platform's numbers: runc's table is per architecture too (mips,
 * sparc, alpha and parisc number them differently). */
static int add_signals(PyObject *module)
{
    static const struct { const char *name; int num; } table[] = {
        {"SIGHUP", SIGHUP}, {"SIGINT", SIGINT}, {"SIGQUIT", SIGQUIT}, {"SIGILL", SIGILL},
        {"SIGTRAP", SIGTRAP}, {"SIGABRT", SIGABRT}, {"SIGBUS", SIGBUS},
        {"SIGFPE", SIGFPE}, {"SIGKILL", SIGKILL}, {"SIGUSR1", SIGUSR1},
        {"SIGSEGV", SIGSEGV}, {"SIGUSR2", SIGUSR2}, {"SIGPIPE", SIGPIPE},
        {"SIGALRM", SIGALRM}, {"SIGTERM", SIGTERM}, {"SIGCHLD", SIGCHLD},
        {"SIGCONT", SIGCONT}, {"SIGSTOP", SIGSTOP}, {"SIGTSTP", SIGTSTP},
        {"SIGTTIN", SIGTTIN}, {"SIGTTOU", SIGTTOU}, {"SIGURG", SIGURG},
        {"SIGXCPU", SIGXCPU}, {"SIGXFSZ", SIGXFSZ}, {"SIGVTALRM", SIGVTALRM},
        {"SIGPROF", SIGPROF}, {"SIGWINCH", SIGWINCH}, {"SIGIO", SIGIO},
        {"SIGSYS", SIGSYS},
#ifdef SIGPWR
        {"SIGPWR", SIGPWR},
#endif
#ifdef SIGSTKFLT
        {"SIGSTKFLT", SIGSTKFLT},
#endif
#ifdef SIGEMT
        {"SIGEMT", SIGEMT},
#endif
#ifdef SIGINFO
        {"SIGINFO", SIGINFO},
#endif
    };
    PyObject *names = PyDict_New(), *num;
    int rc = 0;
    if (names == NULL)
        return -1;
    for (size_t i = 0; rc == 0 && i < sizeof(table) / sizeof(table[0]); i++) {
        num = PyLong_FromLong(table[i].num);
        rc = num ? PyDict_SetItemString(names, table[i].name, num) : -1;
        Py_XDECREF(num);
    }
    if (rc == 0)
        rc = PyModule_AddObjectRef(module, "SIGNALS", names);
    Py_DECREF(names);
    if (rc == 0)
        rc = PyModule_AddIntConstant(module, "NSIG", NSIG);
    return rc;
}

/* ---- unix sockets ------------------------------------------------------------------- */

/* socketpair(type) -> (fd, fd): AF_UNIX, both close-on-exec */
static PyObject *py_socketpair(PyObject *self, PyObject *args)
{
    int type, fds[2];
    if (!PyArg_ParseTuple(args, "i:socketpair", &type))
        return NULL;
    if (socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, fds) < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    return Py_BuildValue("(ii)", fds[0], fds[1]);
}

/* A close-on-exec AF_UNIX socket of type (SOCK_STREAM or SOCK_SEQPACKET) and path's
 * address in addr (its length, as Python's socket module gives it: no NUL counted); -1
 * with OSError set on failure. */
static int unix_socket(PyObject *path, int type, struct sockaddr_un *addr, socklen_t *addrlen)
{
    const char *raw = PyBytes_AsString(path);
    Py_ssize_t len = PyBytes_Size(path);
    int fd;
    if (raw == NULL)
        return -1;
    memset(addr, 0, sizeof(*addr));
    addr->sun_family = AF_UNIX;
    if (len > (Py_ssize_t)sizeof(addr->sun_path)) {
        errno = ENAMETOOLONG;
        PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, path);
        return -1;
    }
    memcpy(addr->sun_path, raw, (size_t)len);
    *addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + (size_t)len);
    fd = socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
    if (fd < 0)
        PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, path);
    return fd;
}

/* errno as OSError naming path, after closing fd; drops the reference to path */
static PyObject *socket_error(int fd, PyObject *path)
{
    int saved = errno;
    close(fd);
    errno = saved;
    PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, path);
    Py_DECREF(path);
    return NULL;
}

/* connect_unix(path, timeout=0.0, type=SOCK_STREAM) -> fd: a close-on-exec socket
 * connected to path; timeout > 0 bounds (in seconds) the connect and every later send and
 * receive */
static PyObject *py_connect_unix(PyObject *self, PyObject *args)
{
    PyObject *path;
    double timeout = 0.0;
    struct sockaddr_un addr;
    socklen_t addrlen;
    int fd, rc, type = SOCK_STREAM;
    if (!PyArg_ParseTuple(args, "O&|di:connect_unix", PyUnicode_FSConverter, &path, &timeout,
                          &type))
        return NULL;
    fd = unix_socket(path, type, &addr, &addrlen);
    if (fd < 0) {
        Py_DECREF(path);
        return NULL;
    }
    if (timeout > 0) {
        struct timeval tv = {(time_t)timeout, (suseconds_t)((timeout - (time_t)timeout) * 1e6)};
        if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0
                || setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0)
            return socket_error(fd, path);
    }
    for (;;) {
        Py_BEGIN_ALLOW_THREADS
        rc = connect(fd, (struct sockaddr *)&addr, addrlen);
        Py_END_ALLOW_THREADS
        if (rc == 0 || errno != EINTR)
            break;
        if (PyErr_CheckSignals() < 0) {
            close(fd);
            Py_DECREF(path);
            return NULL;
        }
    }
    if (rc < 0)
        return socket_error(fd, path);
    Py_DECREF(path);
    return PyLong_FromLong(fd);
}

/* listen_unix(path, backlog, type=SOCK_STREAM) -> fd: a close-on-exec socket listening
 * on path */
static PyObject *py_listen_unix(PyObject *self, PyObject *args)
{
    PyObject *path;
    int backlog, fd, type = SOCK_STREAM;
    struct sockaddr_un addr;
    socklen_t addrlen;
    if (!PyArg_ParseTuple(args, "O&i|i:listen_unix", PyUnicode_FSConverter, &path, &backlog,
                          &type))
        return NULL;
    fd = unix_socket(path, type, &addr, &addrlen);
    if (fd < 0) {
        Py_DECREF(path);
        return NULL;
    }
    if (bind(fd, (struct sockaddr *)&addr, addrlen) < 0 || listen(fd, backlog) < 0)
        return socket_error(fd, path);
    Py_DECREF(path);
    return PyLong_FromLong(fd);
}

/* send_fd(sock, data, fd) -> bytes sent: one sendmsg with fd as SCM_RIGHTS (fd < 0: none) */
static PyObject *py_send_fd(PyObject *self, PyObject *args)
{
    int sock, passed;
    PyObject *bytes;
    char *data;
    Py_ssize_t len, sent;
    union { struct cmsghdr align; char buf[CMSG_SPACE(sizeof(int))]; } control;
    struct iovec iov;
    struct msghdr msg;
    if (!PyArg_ParseTuple(args, "iSi:send_fd", &sock, &bytes, &passed)
            || PyBytes_AsStringAndSize(bytes, &data, &len) < 0)
        return NULL;
    iov.iov_base = (void *)data;
    iov.iov_len = (size_t)len;
    memset(&msg, 0, sizeof(msg));
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    if (passed >= 0) {
        struct cmsghdr *cmsg;
        memset(&control, 0, sizeof(control));
        msg.msg_control = control.buf;
        msg.msg_controllen = sizeof(control.buf);
        cmsg = CMSG_FIRSTHDR(&msg);
        cmsg->cmsg_level = SOL_SOCKET;
        cmsg->cmsg_type = SCM_RIGHTS;
        cmsg->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cmsg), &passed, sizeof(int));
    }
    for (;;) {
        Py_BEGIN_ALLOW_THREADS
        sent = sendmsg(sock, &msg, MSG_NOSIGNAL);
        Py_END_ALLOW_THREADS
        if (sent >= 0 || errno != EINTR)
            break;
        if (PyErr_CheckSignals() < 0)
            return NULL;
    }
    if (sent < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    return PyLong_FromSsize_t(sent);
}

/* recv_fd(sock, size) -> (data, fd or -1, msg_flags): one recvmsg of at most size bytes
 * and at most one fd (SCM_RIGHTS, received close-on-exec); MSG_TRUNC/MSG_CTRUNC in
 * msg_flags tell what did not fit */
static PyObject *py_recv_fd(PyObject *self, PyObject *args)
{
    int sock, passed = -1;
    Py_ssize_t size, got;
    char *buf;
    union { struct cmsghdr align; char buf[CMSG_SPACE(sizeof(int))]; } control;
    struct iovec iov;
    struct msghdr msg;
    struct cmsghdr *cmsg;
    PyObject *data, *result;
    if (!PyArg_ParseTuple(args, "in:recv_fd", &sock, &size))
        return NULL;
    if (size < 0) {
        PyErr_SetString(PyExc_ValueError, "negative size");
        return NULL;
    }
    buf = PyMem_Malloc(size ? (size_t)size : 1);
    if (buf == NULL)
        return PyErr_NoMemory();
    iov.iov_base = buf;
    iov.iov_len = (size_t)size;
    memset(&msg, 0, sizeof(msg));
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.buf;
    msg.msg_controllen = sizeof(control.buf);
    for (;;) {
        Py_BEGIN_ALLOW_THREADS
        got = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
        Py_END_ALLOW_THREADS
        if (got >= 0 || errno != EINTR)
            break;
        if (PyErr_CheckSignals() < 0) {
            PyMem_Free(buf);
            return NULL;
        }
    }
    if (got < 0) {
        PyMem_Free(buf);
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    for (cmsg = CMSG_FIRSTHDR(&msg); cmsg != NULL; cmsg = CMSG_NXTHDR(&msg, cmsg)) {
        if (cmsg->cmsg_level == SOL_SOCKET && cmsg->cmsg_type == SCM_RIGHTS
                && cmsg->cmsg_len >= CMSG_LEN(sizeof(int)))
            memcpy(&passed, CMSG_DATA(cmsg), sizeof(int));
    }
    data = PyBytes_FromStringAndSize(buf, got);
    PyMem_Free(buf);
    result = data ? Py_BuildValue("(Nii)", data, passed, msg.msg_flags) : NULL;
    if (result == NULL && passed >= 0)
        close(passed);
    return result;
}

/* ---- what _sys gets from here ------------------------------------------------------ */

#define SIGSOCK_METHODS \
    {"pidfd_send_signal", py_pidfd_send_signal, METH_VARARGS, \
     "pidfd_send_signal(pidfd, sig): signal the process pidfd refers to"}, \
    {"forward_signals", py_forward_signals, METH_VARARGS, \
     "forward_signals(pidfd, signals): send each of signals that reaches this process on " \
     "to pidfd's process (a C handler; nothing blocked)"}, \
    {"socketpair", py_socketpair, METH_VARARGS, \
     "socketpair(type) -> (fd, fd): an AF_UNIX pair, close-on-exec"}, \
    {"connect_unix", py_connect_unix, METH_VARARGS, \
     "connect_unix(path, timeout=0.0, type=SOCK_STREAM) -> fd: a socket connected to path"}, \
    {"listen_unix", py_listen_unix, METH_VARARGS, \
     "listen_unix(path, backlog, type=SOCK_STREAM) -> fd: a socket listening on path"}, \
    {"send_fd", py_send_fd, METH_VARARGS, \
     "send_fd(sock, data, fd) -> sent: sendmsg with fd as SCM_RIGHTS (none if fd < 0)"}, \
    {"recv_fd", py_recv_fd, METH_VARARGS, \
     "recv_fd(sock, size) -> (data, fd or -1, msg_flags): recvmsg with one SCM_RIGHTS fd"},

static int add_sigsock_constants(PyObject *module)
{
    if (add_signals(module) < 0
            || PyModule_AddIntConstant(module, "SOCK_STREAM", SOCK_STREAM) < 0
            || PyModule_AddIntConstant(module, "SOCK_SEQPACKET", SOCK_SEQPACKET) < 0
            || PyModule_AddIntConstant(module, "MSG_TRUNC", MSG_TRUNC) < 0
            || PyModule_AddIntConstant(module, "MSG_CTRUNC", MSG_CTRUNC) < 0)
        return -1;
    return 0;
}
