"""The fork server: the one process the shim forks containers from.

Forking Python from a process with other threads is unsafe.  The child has only the
forking thread: a lock another thread held at that instant (the allocator's, the import
lock, a stream's) stays held in it forever; and it holds a copy of every fd the other
threads had open at that instant, among them the ends of other creates' pipes, whose EOF
then never comes (a user namespace helper waiting for its parent to close a pipe hung
so: two concurrent Creates' helpers each held the other's write end).  The shim server
has threads (ttrpc connections, events, housekeeping, pty copies), so it never forks a
container chain itself.  At startup, with the library imported and before its first
thread, it forks this server, which stays single-threaded (multiprocessing's forkserver
is the model).

A Create or Exec (in a ttrpc thread of the server) is one request: a datagram on the
control socketpair carrying, by SCM_RIGHTS, a fresh reply socket, a memfd with the request
(JSON, any size) and the process's stdio.  The fork server forks a worker per request (so
requests run in parallel), closes its copies and goes back to its loop.  The worker, a
single-threaded copy with nobody else's fds, runs Container.create or execute.exec_in with
the library's plain monitor: it waits for its own children (the fork chain's
intermediate and exec stage, prestart and createRuntime hooks, id-map helpers), raced by
nobody.  It answers {"pid": N} (a terminal's pty master by SCM_RIGHTS) or {"error": text,
"kind": the error's type}, and exits.  The server of a single task keeps no fork server
(its cost, in shim/__init__.py, would be per container): a Spawner starts the same
worker as a fresh interpreter by posix_spawn, through the server's process monitor.

Exits: the container init's parent (the intermediate) exits during create; neither the
fork server nor a create's worker is a subreaper, so the init is reparented to the shim
server, the subreaper, whose reaper gets its exit (and a spawned worker's own).  An
exec'd process's parent (the exec stage) exits too; exec makes its caller, the worker, a
subreaper, so the process is the worker's child until the worker exits a moment later,
then the server's (one that exited meanwhile is handed over as a zombie, and the server
is notified).  The kernel reaps the fork server's workers (SIGCHLD ignored there).  The
fork server dies with the server (its parent death signal, and EOF on the control
socket), and a worker with its parent.
"""

import array
import fcntl
import gc
import os
import signal
import socket
import threading

from ociruntime import errors, jsonlite
from ociruntime.libcontainer import syscalls as sc

_SCM = socket.SOL_SOCKET, socket.SCM_RIGHTS
MAX_REPLY = 1 << 16


def _send(sock, data, fds=()):
    anc = [(*_SCM, array.array("i", fds).tobytes())] if fds else []
    sock.sendmsg([data], anc)


def _recv(sock, size, max_fds):
    data, anc, _, _ = sock.recvmsg(size, socket.CMSG_SPACE(4 * max_fds))
    fds = array.array("i")
    for level, kind, payload in anc:
        if (level, kind) == _SCM:
            fds.frombytes(payload[:len(payload) - len(payload) % 4])
    return data, list(fds)


def _warm_up():
    """Import what the workers run, once, before the fork: each worker starts warm and
    the modules' memory is shared with the server.  That includes what the library
    imports late for the CLI's sake (a create's support check, rlimits, this host's
    cgroup manager: ~5 modules that every Create would otherwise import)."""
    import resource  # noqa: F401

    from ociruntime import config  # noqa: F401
    from ociruntime.libcontainer import (  # noqa: F401
        capabilities,
        cgroups,
        container,
        create,
        execute,
        hooks,
        init,
        procattrs,
        process,
        rootfs,
        support,
    )
    from ociruntime.libcontainer.cgroups import files  # noqa: F401

    if cgroups.host_is_v2():
        from ociruntime.libcontainer.cgroups import devices_bpf, v2, v2limits  # noqa: F401
    else:
        from ociruntime.libcontainer.cgroups import v1, v1limits  # noqa: F401


class ForkServer:
    """The server's handle on its fork server; call() is safe from any thread."""

    def __init__(self, close_in_child=()):
        _warm_up()
        if threading.active_count() != 1:
            raise RuntimeError("the fork server must be forked before any thread starts")
        # what exists now is shared with the fork server copy-on-write: out of the
        # collector's reach, no collection in either process writes to those pages
        gc.freeze()
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        server_pid = os.getpid()
        self.pid = os.fork()
        if self.pid == 0:
            parent.close()
            for fd in close_in_child:
                os.close(fd)
            _serve(child, server_pid)  # never returns
        child.close()
        self.sock = parent

    def call(self, request, stdio):
        """Run request ({"op": "create" or "exec", ...}) in a worker with stdio as the
        process's fds 0-2: (reply, received fds), or the worker's error, typed."""
        return _exchange(request, lambda reply_fd, payload: _send(
            self.sock, b"request", (reply_fd, payload, *stdio)))

    def close(self):
        self.sock.close()


