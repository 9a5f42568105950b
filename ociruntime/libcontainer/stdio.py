"""The foreground program's stdio without a terminal: pipes the runtime copies, as runc.

runc's `run` and `exec` in the foreground give the program three pipes (owned by the
container's root) and copy them to and from their own stdio (runc's setupProcessPipes), so
the program never holds the caller's files: /proc/self/fd names no host path and can
reopen none, and what it writes is not charged to its memory cgroup as tmpfs pages.
Detached, the caller's stdio is passed on as it is (both runtimes).
"""

import posix
import select

CHUNK = 65536


class Pipes:
    """child: the program's (stdin read end, stdout and stderr write ends); the runtime keeps
    the other ends and closes the child's once the program holds them."""

    def __init__(self):
        stdin_r, self.stdin_w = posix.pipe2(posix.O_CLOEXEC)
        self.stdout_r, stdout_w = posix.pipe2(posix.O_CLOEXEC)
        self.stderr_r, stderr_w = posix.pipe2(posix.O_CLOEXEC)
        self.child = (stdin_r, stdout_w, stderr_w)

    def started(self, pid):
        """The program (pid, or the process whose user namespace it shares) holds its ends:
        give them to the container's root, as runc, so that it can reopen /dev/stdout in a
        user namespace, and close ours."""
        child, self.child = self.child, ()
        try:
            uid, gid = _root_of(pid, "uid_map"), _root_of(pid, "gid_map")
            if (uid, gid) != (0, 0):
                for fd in child:
                    posix.fchown(fd, uid, gid)
        finally:
            for fd in child:
                posix.close(fd)

    def close(self):
        for fd in (*self.child, self.stdin_w, self.stdout_r, self.stderr_r):
            if fd >= 0:
                posix.close(fd)
        self.child = ()
        self.stdin_w = self.stdout_r = self.stderr_r = -1

    def relay(self, pid):
        """Copy our stdin to the program and its stdout and stderr to ours until it exits,
        then what it left in the pipes.  Our stdin is read only when what we read last
        went in (the program may not read it), and its end closes the program's."""
        pidfd = posix.pidfd_open(pid)
        outputs = {self.stdout_r: 1, self.stderr_r: 2}
        posix.set_blocking(self.stdin_w, False)
        pending = b""
        poller = select.poll()
        for fd in (*outputs, pidfd, 0):
            poller.register(fd, select.POLLIN)
        try:
            while True:
                events = dict(poller.poll())
                if pidfd in events:
                    break
                for fd, target in outputs.items():
                    if fd in events:
                        data = _read(fd)
                        if data:
                            posix.write(target, data)
                        else:
                            poller.unregister(fd)
                if 0 in events:
                    poller.unregister(0)
                    pending = b"" if events[0] & select.POLLNVAL else _read(0)
                    if pending:
                        poller.register(self.stdin_w, select.POLLOUT)
                    else:
                        self._close_stdin()
                elif self.stdin_w in events:
                    try:
                        pending = pending[posix.write(self.stdin_w, pending):]
                    except BlockingIOError:
                        continue
                    except OSError:  # EPIPE: the program closed its stdin
                        pending = b""
                    if not pending:
                        poller.unregister(self.stdin_w)
                        if events[self.stdin_w] & (select.POLLERR | select.POLLHUP):
                            self._close_stdin()
                        else:
                            poller.register(0, select.POLLIN)
            for fd, target in outputs.items():
                drain(fd, target)
        finally:
            posix.close(pidfd)

    def _close_stdin(self):
        """Our stdin ended (or the program's did): the program sees EOF."""
        posix.close(self.stdin_w)
        self.stdin_w = -1


def _read(fd):
    try:
        return posix.read(fd, CHUNK)
    except OSError:
        return b""


def drain(fd, target):
    """Copy what the program wrote just before it exited from fd (a pipe or a pty master)
    to target; a process it left may hold fd open, so only what is there now."""
    posix.set_blocking(fd, False)
    while True:
        try:
            data = posix.read(fd, CHUNK)
        except OSError:
            return
        if not data:
            return
        posix.write(target, data)


def _root_of(pid, name):
    """The host id of the container's id 0 in /proc/PID/uid_map (or gid_map); 0 outside a
    user namespace."""
    try:
        with open(f"/proc/{pid}/{name}") as f:
            for line in f:
                inside, outside, _count = line.split()
                if inside == "0":
                    return int(outside)
    except (OSError, ValueError):
        pass
    return 0


def foreground_pipes(terminal, detach, stdio):
    """Pipes for a foreground process without a terminal whose caller gave no stdio
    of its own (the shim does), as runc's run and exec; None otherwise."""
    if terminal or detach or stdio is not None:
        return None
    return Pipes()
