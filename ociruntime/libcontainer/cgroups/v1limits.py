"""cgroup v1 limits: linux.resources written into the hierarchies' files (create, update).

Apart from v1.py's directories, so that what only finds, joins or removes a container's
cgroups (delete, kill --all, pause, ps) does not import it and the files module.
"""

import os

from ociruntime.errors import PyruncError
from ociruntime.libcontainer.cgroups.files import (
    FIELD,
    Files,
    WriteError,
    blkio_set,
    check_memory_usage,
    cpu_set,
    memory_set,
    throttle_lines,
)

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


def _controller_dir(manager, controller, what):
    """The directory of the hierarchy that holds controller, or a clear error."""
    for name, d in manager.dirs.items():
        if controller in name.replace("name=", "").split(","):
            return d
    raise PyruncError(f"{FIELD}{what}: the {controller} cgroup controller is not mounted "
                      "on this host")


def set_resources(manager, res, update=False, write=True):
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
            _set_memory(manager, files, res.memory, update)
        if cpu_set(res.cpu):
            _set_cpu(manager, files, res.cpu)
        if res.pids is not None:
            limit = res.pids.limit
            files.write(_controller_dir(manager, "pids", "pids"), "pids.max",
                        "max" if limit < 0 else limit, "pids.limit")
        if blkio_set(res.block_io):
            _set_blkio(manager, files, res.block_io)
        for index, hp in enumerate(res.hugepage_limits):
            what = f"hugepageLimits[{index}]"
            d = _controller_dir(manager, "hugetlb", what)
            files.write(d, f"hugetlb.{hp.page_size}.limit_in_bytes", hp.limit, what)
            if os.path.exists(os.path.join(d, f"hugetlb.{hp.page_size}.rsvd.limit_in_bytes")):
                files.write(d, f"hugetlb.{hp.page_size}.rsvd.limit_in_bytes", hp.limit, what)
        net = res.network
        if net is not None and net.class_id is not None:
            files.write(_controller_dir(manager, "net_cls", "network.classID"),
                        "net_cls.classid", net.class_id, "network.classID")
        if net is not None:
            for index, prio in enumerate(net.priorities):
                what = f"network.priorities[{index}]"
                files.write(_controller_dir(manager, "net_prio", what), "net_prio.ifpriomap",
                            f"{prio.name} {prio.priority}", what)
        for device, limits in res.rdma.items():
            what = f"rdma[{device!r}]"
            files.write(_controller_dir(manager, "rdma", what), "rdma.max",
                        rdma_line(device, limits), what)

def _set_memory(manager, files, mem, update):
    d = _controller_dir(manager, "memory", "memory")
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

def _set_cpu(manager, files, cpu):
    if cpu.cpus or cpu.mems:
        d = _controller_dir(manager, "cpuset", "cpu.cpus" if cpu.cpus else "cpu.mems")
        if cpu.cpus:
            files.write(d, "cpuset.cpus", cpu.cpus, "cpu.cpus")
        if cpu.mems:
            files.write(d, "cpuset.mems", cpu.mems, "cpu.mems")
    if not any(v for v in (cpu.shares, cpu.quota, cpu.period, cpu.realtime_runtime,
                           cpu.realtime_period)) and cpu.burst is None and cpu.idle is None:
        return
    d = _controller_dir(manager, "cpu", "cpu")
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
        period = files.write_or_defer(d, "cpu.cfs_period_us", cpu.period, "cpu.period",
                                      cpu.quota)
    if cpu.burst is not None:
        burst = files.write_or_defer(d, "cpu.cfs_burst_us", cpu.burst, "cpu.burst",
                                     cpu.quota)
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
        period = files.write_or_defer(d, "cpu.rt_period_us", cpu.realtime_period,
                                      "cpu.realtimePeriod", cpu.realtime_runtime)
    if cpu.realtime_runtime:
        files.write(d, "cpu.rt_runtime_us", cpu.realtime_runtime, "cpu.realtimeRuntime")
        if period is not None:
            files.write(d, "cpu.rt_period_us", period, "cpu.realtimePeriod")

def _set_blkio(manager, files, blkio):
    d = _controller_dir(manager, "blkio", "blockIO")
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
