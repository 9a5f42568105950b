"""The fork chain that makes a container process, and the parent<->child sync protocol.

    pyrunc (parent)                 intermediate (child)            init (grandchild)
    ---------------                 --------------------            -----------------
    fork ------------------------>  join cgroup, setns(paths),
                                    unshare(user) --- "idmap" ->
    write uid/gid maps <-- "idmap-done" ---
                                    unshare(the rest), time offsets
                                    fork ------------------------>  (pid 1 of a new pid ns)
    <----------------------------- "pid" {pid}, exit
                                                                    rootfs, hostname, ...
                                                                    exec the C stage
    <-------------------------------------------------------------- "ready" | "error"

When the intermediate has nothing to do between its fork and the init's (no namespace
to join, no user or time namespace, no net device, no idmapped mount: init.direct), the
parent makes the init itself, in its new namespaces (clone3 with their flags), and the
init does the intermediate's cgroup joins; its pid is known at the fork, no "pid" comes.

Messages are small JSON objects, one per datagram on a SOCK_SEQPACKET socketpair, with a
"type" from the MSG_* names below.  The child side never returns: it execs or _exits.
"""

import posix

from ociruntime import jsonlite, paths
from ociruntime._native import _sys
from ociruntime.errors import BY_NAME, Internal, PyruncError, from_os_error, type_name
from ociruntime.libcontainer import monitor

MSG_PID = "pid"                # intermediate -> parent: the container process's host pid
MSG_IDMAP = "idmap"            # child -> parent: my user namespace exists, write its maps
MSG_IDMAP_DONE = "idmap-done"  # parent -> child
MSG_HOOKS = "hooks"            # init -> parent: run prestart + createRuntime hooks now
MSG_HOOKS_DONE = "hooks-done"  # parent -> init
MSG_CONSOLE = "console"        # init -> parent: the pty master, as SCM_RIGHTS ancillary data
MSG_SECCOMP = "seccomp"        # stage -> parent: the seccomp notify fd, as SCM_RIGHTS
MSG_READY = "ready"            # stage -> parent: parked (create) or running (exec)
MSG_ERROR = "error"            # any child -> parent: {"msg": why}; the child then exits
MAX_MESSAGE = 65536            # the largest datagram recv() takes
MAX_ERROR_TEXT = 4000          # characters of an error text sent (the stage sends < 4096 bytes)


class SyncSocket:
    """One end of the sync socketpair, speaking typed JSON messages."""

    def __init__(self, fd):
        self.fd = fd

    @staticmethod
    def pair(min_fd=3):
        """(parent end, child end), both close-on-exec and numbered >= min_fd, so they never
        land on an fd the caller asked to preserve."""
        ends = []
        for fd in _sys.socketpair(_sys.SOCK_SEQPACKET):
            if fd < min_fd:
                import fcntl

                new = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, min_fd)
                posix.close(fd)
                fd = new
            ends.append(SyncSocket(fd))
        return ends

    def send(self, msg_type, fd=None, **fields):
        """Send one message; fd (optional) travels with it as SCM_RIGHTS."""
        fields["type"] = msg_type
        data = jsonlite.dumps(fields).encode()
        if fd is None:
            posix.write(self.fd, data)
        else:
            _sys.send_fd(self.fd, data, fd)

    def recv(self):
        """The next message (with "fd" set when one came along, close-on-exec), or None at
        EOF: every child end closed, the children died."""
        data, fd, flags = _sys.recv_fd(self.fd, MAX_MESSAGE)
        if not data:
            if fd >= 0:
                posix.close(fd)
            return None
        try:
            if flags & _sys.MSG_TRUNC:
                raise ValueError(f"longer than {MAX_MESSAGE} bytes")
            # a child's text may hold any bytes (a program name in exec's argv): never let
            # one undecodable byte turn its error into a crash of ours
            msg = jsonlite.loads(data.decode("utf-8", "replace"))
            if type(msg) is not dict:
                raise ValueError("not a JSON object")
        except ValueError as e:
            if fd >= 0:  # an fd that came along is not ours to keep
                posix.close(fd)
            raise PyruncError(f"unreadable message from the container process: {e}") from None
        if fd >= 0:
            msg["fd"] = fd
        return msg

    def expect(self, msg_type):
        msg = self.recv()
        if msg is None or msg.get("type") != msg_type:
            posix._exit(1)  # the parent is gone or confused: nothing sensible left to do
        return msg

    def close(self):
        if self.fd >= 0:
            posix.close(self.fd)
            self.fd = -1


