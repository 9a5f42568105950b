"""cgroup v1 (and the hybrid layout): one directory per mounted hierarchy."""

import os

from ociruntime.errors import PyruncError
from ociruntime.libcontainer.cgroups import make_dirs, read_pids, remove_dirs, resolve_path

# what runc lets every container use, after the config's own rules
DEFAULT_ALLOW = ("c *:* m", "b *:* m", "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm",
                 "c 1:9 rwm", "c 5:0 rwm", "c 5:1 rwm", "c 5:2 rwm", "c 136:* rwm",
                 "c 10:200 rwm")


def hierarchies():
    """{name: (mount point, root of the mount)} for every cgroup hierarchy mounted."""
    found = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
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
    paths = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            paths["unified" if ctrls == "" else ctrls.replace("name=", "")] = path
    return paths


def _copy_cpuset(d):
    """A new v1 cpuset cgroup starts empty and refuses tasks: inherit the parent's sets."""
    parent = os.path.dirname(d)
    for name in ("cpuset.cpus", "cpuset.mems"):
        with open(os.path.join(parent, name)) as f:
            value = f.read().strip()
        with open(os.path.join(d, name), "w") as f:
            f.write(value)


class V1Manager:
    version = 1

    def __init__(self, dirs, created):
        self.dirs = dirs  # {hierarchy name: absolute directory}
        self.created = created

    @classmethod
    def for_container(cls, cgroups_path, container_id):
        own = own_paths()
        dirs = {}
        for name, (mountpoint, mount_root) in hierarchies().items():
            if not mountpoint.startswith("/sys/fs/cgroup"):
                continue
            own_path = own.get(name, "/")
            path = resolve_path(cgroups_path, container_id, own_path)
            rel = os.path.relpath(path, mount_root) if mount_root != "/" else path.lstrip("/")
            dirs[name] = os.path.join(mountpoint, rel)
        return cls(dirs, [])

    def create(self):
        try:
            for name, d in self.dirs.items():
                make_dirs(d, self.created, _copy_cpuset if "cpuset" in name.split(",") else None)
        except OSError as e:
            remove_dirs(self.created)
            raise PyruncError(f"creating cgroup: {e.filename}: {e.strerror}") from None

    def procs_files(self):
        return [os.path.join(d, "cgroup.procs") for d in self.dirs.values()]

    def apply_devices(self, rules):
        """v1 devices controller: the config's rules in order, then runc's defaults."""
        d = self.dirs.get("devices")
        if d is None:
            if rules:
                raise PyruncError("linux.resources.devices: the devices cgroup controller "
                                  "is not mounted on this host")
            return
        lines = []
        for rule in rules:
            kind = rule.type or "a"
            major = "*" if rule.major is None or rule.major < 0 else rule.major
            minor = "*" if rule.minor is None or rule.minor < 0 else rule.minor
            entry = "a" if kind == "a" else f"{kind} {major}:{minor} {rule.access or 'rwm'}"
            lines.append(("devices.allow" if rule.allow else "devices.deny", entry))
        lines += [("devices.allow", entry) for entry in DEFAULT_ALLOW] if rules else []
        for name, entry in lines:
            try:
                with open(os.path.join(d, name), "w") as f:
                    f.write(entry)
            except OSError as e:
                raise PyruncError(f"linux.resources.devices: writing {entry!r} to {name}: "
                                  f"{e.strerror}") from None

    def bind_sources(self):
        """(name, host directory) pairs for a container's /sys/fs/cgroup (type cgroup)."""
        return [(name.split(",")[0] if "," not in name else name, d)
                for name, d in self.dirs.items()]

    def pids(self):
        d = self.dirs.get("pids") or self.dirs.get("memory") or next(iter(self.dirs.values()))
        return read_pids(os.path.join(d, "cgroup.procs"))

    def freezer_file(self):
        d = self.dirs.get("freezer")
        return os.path.join(d, "freezer.state") if d else None

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
        remove_dirs(self.created)
        self.created = []

    def to_record(self):
        return {"version": 1, "dirs": self.dirs, "created": self.created}
