"""The exec stage: the small static C program every container process ends in.

Python writes a "plan" (NUL-separated key=value records, see exec_stage.c) into a memfd,
and replaces itself with the stage binary run from a sealed memfd: the container never sees
a host file as its /proc/PID/exe, and nothing it can write (CVE-2019-5736).
"""

import fcntl
import posix

from ociruntime import paths
from ociruntime.libcontainer import syscalls as sc

STAGE_PATH = paths.join(paths.dirname(paths.dirname(paths.abspath(__file__))),
                          "_native", "exec-stage")
_MFD_CLOEXEC, _MFD_ALLOW_SEALING, _MFD_EXEC = 0x1, 0x2, 0x10
_SEALS = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE
_ahead = None  # the next sealed_stage_fd(), made by make_ahead()


def make_ahead():
    """Make the memfd the next sealed_stage_fd() returns, now: a process that waits for
    its one request (the shim's warm worker) makes it before that request comes, off the
    create's path (~0.2 ms: the 66 kB stage read, copied and sealed).  Still one memfd
    per container, as each process takes it once."""
    global _ahead
    if _ahead is None:
        _ahead = sealed_stage_fd()


def sealed_stage_fd(copy_of=None):
    """A sealed, close-on-exec memfd holding the stage binary (execveat works on it anyway,
    since the kernel holds the file open for an ELF program): read from disk (or the one
    make_ahead() made), or copied from the memfd copy_of.  The caller owns it."""
    global _ahead
    if copy_of is None and _ahead is not None:
        fd, _ahead = _ahead, None
        return fd
    if copy_of is None:
        with open(STAGE_PATH, "rb") as f:
            image = f.read()
    else:
        image = posix.pread(copy_of, posix.fstat(copy_of).st_size, 0)
    try:
        fd = posix.memfd_create("pyrunc-stage", _MFD_CLOEXEC | _MFD_ALLOW_SEALING | _MFD_EXEC)
    except OSError:  # kernels before 6.3 do not know MFD_EXEC
        fd = posix.memfd_create("pyrunc-stage", _MFD_CLOEXEC | _MFD_ALLOW_SEALING)
    posix.write(fd, image)
    fcntl.fcntl(fd, fcntl.F_ADD_SEALS, _SEALS)
    return fd


class Plan:
    """Builder for the stage's plan: add(key, value) in order; repeated keys append."""

    def __init__(self):
        self.records = []

    def add(self, key, value):
        text = str(value)
        if "\0" in text:
            raise ValueError(f"{key}: NUL byte in value")
        self.records.append(f"{key}={text}")

    def extend(self, key, values):
        for value in values:
            self.add(key, value)

    def to_fd(self):
        """The plan in an inheritable memfd (the stage reads and closes it), sealed: a
        process that can reach it through /proc/PID/fd cannot rewrite the settings."""
        fd = posix.memfd_create("pyrunc-plan", _MFD_ALLOW_SEALING)
        # surrogateescape: exec's command line may carry bytes that are no UTF-8 (the
        # config's strings cannot: config.py refuses lone surrogates)
        posix.write(fd, paths.fsencode("\0".join(self.records) + "\0"))
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, _SEALS)
        return fd


def exec_stage(stage_fd, plan_fd, keep_fds):
    """Replace this process with the stage. keep_fds are made inheritable for it."""
    for fd in keep_fds:
        posix.set_inheritable(fd, True)
    sc.execveat(stage_fd, ["pyrunc-init", str(plan_fd)], [])
