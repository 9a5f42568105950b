"""cgroup v2 limits: linux.resources written into the container's files (create, update),
v1 values converted as runc converts them.

Apart from v2.py's directory, as v1limits from v1.py: what only finds, joins or removes a
container's cgroup (delete, kill --all, pause, ps) imports neither this module nor the
files module (nor the os it brings).
"""

import os

from ociruntime.errors import PyruncError
from ociruntime.libcontainer.cgroups import CGROUP_ROOT
from ociruntime.libcontainer.cgroups.files import (
    FIELD,
    Files,
    blkio_set,
    blkio_weight_to_io_weight,
    check_memory_usage,
    cpu_set,
    cpu_shares_to_weight,
    memory_set,
    swap_to_v2,
    throttle_lines,
)


def set_resources(mgr, res, update=False, write=True):
    """V2Manager.set_resources: see there."""
    _refuse_v1_only(res)
    needed = _controllers_for(res)
    _check_controllers(needed)
    _enable_controllers(mgr.dir, needed)
    for dry in (True, False) if write else (True,):
        files = Files(dry)
        d = mgr.dir
        if res.pids is not None:
            limit = res.pids.limit
            files.write(d, "pids.max", "max" if limit < 0 else limit, "pids.limit")
        if memory_set(res.memory):
            _set_memory(d, files, res.memory, update)
        if blkio_set(res.block_io):
            _set_io(d, files, res.block_io)
        if cpu_set(res.cpu):
            _set_cpu(d, files, res.cpu)
        for index, hp in enumerate(res.hugepage_limits):
            what = f"hugepageLimits[{index}]"
            files.write(d, f"hugetlb.{hp.page_size}.max", hp.limit, what)
            if os.path.exists(os.path.join(d, f"hugetlb.{hp.page_size}.rsvd.max")):
                files.write(d, f"hugetlb.{hp.page_size}.rsvd.max", hp.limit, what)
        for device, limits in res.rdma.items():
            from ociruntime.libcontainer.cgroups.v1limits import rdma_line

            files.write(d, "rdma.max", rdma_line(device, limits), f"rdma[{device!r}]")
        for key, value in res.unified.items():
            what = f"unified[{key!r}]"
            if "/" in key or key in (".", ".."):
                raise PyruncError(f"{FIELD}{what}: must be a file name (no slashes)")
            for line in [part for part in value.split("\n") if part] or [value]:
                files.write(d, key, line, what)


def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def _refuse_v1_only(res):
    """Settings cgroup v2 has no file for: an error, never a silent skip."""
    mem, cpu, blkio, net = res.memory, res.cpu, res.block_io, res.network
    bad = []
    if mem is not None:
        bad += [name for name, value in (("memory.kernel", mem.kernel),
                                         ("memory.kernelTCP", mem.kernel_tcp),
                                         ("memory.swappiness", mem.swappiness))
                if value is not None]
        if mem.disable_oom_killer:
            bad.append("memory.disableOOMKiller")
        if mem.use_hierarchy is False:
            bad.append("memory.useHierarchy")  # v2 is always hierarchical
    if cpu is not None and (cpu.realtime_runtime or cpu.realtime_period):
        bad.append("cpu.realtimeRuntime" if cpu.realtime_runtime else "cpu.realtimePeriod")
    if blkio is not None:
        if blkio.leaf_weight is not None:
            bad.append("blockIO.leafWeight")
        bad += [f"blockIO.weightDevice[{i}].leafWeight"
                for i, wd in enumerate(blkio.weight_device) if wd.leaf_weight is not None]
    if net is not None and (net.class_id is not None or net.priorities):
        bad.append("network")
    if bad:
        raise PyruncError(f"{FIELD}{bad[0]}: cgroup v2 has no equivalent of this cgroup v1 "
                          "setting")


def _controllers_for(res):
    """{controller: the config field that needs it}."""
    needed = {}
    if res.pids is not None:
        needed["pids"] = "pids"
    if memory_set(res.memory):
        needed["memory"] = "memory"
    if blkio_set(res.block_io):
        needed["io"] = "blockIO"
    cpu = res.cpu
    if cpu_set(cpu):
        if cpu.cpus or cpu.mems:
            needed["cpuset"] = "cpu.cpus" if cpu.cpus else "cpu.mems"
        if cpu.shares or cpu.quota or cpu.period or cpu.burst is not None or cpu.idle is not None:
            needed["cpu"] = "cpu"
    if res.hugepage_limits:
        needed["hugetlb"] = "hugepageLimits"
    if res.rdma:
        needed["rdma"] = "rdma"
    for key in res.unified:
        controller = key.split(".", 1)[0]
        if "." not in key:
            raise PyruncError(f"{FIELD}unified[{key!r}]: must be CONTROLLER.PARAMETER")
        if controller != "cgroup":
            needed.setdefault(controller, f"unified[{key!r}]")
    return needed


