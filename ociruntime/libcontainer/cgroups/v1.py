"""cgroup v1 (and the hybrid layout): one directory per mounted hierarchy."""

import os

from ociruntime.errors import PyruncError
from ociruntime.libcontainer.cgroups import (
    CGROUP_ROOT,
    check_below,
    make_dirs,
    read_file,
    read_tree_pids,
    recorded_dirs,
    remove_dirs,
    resolve_path,
    write_file,
)
from ociruntime.libcontainer.cgroups.files import (
    FIELD,
    Files,
    WriteError,
    blkio_set,
    check_memory_usage,
    cpu_set,
    is_einval,
    memory_set,
    oom_kill_count,
    throttle_lines,
)

# what runc lets every container use, after the config's own rules
DEFAULT_ALLOW = ("c *:* m", "b *:* m", "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm",
                 "c 1:9 rwm", "c 5:0 rwm", "c 5:1 rwm", "c 5:2 rwm", "c 136:* rwm",
                 "c 10:200 rwm")

MEMSW = "memory.memsw.limit_in_bytes"
SWAP_HINT = " (swap accounting is off in this kernel)"
KMEM_HINT = (" (kernel memory limits are not recommended by the runtime spec and this "
             "kernel no longer has them)")
BLKIO_HINT = " (the I/O scheduler of this host offers no such weight)"
THROTTLE_FILES = {"rbps": "blkio.throttle.read_bps_device",
                  "wbps": "blkio.throttle.write_bps_device",
                  "riops": "blkio.throttle.read_iops_device",
                  "wiops": "blkio.throttle.write_iops_device"}


def rdma_line(device, limits):
    line = device
    if limits.hca_handles is not None:
        line += f" hca_handle={limits.hca_handles}"
    if limits.hca_objects is not None:
        line += f" hca_object={limits.hca_objects}"
    return line


def _set_limit(files, d, limit):
    try:
        files.write(d, "memory.limit_in_bytes", limit, "memory.limit")
    except WriteError as e:
        memsw = os.path.join(d, MEMSW)
        if e.errno == 22 and os.path.exists(memsw):  # EINVAL: above memory+swap
            with open(memsw) as f:
                current = f.read().strip()
            if int(current) < limit:
                raise PyruncError(f"{FIELD}memory.limit: {limit} is above the memory+swap "
                                  f"limit in force ({current}); set memory.swap too") from None
        if e.errno != 16:  # EBUSY: below what the cgroup uses now
            raise
        usage = files.read_int(d, "memory.usage_in_bytes", "memory.limit")
        peak = files.read_int(d, "memory.max_usage_in_bytes", "memory.limit")
        raise PyruncError(f"{FIELD}memory.limit: unable to set the memory limit to {limit} "
                          f"(current usage: {usage}, peak usage: {peak})") from None


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


def _fill_cpusets(d):
    """A new v1 cpuset cgroup starts with empty sets and refuses tasks (ENOSPC): give it,
    and every ancestor below the hierarchy root that is still empty, its parent's sets, top
    down, as runc's cpusetEnsureParent does.  The ancestors too, because a parent made by a
    concurrent create (cgroupsPath /ns/id for twenty containers at once) may not have its
    sets yet when our directory is made below it; an empty cpuset holds no task, so filling
    it takes nothing from anyone."""
    root = _hierarchy_root(d)
    chain = []
    while d != root and d.startswith(root + "/"):
        chain.append(d)
        d = os.path.dirname(d)
    for child in reversed(chain):
        parent = os.path.dirname(child)
        for name in ("cpuset.cpus", "cpuset.mems"):
            if read_file(os.path.join(child, name)).strip():
                continue
            write_file(os.path.join(child, name), read_file(os.path.join(parent, name)).strip())


def _hierarchy_root(d):
    """The mount point of the hierarchy a directory lives in: /sys/fs/cgroup/NAME."""
    name = d[len(CGROUP_ROOT) + 1:].split("/", 1)[0] if type(d) is str else ""
    return f"{CGROUP_ROOT}/{name or '-'}"


