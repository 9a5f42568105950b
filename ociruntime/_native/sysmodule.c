/*
 * sysmodule.c: ociruntime._native._sys, the system calls of helper.c (and fork_into.c's
 * fork into a cgroup, sigsock.c's signals and unix sockets) as a plain CPython extension
 * module (the stable ABI), for create, run, exec and kill's path and the shim's start.  The CFFI module
 * (_helper) needs cffi's backend loaded first: the two shared objects cost every create
 * ~0.9 ms of CPU, this one ~0.1.  Each function raises OSError (with the path, where one
 * names the file) or returns the call's result; no policy lives here.  CFFI stays for
 * what needs C data built in Python (bpf, seccomp).
 */
#define Py_LIMITED_API 0x030b0000
#include <Python.h>

/* Not Py_RETURN_NONE: 3.13.0's headers define it without the new reference that a
 * 3.11 (or 3.12) interpreter expects of an abi3 module (its None's count then runs down
 * to a "deallocating None" abort at exit).  Py_IncRef is the same function everywhere. */
#define RETURN_NONE do { Py_IncRef(Py_None); return Py_None; } while (0)

#include "helper.c"
#include "fork_into.c"
#include "sigsock.c"
#include "sha256.c"

#include <sys/resource.h>

/* str (encoded as os.fsencode does), bytes, or None (NULL) */
static int to_path(PyObject *obj, void *out)
{
    PyObject **result = (PyObject **)out;
    if (obj == NULL) { /* cleanup call */
        Py_CLEAR(*result);
        return 1;
    }
    if (obj == Py_None) {
        *result = NULL;
        return 1;
    }
    if (PyUnicode_Check(obj)) {
        *result = PyUnicode_EncodeFSDefault(obj);
        return *result == NULL ? 0 : Py_CLEANUP_SUPPORTED;
    }
    if (PyBytes_Check(obj)) {
        Py_INCREF(obj);
        *result = obj;
        return Py_CLEANUP_SUPPORTED;
    }
    PyErr_SetString(PyExc_TypeError, "expected str, bytes or None");
    return 0;
}

static const char *c_str(PyObject *bytes)
{
    return bytes == NULL ? NULL : PyBytes_AsString(bytes);
}

static PyObject *fail(PyObject *filename)
{
    if (filename != NULL && filename != Py_None)
        return PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, filename);
    return PyErr_SetFromErrno(PyExc_OSError);
}

static PyObject *result(long ret, PyObject *filename)
{
    if (ret < 0)
        return fail(filename);
    return PyLong_FromLong(ret);
}

static PyObject *sys_unshare(PyObject *self, PyObject *args)
{
    int flags;
    if (!PyArg_ParseTuple(args, "i", &flags))
        return NULL;
    return result(pr_unshare(flags), NULL);
}

static PyObject *sys_setns(PyObject *self, PyObject *args)
{
    int fd, nstype;
    if (!PyArg_ParseTuple(args, "ii", &fd, &nstype))
        return NULL;
    return result(pr_setns(fd, nstype), NULL);
}

static PyObject *sys_mount(PyObject *self, PyObject *args)
{
    PyObject *source_obj, *target_obj, *fstype_obj, *data_obj;
    PyObject *source = NULL, *target = NULL, *fstype = NULL, *data = NULL, *ret;
    unsigned long flags;
    if (!PyArg_ParseTuple(args, "OOOkO", &source_obj, &target_obj, &fstype_obj, &flags,
                          &data_obj))
        return NULL;
    if (to_path(source_obj, &source) && to_path(target_obj, &target)
        && to_path(fstype_obj, &fstype) && to_path(data_obj, &data)) {
        int rc;
        Py_BEGIN_ALLOW_THREADS
        rc = pr_mount(c_str(source), c_str(target), c_str(fstype), flags, c_str(data));
        Py_END_ALLOW_THREADS
        ret = result(rc, target_obj);
    } else {
        ret = NULL;
    }
    Py_XDECREF(source);
    Py_XDECREF(target);
    Py_XDECREF(fstype);
    Py_XDECREF(data);
    return ret;
}

static PyObject *sys_umount2(PyObject *self, PyObject *args)
{
    PyObject *target_obj, *target = NULL, *ret;
    int flags, rc;
    if (!PyArg_ParseTuple(args, "Oi", &target_obj, &flags) || !to_path(target_obj, &target))
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    rc = pr_umount2(c_str(target), flags);
    Py_END_ALLOW_THREADS
    ret = result(rc, target_obj);
    Py_XDECREF(target);
    return ret;
}

