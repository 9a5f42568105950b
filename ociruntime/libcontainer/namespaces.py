"""Namespaces: which to create, which to join (and in what order), id maps, time offsets."""

import posix

from ociruntime.errors import PyruncError
from ociruntime.libcontainer import syscalls as sc

FLAGS = {
    "pid": sc.CLONE_NEWPID, "network": sc.CLONE_NEWNET, "mount": sc.CLONE_NEWNS,
    "ipc": sc.CLONE_NEWIPC, "uts": sc.CLONE_NEWUTS, "user": sc.CLONE_NEWUSER,
    "cgroup": sc.CLONE_NEWCGROUP, "time": sc.CLONE_NEWTIME,
}
# the name of each type under /proc/PID/ns/ (what a joined path must match)
PROC_NAMES = {"pid": "pid", "network": "net", "mount": "mnt", "ipc": "ipc", "uts": "uts",
              "user": "user", "cgroup": "cgroup", "time": "time"}
# setns order: the user namespace first (it owns the others), mount last (paths still
# resolve in the runtime's mount namespace until then)
JOIN_ORDER = ("user", "ipc", "uts", "network", "pid", "time", "cgroup", "mount")

_NS_GET_NSTYPE = 0xB703


class NamespacePlan:
    """What the child does: fds of namespaces to join, and the flags of ones to create."""

    def __init__(self, namespaces):
        self.types = {ns.type for ns in namespaces}
        self.create = 0
        self.join = []  # (type, path)
        for ns in namespaces:
            if ns.path:
                self.join.append((ns.type, ns.path))
            else:
                self.create |= FLAGS[ns.type]
        self.join.sort(key=lambda item: JOIN_ORDER.index(item[0]))

    @property
    def new_user(self):
        return bool(self.create & sc.CLONE_NEWUSER)

    def has(self, ns_type):
        return ns_type in self.types

    def has_new(self, ns_type):
        """A namespace of this type is created for the container (not joined)."""
        return bool(self.create & FLAGS[ns_type])

    def open_joins(self):
        """Open and check each path to join (in the parent, before anything is created)."""
        fds = []
        try:
            for ns_type, path in self.join:
                fd = posix.open(path, posix.O_RDONLY | posix.O_CLOEXEC)
                fds.append((ns_type, fd))
                check_ns_type(fd, ns_type, path)
        except OSError as e:
            _close(fds)
            raise PyruncError(f"linux.namespaces: {ns_type} path {path}: {e.strerror}") from None
        except PyruncError:
            _close(fds)
            raise
        return fds


def _close(fds):
    for _, fd in fds:
        posix.close(fd)


def check_ns_type(fd, ns_type, path):
    """A namespace path must be a namespace file of the declared type (spec MUST): ask the
    kernel (ioctl NS_GET_NSTYPE) rather than trust the file's name."""
    import fcntl

    try:
        actual = fcntl.ioctl(fd, _NS_GET_NSTYPE)
    except OSError:
        raise PyruncError(f"linux.namespaces: {path} is not a namespace file") from None
    if actual != FLAGS[ns_type]:
        found = next((name for name, flag in FLAGS.items() if flag == actual), "unknown")
        raise PyruncError(f"linux.namespaces: {path} is a {found} namespace, "
                          f"not a {ns_type} namespace")


def join(fds):
    for ns_type, fd in fds:
        try:
            sc.setns(fd, FLAGS[ns_type])
        except OSError as e:
            raise PyruncError(f"joining the {ns_type} namespace: {e.strerror}") from None
        posix.close(fd)


def format_id_map(mappings):
    return "".join(f"{m.container_id} {m.host_id} {m.size}\n" for m in mappings)


def write_id_maps(pid, uid_mappings, gid_mappings):
    """The parent writes the child's maps (the child cannot map ids it does not own).
    An unprivileged runtime must deny setgroups before it may write a gid map."""
    if gid_mappings and posix.geteuid() != 0:
        with open(f"/proc/{pid}/setgroups", "w") as f:
            f.write("deny")
    for name, mappings in (("uid_map", uid_mappings), ("gid_map", gid_mappings)):
        if not mappings:
            continue
        try:
            with open(f"/proc/{pid}/{name}", "w") as f:
                f.write(format_id_map(mappings))
        except OSError as e:
            raise PyruncError(f"linux.{'uidMappings' if name == 'uid_map' else 'gidMappings'}: "
                              f"writing /proc/{pid}/{name}: {e.strerror}") from None


def write_time_offsets(time_offsets):
    """Offsets must be written after unshare(CLONE_NEWTIME) and before any process enters."""
    lines = "".join(f"{clock} {off.secs or 0} {off.nanosecs or 0}\n"
                    for clock, off in time_offsets.items())
    if lines:
        with open("/proc/self/timens_offsets", "w") as f:
            f.write(lines)
