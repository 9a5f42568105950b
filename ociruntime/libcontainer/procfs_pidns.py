"""procfs for a pid namespace the mounting process is not in (fsconfig "pidns", Linux 6.18).

A container that joins an existing pid namespace (linux.namespaces pid with a path) keeps
its Python init out of that namespace: a process there with CAP_SYS_PTRACE could otherwise
reach the init (the host interpreter, the host root and the state directory through
/proc/PID/exe, root and fd) while it builds the rootfs.  Only the exec stage joins it,
with setns + fork.  The container's /proc must still show the joined namespace, so it is
made with the new mount API and the namespace given by fd.
"""

import ctypes
import os

from ociruntime.libcontainer import syscalls as sc

# the same numbers on every architecture (the unified table from 403 on)
_SYS_FSOPEN, _SYS_FSCONFIG, _SYS_FSMOUNT, _SYS_MOVE_MOUNT = 430, 431, 432, 429
_FSOPEN_CLOEXEC, _FSMOUNT_CLOEXEC = 1, 1
_FSCONFIG_SET_FLAG, _FSCONFIG_SET_STRING, _FSCONFIG_SET_FD = 0, 1, 5
_FSCONFIG_CMD_CREATE = 6
_MOVE_MOUNT_F_EMPTY_PATH, _MOVE_MOUNT_T_EMPTY_PATH = 0x4, 0x40
_ATTRS = ((sc.MS_RDONLY, 0x1), (sc.MS_NOSUID, 0x2), (sc.MS_NODEV, 0x4),
          (sc.MS_NOEXEC, 0x8))

_libc = None


def _call(*args):
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    result = _libc.syscall(*args)
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return result


def mount_proc(target_fd, pidns_fd, flags, data):
    """Mount a procfs of pidns_fd's namespace on target_fd (an O_PATH fd of the mount
    point). flags: MS_* (the atime ones are ignored); data: "hidepid=...,subset=..."."""
    fs = _call(_SYS_FSOPEN, b"proc", _FSOPEN_CLOEXEC)
    try:
        _call(_SYS_FSCONFIG, fs, _FSCONFIG_SET_FD, b"pidns", None, pidns_fd)
        for option in (data or "").split(","):
            if not option:
                continue
            key, _, value = option.partition("=")
            if value:
                _call(_SYS_FSCONFIG, fs, _FSCONFIG_SET_STRING, key.encode(), value.encode(),
                      0)
            else:
                _call(_SYS_FSCONFIG, fs, _FSCONFIG_SET_FLAG, key.encode(), None, 0)
        _call(_SYS_FSCONFIG, fs, _FSCONFIG_CMD_CREATE, None, None, 0)
        attrs = 0
        for ms_flag, attr in _ATTRS:
            if flags & ms_flag:
                attrs |= attr
        mnt = _call(_SYS_FSMOUNT, fs, _FSMOUNT_CLOEXEC, attrs)
    finally:
        os.close(fs)
    try:
        _call(_SYS_MOVE_MOUNT, mnt, b"", target_fd, b"",
              _MOVE_MOUNT_F_EMPTY_PATH | _MOVE_MOUNT_T_EMPTY_PATH)
    finally:
        os.close(mnt)


def detached_proc(pidns_fd=None):
    """A procfs mounted nowhere (an fsmount fd; read-only, pid directories only) of the
    caller's pid namespace, or of pidns_fd's.  The exec stage reopens exec.fifo through
    it when the container's /proc is no procfs."""
    fs = _call(_SYS_FSOPEN, b"proc", _FSOPEN_CLOEXEC)
    try:
        if pidns_fd is not None:
            _call(_SYS_FSCONFIG, fs, _FSCONFIG_SET_FD, b"pidns", None, pidns_fd)
        try:
            _call(_SYS_FSCONFIG, fs, _FSCONFIG_SET_STRING, b"subset", b"pid", 0)
        except OSError:
            pass  # before Linux 5.8: the whole procfs (still nothing a mount would not show)
        _call(_SYS_FSCONFIG, fs, _FSCONFIG_CMD_CREATE, None, None, 0)
        attrs = 0
        for _, attr in _ATTRS:
            attrs |= attr
        return _call(_SYS_FSMOUNT, fs, _FSMOUNT_CLOEXEC, attrs)
    finally:
        os.close(fs)


def supported(pidns_fd):
    """Whether this kernel takes a pid namespace for a procfs (fsconfig "pidns", Linux
    6.18); without it the init must join the namespace itself, as before."""
    try:
        fs = _call(_SYS_FSOPEN, b"proc", _FSOPEN_CLOEXEC)
    except OSError:
        return False
    try:
        _call(_SYS_FSCONFIG, fs, _FSCONFIG_SET_FD, b"pidns", None, pidns_fd)
        return True
    except OSError:
        return False
    finally:
        os.close(fs)