static PyObject *sys_pivot_root(PyObject *self, PyObject *args)
{
    PyObject *new_obj, *old_obj, *new_root = NULL, *put_old = NULL, *ret = NULL;
    if (!PyArg_ParseTuple(args, "OO", &new_obj, &old_obj))
        return NULL;
    if (to_path(new_obj, &new_root) && to_path(old_obj, &put_old))
        ret = result(pr_pivot_root(c_str(new_root), c_str(put_old)), new_obj);
    Py_XDECREF(new_root);
    Py_XDECREF(put_old);
    return ret;
}

/* openat2(2), retried on EAGAIN (a rename or mount anywhere while ".." was resolved in
 * a RESOLVE_IN_ROOT or RESOLVE_BENEATH walk), as the kernel asks */
static PyObject *sys_openat2(PyObject *self, PyObject *args)
{
    PyObject *path_obj, *path = NULL, *ret;
    int dirfd, fd = -1, tries;
    unsigned long long flags, mode, resolve;
    if (!PyArg_ParseTuple(args, "iOKKK", &dirfd, &path_obj, &flags, &mode, &resolve)
        || !to_path(path_obj, &path))
        return NULL;
    for (tries = 0; tries < 1000; tries++) {
        fd = pr_openat2(dirfd, c_str(path), flags, mode, resolve);
        if (fd >= 0 || errno != EAGAIN)
            break;
    }
    ret = result(fd, path_obj);
    Py_XDECREF(path);
    return ret;
}

static PyObject *sys_mount_setattr(PyObject *self, PyObject *args)
{
    PyObject *path_obj, *path = NULL, *ret;
    int dirfd;
    unsigned int flags;
    unsigned long long attr_set, attr_clr, propagation, userns_fd;
    if (!PyArg_ParseTuple(args, "iOIKKKK", &dirfd, &path_obj, &flags, &attr_set, &attr_clr,
                          &propagation, &userns_fd) || !to_path(path_obj, &path))
        return NULL;
    ret = result(pr_mount_setattr(dirfd, c_str(path), flags, attr_set, attr_clr, propagation,
                                  userns_fd), NULL);
    Py_XDECREF(path);
    return ret;
}

static PyObject *sys_open_tree(PyObject *self, PyObject *args)
{
    PyObject *path_obj, *path = NULL, *ret;
    int dirfd;
    unsigned int flags;
    if (!PyArg_ParseTuple(args, "iOI", &dirfd, &path_obj, &flags) || !to_path(path_obj, &path))
        return NULL;
    ret = result(pr_open_tree(dirfd, c_str(path), flags), path_obj);
    Py_XDECREF(path);
    return ret;
}

static PyObject *sys_move_mount(PyObject *self, PyObject *args)
{
    PyObject *from_obj, *to_obj, *from_path = NULL, *to_path_ = NULL, *ret = NULL;
    int from_dirfd, to_dirfd;
    unsigned int flags;
    if (!PyArg_ParseTuple(args, "iOiOI", &from_dirfd, &from_obj, &to_dirfd, &to_obj, &flags))
        return NULL;
    if (to_path(from_obj, &from_path) && to_path(to_obj, &to_path_))
        ret = result(pr_move_mount(from_dirfd, c_str(from_path), to_dirfd, c_str(to_path_),
                                   flags), NULL);
    Py_XDECREF(from_path);
    Py_XDECREF(to_path_);
    return ret;
}

/* sethostname/setdomainname: a name as bytes ("S" and PyBytes_AsStringAndSize, not "y#":
 * the stable ABI's PyArg_ParseTuple refuses '#' formats on 3.12+) */
static PyObject *set_name(PyObject *args, int (*set)(const char *, size_t))
{
    PyObject *bytes;
    char *name;
    Py_ssize_t len;
    if (!PyArg_ParseTuple(args, "S", &bytes) || PyBytes_AsStringAndSize(bytes, &name, &len) < 0)
        return NULL;
    return result(set(name, (size_t)len), NULL);
}

static PyObject *sys_sethostname(PyObject *self, PyObject *args)
{
    return set_name(args, pr_sethostname);
}

