"""Cgroup statistics in the shape `runc events --stats` prints (runc's types.Stats).

Field names and the omission of zero values follow runc 1.1.5's JSON tags (`omitempty`:
zero numbers, empty lists and maps go, structs stay), so tools written against runc's
output read ours.
"""

import os

from ociruntime.libcontainer.cgroups.files import parse_uint

NS_PER_SEC = 1_000_000_000
U64_MAX = 2**64 - 1


# The reading API (the shim's metrics read the same files their own way): a missing file
# (a controller not enabled, a kernel without it) is None, never an error.

def read_text(directory, name):
    """A cgroup file's text; None when it does not exist."""
    try:
        with open(os.path.join(directory, name)) as f:
            return f.read()
    except (FileNotFoundError, TypeError):
        return None


def read_uint(directory, name):
    """A one-number file ("max" as 2**64-1); None when it does not exist."""
    text = read_text(directory, name)
    return None if text is None else parse_uint(text)


def _key_values(text):
    out = {}
    for line in (text or "").splitlines():
        key, _, value = line.partition(" ")
        if value:
            try:
                out[key] = int(value.split()[0])
            except ValueError:
                continue
    return out


def read_key_values(directory, name):
    """A flat keyed file ("key value" lines: cpu.stat, memory.stat, memory.events) as
    {key: int}; {} when it does not exist."""
    return _key_values(read_text(directory, name))


def _list(text):
    """A cpuset list ("0-3,7") as the numbers."""
    out = []
    for part in (text or "").strip().split(","):
        if not part:
            continue
        low, _, high = part.partition("-")
        out.extend(range(int(low), int(high or low) + 1))
    return out


def _omit_empty(d, always=()):
    return {k: v for k, v in d.items() if k in always or v not in (0, "", None, [], {})}


def _memory_entry(limit, usage, peak, failcnt):
    return _omit_empty({"limit": limit, "usage": usage, "max": peak, "failcnt": failcnt},
                       always=("limit", "failcnt"))


def _zero_entry(entry):
    return not any(entry.values())


def _assemble(cpu_usage, throttling, cpuset, memory, pids, blkio, hugetlb):
    # Go's omitempty never drops a struct: runc 1.1.5 always prints cpu.usage (with its
    # kernel and user) and cpu.throttling, "{}" when nothing was throttled
    cpu = {"usage": _omit_empty(cpu_usage, always=("kernel", "user")),
           "throttling": _omit_empty(throttling)}
    return {
        "cpu": cpu,
        "cpuset": cpuset,
        "memory": memory,
        "pids": _omit_empty(pids),
        "blkio": {k: v for k, v in blkio.items() if v},
        "hugetlb": hugetlb,
        "intel_rdt": {},
        "network_interfaces": None,
    }


def _memory_doc(raw, cache, entries):
    memory = {}
    if cache:
        memory["cache"] = cache
    for key, entry in entries:
        if not _zero_entry(entry):
            memory[key] = entry
    if raw:
        memory["raw"] = raw
    return memory


# --- cgroup v1 ---------------------------------------------------------------------------------
def _v1_memory_data(d, prefix):
    usage = read_uint(d, prefix + ".usage_in_bytes")
    if usage is None:
        return _memory_entry(0, 0, 0, 0)
    return _memory_entry(read_uint(d, prefix + ".limit_in_bytes") or 0, usage,
                         read_uint(d, prefix + ".max_usage_in_bytes") or 0,
                         read_uint(d, prefix + ".failcnt") or 0)


def _blkio_entries(d, name):
    text = read_text(d, name)
    if text is None:
        return None
    out = []
    for line in text.splitlines():
        fields = line.replace(":", " ").split()
        if len(fields) < 3:
            continue
        entry = {"major": int(fields[0]), "minor": int(fields[1])}
        if len(fields) == 4:
            entry["op"] = fields[2]
        entry["value"] = int(fields[-1])
        out.append(_omit_empty(entry))
    return out


# runc's order: the first group whose first file exists wins
_BLKIO_GROUPS = (
    (("blkio.bfq.sectors_recursive", "sectorsRecursive"),
     ("blkio.bfq.io_service_time_recursive", "ioServiceTimeRecursive"),
     ("blkio.bfq.io_wait_time_recursive", "ioWaitTimeRecursive"),
     ("blkio.bfq.io_merged_recursive", "ioMergedRecursive"),
     ("blkio.bfq.io_queued_recursive", "ioQueueRecursive"),
     ("blkio.bfq.time_recursive", "ioTimeRecursive"),
     ("blkio.bfq.io_serviced_recursive", "ioServicedRecursive"),
     ("blkio.bfq.io_service_bytes_recursive", "ioServiceBytesRecursive")),
    (("blkio.bfq.io_serviced_recursive", "ioServicedRecursive"),
     ("blkio.bfq.io_service_bytes_recursive", "ioServiceBytesRecursive")),
    (("blkio.sectors_recursive", "sectorsRecursive"),
     ("blkio.io_service_time_recursive", "ioServiceTimeRecursive"),
     ("blkio.io_wait_time_recursive", "ioWaitTimeRecursive"),
     ("blkio.io_merged_recursive", "ioMergedRecursive"),
     ("blkio.io_queued_recursive", "ioQueueRecursive"),
     ("blkio.time_recursive", "ioTimeRecursive"),
     ("blkio.io_serviced_recursive", "ioServicedRecursive"),
     ("blkio.io_service_bytes_recursive", "ioServiceBytesRecursive")),
    (("blkio.throttle.io_serviced_recursive", "ioServicedRecursive"),
     ("blkio.throttle.io_service_bytes_recursive", "ioServiceBytesRecursive")),
    (("blkio.throttle.io_serviced", "ioServicedRecursive"),
     ("blkio.throttle.io_service_bytes", "ioServiceBytesRecursive")),
)


