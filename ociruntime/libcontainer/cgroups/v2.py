"""cgroup v2: one directory in the unified hierarchy."""

import os

from ociruntime.errors import PyruncError
from ociruntime.libcontainer.cgroups import (
    CGROUP_ROOT,
    make_dirs,
    read_pids,
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
        self.dirs = dirs
        self.created = created

    @classmethod
    def for_container(cls, cgroups_path, container_id):
        path = resolve_path(cgroups_path, container_id, own_path())
        return cls({"unified": os.path.join(CGROUP_ROOT, path.lstrip("/"))}, [])

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
        return [os.path.join(self.dir, "cgroup.procs")]

    def apply_devices(self, rules):
        if rules:
            raise PyruncError("linux.resources.devices: device rules on cgroup v2 are not "
                              "supported yet")

    def bind_sources(self):
        return []

    def pids(self):
        return read_pids(os.path.join(self.dir, "cgroup.procs"))

    def freezer_file(self):
        return os.path.join(self.dir, "cgroup.freeze")

    def freeze(self, frozen):
        with open(self.freezer_file(), "w") as f:
            f.write("1" if frozen else "0")

    def destroy(self):
        remove_dirs(self.created)
        self.created = []

    def to_record(self):
        return {"version": 2, "dirs": self.dirs, "created": self.created}
