"""Pythonic wrappers over the C helper (ociruntime._native._sys, helper.c): the system
calls the os module lacks.

Each wrapper raises OSError (with errno and, where useful, the path) instead of returning -1.
Constants come from the kernel's UAPI headers; they are fixed ABI numbers.
"""

import posix
import sys

from ociruntime import paths
from ociruntime._native import _sys

# clone/unshare flags
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_NEWTIME = 0x00000080

# mount(2) flags
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_SYNCHRONOUS = 0x10
MS_REMOUNT = 0x20
MS_MANDLOCK = 0x40
MS_DIRSYNC = 0x80
MS_NOSYMFOLLOW = 0x100
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_MOVE = 0x2000
MS_REC = 0x4000
MS_SILENT = 0x8000
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_I_VERSION = 1 << 23
MS_STRICTATIME = 1 << 24
MS_LAZYTIME = 1 << 25

MNT_DETACH = 2
CLOSE_RANGE_CLOEXEC = 1 << 2

# openat2 resolve flags
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10

# *at() flags, open_tree/move_mount/mount_setattr (the new mount API)
AT_SYMLINK_NOFOLLOW = 0x100
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
OPEN_TREE_CLONE = 1
MOVE_MOUNT_F_EMPTY_PATH = 0x04
MOVE_MOUNT_T_EMPTY_PATH = 0x40
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
MOUNT_ATTR_NOEXEC = 0x8
MOUNT_ATTR__ATIME = 0x70
MOUNT_ATTR_RELATIME = 0x0
MOUNT_ATTR_NOATIME = 0x10
MOUNT_ATTR_STRICTATIME = 0x20
MOUNT_ATTR_NODIRATIME = 0x80
MOUNT_ATTR_IDMAP = 0x100000
MOUNT_ATTR_NOSYMFOLLOW = 0x200000

# ioprio_set(2)
IOPRIO_WHO_PROCESS = 1
IOPRIO_WHO_PGRP = 2

# prctl
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_CHILD_SUBREAPER = 36


def unshare(flags):
    _sys.unshare(flags)


def setns(fd, nstype=0):
    _sys.setns(fd, nstype)


def mount(source, target, fstype, flags=0, data=None):
    _sys.mount(source, target, fstype, flags, data)


def umount2(target, flags=0):
    _sys.umount2(target, flags)


def pivot_root(new_root, put_old):
    _sys.pivot_root(new_root, put_old)


def openat2(dirfd, path, flags, mode=0, resolve=0):
    """openat2(2); the returned fd is close-on-exec (O_CLOEXEC is always added).  EAGAIN
    (a rename or mount anywhere on the host while a ".." was resolved under RESOLVE_IN_ROOT
    or RESOLVE_BENEATH) is retried, as the kernel asks."""
    return _sys.openat2(dirfd, path, flags | posix.O_CLOEXEC, mode, resolve)


def sethostname(name):
    _sys.sethostname(name.encode())


def setdomainname(name):
    _sys.setdomainname(name.encode())


def prctl(option, a2=0, a3=0, a4=0, a5=0):
    return _sys.prctl(option, a2, a3, a4, a5)


def close_range(first, last=0xFFFFFFFF, flags=0):
    _sys.close_range(first, last, flags)


def loopback_up():
    _sys.loopback_up()


def execveat(fd, argv, envp):
    """Replace this process with the program open at fd; returns only by raising."""
    _sys.execveat(fd, list(argv), list(envp))


def mount_setattr(dirfd, path, flags, attr_set=0, attr_clr=0, propagation=0, userns_fd=0):
    _sys.mount_setattr(dirfd, path, flags, attr_set, attr_clr, propagation, userns_fd)


def open_tree(dirfd, path, flags):
    """open_tree(2); the returned fd is close-on-exec."""
    return _sys.open_tree(dirfd, path, flags | posix.O_CLOEXEC)


def move_mount(from_dirfd, from_path, to_dirfd, to_path, flags):
    _sys.move_mount(from_dirfd, from_path, to_dirfd, to_path, flags)


def sched_setattr(policy, flags, nice, priority, runtime, deadline, period):
    _sys.sched_setattr(policy, flags, nice, priority, runtime, deadline, period)


def ioprio_set(which, who, ioprio):
    _sys.ioprio_set(which, who, ioprio)


def set_mempolicy(mode, nodes):
    """set_mempolicy(2): mode (with its flag bits) and the set of NUMA node numbers."""
    words = [0] * (max(nodes, default=0) // 64 + 1)
    for node in nodes:
        words[node // 64] |= 1 << (node % 64)
    # an unsigned long[] (64-bit words), without struct: its import (~0.13 ms) on every
    # create's path for this one line; and no lazy import here: this runs after pivot_root
    mask = b"".join(w.to_bytes(8, sys.byteorder) for w in words) if nodes else b""
    _sys.set_mempolicy(mode, mask, len(words) * 64 + 1 if nodes else 0)


def personality(persona):
    return _sys.personality(persona)


def join_session_keyring(name):
    """A new session keyring named name for this process (KEYCTL_JOIN_SESSION_KEYRING)."""
    return _sys.join_session_keyring(name)


def keyctl_setperm(serial, perm):
    _sys.keyctl_setperm(serial, perm)


def fork_into_cgroup(cgroup_fd, flags=0):
    """os.fork(), the child created in the cgroup2 directory open at cgroup_fd (clone3
    CLONE_INTO_CGROUP, Linux 5.7; _native/fork_into.c; -1: none) and in new namespaces
    (flags: CLONE_NEW*): the child's pid, 0 in the child; None when no child was made
    that way: the kernel has no clone3 or no CLONE_INTO_CGROUP, or refuses this cgroup
    or a namespace, or this process has other threads (the raw clone skips glibc's fork
    handlers, which keep another thread's malloc lock from being inherited locked).  The
    caller then forks and joins as before, which reports a refusal with the file's
    name."""
    if _threads() != 1:
        return None
    try:
        return _sys.fork_into_cgroup(cgroup_fd, flags)
    except OSError:
        return None


def _threads():
    """This process's thread count (/proc/self/stat's num_threads); 0 if unreadable."""
    try:
        data = paths.read_bytes("/proc/self/stat")
        return int(data[data.rindex(b")") + 2:].split()[17])
    except (OSError, ValueError, IndexError):
        return 0