def _v1_blkio(d):
    if d is None:
        return {}
    for group in _BLKIO_GROUPS:
        found = {}
        for index, (name, key) in enumerate(group):
            entries = _blkio_entries(d, name)
            if entries is None:
                break
            found[key] = entries
            if index == len(group) - 1:
                return found
    return {}


def hugepage_sizes():
    """The hugepage sizes as the cgroup files name them (2MB, 1GB)."""
    sizes = []
    try:
        names = os.listdir("/sys/kernel/mm/hugepages")
    except OSError:
        return sizes
    for name in sorted(names):
        kb = int(name.split("-")[1].rstrip("kB"))
        for unit, scale in (("GB", 1 << 20), ("MB", 1 << 10), ("KB", 1)):
            if kb % scale == 0:
                sizes.append(f"{kb // scale}{unit}")
                break
    return sizes


def v1_stats(manager):
    def dir_of(controller):
        for name, d in manager.dirs.items():
            if controller in name.split(","):
                return d
        return None

    cpuacct, cpu, mem = dir_of("cpuacct"), dir_of("cpu"), dir_of("memory")
    cpu_usage = {"total": 0, "percpu": [], "percpu_kernel": [], "percpu_user": [], "kernel": 0,
                 "user": 0}
    if cpuacct and os.path.isdir(cpuacct):
        ticks = os.sysconf("SC_CLK_TCK")
        modes = read_key_values(cpuacct, "cpuacct.stat")
        cpu_usage["user"] = modes.get("user", 0) * NS_PER_SEC // ticks
        cpu_usage["kernel"] = modes.get("system", 0) * NS_PER_SEC // ticks
        cpu_usage["total"] = read_uint(cpuacct, "cpuacct.usage") or 0
        cpu_usage["percpu"] = [int(x) for x in (read_text(cpuacct, "cpuacct.usage_percpu")
                                                or "").split()]
        for line in (read_text(cpuacct, "cpuacct.usage_all") or "").splitlines()[1:]:
            fields = line.split()
            if len(fields) >= 3:
                cpu_usage["percpu_user"].append(int(fields[1]))
                cpu_usage["percpu_kernel"].append(int(fields[2]))
    stat = read_key_values(cpu, "cpu.stat") if cpu else {}
    throttling = {"periods": stat.get("nr_periods", 0),
                  "throttledPeriods": stat.get("nr_throttled", 0),
                  "throttledTime": stat.get("throttled_time", 0)}

    cpuset = {}
    cs = dir_of("cpuset")
    if cs and os.path.isdir(cs):
        cpuset = _omit_empty({
            "cpus": _list(read_text(cs, "cpuset.effective_cpus") or read_text(cs, "cpuset.cpus")),
            "cpu_exclusive": read_uint(cs, "cpuset.cpu_exclusive") or 0,
            "mems": _list(read_text(cs, "cpuset.effective_mems") or read_text(cs, "cpuset.mems")),
            "mem_hardwall": read_uint(cs, "cpuset.mem_hardwall") or 0,
            "mem_exclusive": read_uint(cs, "cpuset.mem_exclusive") or 0,
            "memory_migrate": read_uint(cs, "cpuset.memory_migrate") or 0,
            "memory_spread_page": read_uint(cs, "cpuset.memory_spread_page") or 0,
            "memory_spread_slab": read_uint(cs, "cpuset.memory_spread_slab") or 0,
            "memory_pressure": read_uint(cs, "cpuset.memory_pressure") or 0,
            "sched_load_balance": read_uint(cs, "cpuset.sched_load_balance") or 0,
            "sched_relax_domain_level": int((read_text(cs, "cpuset.sched_relax_domain_level")
                                             or "0").strip()),
        }, always=("cpu_exclusive", "mem_hardwall", "mem_exclusive", "memory_migrate",
                   "memory_spread_page", "memory_spread_slab", "memory_pressure",
                   "sched_load_balance", "sched_relax_domain_level"))

    memory = {}
    if mem and os.path.isdir(mem):
        raw = read_key_values(mem, "memory.stat")
        usage = _v1_memory_data(mem, "memory")
        swap = _v1_memory_data(mem, "memory.memsw")
        memory = _memory_doc(raw, raw.get("cache", 0), (
            ("usage", usage), ("swap", swap),
            ("kernel", _v1_memory_data(mem, "memory.kmem")),
            ("kernelTCP", _v1_memory_data(mem, "memory.kmem.tcp"))))

    pids = {"current": 0, "limit": 0}
    pd = dir_of("pids")
    if pd and os.path.isdir(pd):
        limit = read_uint(pd, "pids.max") or 0
        pids = {"current": read_uint(pd, "pids.current") or 0,
                "limit": 0 if limit == U64_MAX else limit}

    hugetlb = {}
    hd = dir_of("hugetlb")
    if hd and os.path.isdir(hd):
        for size in hugepage_sizes():
            prefix = f"hugetlb.{size}.rsvd"
            if read_text(hd, prefix + ".usage_in_bytes") is None:
                prefix = f"hugetlb.{size}"
            hugetlb[size] = _omit_empty({
                "usage": read_uint(hd, prefix + ".usage_in_bytes") or 0,
                "max": read_uint(hd, prefix + ".max_usage_in_bytes") or 0,
                "failcnt": read_uint(hd, prefix + ".failcnt") or 0}, always=("failcnt",))
    return _assemble(cpu_usage, throttling, cpuset, memory, pids, _v1_blkio(dir_of("blkio")),
                     hugetlb)


