"""The process monitor: every wait for a child of the runtime (hooks, id-map and net-device
helpers, the fork chain's intermediate, exec's stage) goes through it, so that a caller
with a reaper of its own (the shim: waitpid(-1) in its main thread) gets every exit status
exactly once and the library never loses one to it (go-runc's Monitor is the model).

    pid = monitor.current().start(spawn)   # spawn() makes the child and returns its pid;
                                           # the pid is known before the child can be reaped
    status = monitor.current().wait(pid, timeout=None)   # a wait status; None on timeout
    status, output = monitor.run(spawn, stdin, timeout)  # a program run to its end

The CLI uses DIRECT (plain waitpid).  A long-lived caller installs its own with install();
it is used in that process only: a forked child (the fork chain, a fork server's worker)
has no reaper thread and waits directly again.
"""

import posix

_installed = None
_installed_pid = 0


class DirectMonitor:
    """waitpid on the pid itself: for a process with no other reaper."""

    def start(self, spawn):
        return spawn()

    def wait(self, pid, timeout=None):
        if timeout is not None:
            pidfd = posix.pidfd_open(pid)
            try:
                if not _readable(pidfd, timeout):
                    return None
            finally:
                posix.close(pidfd)
        return posix.waitpid(pid, 0)[1]


def _readable(fd, timeout):
    import select

    return _ready(fd, select.POLLIN, timeout)


def _ready(fd, events, timeout):
    """Whether fd has one of the poll events within timeout seconds (None: no limit);
    poll(2) takes an int of milliseconds (~24.8 days), so a longer timeout waits in
    slices."""
    import select
    import time

    poller = select.poll()
    poller.register(fd, events)
    if timeout is None:
        return bool(poller.poll())
    deadline = time.monotonic() + timeout
    while True:
        left_ms = max(0, (deadline - time.monotonic()) * 1000)
        if poller.poll(min(left_ms, 2**31 - 1)):
            return True
        if not left_ms:
            return False  # (a timeout of 0 still looks once)


DIRECT = DirectMonitor()


def install(monitor):
    """Make monitor the one of this process (the shim's reaper, at startup)."""
    global _installed, _installed_pid
    _installed, _installed_pid = monitor, posix.getpid()


def current():
    if _installed is not None and _installed_pid == posix.getpid():
        return _installed
    return DIRECT


def fork():
    """os.fork() through the monitor: the parent gets the child's pid, registered; the
    child gets 0."""
    return current().start(posix.fork)


def fork_into(cgroup_fd):
    """fork() through the monitor, the child created in the cgroup2 directory open at
    cgroup_fd where the kernel can (syscalls.fork_into_cgroup), else os.fork():
    (pid or 0, whether the child was created there)."""
    from ociruntime.libcontainer.syscalls import fork_into_cgroup

    into = []

    def spawn():
        pid = fork_into_cgroup(cgroup_fd)
        if pid is None:
            return posix.fork()
        into.append(pid)
        return pid

    return current().start(spawn), bool(into)


def clone_into(cgroup_fd, flags):
    """fork() through the monitor, the child created in new namespaces (flags: CLONE_NEW*)
    and, with cgroup_fd >= 0, in that cgroup2 directory (syscalls.fork_into_cgroup): pid
    or 0; None when the kernel made no such child (the caller forks another way)."""
    from ociruntime.libcontainer.syscalls import fork_into_cgroup

    return current().start(lambda: fork_into_cgroup(cgroup_fd, flags))


def reap(pid):
    """Wait for a child whose status nobody needs (ChildProcessError: gone already)."""
    try:
        return current().wait(pid)
    except ChildProcessError:
        return None


def run(spawn, stdin=b"", timeout=None):
    """Run a program to its end through the monitor: spawn(stdin_fd, output_fd) starts it
    with those as its fd 0 and its fds 1 and 2 and returns its pid (exec'd at once, by
    posix_spawn or subprocess: no Python runs in the child, so this is safe in a threaded
    process).  stdin is written to a pipe (the program need not read it).  Returns (wait
    status, the first 4 KiB of its output); status None if it outlived timeout (it is
    killed and reaped).  What spawn raises (OSError, ValueError) goes to the caller."""
    import time

    mon = current()
    out = posix.memfd_create("pyrunc-output", posix.MFD_CLOEXEC)
    read_end, write_end = posix.pipe2(posix.O_CLOEXEC)
    try:
        try:
            pid = mon.start(lambda: spawn(read_end, out))
        finally:
            posix.close(read_end)
        deadline = None if timeout is None else time.monotonic() + timeout
        written = _feed(write_end, stdin, deadline)
        posix.close(write_end)
        write_end = -1
        status = None
        if written:
            status = mon.wait(pid, None if deadline is None
                              else max(0, deadline - time.monotonic()))
        if status is None:
            posix.kill(pid, 9)
            mon.wait(pid)
        return status, posix.pread(out, 4096, 0).decode(errors="replace")
    finally:
        if write_end >= 0:
            posix.close(write_end)
        posix.close(out)


def _feed(fd, data, deadline):
    """Write data to the program's stdin pipe, never past deadline (monotonic; None: no
    limit): a program that does not read a stdin larger than the pipe must not hold its
    timeout off.  False when the deadline came first; a program that exits or closes
    its stdin unread is fed (EPIPE)."""
    import select
    import time

    view = memoryview(data)
    posix.set_blocking(fd, False)
    while view:
        try:
            view = view[posix.write(fd, view):]
            continue
        except BrokenPipeError:
            return True
        except BlockingIOError:
            pass
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            return False
        # POLLOUT once there is room, POLLERR once the reader is gone
        if not _ready(fd, select.POLLOUT, left):
            return False
    return True


def posix_spawner(path, argv, env):
    """A spawn for run(): posix_spawn of path with run()'s stdin and output."""
    return lambda stdin, out: posix.posix_spawn(path, argv, env, file_actions=[
        (posix.POSIX_SPAWN_DUP2, stdin, 0), (posix.POSIX_SPAWN_DUP2, out, 1),
        (posix.POSIX_SPAWN_DUP2, out, 2)])


def describe(status):
    """A wait status in words: "exit status N" or "killed by signal N"."""
    if posix.WIFSIGNALED(status):
        return f"killed by signal {posix.WTERMSIG(status)}"
    return f"exit status {posix.WEXITSTATUS(status)}"


def fork_or_close(*ends, spawn=None):
    """fork() (or spawn(), another way of making the child, returning what it returns)
    for a child that is to get some of ends (sockets, pipe fds as ints): when the fork
    itself fails (EAGAIN at a pids limit) they are all closed before the error goes up,
    none left open in the caller."""
    try:
        return fork() if spawn is None else spawn()
    except BaseException:
        for end in ends:
            if isinstance(end, int):
                posix.close(end)
            else:
                end.close()
        raise
