"""The shim daemon: a ttrpc server for the task service, the reaper in the main thread, and
an idle timer.

The server serves every task of one containerd namespace.  It stays up a while after its
last task is deleted (PYRUNC_SHIM_IDLE_TIMEOUT seconds, default 30), so that a stream of
short containers keeps finding it warm (a server of one task's own group, which no other
task will find, goes at once); it exits only when it has no task, no open
connection and no recent call, holding the same lock `start` takes, so a `start` never
hands containerd the address of a server that is about to go.
"""

import fcntl
import os
import signal
import sys
import threading
import time

from ociruntime.libcontainer import syscalls as sc

IDLE_TIMEOUT = float(os.environ.get("PYRUNC_SHIM_IDLE_TIMEOUT", "30"))
OOM_POLL = 1.0
SERVER_NAME = "pyrunc-shim"  # the servers' process name (/proc/PID/comm)


def serve(listener_fd, path, root, namespace, containerd_address, publish_binary,
          ttrpc_address, debug=False, idle_timeout=IDLE_TIMEOUT, warm_worker="",
          warm_task=None):
    """warm_task: (message, fds) for the warm worker of a starter's spare (its task:
    shim.forkserver.warm, spare), sent once this server accepts, so that its config's
    parse is not beside this start-up on the host's cores (or first by a Create)."""
    from ociruntime.libcontainer import monitor
    from shim.forkserver import ForkServer, Spawner
    from shim.reaper import Reaper

    set_process_name(SERVER_NAME)
    sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1)
    os.set_inheritable(listener_fd, False)  # start's hand-over is done: no child gets it
    reaper = Reaper()
    # every child the library or the server starts here (hooks, the publish binary, logging
    # binaries, workers) is started and waited for through the reaper: no wait races its
    # waitpid(-1)
    monitor.install(reaper)
    # the process model (shim/__init__.py): before the first thread, fork the
    # single-threaded fork server that every container comes from; the server of one
    # task's own group (idle timeout 0: no other task finds it) spawns its few workers
    # instead and keeps no process for them; the first (its Create's) starts with the
    # server: spawned by start before its exec ("PID:FD"), else here, before what follows
    if idle_timeout:
        workers = ForkServer(close_in_child=(listener_fd,))
    else:
        workers = Spawner(warm=tuple(map(int, warm_worker.split(":"))) if warm_worker
                          else True, task=warm_task)
    import socket

    from ociruntime.libcontainer import cgroups
    from shim import ttrpc
    from shim.events import Publisher
    from shim.service import INLINE, SERVICE, TaskService

    listener = socket.socket(fileno=listener_fd)
    bound = _inode(path)  # start bound it before the fork: this server's own socket file
    stop = threading.Event()
    retired = threading.Event()  # the idle exit unlinked the socket itself
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    publisher = Publisher(namespace, containerd_address, publish_binary, ttrpc_address)
    service = TaskService(root, reaper, publisher, cgroups.host_is_v2(), workers,
                          debug=debug)
    server = ttrpc.Server()
    server.register_service(SERVICE, service.handlers(), inline=INLINE)
    # started without a handshake (ttrpc.start_thread): containerd's Create is waiting for
    # the accept, and this thread goes on to the reaper's loop at once
    ttrpc.start_thread(server.serve, listener)
    ttrpc.start_thread(_housekeeping, service, server, path, stop, retired, reaper,
                       idle_timeout)
    sys.stderr.write(f"shim: serving {namespace} on {path} (pid {os.getpid()})\n")
    sys.stderr.flush()
    if warm_task is not None:
        workers.tell()
    reaper.run(stop)
    if not retired.is_set():
        _release(path, bound)
    server.shutdown(timeout=5.0)
    workers.close()
    publisher.close()
    sys.stderr.write("shim: exiting\n")
    return 0


def set_process_name(name):
    """The process's name (comm, as ps shows it): a server forked by the starter carries
    the starter's command line, this tells them apart (and from the exec'd `... serve`
    nothing else does)."""
    try:
        with open("/proc/self/comm", "w") as f:
            f.write(name)
    except OSError:
        pass


def replace_environ(env):
    """This process's environment (os.environ, posix.environ, the C library's) becomes
    env, with the starter's one malloc arena: a server (or its worker) forked by the
    starter takes its task's request's environment, as an exec'd one would have it."""
    import posix

    env = dict(env, MALLOC_ARENA_MAX="1")
    if env == os.environ:
        return  # the same as the starter's (launched by the same containerd): as it is
    os.environ.clear()
    os.environ.update(env)
    encoding, errors = sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()
    posix.environ.clear()
    posix.environ.update({k.encode(encoding, errors): v.encode(encoding, errors)
                          for k, v in env.items()})


def _housekeeping(service, server, path, stop, retired, reaper, idle_timeout):
    """OOM events, and the idle exit."""
    while not stop.wait(OOM_POLL):
        service.poll_oom()
        if server.connection_count() or not service.idle():
            service.last_activity = time.monotonic()
            continue
        if time.monotonic() - service.last_activity < idle_timeout:
            continue
        if _retire(path, service, server):
            retired.set()
            stop.set()
            reaper.wake()


def _inode(path):
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _release(path, bound):
    """On a SIGTERM or SIGINT: unlink the socket, as containerd's Go shims remove theirs
    when they exit, under start's lock (a start sees a live server or no socket), if the
    path is still the file start bound for this server.  (After the idle exit, which
    unlinked it itself, a later server's socket may be there, even under a reused inode
    number: serve does not call this then.)  A killed server's socket is left to the
    next start or delete (cli._remove_dead_socket)."""
    lock_fd = os.open(os.path.dirname(path), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        if bound is not None and _inode(path) == bound:
            os.unlink(path)
    finally:
        os.close(lock_fd)


def _retire(path, service, server):
    """Unlink the socket under start's lock, if still idle; True if the server may go."""
    lock_fd = os.open(os.path.dirname(path), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # a start is looking at the socket right now
        time.sleep(0.05)  # a start that just probed the socket: let its accept land
        if (server.connection_count() or not service.idle()
                or time.monotonic() - server.last_accept < 2.0):
            return False
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        return True
    finally:
        os.close(lock_fd)