def _set_memory(d, files, mem, update):
    if update:
        check_memory_usage(files, d, "memory.current", mem)
    limit, swap = mem.limit or 0, mem.swap or 0
    if limit or swap:
        swap_v2 = swap_to_v2(swap, limit)
        text = {0: "", -1: "max"}.get(swap_v2, str(swap_v2))
        if swap_v2 == 0 and swap > 0:
            text = "0"  # memory+swap equal to memory: no swap at all
        if text:
            try:
                files.write(d, "memory.swap.max", text, "memory.swap")
            except PyruncError:
                # without swap accounting "no limit" and "no swap" are what we have
                if os.path.exists(os.path.join(d, "memory.swap.max")) or text not in (
                        "max", "0"):
                    raise
        if limit:
            files.write(d, "memory.max", "max" if limit == -1 else limit, "memory.limit")
    if mem.reservation:
        files.write(d, "memory.low", "max" if mem.reservation == -1 else mem.reservation,
                    "memory.reservation")


def _set_io(d, files, blkio):
    bfq = os.path.exists(os.path.join(d, "io.bfq.weight"))
    if blkio.weight:  # 0 means "not set", as runc reads it (docker sends 0)
        if bfq:
            files.write(d, "io.bfq.weight", blkio.weight, "blockIO.weight")
        else:
            files.write(d, "io.weight", blkio_weight_to_io_weight(blkio.weight),
                        "blockIO.weight")
    for index, wd in enumerate(blkio.weight_device):
        if wd.weight is None:
            continue
        what = f"blockIO.weightDevice[{index}]"
        if bfq:
            files.write(d, "io.bfq.weight", f"{wd.major}:{wd.minor} {wd.weight}", what)
        else:
            files.write(d, "io.weight", f"{wd.major}:{wd.minor} "
                        f"{blkio_weight_to_io_weight(wd.weight)}", what)
    for what, kind, td in throttle_lines(blkio):
        files.write(d, "io.max", f"{td.major}:{td.minor} {kind}={td.rate}", what)


def _set_cpu(d, files, cpu):
    if cpu.cpus:
        files.write(d, "cpuset.cpus", cpu.cpus, "cpu.cpus")
    if cpu.mems:
        files.write(d, "cpuset.mems", cpu.mems, "cpu.mems")
    if cpu.idle is not None:
        files.write(d, "cpu.idle", cpu.idle, "cpu.idle")
    if cpu.shares:
        files.write(d, "cpu.weight", cpu_shares_to_weight(cpu.shares), "cpu.shares")
    burst = None
    if cpu.burst is not None:
        burst = files.write_or_defer(d, "cpu.max.burst", cpu.burst, "cpu.burst",
                                     cpu.quota)
    if cpu.quota or cpu.period:
        period = cpu.period
        if not period:  # keep the period in force (runc update keeps the old one too)
            current = files.read(d, "cpu.max", "cpu.period").split()
            period = int(current[1]) if len(current) == 2 else 100000
        if cpu.quota:
            quota = "max" if cpu.quota < 0 else cpu.quota
        else:
            current = files.read(d, "cpu.max", "cpu.quota").split()
            quota = current[0] if current else "max"
        files.write(d, "cpu.max", f"{quota} {period}", "cpu.quota")
        if burst is not None:
            files.write(d, "cpu.max.burst", burst, "cpu.burst")


def _ancestors(d):
    """The cgroups from the mount root down to the container's parent."""
    out = []
    p = os.path.dirname(d)
    while p.startswith(CGROUP_ROOT) and len(p) >= len(CGROUP_ROOT):
        out.append(p)
        if p == CGROUP_ROOT:
            break
        p = os.path.dirname(p)
    return list(reversed(out))


def _check_controllers(needed):
    if not needed:
        return
    root = _read(os.path.join(CGROUP_ROOT, "cgroup.controllers")).split()
    for controller, what in needed.items():
        if controller not in root:
            raise PyruncError(f"{FIELD}{what}: the {controller} cgroup controller is not "
                              f"available on this host (cgroup.controllers: "
                              f"{' '.join(root) or 'none'})")


def _enable_controllers(d, needed):
    for parent in _ancestors(d):
        enabled = _read(os.path.join(parent, "cgroup.subtree_control")).split()
        for controller, what in needed.items():
            if controller in enabled:
                continue
            try:
                with open(os.path.join(parent, "cgroup.subtree_control"), "w") as f:
                    f.write("+" + controller)
            except OSError as e:
                raise PyruncError(
                    f"{FIELD}{what}: cannot enable the {controller} controller in "
                    f"{parent}/cgroup.subtree_control: {os.strerror(e.errno)}") from None
