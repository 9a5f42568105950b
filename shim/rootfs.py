"""The rootfs mounts containerd hands the shim with Create (an overlay of the snapshot, or a
bind of it), mounted onto <bundle>/rootfs before the container is created; unmounted when
the task is deleted."""

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


def unmount_all(target, count=None):
    """Unmount everything stacked on target (count mounts, or until none is left)."""
    n = 0
    while count is None or n < count:
        try:
            sc.umount2(target, sc.MNT_DETACH)
        except OSError:
            break
        n += 1
    return n


def rootfs_of(bundle):
    return os.path.join(bundle, "rootfs")
