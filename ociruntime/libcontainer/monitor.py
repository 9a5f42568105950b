"""The process monitor: every wait for a child of the runtime (hooks, id-map and net-device
helpers, the fork chain's intermediate, exec's stage) goes through it, so that a caller
with a reaper of its own (the shim: waitpid(-1) in its main thread) gets every exit status
exactly once and the library never loses one to it (go-runc's Monitor is the model).

    pid = monitor.current().start(spawn)   # spawn() makes the child and returns its pid;
                                           # the pid is known before the child can be reaped
    status = monitor.current().wait(pid, timeout=None)   # a wait status; None on timeout

The CLI uses DIRECT (plain waitpid).  A long-lived caller installs its own with install();
it is used in that process only: a forked child (the fork chain, a fork server's worker)
has no reaper thread and waits directly again.
"""

import os

_installed = None
_installed_pid = 0


class DirectMonitor:
    """waitpid on the pid itself: for a process with no other reaper."""

    def start(self, spawn):
        return spawn()

    def wait(self, pid, timeout=None):
        if timeout is not None:
            pidfd = os.pidfd_open(pid)
            try:
                if not _readable(pidfd, timeout):
                    return None
            finally:
                os.close(pidfd)
        return os.waitpid(pid, 0)[1]


def _readable(fd, timeout):
    """Whether fd is readable within timeout seconds; poll(2) takes an int of milliseconds
    (~24.8 days), so a longer timeout waits in slices."""
    import select
    import time

    poller = select.poll()
    poller.register(fd, select.POLLIN)
    deadline = time.monotonic() + timeout
    while True:
        left_ms = (deadline - time.monotonic()) * 1000
        if left_ms <= 0:
            return False
        if poller.poll(min(left_ms, 2**31 - 1)):
            return True


DIRECT = DirectMonitor()


def install(monitor):
    """Make monitor the one of this process (the shim's reaper, at startup)."""
    global _installed, _installed_pid
    _installed, _installed_pid = monitor, os.getpid()


def current():
    if _installed is not None and _installed_pid == os.getpid():
        return _installed
    return DIRECT


def fork():
    """os.fork() through the monitor: the parent gets the child's pid, registered; the
    child gets 0."""
    return current().start(os.fork)


def reap(pid):
    """Wait for a child whose status nobody needs (ChildProcessError: gone already)."""
    try:
        return current().wait(pid)
    except ChildProcessError:
        return None
