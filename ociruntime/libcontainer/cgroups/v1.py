"""cgroup v1 (and the hybrid layout): one directory per mounted hierarchy.

ociruntime.paths, not os (see cgroups): kill --all, pause and a delete with processes left
to kill import this module."""

from ociruntime import paths
from ociruntime.errors import PyruncError
from ociruntime.libcontainer.cgroups import (
    CGROUP_ROOT,
    check_recorded,
    hierarchy_root,
    make_dirs,
    read_file,
    read_tree_pids,
    remove_dirs,
    resolve_path,
    write_file,
)

# what runc lets every container use, after the config's own rules
DEFAULT_ALLOW = ("c *:* m", "b *:* m", "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm",
                 "c 1:9 rwm", "c 5:0 rwm", "c 5:1 rwm", "c 5:2 rwm", "c 136:* rwm",
                 "c 10:200 rwm")


def hierarchies(lines=None):
    """{name: (mount point, root of the mount)} for every cgroup hierarchy mounted.
    lines: cgroups.mountinfo(), when the caller has it already."""
    if lines is None:
        with open("/proc/self/mountinfo") as f:
            lines = f.read().splitlines()
    found = {}
    for line in lines:
        fields = line.split()
        sep = fields.index("-")
        fstype = fields[sep + 1]
        if fstype == "cgroup2":
            found.setdefault("unified", (fields[4], fields[3]))
        elif fstype == "cgroup":
            opts = fields[sep + 3].split(",")
            names = [o for o in opts if o not in ("rw", "ro") and "=" not in o
                     and o not in ("xattr", "noprefix", "clone_children")]
            names += [o.split("=", 1)[1] for o in opts if o.startswith("name=")]
            found.setdefault(",".join(names), (fields[4], fields[3]))
    return found


def own_paths():
    """{hierarchy: this process's cgroup path} from /proc/self/cgroup."""
    found = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            found["unified" if ctrls == "" else ctrls.replace("name=", "")] = path
    return found


def _fill_cpusets(d, made=()):
    """A new v1 cpuset cgroup starts with empty sets and refuses tasks (ENOSPC): give it,
    and every ancestor below the hierarchy root that is still empty, its parent's sets, top
    down, as runc's cpusetEnsureParent does.  The ancestors too, because a parent made by a
    concurrent create (cgroupsPath /ns/id for twenty containers at once) may not have its
    sets yet when our directory is made below it; an empty cpuset holds no task, so filling
    it takes nothing from anyone.  made: the directories this create made, whose sets are
    written without being read first (empty, or with clone_children the parent's they get
    again); each parent's sets are read once, or known from the write below it."""
    root = hierarchy_root(d)
    chain = []
    while d != root and d.startswith(root + "/"):
        chain.append(d)
        d = paths.dirname(d)
    for name in ("cpuset.cpus", "cpuset.mems"):
        parent_sets = None  # the sets of the level above, once known
        for child in reversed(chain):
            if child not in made:
                own = read_file(paths.join(child, name)).strip()
                if own:
                    parent_sets = own
                    continue
            if parent_sets is None:
                parent_sets = read_file(paths.join(paths.dirname(child), name)).strip()
            write_file(paths.join(child, name), parent_sets)


def _limits_in(res):
    """linux.resources holds more than devices (apply_devices' rules): a config with none
    (runc spec's default, most engines' containers without limits) skips v1limits."""
    return (res.memory is not None or res.cpu is not None or res.pids is not None
            or res.block_io is not None or res.network is not None
            or bool(res.hugepage_limits or res.rdma or res.unified))