static PyObject *sys_setdomainname(PyObject *self, PyObject *args)
{
    return set_name(args, pr_setdomainname);
}

static PyObject *sys_prctl(PyObject *self, PyObject *args)
{
    int option;
    unsigned long a2 = 0, a3 = 0, a4 = 0, a5 = 0;
    if (!PyArg_ParseTuple(args, "i|kkkk", &option, &a2, &a3, &a4, &a5))
        return NULL;
    return result(pr_prctl(option, a2, a3, a4, a5), NULL);
}

static PyObject *sys_close_range(PyObject *self, PyObject *args)
{
    unsigned int first, last;
    int flags;
    if (!PyArg_ParseTuple(args, "IIi", &first, &last, &flags))
        return NULL;
    return result(pr_close_range(first, last, flags), NULL);
}

static PyObject *sys_loopback_up(PyObject *self, PyObject *unused)
{
    if (pr_loopback_up() < 0) {
        PyObject *lo = PyUnicode_FromString("lo"), *ret;
        if (lo == NULL)
            return NULL;
        ret = fail(lo);
        Py_DECREF(lo);
        return ret;
    }
    RETURN_NONE;
}

static void free_vector(char **vec, Py_ssize_t n)
{
    Py_ssize_t i;
    if (vec == NULL)
        return;
    for (i = 0; i < n; i++)
        PyMem_Free(vec[i]);
    PyMem_Free(vec);
}

/* a NULL-terminated copy of a list of bytes/str */
static char **to_vector(PyObject *list, Py_ssize_t *count)
{
    Py_ssize_t n, i;
    char **vec;
    if (!PyList_Check(list)) {
        PyErr_SetString(PyExc_TypeError, "expected a list");
        return NULL;
    }
    n = PyList_Size(list);
    vec = PyMem_Calloc((size_t)n + 1, sizeof(char *));
    if (vec == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    for (i = 0; i < n; i++) {
        PyObject *bytes = NULL;
        const char *s;
        Py_ssize_t len;
        if (!to_path(PyList_GetItem(list, i), &bytes) || bytes == NULL) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_TypeError, "expected str or bytes");
            free_vector(vec, i);
            return NULL;
        }
        s = PyBytes_AsString(bytes);
        len = PyBytes_Size(bytes);
        vec[i] = PyMem_Malloc((size_t)len + 1);
        if (vec[i] == NULL) {
            Py_DECREF(bytes);
            free_vector(vec, i);
            PyErr_NoMemory();
            return NULL;
        }
        memcpy(vec[i], s, (size_t)len + 1);
        Py_DECREF(bytes);
    }
    *count = n;
    return vec;
}

/* Replace this process with the program open at fd; returns only by raising. */
static PyObject *sys_execveat(PyObject *self, PyObject *args)
{
    PyObject *argv_list, *envp_list;
    char **argv, **envp;
    Py_ssize_t argc = 0, envc = 0;
    int fd;
    if (!PyArg_ParseTuple(args, "iOO", &fd, &argv_list, &envp_list))
        return NULL;
    argv = to_vector(argv_list, &argc);
    if (argv == NULL)
        return NULL;
    envp = to_vector(envp_list, &envc);
    if (envp == NULL) {
        free_vector(argv, argc);
        return NULL;
    }
    pr_execveat(fd, argv, envp);
    {
        int saved = errno;
        free_vector(argv, argc);
        free_vector(envp, envc);
        errno = saved;
    }
    return fail(NULL);
}

static PyObject *sys_sched_setattr(PyObject *self, PyObject *args)
{
    unsigned int policy, priority;
    int nice;
    unsigned long long flags, runtime, deadline, period;
    if (!PyArg_ParseTuple(args, "IKiIKKK", &policy, &flags, &nice, &priority, &runtime,
                          &deadline, &period))
        return NULL;
    return result(pr_sched_setattr(policy, flags, nice, priority, runtime, deadline, period),
                  NULL);
}

static PyObject *sys_ioprio_set(PyObject *self, PyObject *args)
{
    int which, who, ioprio;
    if (!PyArg_ParseTuple(args, "iii", &which, &who, &ioprio))
        return NULL;
    return result(pr_ioprio_set(which, who, ioprio), NULL);
}

static PyObject *sys_personality(PyObject *self, PyObject *args)
{
    unsigned long persona;
    if (!PyArg_ParseTuple(args, "k", &persona))
        return NULL;
    return result(pr_personality(persona), NULL);
}

