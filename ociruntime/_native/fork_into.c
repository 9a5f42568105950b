/*
 * fork_into.c: os.fork(), but the child starts in a given cgroup2 directory
 * (clone3 with CLONE_INTO_CGROUP, Linux 5.7): _sys.fork_into_cgroup(fd), included
 * by sysmodule.c.
 *
 * Why: moving a process into a cgroup by writing cgroup.procs takes
 * cgroup_threadgroup_rwsem for writing, and the first such write after a quiet
 * spell waits a whole RCU grace period (~11 ms here).  A child created in the
 * cgroup takes only the read side (as every fork does), so no one waits.
 *
 * What os.fork does around fork(2) is done here around the syscall, with the
 * public C API (called with the GIL held, as any method): PyOS_BeforeFork, then
 * PyOS_AfterFork_Child in the child (the interpreter's locks, its threads'
 * states, os.register_at_fork's callbacks) or PyOS_AfterFork_Parent.  glibc's
 * fork() wrapper is skipped: its pthread_atfork handlers and its resetting of
 * the malloc and stdio locks for other threads' sake, so the caller must be
 * single-threaded (syscalls.fork_into_cgroup checks), and the child's cached
 * thread id (read by pthread calls on a thread's descriptor from another thread,
 * and by PI mutexes) stays the parent's: the child is the fork chain's
 * intermediate, which only makes syscalls and forks again through glibc, or the
 * container init made in its namespaces (flags), a single thread that makes
 * syscalls and execs the stage.
 * (os.fork's audit event and its warning about threads are not raised.)
 */
#include <signal.h>

#ifndef SYS_clone3
#define SYS_clone3 435
#endif
#define PYRUNC_CLONE_INTO_CGROUP 0x200000000ULL

struct pyrunc_clone_args {  /* struct clone_args, CLONE_ARGS_SIZE_VER2 (88 bytes) */
    uint64_t flags;
    uint64_t pidfd;
    uint64_t child_tid;
    uint64_t parent_tid;
    uint64_t exit_signal;
    uint64_t stack;
    uint64_t stack_size;
    uint64_t tls;
    uint64_t set_tid;
    uint64_t set_tid_size;
    uint64_t cgroup;
};

/* fork_into_cgroup(cgroup_fd, flags=0): the child's pid in the parent, 0 in the
   child; OSError when no child was made (ENOSYS: no clone3; E2BIG or EINVAL: no
   CLONE_INTO_CGROUP; or the kernel's refusal of that cgroup, as a write of
   cgroup.procs would be refused; or of a namespace in flags).  cgroup_fd -1: no
   cgroup given.  flags: CLONE_NEW* namespaces the child is created in (the
   container init made by the parent itself, with no intermediate). */
static PyObject *sys_fork_into_cgroup(PyObject *self, PyObject *args)
{
    struct pyrunc_clone_args clone;
    int cgroup_fd, saved;
    unsigned long long flags = 0;
    long pid;

    if (!PyArg_ParseTuple(args, "i|K", &cgroup_fd, &flags))
        return NULL;
    memset(&clone, 0, sizeof(clone));
    clone.flags = flags;
    if (cgroup_fd >= 0) {
        clone.flags |= PYRUNC_CLONE_INTO_CGROUP;
        clone.cgroup = (uint64_t)cgroup_fd;
    }
    clone.exit_signal = SIGCHLD;
    PyOS_BeforeFork();
    pid = syscall(SYS_clone3, &clone, sizeof(clone));
    saved = errno;
    if (pid == 0)
        PyOS_AfterFork_Child();
    else
        PyOS_AfterFork_Parent();
    if (pid < 0) {
        errno = saved;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    return PyLong_FromLong(pid);
}