def spawn(child_main, on_idmap=None, on_hooks=None, on_console=None, min_fd=3,
          on_seccomp=None, stdio=None, on_pid=None, die_with_parent=False, child_close=(),
          wait_if_interrupted=True, cgroup2=None, direct=None):
    """Fork child_main(sync) and serve its requests until it reports ready.

    stdio, when given, is three fds the child takes as its 0, 1 and 2 (the shim hands a
    container the fifos containerd made; the CLI's container inherits the caller's).
    on_pid(pid) is called as soon as the container process's pid is known (create records
    it).  die_with_parent: the child gets SIGKILL when this process dies (create: a
    runtime killed before the container exists leaves no intermediate behind; the init
    it forked dies at its first word to the dead parent, or with the recorded cgroup).
    child_close: fds the child closes at once (create's state lock: a child of a killed
    create must not keep `delete --force` waiting).
    wait_if_interrupted=False: interrupted (KeyboardInterrupt, SystemExit) before the
    child spoke, the child is killed but not waited for: exec into a paused container,
    whose stage freezes in the container's cgroup, where even SIGKILL waits for the thaw
    (v1 freezer); it then dies running nothing more, and whoever reaps this process's
    children reaps it.
    cgroup2: a cgroup2 directory the child is created in (clone3 CLONE_INTO_CGROUP: no
    cgroup_threadgroup_rwsem write lock, so no grace period to wait); where the kernel
    cannot, the child joins it by its cgroup.procs first thing.
    direct: (CLONE_NEW* flags, direct_main): the child is made in those namespaces
    (clone3) and runs direct_main(sync) instead of child_main: the container process
    itself, with no intermediate (its pid is known at once); where the kernel makes no
    such child, child_main as before.
    Returns (container pid, intermediate pid reaped).  On any failure raises PyruncError
    with the child's message; the caller tears down and kills what was made."""
    parent, child = SyncSocket.pair(min_fd)
    parent_pid = posix.getpid()
    pid, join, made_direct = monitor.fork_or_close(
        parent, child, spawn=lambda: _fork(cgroup2, direct and direct[0]))
    if pid == 0:
        if die_with_parent:
            _die_with()
        for fd in child_close:
            if fd >= 0:
                posix.close(fd)
        parent.close()
        if die_with_parent and _parent_gone(parent_pid, child.fd):
            posix._exit(1)
        if stdio is not None:
            for target, fd in enumerate(stdio):
                posix.dup2(fd, target)
        _run_child(direct[1] if made_direct else child_main, child, join)
    child.close()
    container_pid = None
    intermediate = pid
    if made_direct:
        container_pid, intermediate = pid, None
        if on_pid is not None:
            on_pid(container_pid)
    deferred = []  # the init's messages can overtake the intermediate's "pid"
    try:
        while True:
            msg = deferred.pop(0) if deferred and container_pid else parent.recv()
            if msg is None:
                raise PyruncError("container init exited before it was ready")
            kind = msg.get("type")
            if kind == MSG_PID:
                # a second "pid" comes from a stage that joined a pid namespace and forked
                # (init.Launch.join_pidns_fd): its child is the container process
                container_pid = msg["pid"]
                if on_pid is not None:
                    on_pid(container_pid)
                if intermediate is not None:
                    _reap(intermediate)
                intermediate = None
            elif kind == MSG_IDMAP:
                on_idmap(msg["pid"])
                parent.send(MSG_IDMAP_DONE)
            elif kind in (MSG_HOOKS, MSG_SECCOMP, MSG_READY) and container_pid is None:
                # "pid" comes from another process than these: it can arrive after them
                deferred.append(msg)
            elif kind == MSG_SECCOMP:
                try:
                    on_seccomp(msg["fd"], container_pid)
                finally:
                    posix.close(msg["fd"])
            elif kind == MSG_HOOKS:
                on_hooks(container_pid)
                parent.send(MSG_HOOKS_DONE)
            elif kind == MSG_CONSOLE:
                try:
                    on_console(msg["fd"])
                finally:
                    posix.close(msg["fd"])
            elif kind == MSG_READY:
                return container_pid
            elif kind == MSG_ERROR:
                raise _typed(msg.get("kind"))(msg.get("msg", "container init failed"))
            else:
                raise Internal(f"unexpected message from container init: {kind!r}")
    except BaseException as error:
        error.container_pid = container_pid
        if intermediate is not None:
            _kill_and_reap(intermediate, wait_if_interrupted or isinstance(error, Exception))
        raise
    finally:
        parent.close()


