"""A supervised process's stdio, with the semantics of containerd-shim-runc-v2
(containerd's pkg/process/io.go and init.go), without a copy loop per container.

containerd names where the output goes in the task's stdout (and stderr):
- a fifo path (or fifo://path): containerd, or the client (ctr, the CRI plugin), reads it;
- file:///path: a log file, stdout and stderr both appended to it;
- binary:///path?arg=value: a logging binary, started here with CONTAINER_ID and
  CONTAINER_NAMESPACE as its whole environment, the read ends of a stdout and a stderr pipe
  as its fds 3 and 4, and the write end of a pipe as fd 5 that it closes (or writes a byte
  to) once it is ready; the process starts only after that.  stdin is not served.

runc's shim copies between the fifos and pipes of its own; what the process sees of that
is kept here by holding the fifos' other ends open:
- stdout/stderr fifos: the shim holds a read end it never reads, so a write after the
  client went (ctr -d exiting, a killed `ctr run`) does not fail with EPIPE/SIGPIPE; the
  fifo fills and the writer blocks, as it does behind runc's shim once its copy blocks.
- stdin fifo: the shim holds a write end, so the process sees EOF only when containerd
  asks for it (CloseIO, sent by a client after the end of its input) or the process is
  deleted, not when a detached client exits.
The fifos themselves are the process's fds: no thread and no buffer per container.  Only
a terminal process, which gets a pty, has threads copying between the master and the
fifos (or the log file, or the logging binary's pipe).
"""

import errno
import fcntl
import os
import stat
import threading

LOGGER_READY_TIMEOUT = 30.0
LOGGER_STOP_TIMEOUT = 12.0  # runc's shim gives its logger 12 s to flush after SIGTERM


class StdioError(Exception):
    """A stdio URI that cannot be served (bad scheme, missing logging binary)."""


def _nonblocking_open(path, flags):
    fd = os.open(path, flags | os.O_NONBLOCK | os.O_CLOEXEC)
    os.set_blocking(fd, True)
    return fd


def _is_fifo(path):
    try:
        return stat.S_ISFIFO(os.stat(path).st_mode)
    except FileNotFoundError:
        return False


def _high_fd(fd):
    """A close-on-exec copy of fd numbered 10 or more, so that moving fds to 3, 4, 5 in a
    new process never overwrites one still to be moved."""
    return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)


class _Logger:
    """A logging binary (binary:// URI) serving one process's stdout and stderr."""

    def __init__(self, uri, task_id, namespace):
        from urllib.parse import parse_qsl, unquote

        from ociruntime.libcontainer import monitor

        self.path = unquote(uri.path)
        args = []
        for key, value in parse_qsl(uri.query, keep_blank_values=True):
            args += [key, value]
        self.out_r, self.out_w = os.pipe2(os.O_CLOEXEC)
        self.err_r, self.err_w = os.pipe2(os.O_CLOEXEC)
        ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
        self.monitor = monitor.current()  # the server's reaper: its exit comes from there
        moved = []
        try:
            moved = [_high_fd(fd) for fd in (self.out_r, self.err_r, ready_w)]
            null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
            moved.append(null)
            actions = [(os.POSIX_SPAWN_DUP2, null, 0), (os.POSIX_SPAWN_DUP2, null, 1),
                       (os.POSIX_SPAWN_DUP2, null, 2)]
            actions += [(os.POSIX_SPAWN_DUP2, fd, 3 + i) for i, fd in enumerate(moved[:3])]
            try:
                self.pid = self.monitor.start(lambda: os.posix_spawn(
                    self.path, [self.path, *args],
                    {"CONTAINER_ID": task_id, "CONTAINER_NAMESPACE": namespace},
                    file_actions=actions, setsid=True))
            except OSError as e:
                raise StdioError(f"cannot start the logging binary {self.path}: "
                                 f"{e.strerror}") from None
        except BaseException:
            os.close(ready_r)
            self.close_pipes()
            raise
        finally:
            for fd in moved:
                os.close(fd)
            os.close(ready_w)
            os.close(self.out_r)  # the logger has them now
            os.close(self.err_r)
        # the logger is ready when it writes a byte or closes fd 5 (or dies)
        try:
            import select

            # poll, not select: a shim serving many tasks has fds above FD_SETSIZE
            poller = select.poll()
            poller.register(ready_r, select.POLLIN)
            poller.poll(LOGGER_READY_TIMEOUT * 1000)
        finally:
            os.close(ready_r)

    def close_pipes(self):
        for name in ("out_w", "err_w"):
            fd = getattr(self, name, -1)
            if fd >= 0:
                os.close(fd)
                setattr(self, name, -1)

    def stop(self):
        """Close our write ends (EOF once the process's copies are gone too), then ask the
        logger to finish: SIGTERM, and SIGKILL if it has not exited after 12 s."""
        import signal

        self.close_pipes()
        if self.monitor.wait(self.pid, 0) is not None:
            return  # it has exited (and is reaped): its pid is no longer its own
        for signum, timeout in ((signal.SIGTERM, LOGGER_STOP_TIMEOUT), (signal.SIGKILL, None)):
            try:
                os.kill(self.pid, signum)
            except ProcessLookupError:
                pass  # exited and reaped just now: the wait below has its status
            if self.monitor.wait(self.pid, timeout) is not None:
                return