class V1Manager:
    version = 1

    def __init__(self, dirs, created):
        check_recorded(self.version, dirs, created)
        self.dirs = dirs  # {hierarchy name: absolute directory}
        self.created = created

    @classmethod
    def for_container(cls, cgroups_path, container_id, lines=None):
        own = own_paths()
        dirs = {}
        for name, (mountpoint, mount_root) in hierarchies(lines).items():
            if paths.dirname(mountpoint) != CGROUP_ROOT:
                continue  # v1 hierarchies are mounted at /sys/fs/cgroup/NAME
            own_path = own.get(name, "/")
            path = resolve_path(cgroups_path, container_id, own_path)
            if mount_root == "/":
                rel = path.lstrip("/")
            else:  # a hierarchy mounted from below its root (os only then)
                import os

                rel = os.path.relpath(path, mount_root)
            dirs[name] = paths.join(mountpoint, rel)
        return cls(dirs, [])

    def create(self):
        try:
            for name, d in self.dirs.items():
                make_dirs(d, self.created)
                if "cpuset" in name.split(","):
                    _fill_cpusets(d, self.created)
        except OSError as e:
            remove_dirs(self.created)
            raise PyruncError(f"creating cgroup: {e.filename}: {e.strerror}") from None

    def procs_files(self):
        return [paths.join(d, "cgroup.procs") for d in self.dirs.values()]

    def joins(self):
        """How the fork chain's first child joins: (the cgroup2 directory it is created in,
        a hybrid host's unified hierarchy, or None; the files it writes "0" to): each v1
        hierarchy's `tasks`, which moves the writing thread alone, the whole of a
        single-threaded child, without cgroup_threadgroup_rwsem (cgroup.procs takes it)."""
        return self.dirs.get("unified"), [paths.join(d, "tasks")
                                          for name, d in self.dirs.items() if name != "unified"]

    def apply_devices(self, rules):
        """v1 devices controller: the config's rules in order, then runc's defaults
        (an allow line repeated with no deny line between is written once)."""
        d = self.dirs.get("devices")
        if d is None:
            if rules:
                raise PyruncError("linux.resources.devices: the devices cgroup controller "
                                  "is not mounted on this host")
            return
        lines = []
        for rule in rules:
            kind = rule.type or "a"
            major = "*" if rule.major is None else rule.major  # config refuses negatives
            minor = "*" if rule.minor is None else rule.minor
            entry = "a" if kind == "a" else f"{kind} {major}:{minor} {rule.access or 'rwm'}"
            lines.append(("devices.allow" if rule.allow else "devices.deny", entry))
        lines += [("devices.allow", entry) for entry in DEFAULT_ALLOW] if rules else []
        allowed = set()  # the allow lines written since the last deny line
        for name, entry in lines:
            if name == "devices.deny":
                allowed.clear()
            elif entry in allowed:
                # the same allow again, no deny since: a no-op for the kernel (only a
                # deny takes an allowed device back), one write less (containerd's
                # default rules repeat nine of runc's defaults: 22 writes -> 13)
                continue
            else:
                allowed.add(entry)
            try:
                write_file(paths.join(d, name), entry)
            except OSError as e:
                raise PyruncError(f"linux.resources.devices: writing {entry!r} to {name}: "
                                  f"{e.strerror}") from None

    # --- resources ------------------------------------------------------------------------
    def set_resources(self, res, update=False, write=True):
        """Write linux.resources (all but devices) into the cgroup files.  Checks every
        controller and file first, so a missing one changes nothing (write=False: only
        that check).  See v1limits."""
        if res is None or not _limits_in(res):
            return  # nothing to check or write: v1limits and files not even imported
        from ociruntime.libcontainer.cgroups.v1limits import set_resources

        set_resources(self, res, update, write)

    def stats(self):
        from ociruntime.libcontainer.cgroups.stats import v1_stats

        return v1_stats(self)

    def oom_kills(self):
        """How many processes the OOM killer has killed in this cgroup (None: unknown)."""
        from ociruntime.libcontainer.cgroups.files import oom_kill_count

        d = self.dirs.get("memory")
        return oom_kill_count(paths.join(d, "memory.oom_control")) if d else None

    def bind_sources(self):
        """(name, host directory) pairs for a container's /sys/fs/cgroup (type cgroup): the
        v1 hierarchies only, as runc 1.1 (a hybrid host's cgroup2 "unified" is not bound)."""
        return [(name.split(",")[0] if "," not in name else name, d)
                for name, d in self.dirs.items() if name != "unified"]

    def pids(self):
        d = self.dirs.get("pids") or self.dirs.get("memory") or next(iter(self.dirs.values()))
        return read_tree_pids(d)

    def freezer_file(self):
        d = self.dirs.get("freezer")
        return paths.join(d, "freezer.state") if d else None

    def freeze(self, frozen):
        path = self.freezer_file()
        if path is None:
            raise PyruncError("pause: the freezer cgroup controller is not mounted")
        want = "FROZEN" if frozen else "THAWED"
        import time

        for _ in range(1000):  # FREEZING is transient: write again until it settles
            with open(path, "w") as f:
                f.write(want)
            with open(path) as f:
                if f.read().strip() == want:
                    return
            time.sleep(0.001)
        raise PyruncError(f"{'pause' if frozen else 'resume'}: the freezer did not settle")

    def destroy(self):
        remove_dirs(self.created, own=set(self.dirs.values()))
        self.created = []

    def to_record(self):
        return {"version": 1, "dirs": self.dirs, "created": self.created}