# --- cgroup v2 ---------------------------------------------------------------------------------
def _v2_memory_data(d, prefix):
    usage = read_uint(d, prefix + ".current")
    if usage is None:
        return {"limit": 0, "failcnt": 0}
    return _memory_entry(read_uint(d, prefix + ".max") or 0, usage,
                         read_uint(d, prefix + ".peak") or 0, 0)


def v2_stats(manager):
    d = manager.dir
    stat = read_key_values(d, "cpu.stat")
    cpu_usage = {"total": stat.get("usage_usec", 0) * 1000, "percpu": [], "percpu_kernel": [],
                 "percpu_user": [], "kernel": stat.get("system_usec", 0) * 1000,
                 "user": stat.get("user_usec", 0) * 1000}
    throttling = {"periods": stat.get("nr_periods", 0),
                  "throttledPeriods": stat.get("nr_throttled", 0),
                  "throttledTime": stat.get("throttled_usec", 0) * 1000}
    cpuset = {}
    if read_text(d, "cpuset.cpus.effective") is not None:
        cpuset = _omit_empty({"cpus": _list(read_text(d, "cpuset.cpus.effective")),
                              "mems": _list(read_text(d, "cpuset.mems.effective"))})
        for key in ("cpu_exclusive", "mem_hardwall", "mem_exclusive", "memory_migrate",
                    "memory_spread_page", "memory_spread_slab", "memory_pressure",
                    "sched_load_balance", "sched_relax_domain_level"):
            cpuset[key] = 0

    memory = {}
    raw = read_key_values(d, "memory.stat")
    if raw or read_text(d, "memory.current") is not None:
        usage = _v2_memory_data(d, "memory")
        swap_only = _v2_memory_data(d, "memory.swap")
        swap = dict(swap_only)
        swap["usage"] = swap.get("usage", 0) + usage.get("usage", 0)
        if swap["limit"] != U64_MAX:
            swap["limit"] = swap["limit"] + usage["limit"]
        swap.pop("max", None)
        memory = _memory_doc(raw, raw.get("file", 0), (("usage", usage), ("swap", swap)))

    pids = {"current": 0, "limit": 0}
    current = read_uint(d, "pids.current")
    if current is not None:
        limit = read_uint(d, "pids.max") or 0
        pids = {"current": current, "limit": 0 if limit == U64_MAX else limit}
    else:
        pids["current"] = len((read_text(d, "cgroup.procs") or "").split())

    blkio = {"ioServiceBytesRecursive": [], "ioServicedRecursive": []}
    for line in (read_text(d, "io.stat") or "").splitlines():
        device, *items = line.split()
        major, _, minor = device.partition(":")
        for item in items:
            key, _, value = item.partition("=")
            table, op = {"rbytes": ("ioServiceBytesRecursive", "Read"),
                         "wbytes": ("ioServiceBytesRecursive", "Write"),
                         "rios": ("ioServicedRecursive", "Read"),
                         "wios": ("ioServicedRecursive", "Write")}.get(key, (None, None))
            if table:
                blkio[table].append(_omit_empty({"major": int(major), "minor": int(minor),
                                                 "op": op, "value": int(value)}))

    hugetlb = {}
    for size in hugepage_sizes():
        prefix = f"hugetlb.{size}.rsvd"
        if read_text(d, prefix + ".current") is None:
            prefix = f"hugetlb.{size}"
        if read_text(d, prefix + ".current") is None:
            continue
        events = read_key_values(d, f"hugetlb.{size}.events")
        hugetlb[size] = _omit_empty({"usage": read_uint(d, prefix + ".current") or 0,
                                     "failcnt": events.get("max", 0)}, always=("failcnt",))
    return _assemble(cpu_usage, throttling, cpuset, memory, pids, blkio, hugetlb)
