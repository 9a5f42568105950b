"""cgroups: one small Manager interface, a v1 and a v2 implementation picked by the host.

A Manager is built from the container's cgroupsPath, creates the directories (remembering
which it made, so destroy removes only those), tells the child which cgroup.procs files to
join, lists pids, and reads the freezer.  The state record keeps `to_record()` so later
commands rebuild the same Manager without the config.
"""

import os

from ociruntime.errors import PyruncError

CGROUP_ROOT = "/sys/fs/cgroup"
CGROUP2_SUPER_MAGIC = 0x63677270


def host_is_v2():
    """Pure cgroup v2 (the unified hierarchy mounted at /sys/fs/cgroup itself)."""
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                fields = line.split()
                if fields[4] == CGROUP_ROOT:
                    sep = fields.index("-")
                    return fields[sep + 1] == "cgroup2"
    except OSError:
        pass
    return False


def resolve_path(cgroups_path, container_id, own_path):
    """The cgroup path (relative to a hierarchy root) for a config's cgroupsPath:
    absolute -> as given; relative -> under the runtime's own cgroup; unset -> a default."""
    if not cgroups_path:
        return f"/pyrunc-{container_id}"
    if ":" in cgroups_path and not cgroups_path.startswith("/"):
        raise PyruncError("linux.cgroupsPath: the systemd form slice:prefix:name needs "
                          "--systemd-cgroup (not supported yet)")
    path = os.path.normpath(cgroups_path if cgroups_path.startswith("/")
                            else os.path.join(own_path, cgroups_path))
    if path == "/" or ".." in path.split("/"):
        raise PyruncError(f"linux.cgroupsPath: invalid path {cgroups_path!r}")
    return path


def new_manager(cgroups_path, container_id):
    if host_is_v2():
        from ociruntime.libcontainer.cgroups.v2 import V2Manager
        return V2Manager.for_container(cgroups_path, container_id)
    from ociruntime.libcontainer.cgroups.v1 import V1Manager
    return V1Manager.for_container(cgroups_path, container_id)


def from_record(record):
    """Rebuild the Manager that create used, from the state record."""
    if record.get("version") == 2:
        from ociruntime.libcontainer.cgroups.v2 import V2Manager
        return V2Manager(record["dirs"], record.get("created", []))
    from ociruntime.libcontainer.cgroups.v1 import V1Manager
    return V1Manager(record["dirs"], record.get("created", []))


def make_dirs(path, created, prepare=None):
    """mkdir -p that records each directory it made (outermost first)."""
    missing = []
    p = path
    while not os.path.isdir(p):
        missing.append(p)
        p = os.path.dirname(p)
    for d in reversed(missing):
        try:
            os.mkdir(d, 0o755)
        except FileExistsError:
            continue
        created.append(d)
        if prepare:
            prepare(d)


def remove_dirs(created):
    """rmdir what we made, innermost first; a cgroup with live tasks is reported."""
    import time

    for d in reversed(created):
        for attempt in range(50):
            try:
                os.rmdir(d)
                break
            except FileNotFoundError:
                break
            except OSError as e:
                if e.errno != 16 or attempt == 49:  # EBUSY: tasks still exiting
                    raise PyruncError(f"removing cgroup {d}: {e.strerror}") from None
                time.sleep(0.01)


def read_pids(procs_file):
    try:
        with open(procs_file) as f:
            return [int(x) for x in f.read().split()]
    except FileNotFoundError:
        return []
