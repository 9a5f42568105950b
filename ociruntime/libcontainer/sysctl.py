"""linux.sysctl: kernel parameters of the container's own namespaces.

check() runs before anything exists and refuses, as runc does, a sysctl that would change
the host: only the ipc (kernel.msg*, kernel.sem*, kernel.shm*, fs.mqueue.*), network (net.*,
in a network namespace of the container's own) and uts (kernel.domainname) parameters are
per namespace.

apply() runs in the container init, in its namespaces and before pivot_root.  It writes
through a procfs handle opened from the runtime's own /proc before any container mount
exists (checked to be a procfs root), never through the container's /proc, which the
image or a shared mount could redirect (CVE-2025-52881).  net and ipc parameters resolve
to the namespaces of the writer, which is the init itself.
"""

import os

from ociruntime.errors import PyruncError
from ociruntime.libcontainer import syscalls as sc

_IPC_EXACT = frozenset({"kernel.sem", "kernel.sem_next_id", "kernel.msgmax", "kernel.msgmnb",
                        "kernel.msgmni", "kernel.msg_next_id", "kernel.shmall",
                        "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced",
                        "kernel.shm_next_id"})
PROC_SUPER_MAGIC = 0x9FA0


def normalize(key):
    """"net/ipv4/ip_forward" and "net.ipv4.ip_forward" are the same key: the dotted form."""
    return key.replace("/", ".") if "/" in key and "." not in key else key


def check(cfg, ns_plan):
    hostnet = None
    for key in cfg.linux.sysctl:
        where = f"linux.sysctl[{key!r}]"
        name = normalize(key)
        parts = name.split(".")
        if any(p in ("", "..") for p in parts) or "/" in name or "\0" in name:
            raise PyruncError(f"{where}: not a valid sysctl name")
        if name in _IPC_EXACT or name.startswith("fs.mqueue."):
            if not ns_plan.has("ipc"):
                raise PyruncError(f"{where}: not allowed in the host's ipc namespace (add an "
                                  "ipc namespace)")
            continue
        if name.startswith("net."):
            if hostnet is None:
                hostnet = _is_host_net(ns_plan)
            if hostnet:
                raise PyruncError(f"{where}: not allowed in the host's network namespace")
            continue
        if ns_plan.has("uts") and name == "kernel.domainname":
            continue
        if ns_plan.has("uts") and name == "kernel.hostname":
            raise PyruncError(f"{where}: conflicts with the \"hostname\" field; set that")
        raise PyruncError(f"{where}: {name} is not in a namespace of the container's own "
                          "(it would change the host)")


def _is_host_net(ns_plan):
    if not ns_plan.has("network"):
        return True
    path = next((p for t, p in ns_plan.join if t == "network"), None)
    if path is None:
        return False
    try:
        theirs = os.stat(path)
        mine = os.stat("/proc/self/ns/net")
    except OSError as e:
        raise PyruncError(f"linux.namespaces: network path {path}: {e.strerror}") from None
    return (theirs.st_dev, theirs.st_ino) == (mine.st_dev, mine.st_ino)


def open_proc_sys():
    """An O_PATH fd of /proc/sys in the runtime's own procfs, checked to be procfs."""
    proc = os.open("/proc", os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        if fs_magic(proc) != PROC_SUPER_MAGIC:
            raise PyruncError("linux.sysctl: /proc is not a procfs")
        return sc.openat2(proc, "sys", os.O_PATH | os.O_DIRECTORY, 0,
                          sc.RESOLVE_BENEATH | sc.RESOLVE_NO_SYMLINKS | sc.RESOLVE_NO_XDEV
                          | sc.RESOLVE_NO_MAGICLINKS)
    finally:
        os.close(proc)


def fs_magic(fd):
    import ctypes

    buf = ctypes.create_string_buffer(128)  # struct statfs; f_type is its first long
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.fstatfs(fd, buf) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return ctypes.c_long.from_buffer(buf).value


def apply(sysctl):
    """Write each parameter under /proc/sys (in the init, in the new namespaces)."""
    if not sysctl:
        return
    sys_fd = open_proc_sys()
    try:
        for key, value in sysctl.items():
            rel = normalize(key).replace(".", "/")
            try:
                fd = sc.openat2(sys_fd, rel, os.O_WRONLY | os.O_TRUNC, 0,
                                sc.RESOLVE_BENEATH | sc.RESOLVE_NO_SYMLINKS | sc.RESOLVE_NO_XDEV
                                | sc.RESOLVE_NO_MAGICLINKS)
                try:
                    os.write(fd, value.encode())
                finally:
                    os.close(fd)
            except OSError as e:
                raise PyruncError(f"linux.sysctl[{key!r}]: writing /proc/sys/{rel}: "
                                  f"{e.strerror}") from None
    finally:
        os.close(sys_fd)
