"""No cgroup: an unprivileged (rootless) caller that cannot write the cgroup tree.

runc's rootless rule: without an explicit cgroupsPath, a cgroup the caller cannot create
is skipped; limits asked for then are an error ("cannot set ... limit"), since nothing
could enforce them.  The container still gets its namespaces; kill --all and delete fall
back to the init (with a pid namespace of its own, killing it ends the rest).
"""

from ociruntime.errors import PyruncError


class NoCgroupManager:
    version = 0

    def __init__(self, dirs=None, created=None):
        self.dirs = {}
        self.created = []

    def create(self):
        pass

    def procs_files(self):
        return []

    def joins(self):
        return None, []

    def bind_sources(self):
        return []

    def apply_devices(self, rules):
        pass  # runc ignores the devices controller for a rootless caller

    def set_resources(self, res, update=False, write=True):
        asked = [name for name in ("memory", "cpu", "pids", "block_io", "hugepage_limits",
                                   "network", "rdma", "unified")
                 if _given(getattr(res, name, None))]
        if asked:
            raise PyruncError(f"cannot set {asked[0]} limit: the container could not join or "
                              "create a cgroup (an unprivileged caller that cannot write "
                              "the cgroup tree)")

    def pids(self):
        return []

    def freezer_file(self):
        return None

    def freeze(self, frozen):
        raise PyruncError(f"{'pause' if frozen else 'resume'}: the container has no cgroup")

    def stats(self):
        return {}

    def oom_kills(self):
        return None

    def destroy(self):
        pass

    def to_record(self):
        return {"version": 0, "dirs": {}, "created": []}


def _given(value):
    """A setting with at least one value in it (an empty "memory": {} asks for nothing)."""
    if value is None:
        return False
    slots = getattr(type(value), "__slots__", None)
    if slots and not isinstance(value, (dict, list, tuple)):
        return any(_given(getattr(value, s, None)) for s in slots)
    if isinstance(value, (dict, list, tuple, str)):
        return len(value) > 0
    return True