class ProcessIO:
    def __init__(self, stdin="", stdout="", stderr="", terminal=False, task_id="",
                 namespace=""):
        self.paths = (stdin, stdout, stderr)
        self.terminal = terminal
        self.task_id = task_id
        self.namespace = namespace
        self._lock = threading.Lock()
        self._child_fds = []
        self._held = []  # the fifo ends the shim keeps open for the process's lifetime
        self._stdin_writer = -1
        self._stdin_closed = False
        self._logger = None
        self._term = (-1, -1)
        self._master = -1
        self._out_done = threading.Event()
        self._out_done.set()

    # --- before the process exists --------------------------------------------------------
    def _hold(self, fd):
        self._held.append(fd)
        return fd

    def _child(self, fd):
        self._child_fds.append(fd)
        return fd

    def _stdin_fd(self, path, null):
        """The read end of the stdin fifo for the process, and our end held open first:
        O_RDWR (a writer that opens without a reader), so that containerd's writer, whose
        open completes only with a reader there, cannot copy, close and send CloseIO
        before we hold it.  A CloseIO already received leaves nothing to hold."""
        if not path:
            return null
        with self._lock:
            if not self._stdin_closed:
                self._stdin_writer = self._hold(_nonblocking_open(path, os.O_RDWR))
        return self._child(_nonblocking_open(path, os.O_RDONLY))

    def _output_fd(self, path, null):
        """A writable fd for the process's stdout or stderr: a fifo (with our read end
        held), or a plain file appended to."""
        if not path:
            return null
        if _is_fifo(path):
            self._hold(_nonblocking_open(path, os.O_RDONLY))
            return self._child(_nonblocking_open(path, os.O_WRONLY))
        return self._child(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC))

    def _sinks(self, null):
        """(stdin, stdout, stderr) fds for the process, by the stdout URI's scheme."""
        stdin, stdout, stderr = self.paths
        if not stdout or stdout.startswith("/"):  # a plain path, as containerd's fifos:
            # no URI to parse, and no urllib (~3.5 ms of every server's start-up)
            return (self._stdin_fd(stdin, null), self._output_fd(stdout, null),
                    self._output_fd(stderr, null))
        from urllib.parse import unquote, urlsplit

        uri = urlsplit(stdout)
        scheme = uri.scheme or "fifo"
        if scheme == "fifo":
            if uri.scheme:
                stdout, stderr = unquote(uri.path), unquote(urlsplit(stderr).path)
            return (self._stdin_fd(stdin, null), self._output_fd(stdout, null),
                    self._output_fd(stderr, null))
        if scheme == "file":
            path = unquote(uri.path)
            os.makedirs(os.path.dirname(path) or "/", 0o755, exist_ok=True)
            fd = self._child(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT
                                     | os.O_CLOEXEC, 0o644))
            return (self._stdin_fd(stdin, null), fd, fd)
        if scheme == "binary":
            self._logger = _Logger(uri, self.task_id, self.namespace)
            return (null, self._logger.out_w, self._logger.err_w)
        raise StdioError(f"unknown STDIO scheme {scheme}")

    def child_fds(self):
        """The three fds the new process gets as 0, 1, 2 (closed again by after_spawn)."""
        null = self._child(os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC))
        if not self.terminal:
            return self._sinks(null)
        # the pty replaces all three; attach_console's threads serve stdin and stdout
        stdin, stdout, _ = self._sinks(null)
        self._term = tuple(-1 if fd == null else fd for fd in (stdin, stdout))
        return (null, null, null)

    def after_spawn(self):
        """The process has its copies: ours go (a terminal's, once its copies run)."""
        if self.terminal:
            return
        for fd in self._child_fds:
            os.close(fd)
        self._child_fds = []
        if self._logger is not None:
            self._logger.close_pipes()  # the process holds the write ends now

    # --- a terminal -----------------------------------------------------------------------
    def attach_console(self, master):
        """Serve the pty master (owned from now on): stdin fifo -> master, master ->
        stdout (fifo, file or logger)."""
        stdin, stdout = self._term
        self._master = master
        # each thread owns its fds (dups): no thread ever uses a number another thread may
        # have closed and the kernel handed out again
        if stdout >= 0:
            self._out_done.clear()
            threading.Thread(target=self._copy_out, args=(os.dup(master), os.dup(stdout)),
                             daemon=True, name="pty-out").start()
        if stdin >= 0:
            threading.Thread(target=self._copy_in, args=(os.dup(stdin), os.dup(master)),
                             daemon=True, name="pty-in").start()
        for fd in self._child_fds:
            os.close(fd)
        self._child_fds = []

    def _copy_out(self, master, out):
        try:
            while True:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: every slave end is closed, the process is gone
                    break
                if not data:
                    break
                try:
                    os.write(out, data)
                except OSError:
                    break
        finally:
            os.close(out)
            os.close(master)
            self._out_done.set()

    def _copy_in(self, fd, master):
        try:
            while True:
                data = os.read(fd, 65536)
                if not data:
                    break
                os.write(master, data)
        except OSError:
            pass
        finally:
            os.close(fd)
            os.close(master)

    def resize(self, width, height):
        if self._master < 0:
            return
        import struct
        import termios

        fcntl.ioctl(self._master, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))

    # --- afterwards -----------------------------------------------------------------------
    def close_stdin(self):
        """CloseIO: our write end of the stdin fifo goes, so the process reads EOF once
        containerd's is closed too."""
        with self._lock:
            self._stdin_closed = True
            fd, self._stdin_writer = self._stdin_writer, -1
            if fd >= 0:
                self._held.remove(fd)
                os.close(fd)

    def wait_output(self, timeout=2.0):
        """A terminal's last output reaches the fifo before the exit is reported."""
        self._out_done.wait(timeout)

    def close(self):
        """The process is deleted: every end we held, and the logging binary."""
        for fd in self._child_fds:
            os.close(fd)
        self._child_fds = []
        with self._lock:
            held, self._held = self._held, []
            self._stdin_writer = -1
            if self._master >= 0:
                os.close(self._master)
                self._master = -1
        for fd in held:
            try:
                os.close(fd)
            except OSError as e:
                if e.errno != errno.EBADF:
                    raise
        logger, self._logger = self._logger, None
        if logger is not None:
            logger.stop()