def _fork(cgroup2, flags=None):
    """monitor.fork(), into the cgroup2 directory when one is given, and in the new
    namespaces of flags when not None and the kernel can: (pid, the cgroup2 directory
    the child must still join itself, or None, whether it was made in those
    namespaces)."""
    fd = -1
    if cgroup2 is not None:
        try:
            fd = posix.open(cgroup2, posix.O_RDONLY | posix.O_DIRECTORY | posix.O_CLOEXEC)
        except OSError:
            pass  # the child's join reports why
    try:
        if flags is not None:
            pid = monitor.clone_into(fd, flags)
            if pid is not None:
                return pid, cgroup2 if fd < 0 else None, True
        if fd < 0:
            return monitor.fork(), cgroup2, False
        pid, into = monitor.fork_into(fd)
        return pid, None if into else cgroup2, False
    finally:
        if fd >= 0:
            posix.close(fd)


def _die_with():
    """SIGKILL for this child when its parent dies (_parent_gone checks once after: it
    may be dead already).  The CLI is single-threaded and the shim forks from its one-thread fork
    server, so "the parent" here is the thread that stays until the container exists."""
    from ociruntime.libcontainer import syscalls as sc

    # SIGKILL as a number (as _kill_and_reap): importing signal here, after the fork,
    # would cost this child enum, functools and collections, ~5 ms on create's path
    sc.prctl(sc.PR_SET_PDEATHSIG, 9)


def _parent_gone(parent_pid, sync_fd):
    """The parent died before _die_with's PR_SET_PDEATHSIG took hold (checked once, after
    it, with the child's copy of the parent's end closed).  A child made in a new pid
    namespace (spawn's direct) sees its parent as pid 0, alive or not: there, the parent
    is gone when the sync socket's other end has hung up."""
    ppid = posix.getppid()
    if ppid != 0:
        return ppid != parent_pid
    import select

    poller = select.poll()
    poller.register(sync_fd, select.POLLHUP)
    return any(events & (select.POLLHUP | select.POLLERR) for _, events in poller.poll(0))


def current_umask(status=None):
    """The caller's umask, which the container process inherits unless process.user.umask
    says otherwise.  Read from /proc/self/status (Linux 4.7): umask(2) cannot read it
    without setting it, for a moment, for every thread of a long-lived caller.  status:
    capabilities.read_status(), when the caller has it already."""
    from ociruntime.libcontainer.capabilities import status_field

    try:
        value = status_field("Umask:", status)
    except OSError:
        value = None
    if not value:
        raise PyruncError("cannot read the umask from /proc/self/status")
    return int(value, 8)


def _run_child(child_main, sync, join=None):
    """Run a child's job (after joining the cgroup2 directory join, when given); report
    any failure on the sync socket. Never returns."""
    code = 1
    try:
        if join is not None:
            from ociruntime.libcontainer.cgroups import join_self

            join_self(paths.join(join, "cgroup.procs"))
        child_main(sync)
        code = 0
    except PyruncError as e:
        _report(sync, str(e), type(e))
    except OSError as e:
        where = f": {e.filename}" if e.filename else ""
        _report(sync, f"{e.strerror}{where}", type(from_os_error(e, "")))
    except BaseException as e:  # a bug: still one clear line for the user
        _report(sync, f"internal error in container init: {type(e).__name__}: {e}", Internal)
    posix._exit(code)


def _report(sync, text, error_type=PyruncError):
    """Send an error text, as one line and cut to MAX_ERROR_TEXT characters, so that the
    datagram (JSON, non-ASCII escaped: up to 12 bytes a character) fits MAX_MESSAGE; with
    the name of its type (errors.BY_NAME): the parent raises the same type, so callers
    decide by type, never by the text."""
    kind = type_name(error_type(text))
    text = " ".join(str(text).splitlines())
    if len(text) > MAX_ERROR_TEXT:
        text = text[:MAX_ERROR_TEXT - 3] + "..."
    try:
        sync.send(MSG_ERROR, msg=text, kind=kind)
    except OSError:
        pass


def _typed(kind):
    return BY_NAME.get(kind or "", PyruncError)


def _reap(pid):
    monitor.reap(pid)


def _kill_and_reap(pid, reap=True):
    try:
        posix.kill(pid, 9)
    except ProcessLookupError:
        pass
    if reap:
        _reap(pid)
