"""A supervised process's stdio: the fifos containerd made, handed over without copying.

containerd opens the read side of the stdout/stderr fifos and the write side of stdin
before it asks for the task, so the shim can give the fifos themselves to the container as
its fds 0, 1 and 2: no copy loop, no buffer, no thread per container.  Only a terminal
process, which gets a pty, has two threads copying between the pty master and the fifos.

stdin keeps runc's shim's semantics: the process reads what containerd writes and sees EOF
when containerd closes its write end.  containerd opens that end with a blocking open in
the background before it sends Create or Exec, and a writer blocked in open(2) already
counts as a writer, so the process cannot see a premature EOF.  containerd closes its end
before it sends CloseIO, which therefore has nothing left to do for a fifo handed over.
"""

import errno
import fcntl
import os
import threading


def _open_writer(path):
    """The write side of a fifo containerd reads, never blocking on open: when no reader
    is there (containerd gone), O_RDWR keeps the writes from failing."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        if e.errno != errno.ENXIO:
            raise
        fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    os.set_blocking(fd, True)
    return fd


def _open_reader(path):
    """The read side of containerd's stdin fifo (see the module's docstring for EOF)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    os.set_blocking(fd, True)
    return fd


class ProcessIO:
    def __init__(self, stdin="", stdout="", stderr="", terminal=False):
        self.paths = (stdin, stdout, stderr)
        self.terminal = terminal
        self._lock = threading.Lock()
        self._child_fds = []
        self._stdin_closed = False
        self._master = -1
        self._out_done = threading.Event()
        self._out_done.set()

    # --- before the process exists --------------------------------------------------------
    def child_fds(self):
        """The three fds the new process gets as 0, 1, 2 (closed again by after_spawn)."""
        stdin, stdout, stderr = self.paths
        null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        self._child_fds.append(null)
        if self.terminal:
            # the pty replaces all three; the fifos are served by the copy threads
            return (null, null, null)
        fds = []
        for path, opener in ((stdin, _open_reader), (stdout, _open_writer),
                             (stderr, _open_writer)):
            fd = opener(path) if path else null
            if fd != null:
                self._child_fds.append(fd)
            fds.append(fd)
        return tuple(fds)

    def after_spawn(self):
        for fd in self._child_fds:
            os.close(fd)
        self._child_fds = []

    # --- a terminal -----------------------------------------------------------------------
    def attach_console(self, master):
        """Serve the pty master (owned from now on): stdin fifo -> master, master ->
        stdout fifo."""
        stdin, stdout, _ = self.paths
        self._master = master
        # each thread owns its fds (dups of the master): no thread ever uses a number
        # another thread may have closed and the kernel handed out again
        if stdout:
            out = _open_writer(stdout)
            self._out_done.clear()
            threading.Thread(target=self._copy_out, args=(os.dup(master), out), daemon=True,
                             name="pty-out").start()
        if stdin:
            fd = _open_reader(stdin)
            threading.Thread(target=self._copy_in, args=(fd, os.dup(master)), daemon=True,
                             name="pty-in").start()

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
        """CloseIO: containerd has closed its write end already, which is the EOF."""
        self._stdin_closed = True

    def wait_output(self, timeout=2.0):
        """A terminal's last output reaches the fifo before the exit is reported."""
        self._out_done.wait(timeout)

    def close(self):
        self.after_spawn()
        with self._lock:
            if self._master >= 0:
                os.close(self._master)
                self._master = -1
