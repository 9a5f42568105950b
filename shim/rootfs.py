"""The rootfs mounts containerd hands the shim with Create (an overlay of the snapshot, or a
bind of it), mounted onto <bundle>/rootfs before the container is created; unmounted when
the task is deleted."""

import errno
import os

from ociruntime.libcontainer import syscalls as sc
from ociruntime.libcontainer.mountopts import MountOptions


def mount_all(mounts, target):
    """Mount each of containerd's mounts (type, source, options) onto target, in order.
    On failure, what was mounted is unmounted again and OSError raised."""
    done = 0
    try:
        for m in mounts:
            opts = MountOptions(list(m.options))
            flags = opts.flags
            if opts.is_bind:
                sc.mount(m.source, target, "", flags & (sc.MS_BIND | sc.MS_REC))
                done += 1
                if flags & ~(sc.MS_BIND | sc.MS_REC):  # ro and friends need a remount
                    sc.mount("", target, "", flags | sc.MS_REMOUNT | sc.MS_BIND)
            else:
                sc.mount(m.source, target, m.type, flags, opts.data or None)
                done += 1
            for propagation in opts.propagation:
                sc.mount("", target, "", propagation)
    except OSError:
        unmount_all(target, done)
        raise
    return done


def unmount(target, count=None):
    """Unmount the count mounts stacked on target (or until none is left), topmost first,
    as runc's shim: a plain umount, and one still in use (EBUSY: a process's cwd or an
    open file in it) detached (MNT_DETACH), so nothing is left mounted at target either
    way.  Nothing (left) mounted there (EINVAL, or no such path) ends it; any other
    failure raises OSError.  Returns how many were unmounted."""
    n = 0
    while count is None or n < count:
        try:
            try:
                sc.umount2(target, 0)
            except OSError as e:
                if e.errno != errno.EBUSY:
                    raise
                sc.umount2(target, sc.MNT_DETACH)
        except OSError as e:
            if e.errno in (errno.EINVAL, errno.ENOENT):
                break
            raise
        n += 1
    return n


def unmount_all(target, count=None):
    """unmount() where an error has nowhere to go (a failed Create's undoing, which
    reports its own error; containerd's cleanup after a crash): best effort."""
    try:
        unmount(target, count)
    except OSError:
        pass


def rootfs_of(bundle):
    return os.path.join(bundle, "rootfs")