class Spawner:
    """Workers as fresh interpreters, for the server of one task (shim/__init__.py): no
    process is kept between its few requests (a fork server costs ~4 MiB PSS per server,
    the pages the server dirties after the fork).  posix_spawn (no Python runs in the
    child) is safe from the threaded server; the worker is its child, started through the
    server's process monitor, whose reaper reaps it (nobody waits for it: its answer is
    what a request needs).

    The first worker is spawned at once (warm=True, at the server's start, before its own
    imports; warm=(pid, fd): start forked it just before exec'ing the server): it imports
    the library while the server starts, on the other core, and waits on a socket for
    the request, which is the task's Create; it comes warm instead of costing an
    interpreter start and the library's imports (~30 ms) on the Create's path.  Later
    requests (Execs) spawn a worker each, cold, as it would cost a whole idle interpreter
    per container to keep one ready."""

    def __init__(self, warm=False, task=None):
        self._lock = threading.Lock()
        self._warm = None  # (pid, socket) of the worker waiting for its request
        self._task = task  # (message, fds) a spare's warm worker waits for first (tell)
        if isinstance(warm, tuple):  # our child already: its exit is ours to reap
            from ociruntime.libcontainer import monitor

            pid, fd = warm
            os.set_inheritable(fd, False)
            self._warm = monitor.current().start(lambda: pid), socket.socket(fileno=fd)
        elif warm:
            mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            try:
                pid = self._spawn("warm", [theirs.fileno()])
            except BaseException:
                mine.close()
                raise
            finally:
                theirs.close()
            self._warm = pid, mine

    def tell(self):
        """Send the warm worker of a starter's spare its task (shim.forkserver.warm, spare),
        once; the first call() sends it first otherwise."""
        with self._lock:
            self._tell_locked()

    def _tell_locked(self):
        task, self._task = self._task, None
        if task is not None and self._warm is not None:
            try:
                _send(self._warm[1], *task)
            except OSError:  # dead, or it cannot have it: call() spawns a cold one
                from ociruntime.libcontainer import monitor

                pid, sock = self._warm
                self._warm = None
                sock.close()  # its EOF: it exits, if alive
                monitor.current().forget(pid)

    def call(self, request, stdio):
        from ociruntime.libcontainer import monitor

        with self._lock:
            self._tell_locked()
            warm, self._warm = self._warm, None
        pids = []

        def start(reply_fd, payload):
            fds = (reply_fd, payload, *stdio)
            if warm is not None:
                pids.append(warm[0])
                try:
                    _send(warm[1], b"request", fds)
                    return
                except OSError:  # it died waiting: a cold one instead
                    pass
            pids.append(self._spawn("spawned", fds))
        try:
            return _exchange(request, start)
        finally:
            if warm is not None:
                warm[1].close()
            for pid in pids:
                # it has answered (or died): the reaper reaps it, the reply does not wait
                # for its exit (~1.3 ms on a Create's path)
                monitor.current().forget(pid)

    @staticmethod
    def _spawn(entry, fds):
        """posix_spawn `entry(server pid)` of this module in a fresh interpreter with fds
        as its fds 3, 4, ... (0-2 stay the server's: its log), through the monitor; its
        pid.  No site (-S): the server's own sys.path is handed down, ~3 ms less."""
        import sys

        from ociruntime.libcontainer import monitor

        # moved above the targets first, so that no dup2 overwrites a source
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3 + len(fds)) for fd in fds]
        try:
            argv = [sys.executable, "-I", "-S", "-c",
                    f"import sys; sys.path[:] = {sys.path!r}; "
                    f"from shim.forkserver import {entry}; {entry}({os.getpid()})"]
            return monitor.current().start(lambda: os.posix_spawn(
                sys.executable, argv, os.environ,
                file_actions=[(os.POSIX_SPAWN_DUP2, fd, 3 + i) for i, fd in enumerate(high)]))
        finally:
            for fd in high:
                os.close(fd)

    def close(self):
        with self._lock:
            warm, self._warm = self._warm, None
        if warm is not None:
            warm[1].close()  # its EOF: it exits


def _exchange(request, deliver):
    """Hand request to a worker (deliver(reply socket fd, request memfd) passes both on),
    then read its answer."""
    payload = os.memfd_create("pyrunc-request", os.MFD_CLOEXEC)
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        try:
            os.write(payload, jsonlite.dumps(request).encode())
            deliver(theirs.fileno(), payload)
        finally:
            theirs.close()
            os.close(payload)
        data, received = _recv(mine, MAX_REPLY, 1)
    finally:
        mine.close()
    if not data:
        raise errors.Internal(f"{request['op']}: the shim's worker died")
    reply = jsonlite.loads(data)
    if "error" in reply:
        for fd in received:
            os.close(fd)
        raise errors.BY_NAME.get(reply.get("kind"), errors.Internal)(reply["error"])
    return reply, received


def spawned(server_pid):
    """A Spawner's worker: its request on fds 3-7 (Spawner.call).  Never returns."""
    _work([3, 4, 5, 6, 7], server_pid)