class V1Manager:
    version = 1

    def __init__(self, dirs, created):
        for d in recorded_dirs(dirs, created):
            check_below(d, _hierarchy_root(d))
        self.dirs = dirs  # {hierarchy name: absolute directory}
        self.created = created

    @classmethod
    def for_container(cls, cgroups_path, container_id):
        own = own_paths()
        dirs = {}
        for name, (mountpoint, mount_root) in hierarchies().items():
            if os.path.dirname(mountpoint) != CGROUP_ROOT:
                continue  # v1 hierarchies are mounted at /sys/fs/cgroup/NAME
            own_path = own.get(name, "/")
            path = resolve_path(cgroups_path, container_id, own_path)
            rel = os.path.relpath(path, mount_root) if mount_root != "/" else path.lstrip("/")
            dirs[name] = os.path.join(mountpoint, rel)
        return cls(dirs, [])

    def create(self):
        try:
            for name, d in self.dirs.items():
                make_dirs(d, self.created)
                if "cpuset" in name.split(","):
                    _fill_cpusets(d)
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
            major = "*" if rule.major is None else rule.major  # config refuses negatives
            minor = "*" if rule.minor is None else rule.minor
            entry = "a" if kind == "a" else f"{kind} {major}:{minor} {rule.access or 'rwm'}"
            lines.append(("devices.allow" if rule.allow else "devices.deny", entry))
        lines += [("devices.allow", entry) for entry in DEFAULT_ALLOW] if rules else []
        for name, entry in lines:
            try:
                write_file(os.path.join(d, name), entry)
            except OSError as e:
                raise PyruncError(f"linux.resources.devices: writing {entry!r} to {name}: "
                                  f"{e.strerror}") from None

    # --- resources ------------------------------------------------------------------------
    def controller_dir(self, controller, what):
        """The directory of the hierarchy that holds controller, or a clear error."""
        for name, d in self.dirs.items():
            if controller in name.replace("name=", "").split(","):
                return d
        raise PyruncError(f"{FIELD}{what}: the {controller} cgroup controller is not mounted "
                          "on this host")

    def set_resources(self, res, update=False, write=True):
        """Write linux.resources (all but devices) into the cgroup files.  Checks every
        controller and file first, so a missing one changes nothing (write=False: only
        that check)."""
        if res is None:
            return
        for dry in (True, False) if write else (True,):
            files = Files(dry)
            if res.unified:
                raise PyruncError(f"{FIELD}unified: cgroup v2 files cannot be set on this "
                                  "cgroup v1 host")
            if memory_set(res.memory):
                self._set_memory(files, res.memory, update)
            if cpu_set(res.cpu):
                self._set_cpu(files, res.cpu)
            if res.pids is not None:
                limit = res.pids.limit
                files.write(self.controller_dir("pids", "pids"), "pids.max",
                            "max" if limit < 0 else limit, "pids.limit")
            if blkio_set(res.block_io):
                self._set_blkio(files, res.block_io)
            for index, hp in enumerate(res.hugepage_limits):
                what = f"hugepageLimits[{index}]"
                d = self.controller_dir("hugetlb", what)
                files.write(d, f"hugetlb.{hp.page_size}.limit_in_bytes", hp.limit, what)
                if os.path.exists(os.path.join(d, f"hugetlb.{hp.page_size}.rsvd.limit_in_bytes")):
                    files.write(d, f"hugetlb.{hp.page_size}.rsvd.limit_in_bytes", hp.limit, what)
            net = res.network
            if net is not None and net.class_id is not None:
                files.write(self.controller_dir("net_cls", "network.classID"),
                            "net_cls.classid", net.class_id, "network.classID")
            if net is not None:
                for index, prio in enumerate(net.priorities):
                    what = f"network.priorities[{index}]"
                    files.write(self.controller_dir("net_prio", what), "net_prio.ifpriomap",
                                f"{prio.name} {prio.priority}", what)
            for device, limits in res.rdma.items():
                what = f"rdma[{device!r}]"
                files.write(self.controller_dir("rdma", what), "rdma.max",
                            rdma_line(device, limits), what)

    def _set_memory(self, files, mem, update):
        d = self.controller_dir("memory", "memory")
        if update:
            check_memory_usage(files, d, "memory.usage_in_bytes", mem,
                               "memory.memsw.usage_in_bytes")
        limit, swap = mem.limit or 0, mem.swap or 0
        if limit == -1 and swap == 0 and os.path.exists(os.path.join(d, MEMSW)):
            swap = -1  # unlimited memory, swap unset: unlimited swap too (as runc)
        # the kernel wants memsw >= limit at every moment: raise first what must grow
        if limit and swap:
            current = files.read_int(d, "memory.limit_in_bytes", "memory.limit")
            if swap == -1 or current < swap:
                files.write(d, MEMSW, swap, "memory.swap", SWAP_HINT)
                _set_limit(files, d, limit)
                swap = 0
                limit = 0
        if limit:
            _set_limit(files, d, limit)
        if swap:
            files.write(d, MEMSW, swap, "memory.swap", SWAP_HINT)
        # 0 means "not set", as runc reads it: docker update always sends {"kernel": 0}
        if mem.kernel:
            files.write(d, "memory.kmem.limit_in_bytes", mem.kernel, "memory.kernel", KMEM_HINT)
            # Linux >= 5.16 keeps the file but ignores what is written to it
            got = files.read_int(d, "memory.kmem.limit_in_bytes", "memory.kernel")
            if not files.dry and mem.kernel >= 0 and got > mem.kernel:
                raise PyruncError(f"{FIELD}memory.kernel: this kernel ignores "
                                  f"memory.kmem.limit_in_bytes (it reads {got} after writing "
                                  f"{mem.kernel}){KMEM_HINT}")
        if mem.kernel_tcp:
            files.write(d, "memory.kmem.tcp.limit_in_bytes", mem.kernel_tcp, "memory.kernelTCP",
                        KMEM_HINT)
        if mem.reservation:
            files.write(d, "memory.soft_limit_in_bytes", mem.reservation, "memory.reservation")
        if mem.swappiness is not None:
            if mem.swappiness > 100:
                raise PyruncError(f"{FIELD}memory.swappiness: {mem.swappiness} is out of range "
                                  "(0 to 100)")
            files.write(d, "memory.swappiness", mem.swappiness, "memory.swappiness")
        if mem.disable_oom_killer is not None:
            files.write(d, "memory.oom_control", int(mem.disable_oom_killer),
                        "memory.disableOOMKiller")
        if mem.use_hierarchy is not None:
            files.write(d, "memory.use_hierarchy", int(mem.use_hierarchy), "memory.useHierarchy")

    def _set_cpu(self, files, cpu):
        if cpu.cpus or cpu.mems:
            d = self.controller_dir("cpuset", "cpu.cpus" if cpu.cpus else "cpu.mems")
            if cpu.cpus:
                files.write(d, "cpuset.cpus", cpu.cpus, "cpu.cpus")
            if cpu.mems:
                files.write(d, "cpuset.mems", cpu.mems, "cpu.mems")
        if not any(v for v in (cpu.shares, cpu.quota, cpu.period, cpu.realtime_runtime,
                               cpu.realtime_period)) and cpu.burst is None and cpu.idle is None:
            return
        d = self.controller_dir("cpu", "cpu")
        if cpu.shares:
            files.write(d, "cpu.shares", cpu.shares, "cpu.shares")
            if not files.dry:
                got = files.read_int(d, "cpu.shares", "cpu.shares")
                if got != cpu.shares:
                    bound = "maximum" if cpu.shares > got else "minimum"
                    raise PyruncError(f"{FIELD}cpu.shares: the {bound} allowed cpu-shares is "
                                      f"{got}")
        # a period or burst the kernel refuses against the old quota is retried after it
        period = burst = None
        if cpu.period:
            try:
                files.write(d, "cpu.cfs_period_us", cpu.period, "cpu.period")
            except WriteError as e:
                if not is_einval(e) or not cpu.quota:
                    raise
                period = cpu.period
        if cpu.burst is not None:
            try:
                files.write(d, "cpu.cfs_burst_us", cpu.burst, "cpu.burst")
            except WriteError as e:
                if not is_einval(e) or not cpu.quota:
                    raise
                burst = cpu.burst
        if cpu.quota:
            files.write(d, "cpu.cfs_quota_us", cpu.quota, "cpu.quota")
            if period is not None:
                files.write(d, "cpu.cfs_period_us", period, "cpu.period")
            if burst is not None:
                files.write(d, "cpu.cfs_burst_us", burst, "cpu.burst")
        if cpu.idle is not None:
            files.write(d, "cpu.idle", cpu.idle, "cpu.idle")
        # realtime: period and runtime depend on each other, the same retry
        period = None
        if cpu.realtime_period:
            try:
                files.write(d, "cpu.rt_period_us", cpu.realtime_period, "cpu.realtimePeriod")
            except WriteError as e:
                if not is_einval(e) or not cpu.realtime_runtime:
                    raise
                period = cpu.realtime_period
        if cpu.realtime_runtime:
            files.write(d, "cpu.rt_runtime_us", cpu.realtime_runtime, "cpu.realtimeRuntime")
            if period is not None:
                files.write(d, "cpu.rt_period_us", period, "cpu.realtimePeriod")

    def _set_blkio(self, files, blkio):
        d = self.controller_dir("blkio", "blockIO")
        bfq = not os.path.exists(os.path.join(d, "blkio.weight"))
        weight_file = "blkio.bfq.weight" if bfq else "blkio.weight"
        # 0 means "not set", as runc reads it: docker always sends {"weight": 0}
        if blkio.weight:
            files.write(d, weight_file, blkio.weight, "blockIO.weight", BLKIO_HINT)
        if blkio.leaf_weight:
            files.write(d, "blkio.leaf_weight", blkio.leaf_weight, "blockIO.leafWeight",
                        BLKIO_HINT)
        for index, wd in enumerate(blkio.weight_device):
            what = f"blockIO.weightDevice[{index}]"
            if wd.weight is not None:
                files.write(d, weight_file + "_device", f"{wd.major}:{wd.minor} {wd.weight}",
                            what, BLKIO_HINT)
            if wd.leaf_weight is not None:
                files.write(d, "blkio.leaf_weight_device",
                            f"{wd.major}:{wd.minor} {wd.leaf_weight}", what, BLKIO_HINT)
        for what, kind, td in throttle_lines(blkio):
            name = THROTTLE_FILES[kind]
            files.write(d, name, f"{td.major}:{td.minor} {td.rate}", what)

    def stats(self):
        from ociruntime.libcontainer.cgroups.stats import v1_stats

        return v1_stats(self)

    def oom_kills(self):
        """How many processes the OOM killer has killed in this cgroup (None: unknown)."""
        d = self.dirs.get("memory")
        return oom_kill_count(os.path.join(d, "memory.oom_control")) if d else None

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
        remove_dirs(self.created, own=set(self.dirs.values()))
        self.created = []

    def to_record(self):
        return {"version": 1, "dirs": self.dirs, "created": self.created}
