"""procfs for a pid namespace the mounting process is not in.

A container that joins an existing pid namespace (linux.namespaces pid with a path) keeps
its Python init out of that namespace: a process there with CAP_SYS_PTRACE could otherwise
reach the init (the host interpreter, the host root and the state directory through
/proc/PID/exe, root and fd) while it builds the rootfs.  Only the exec stage joins it,
with setns + fork.  The container's /proc must still show the joined namespace, and a
procfs belongs to the pid namespace of the process that calls fsopen("proc"); so the
stage makes that call there too (exec_stage.c procfs_context: from its sealed memfd, with
no fd but the two it needs and an empty root) and sends the filesystem context back, which
the init configures and mounts.  Linux 6.18's fsconfig "pidns" would spare that helper,
but the kernels users run (Debian 12: 6.1) lack it: one way on every kernel (fsopen is
Linux 5.2).  The same goes for the detached procfs the parked stage reopens exec.fifo
through when the container mounts none (detached_proc).
"""

import ctypes
import os

from ociruntime.errors import PyruncError
from ociruntime.libcontainer import monitor
from ociruntime.libcontainer import syscalls as sc
from ociruntime.libcontainer.process import SyncSocket
from ociruntime.libcontainer.stage import Plan, exec_stage, sealed_stage_fd

# the same numbers on every architecture (the unified table from 403 on)
_SYS_FSOPEN, _SYS_FSCONFIG, _SYS_FSMOUNT, _SYS_MOVE_MOUNT = 430, 431, 432, 429
_FSOPEN_CLOEXEC, _FSMOUNT_CLOEXEC = 1, 1
_FSCONFIG_SET_FLAG, _FSCONFIG_SET_STRING = 0, 1
_FSCONFIG_CMD_CREATE = 6
_MOVE_MOUNT_F_EMPTY_PATH, _MOVE_MOUNT_T_EMPTY_PATH = 0x4, 0x40
_ATTRS = ((sc.MS_RDONLY, 0x1), (sc.MS_NOSUID, 0x2), (sc.MS_NODEV, 0x4),
          (sc.MS_NOEXEC, 0x8))
MSG_PROCFS = "procfs"  # stage -> init: the procfs context, as SCM_RIGHTS

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


def mount_proc(target_fd, pidns_fd, stage_fd, flags, data):
    """Mount a procfs of pidns_fd's namespace on target_fd (an O_PATH fd of the mount
    point), its context opened by the stage (stage_fd) in that namespace.  flags: MS_*
    (the atime ones are ignored); data: "hidepid=...,subset=..."."""
    fs = _context(pidns_fd, stage_fd)
    try:
        # "proc" as the source, as mount(2) would show it (fsopen leaves "none")
        for option in ["source=proc"] + (data or "").split(","):
            if not option:
                continue
            key, _, value = option.partition("=")
            try:
                if value:
                    _call(_SYS_FSCONFIG, fs, _FSCONFIG_SET_STRING, key.encode(),
                          value.encode(), 0)
                else:
                    _call(_SYS_FSCONFIG, fs, _FSCONFIG_SET_FLAG, key.encode(), None, 0)
            except OSError as e:
                raise PyruncError(f"proc option {option}: {e.strerror}") from None
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


def detached_proc(pidns_fd=None, stage_fd=None):
    """A procfs mounted nowhere (an fsmount fd; read-only, pid directories only) of the
    caller's pid namespace, or of pidns_fd's (opened there by the stage, stage_fd).  The
    exec stage reopens exec.fifo through it when the container's /proc is no procfs."""
    fs = _context(pidns_fd, stage_fd)
    try:
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


def _context(pidns_fd, stage_fd):
    """A procfs context (fsopen fd): of our pid namespace, or of pidns_fd's."""
    if pidns_fd is None:
        return _call(_SYS_FSOPEN, b"proc", _FSOPEN_CLOEXEC)
    return _context_in(pidns_fd, stage_fd)


def _context_in(pidns_fd, stage_fd):
    """fsopen("proc") done in pidns_fd's namespace by the stage: the context's fd."""
    # a copy of the stage: a process in that namespace can take a handle of the helper's
    # /proc/PID/exe and reopen it for writing (the seals refuse the write), which would
    # make the init's own execveat of stage_fd fail with ETXTBSY
    stage_fd = sealed_stage_fd(copy_of=stage_fd)
    parent, child = SyncSocket.pair()
    plan = Plan()
    plan.add("sync", child.fd)
    plan.add("ns", f"{pidns_fd},{sc.CLONE_NEWPID}")
    plan.add("procfs", 1)
    plan_fd = plan.to_fd()
    try:
        # through the monitor, as every fork the library waits for: a caller with a reaper
        # of its own must not take this child's status from under our wait
        pid = monitor.fork_or_close(parent)  # (the rest: below)
        if pid == 0:
            try:
                exec_stage(stage_fd, plan_fd, (plan_fd, child.fd, pidns_fd))
            finally:
                os._exit(127)
    finally:
        os.close(plan_fd)
        os.close(stage_fd)
        child.close()
    try:
        msg = parent.recv()
    finally:
        parent.close()
        monitor.reap(pid)
    if msg is not None and msg.get("type") == MSG_PROCFS and "fd" in msg:
        os.set_inheritable(msg["fd"], False)
        return msg["fd"]
    if msg is not None and "fd" in msg:
        os.close(msg["fd"])
    why = msg.get("msg", msg.get("type")) if msg is not None else "it exited"
    raise PyruncError(f"cannot make a procfs in the joined pid namespace: {why}")