def warm(server_pid, bundle="", spare=False):
    """A Spawner's warm worker: the library's container module imported first (Create's;
    an Exec imports the rest itself), the task's bundle's config read and parsed
    (create.prepare_config) and the Create's sealed exec stage made (stage.make_ahead)
    while containerd has yet to send the Create; then its one request from the socket
    on fd 3, as a fork server's.  spare: the worker of a starter's spare (shim.starter),
    which has no task yet: the stage made, it waits on fd 3 for its task's bundle and
    environment (and its server's log, its fd 2) first.  Never returns."""
    prepared = None
    try:
        sc.prctl(sc.PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != server_pid:
            os._exit(0)  # the server died before the death signal was armed
        from ociruntime.libcontainer import container, create, stage  # noqa: F401  (Create's)

        sock = socket.socket(fileno=3)
        if spare:
            stage.make_ahead()
            data, fds = _recv(sock, 1 << 20, 1)
            if not data:
                os._exit(0)  # the spare is gone, unused
            task = jsonlite.loads(data)
            _become_task_worker(task, fds)
            bundle = task["bundle"]
        if bundle:
            prepared = create.prepare_config(bundle)
        stage.make_ahead()  # the Create's sealed stage, before the Create comes
        data, fds = _recv(sock, 64, 5)
        sock.close()
    except BaseException as e:
        _log(f"warm worker: {type(e).__name__}: {e}")
        os._exit(1)
    if not data:
        os._exit(0)  # the server is gone, or never needed it
    _work(fds, server_pid, prepared)


def _become_task_worker(task, fds):
    """A spare's worker given its task: the task's environment and its server's log (as
    the worker of a server forked for the task would have them) and the servers' name."""
    from shim import server

    if fds:
        os.dup2(fds[0], 2)
        os.close(fds[0])
    server.replace_environ(task["env"])
    server.set_process_name(server.SERVER_NAME)


def _serve(sock, server_pid):
    """The fork server's loop (single-threaded).  Never returns."""
    code = 0
    try:
        sc.prctl(sc.PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != server_pid:
            os._exit(0)  # the server died before the death signal was armed
        signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps the workers
        while True:
            data, fds = _recv(sock, 64, 5)
            if not data:
                break  # the server is gone
            try:
                pid = os.fork()
            except OSError as e:  # out of pids or memory: this request fails, not the server
                _answer_error(socket.socket(fileno=os.dup(fds[0])), e)
                pid = -1
            if pid == 0:
                sock.close()
                _work(fds, os.getppid())  # never returns
            for fd in fds:
                os.close(fd)
    except BaseException as e:
        code = 1
        _log(f"fork server: {type(e).__name__}: {e}")
    os._exit(code)


def _log(line):
    try:
        os.write(2, f"shim: {line}\n".encode())
    except OSError:
        pass


def _work(fds, parent_pid, prepared=None):
    """A worker: run one request, answer on its reply socket, exit."""
    # first: the worker waits for its own children (SIG_IGN would have them reaped)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    code = 0
    reply_sock = socket.socket(fileno=fds[0])
    try:
        sc.prctl(sc.PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent_pid:
            os._exit(1)  # its parent died before the death signal was armed
        request = jsonlite.loads(_read_all(fds[1]))
        stdio = tuple(fds[2:5])
        if request["op"] == "create":
            pid, console = _create(request, stdio, prepared)
        else:
            pid, console = _exec(request, stdio)
        _send(reply_sock, jsonlite.dumps({"pid": pid}).encode(),
              (console,) if console is not None else ())
    except BaseException as e:
        code = 1
        _answer_error(reply_sock, e)
    os._exit(code)


def _answer_error(reply_sock, e):
    """Send e, as a typed error, on reply_sock (and close it)."""
    if isinstance(e, errors.PyruncError):
        error = e
    elif isinstance(e, OSError):
        where = f": {e.filename}" if e.filename else ""
        error = errors.from_os_error(e, f"{e.strerror or e}{where}")
    else:
        error = errors.Internal(f"internal error: {type(e).__name__}: {e}")
    text = str(error)[:MAX_REPLY // 2]
    try:
        with reply_sock:
            _send(reply_sock, jsonlite.dumps({"error": text,
                                              "kind": errors.type_name(error)}).encode())
    except OSError as e:
        _log(f"cannot answer ({e}): {text}")


def _read_all(fd):
    chunks, offset = [], 0
    while chunk := os.pread(fd, 1 << 16, offset):
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


def _create(request, stdio, prepared=None):
    from ociruntime.libcontainer.container import Container, CreateOptions

    opts = CreateOptions(bundle=request["bundle"], no_pivot=request["no_pivot"],
                         no_new_keyring=request["no_new_keyring"])
    opts.stdio = stdio
    opts.prepared = prepared  # create checks it is this bundle's config, unchanged
    masters = []
    if request["terminal"]:
        opts.keep_console = masters.append
    pid = Container(request["root"], request["id"]).create(opts)
    return pid, masters[0] if masters else None


def _exec(request, stdio):
    from ociruntime import config
    from ociruntime.libcontainer.container import Container
    from ociruntime.libcontainer.execute import ExecOptions, exec_in

    spec = config.decode_process(request["spec"].encode())
    opts = ExecOptions(detach=True)
    opts.stdio = stdio
    masters = []
    if spec.terminal:
        opts.keep_console = masters.append
    exec_in(Container(request["root"], request["id"]), spec, opts)
    return opts.pid, masters[0] if masters else None