/* set_mempolicy(2): nodemask is the bitmap as bytes of unsigned longs (b"": NULL) */
static PyObject *sys_set_mempolicy(PyObject *self, PyObject *args)
{
    int mode;
    PyObject *bytes;
    char *mask;
    Py_ssize_t len;
    unsigned long maxnode;
    if (!PyArg_ParseTuple(args, "iSk", &mode, &bytes, &maxnode)
        || PyBytes_AsStringAndSize(bytes, &mask, &len) < 0)
        return NULL;
    return result(pr_set_mempolicy(mode, len ? (const unsigned long *)mask : NULL, maxnode),
                  NULL);
}

static PyObject *sys_join_session_keyring(PyObject *self, PyObject *args)
{
    PyObject *name_obj, *name = NULL, *ret;
    if (!PyArg_ParseTuple(args, "O", &name_obj) || !to_path(name_obj, &name))
        return NULL;
    ret = result(pr_join_session_keyring(c_str(name)), NULL);
    Py_XDECREF(name);
    return ret;
}

static PyObject *sys_keyctl_setperm(PyObject *self, PyObject *args)
{
    int serial;
    unsigned int perm;
    if (!PyArg_ParseTuple(args, "iI", &serial, &perm))
        return NULL;
    return result(pr_keyctl_setperm(serial, perm), NULL);
}

/* getrlimit(resource) -> (soft, hard), unsigned (RLIM_INFINITY is 2**64 - 1, as a
 * config's uint64 says it): create's check of the runtime's own hard limits, without
 * the `resource` extension (a shared object to load, ~0.2 ms of each such create) */
static PyObject *sys_getrlimit(PyObject *self, PyObject *args)
{
    int resource;
    struct rlimit rl;
    if (!PyArg_ParseTuple(args, "i", &resource))
        return NULL;
    if (getrlimit(resource, &rl) < 0)
        return fail(NULL);
    return Py_BuildValue("(KK)", (unsigned long long)rl.rlim_cur,
                         (unsigned long long)rl.rlim_max);
}

static PyMethodDef methods[] = {
    {"getrlimit", sys_getrlimit, METH_VARARGS, NULL},
    {"unshare", sys_unshare, METH_VARARGS, NULL},
    {"setns", sys_setns, METH_VARARGS, NULL},
    {"mount", sys_mount, METH_VARARGS, NULL},
    {"umount2", sys_umount2, METH_VARARGS, NULL},
    {"pivot_root", sys_pivot_root, METH_VARARGS, NULL},
    {"openat2", sys_openat2, METH_VARARGS, NULL},
    {"mount_setattr", sys_mount_setattr, METH_VARARGS, NULL},
    {"open_tree", sys_open_tree, METH_VARARGS, NULL},
    {"move_mount", sys_move_mount, METH_VARARGS, NULL},
    {"sethostname", sys_sethostname, METH_VARARGS, NULL},
    {"setdomainname", sys_setdomainname, METH_VARARGS, NULL},
    {"prctl", sys_prctl, METH_VARARGS, NULL},
    {"close_range", sys_close_range, METH_VARARGS, NULL},
    {"loopback_up", sys_loopback_up, METH_NOARGS, NULL},
    {"execveat", sys_execveat, METH_VARARGS, NULL},
    {"sched_setattr", sys_sched_setattr, METH_VARARGS, NULL},
    {"ioprio_set", sys_ioprio_set, METH_VARARGS, NULL},
    {"personality", sys_personality, METH_VARARGS, NULL},
    {"set_mempolicy", sys_set_mempolicy, METH_VARARGS, NULL},
    {"join_session_keyring", sys_join_session_keyring, METH_VARARGS, NULL},
    {"keyctl_setperm", sys_keyctl_setperm, METH_VARARGS, NULL},
    {"fork_into_cgroup", sys_fork_into_cgroup, METH_VARARGS, NULL},
    SIGSOCK_METHODS
    SHA256_METHODS
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot slots[] = {
    {Py_mod_exec, (void *)add_sigsock_constants},
    {0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "ociruntime._native._sys",
    "The system calls os lacks (helper.c, fork_into.c), signals and unix sockets "
    "(sigsock.c), SHA-256 (sha256.c).", 0, methods, slots, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__sys(void)
{
    return PyModuleDef_Init(&module);
}
