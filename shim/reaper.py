"""The child reaper: the shim is a child subreaper, so every container init and exec'd
process comes back to it when its short-lived parent (the runtime's fork chain, the exec
stage) exits.  One loop reaps them all and hands each exit to whoever registered the pid.

An exit can arrive before the pid is registered (a process that dies at once, or one whose
pid the registering thread has not learnt yet): it is kept for a while as unclaimed and
delivered when the pid is registered.

The reaper is also the runtime library's process monitor in this process
(ociruntime.libcontainer.monitor): a hook or helper the library starts here is started
through start(), under the reaper's lock, so its pid is registered before the reaper can
see it exit, and the library's wait() gets its status from the reaper, never by a
waitpid of its own that would race this one.
"""

import os
import signal
import threading
import time

UNCLAIMED_TTL = 60.0


def exit_code(status):
    """A wait status as containerd reports it: the exit code, or 128 + the signal."""
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


class _Waiter:
    """monitor.wait()'s side of one started pid."""

    __slots__ = ("done", "status", "exited_at", "forgotten")

    def __init__(self):
        self.done = threading.Event()
        self.status = None
        self.exited_at = None  # monotonic time of the exit
        self.forgotten = False  # nobody will wait(): its exit is dropped

    def __call__(self, code, when, status):
        self.status = status
        self.exited_at = time.monotonic()
        self.done.set()


class Reaper:
    def __init__(self):
        self._lock = threading.Lock()
        self._waiting = {}  # pid -> callback(exit_code, exited_at_ns)
        self._started = {}  # pid -> _Waiter, for the monitor interface
        self._unclaimed = {}  # pid -> (exit_code, exited_at_ns, monotonic time)
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)

    def register(self, pid, callback):
        """Call callback(exit_code, exited_at_ns) once pid has exited (maybe at once)."""
        with self._lock:
            early = self._unclaimed.pop(pid, None)
            if early is None:
                self._waiting[pid] = callback
                return
        callback(early[0], early[1])

    # --- the runtime library's monitor (ociruntime.libcontainer.monitor) -------------------
    def start(self, spawn):
        """Run spawn() (makes a child, returns its pid) under the lock: the reaper cannot
        hand its exit to anyone else before it is registered here."""
        with self._lock:
            pid = spawn()
            if pid:  # 0: the forked child itself
                self._unclaimed.pop(pid, None)  # an older process's, with a reused pid
                self._started[pid] = _Waiter()
        return pid

    def wait(self, pid, timeout=None):
        """The wait status of a pid start() made; None if it has not exited in time."""
        with self._lock:
            waiter = self._started.get(pid)
        if waiter is None:
            raise ChildProcessError(f"pid {pid} was not started through the monitor")
        if not waiter.done.wait(timeout):
            return None
        with self._lock:
            self._started.pop(pid, None)
        return waiter.status

    def forget(self, pid):
        """The caller of start() will not wait() for pid (a worker that has answered: the
        reply does not wait for its exit): its exit is dropped, now if it has exited."""
        with self._lock:
            waiter = self._started.get(pid)
            if waiter is None:
                return
            if waiter.done.is_set():
                del self._started[pid]
            else:
                waiter.forgotten = True

    def reap(self):
        """Reap every child that has exited; deliver the exits."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            code, when = exit_code(status), time.time_ns()
            with self._lock:
                waiter = self._started.get(pid)
                if waiter is not None and waiter.forgotten:
                    del self._started[pid]
                    continue
                if waiter is not None and waiter.done.is_set():
                    # an older process's exit that nobody collected: this pid is reused
                    del self._started[pid]
                    waiter = None
                callback = self._waiting.pop(pid, None)
                if callback is None and waiter is None:
                    self._unclaimed[pid] = (code, when, time.monotonic())
            if waiter is not None:
                waiter(code, when, status)
            elif callback is not None:
                try:
                    callback(code, when)
                except Exception as e:  # one bad callback must not stop the reaper
                    os.write(2, f"shim: exit callback for {pid}: {e}\n".encode())
        self._forget_old()

    def _forget_old(self):
        """Drop exits nobody claimed and statuses nobody collected (a caller of start()
        that gave up before its wait(), e.g. an interrupted exec) after UNCLAIMED_TTL."""
        limit = time.monotonic() - UNCLAIMED_TTL
        with self._lock:
            for pid in [p for p, v in self._unclaimed.items() if v[2] < limit]:
                del self._unclaimed[pid]
            for pid in [p for p, w in self._started.items()
                        if w.done.is_set() and w.exited_at < limit]:
                del self._started[pid]

    def run(self, stop_event):
        """The main thread's loop: wake on SIGCHLD (through a wakeup fd), reap, repeat
        until stop_event is set.  Signal handlers run only in the main thread."""
        import select

        signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        self.reap()
        while not stop_event.is_set():
            ready, _, _ = select.select([self._wake_r], [], [], 1.0)
            if ready:
                try:
                    while os.read(self._wake_r, 512):
                        pass
                except BlockingIOError:
                    pass
            self.reap()

    def wake(self):
        try:
            os.write(self._wake_w, b"\0")
        except BlockingIOError:
            pass
