"""linux.devices: the device nodes the config asks for, made inside the rootfs.

mknod where the runtime may (no user namespace); in a user namespace, where mknod of a
device is refused, the host's node at the same path is bind-mounted instead (runc does the
same).  A file already at the path must be that very device (spec MUST), else an error.
"""

import os
import stat

from ociruntime.errors import PyruncError
from ociruntime.libcontainer import syscalls as sc

TYPES = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}
_NOFOLLOW_PATH = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC


def create_all(rootfs, devices):
    for index, device in enumerate(devices):
        if os.path.normpath("/" + device.path.lstrip("/")) == "/dev/ptmx":
            # runc replaces whatever it made there with the pts/ptmx link (setupPtmx), so
            # an entry for it (engines add one) is accepted and the link stays
            continue
        try:
            create(rootfs, device)
        except OSError as e:
            raise PyruncError(f"linux.devices[{index}]: {device.path}: {e.strerror}") from None
        except PyruncError as e:
            raise PyruncError(f"linux.devices[{index}]: {e}") from None


def _matches(st, device):
    kind = TYPES[device.type]
    if stat.S_IFMT(st.st_mode) != kind:
        return False
    return kind == stat.S_IFIFO or st.st_rdev == os.makedev(device.major, device.minor)


def _describe(device):
    if device.type == "p":
        return "a fifo"
    return f"device {device.type} {device.major}:{device.minor}"


def create(rootfs, device):
    path = "/" + device.path.strip("/")
    parent_path, name = os.path.split(path)
    if not name or name in (".", ".."):
        raise PyruncError(f"{device.path}: not a file path")
    mode = device.file_mode if device.file_mode is not None else 0o666
    uid = device.uid if device.uid is not None else 0
    gid = device.gid if device.gid is not None else 0
    parent = rootfs.make(parent_path, True)
    try:
        try:
            st = os.stat(name, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            st = None
        if st is not None:
            if not _matches(st, device):
                raise PyruncError(f"{path} already exists and is not {_describe(device)}")
        elif rootfs.userns and device.type != "p":
            _bind_host_node(parent, name, path, device)
        else:
            rdev = 0 if device.type == "p" else os.makedev(device.major, device.minor)
            os.mknod(name, TYPES[device.type] | 0o600, rdev, dir_fd=parent)
        if rootfs.userns and device.type != "p":
            return  # the host's node, bound: its owner and mode are the host's
        os.chown(name, uid, gid, dir_fd=parent, follow_symlinks=False)
        node = os.open(name, _NOFOLLOW_PATH, dir_fd=parent)
        try:
            os.chmod(f"/proc/self/fd/{node}", mode)
        finally:
            os.close(node)
    finally:
        os.close(parent)


def _bind_host_node(parent, name, path, device):
    """In a user namespace: bind the host's node, which must be the requested device."""
    try:
        host = os.stat(path)
    except OSError as e:
        raise PyruncError(f"{path}: in a user namespace the host's node is bind-mounted, "
                          f"and the host has none: {e.strerror}") from None
    if not _matches(host, device):
        raise PyruncError(f"{path}: the host's node is not {_describe(device)}")
    os.close(os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o000, dir_fd=parent))
    target = os.open(name, _NOFOLLOW_PATH, dir_fd=parent)
    try:
        sc.mount(path, f"/proc/self/fd/{target}", None, sc.MS_BIND)
    finally:
        os.close(target)
