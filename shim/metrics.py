"""The Stats call's answer, the containerd/cgroups Metrics message `ctr task metrics`
decodes: on a v1 host io.containerd.cgroups.v1.Metrics from the runtime's cgroup statistics
(the document `pyrunc events --stats` prints); on v2 io.containerd.cgroups.v2.Metrics read
from the cgroup's files as runc's shim reads them."""

from google.protobuf import any_pb2


def _entry(msg, doc):
    msg.limit = doc.get("limit", 0)
    msg.usage = doc.get("usage", 0)
    msg.max = doc.get("max", 0)
    msg.failcnt = doc.get("failcnt", 0)


def _pids(m, doc):
    pids = doc.get("pids") or {}
    m.pids.current = pids.get("current", 0)
    m.pids.limit = pids.get("limit", 0)


# v1 MemoryStat fields whose memory.stat key is spelt otherwise (containerd/cgroups'
# names; the total_ variants follow)
_V1_STAT_KEYS = {"pg_pg_in": "pgpgin", "pg_pg_out": "pgpgout", "pg_fault": "pgfault",
                 "pg_maj_fault": "pgmajfault",
                 "hierarchical_swap_limit": "hierarchical_memsw_limit"}


def v1_metrics(doc):
    from shim.proto import metrics_v1_pb2 as pb

    m = pb.Metrics()
    _pids(m, doc)
    cpu = doc.get("cpu") or {}
    usage = cpu.get("usage") or {}
    m.cpu.usage.total = usage.get("total", 0)
    m.cpu.usage.kernel = usage.get("kernel", 0)
    m.cpu.usage.user = usage.get("user", 0)
    m.cpu.usage.per_cpu.extend(usage.get("percpu") or [])
    throttling = cpu.get("throttling") or {}
    m.cpu.throttling.periods = throttling.get("periods", 0)
    m.cpu.throttling.throttled_periods = throttling.get("throttledPeriods", 0)
    m.cpu.throttling.throttled_time = throttling.get("throttledTime", 0)
    memory = doc.get("memory") or {}
    raw = memory.get("raw") or {}
    for field in m.memory.DESCRIPTOR.fields:
        if field.type == field.TYPE_UINT64:
            key = _V1_STAT_KEYS.get(field.name.removeprefix("total_"),
                                    field.name.removeprefix("total_"))
            key = "total_" + key if field.name.startswith("total_") else key
            if key in raw:
                setattr(m.memory, field.name, raw[key])
    for key, msg in (("usage", m.memory.usage), ("swap", m.memory.swap),
                     ("kernel", m.memory.kernel), ("kernelTCP", m.memory.kernel_tcp)):
        _entry(msg, memory.get(key) or {})
    blkio = doc.get("blkio") or {}
    for key, field in (("ioServiceBytesRecursive", m.blkio.io_service_bytes_recursive),
                       ("ioServicedRecursive", m.blkio.io_serviced_recursive),
                       ("ioQueuedRecursive", m.blkio.io_queued_recursive),
                       ("ioServiceTimeRecursive", m.blkio.io_service_time_recursive),
                       ("ioWaitTimeRecursive", m.blkio.io_wait_time_recursive),
                       ("ioMergedRecursive", m.blkio.io_merged_recursive),
                       ("ioTimeRecursive", m.blkio.io_time_recursive),
                       ("sectorsRecursive", m.blkio.sectors_recursive)):
        for e in blkio.get(key) or []:
            field.add(op=e.get("op", ""), major=e.get("major", 0), minor=e.get("minor", 0),
                      value=e.get("value", 0))
    for size, h in (doc.get("hugetlb") or {}).items():
        m.hugetlb.add(pagesize=size, usage=h.get("usage", 0), max=h.get("max", 0),
                      failcnt=h.get("failcnt", 0))
    return m


def _file_uint(directory, name):
    """A one-number file as containerd/cgroups reads it: "max" is 2**64-1, absent is 0."""
    from ociruntime.libcontainer.cgroups.stats import read_uint

    return read_uint(directory, name) or 0


def _rdma(directory, name):
    """rdma.current / rdma.max lines: "mlx4_0 hca_handle=2 hca_object=2000" ("max" is
    2**32-1, as containerd/cgroups reads it)."""
    from ociruntime.libcontainer.cgroups.stats import read_text

    entries = []
    for line in (read_text(directory, name) or "").splitlines():
        device, *items = line.split()
        values = dict(item.partition("=")[::2] for item in items)
        entries.append({"device": device, **{
            field: 2**32 - 1 if values.get(key) == "max" else int(values.get(key) or 0)
            for key, field in (("hca_handle", "hca_handles"), ("hca_object", "hca_objects"))}})
    return entries


def v2_metrics(directory):
    """Read from the container's cgroup2 directory, file by file, as containerd/cgroups'
    cgroup2 manager (Stat) does for runc's shim, so that both shims answer alike: limits
    as the files hold them ("max" is 2**64-1), swap on its own (memory.swap.*, not
    memory+swap as `events --stats`), every memory.stat counter, memory.events, rdma."""
    from ociruntime.libcontainer.cgroups.stats import hugepage_sizes, read_key_values, read_text
    from shim.proto import metrics_v2_pb2 as pb

    d = directory
    m = pb.Metrics()
    m.pids.current = _file_uint(d, "pids.current")
    m.pids.limit = _file_uint(d, "pids.max")
    cpu = read_key_values(d, "cpu.stat")
    for field in m.cpu.DESCRIPTOR.fields:
        setattr(m.cpu, field.name, cpu.get(field.name, 0))
    memory = read_key_values(d, "memory.stat")
    for field in m.memory.DESCRIPTOR.fields:
        if field.name in memory:
            setattr(m.memory, field.name, memory[field.name])
    for field, name in (("usage", "memory.current"), ("usage_limit", "memory.max"),
                        ("max_usage", "memory.peak"), ("swap_usage", "memory.swap.current"),
                        ("swap_limit", "memory.swap.max"),
                        ("swap_max_usage", "memory.swap.peak")):
        setattr(m.memory, field, _file_uint(d, name))
    events = read_key_values(d, "memory.events")
    if events:
        for field in m.memory_events.DESCRIPTOR.fields:
            setattr(m.memory_events, field.name, events.get(field.name, 0))
    for line in (read_text(d, "io.stat") or "").splitlines():
        device, *items = line.split()
        major, _, minor = device.partition(":")
        values = {key: int(value) for key, _, value in (i.partition("=") for i in items)
                  if key in ("rbytes", "wbytes", "rios", "wios")}
        m.io.usage.add(major=int(major), minor=int(minor), **values)
    for size in hugepage_sizes():
        if read_text(d, f"hugetlb.{size}.current") is not None:
            m.hugetlb.add(pagesize=size, current=_file_uint(d, f"hugetlb.{size}.current"),
                          max=_file_uint(d, f"hugetlb.{size}.max"))
    for entry in _rdma(d, "rdma.current"):
        m.rdma.current.add(**entry)
    for entry in _rdma(d, "rdma.max"):
        m.rdma.limit.add(**entry)
    return m


def metrics_any(manager, cgroup_v2):
    """The Stats answer for a container's cgroup manager (ociruntime's)."""
    if cgroup_v2:  # a container without a cgroup (rootless) has no dir: every field 0
        message = v2_metrics(getattr(manager, "dir", None))
    else:
        message = v1_metrics(manager.stats())
    return any_pb2.Any(type_url=message.DESCRIPTOR.full_name,
                       value=message.SerializeToString())
