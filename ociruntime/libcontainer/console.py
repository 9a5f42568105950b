"""The container's terminal (process.terminal): a pty from the container's own devpts.

The init opens the master from the container's /dev/pts/ptmx and gets the peer through
TIOCGPTPEER (no /dev/pts/N path is ever looked up, so a symlink planted there cannot
redirect it), checks that it really is a devpts pty, binds it onto /dev/console (created
without following symlinks: CVE-2025-52565), and makes it the controlling terminal and
stdio of the process.  The master travels to the caller's --console-socket with
SCM_RIGHTS, as runc does.
"""

import fcntl
import os
import stat
import struct

from ociruntime.errors import PyruncError
from ociruntime.libcontainer import syscalls as sc

TIOCGPTPEER = 0x5441
TIOCSPTLCK = 0x40045431
TIOCSCTTY = 0x540E
TIOCSWINSZ = 0x5414
DEVPTS_SUPER_MAGIC = 0x1CD1
PTY_SLAVE_MAJORS = range(136, 144)


def open_pty(rootfs):
    """(master, peer) of a new pty in the container's devpts."""
    try:
        master = rootfs.open("/dev/pts/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC,
                             resolve=sc.RESOLVE_IN_ROOT | sc.RESOLVE_NO_SYMLINKS)
    except OSError as e:
        raise PyruncError(f"process.terminal: opening /dev/pts/ptmx in the container: "
                          f"{e.strerror} (is devpts mounted on /dev/pts?)") from None
    fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))
    peer = fcntl.ioctl(master, TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    st = os.fstat(peer)
    if not stat.S_ISCHR(st.st_mode) or os.major(st.st_rdev) not in PTY_SLAVE_MAJORS:
        raise PyruncError("process.terminal: the pty peer is not a pty device")
    return master, peer


def set_size(fd, console_size):
    if console_size is not None:
        fcntl.ioctl(fd, TIOCSWINSZ, struct.pack("HHHH", console_size.height,
                                                console_size.width, 0, 0))


def bind_console(rootfs, peer):
    """Bind the pty peer onto /dev/console, a plain file this function creates itself."""
    target = rootfs.make("/dev/console", False,
                         resolve=sc.RESOLVE_IN_ROOT | sc.RESOLVE_NO_SYMLINKS)
    try:
        if not stat.S_ISREG(os.fstat(target).st_mode):
            raise PyruncError("/dev/console exists and is not a regular file")
        sc.mount(f"/proc/self/fd/{peer}", f"/proc/self/fd/{target}", None, sc.MS_BIND)
    finally:
        os.close(target)


def make_controlling(peer):
    """The pty becomes stdin, stdout, stderr and the controlling terminal (after setsid)."""
    fcntl.ioctl(peer, TIOCSCTTY, 0)
    for fd in (0, 1, 2):
        os.dup2(peer, fd)


def send_to_console_socket(path, master):
    from ociruntime._native._sys import connect_unix, send_fd

    sock = -1
    try:
        sock = connect_unix(path)
        send_fd(sock, b"/dev/ptmx", master)
    except OSError as e:
        raise PyruncError(f"--console-socket {path}: {e.strerror}") from None
    finally:
        if sock >= 0:
            os.close(sock)


def relay(master, pid):
    """`run` with a terminal and no --console-socket: copy our stdin to the pty and the pty
    to our stdout (our terminal in raw mode meanwhile) until the process exits."""
    import select
    import termios
    import tty

    from ociruntime.libcontainer.stdio import drain

    stdin_tty = os.isatty(0)
    saved = termios.tcgetattr(0) if stdin_tty else None
    if stdin_tty:
        tty.setraw(0)
        size = fcntl.ioctl(0, termios.TIOCGWINSZ, b"\0" * 8)
        fcntl.ioctl(master, TIOCSWINSZ, size)
    pidfd = os.pidfd_open(pid)
    poller = select.poll()
    poller.register(master, select.POLLIN)
    poller.register(pidfd, select.POLLIN)
    poller.register(0, select.POLLIN)
    try:
        done = False
        while not done:
            for fd, _ in poller.poll():
                if fd == pidfd:
                    done = True
                    continue
                try:
                    data = os.read(fd, 65536)
                except OSError:
                    data = b""
                if fd == master:
                    if not data:
                        done = True
                    else:
                        os.write(1, data)
                elif data:
                    os.write(master, data)
                else:
                    poller.unregister(0)  # stdin closed: keep reading the pty
        drain(master, 1)
    finally:
        os.close(pidfd)
        os.close(master)
        if saved is not None:
            termios.tcsetattr(0, termios.TCSADRAIN, saved)
