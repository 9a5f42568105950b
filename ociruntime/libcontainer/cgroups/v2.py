"""cgroup v2: one directory in the unified hierarchy.

ociruntime.paths, not os (see cgroups): kill --all, pause and a delete with processes left
to kill import this module; the limits' code, which imports os and the files module, is in
v2limits (create, update)."""

from ociruntime import paths
from ociruntime.errors import PyruncError
from ociruntime.libcontainer.cgroups import (
    CGROUP_ROOT,
    check_recorded,
    make_dirs,
    read_tree_pids,
    remove_dirs,
    resolve_path,
)


def own_path():
    with open("/proc/self/cgroup") as f:
        for line in f:
            if line.startswith("0::"):
                return line[3:].rstrip("\n")
    return "/"


class V2Manager:
    version = 2

    def __init__(self, dirs, created):
        check_recorded(self.version, dirs, created)
        self.dirs = dirs
        self.created = created

    @classmethod
    def for_container(cls, cgroups_path, container_id):
        own = own_path()
        # runc: the parent of our own cgroup, which (unlike ours) has no process in it
        path = resolve_path(cgroups_path, container_id, own, paths.dirname(own))
        return cls({"unified": paths.join(CGROUP_ROOT, path.lstrip("/"))}, [])

    @property
    def dir(self):
        return self.dirs["unified"]

    def create(self):
        try:
            make_dirs(self.dir, self.created)
        except OSError as e:
            remove_dirs(self.created)
            raise PyruncError(f"creating cgroup: {e.filename}: {e.strerror}") from None

    def procs_files(self):
        return [paths.join(self.dir, "cgroup.procs")]

    def joins(self):
        """(the directory the fork chain's first child is created in, no file to write):
        see V1Manager.joins."""
        return self.dir, []

    def apply_devices(self, rules):
        """The config's rules, then runc's default allowed devices, as an eBPF device
        program on the cgroup, attached before any process is in it."""
        if not rules:
            return
        from ociruntime.libcontainer.cgroups import devices_bpf

        devices_bpf.attach(self.dir, list(rules) + devices_bpf.default_rules())

    # --- resources ------------------------------------------------------------------------
    def set_resources(self, res, update=False, write=True):
        """Write linux.resources (all but devices) into the cgroup's files, v1 values
        converted as runc converts them.  The controllers they need are enabled in the
        parents' cgroup.subtree_control first; a v1-only setting is an error.  Every file
        is checked before the first write (write=False: only that check)."""
        if res is None:
            return  # v2limits and files not even imported
        from ociruntime.libcontainer.cgroups.v2limits import set_resources

        set_resources(self, res, update, write)

    def stats(self):
        from ociruntime.libcontainer.cgroups.stats import v2_stats

        return v2_stats(self)

    def oom_kills(self):
        from ociruntime.libcontainer.cgroups.files import oom_kill_count

        return oom_kill_count(paths.join(self.dir, "memory.events"))

    def bind_sources(self):
        return []

    def pids(self):
        return read_tree_pids(self.dir)

    def freezer_file(self):
        return paths.join(self.dir, "cgroup.freeze")

    def freeze(self, frozen):
        with open(self.freezer_file(), "w") as f:
            f.write("1" if frozen else "0")

    def destroy(self):
        remove_dirs(self.created, own=set(self.dirs.values()))
        self.created = []

    def to_record(self):
        return {"version": 2, "dirs": self.dirs, "created": self.created}
