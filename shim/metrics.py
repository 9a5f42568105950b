"""The Stats call's answer: the runtime's cgroup statistics (the document `pyrunc events
--stats` prints) as the containerd/cgroups Metrics message `ctr task metrics` decodes:
io.containerd.cgroups.v1.Metrics on a v1 host, io.containerd.cgroups.v2.Metrics on v2."""

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


def v2_metrics(doc):
    from shim.proto import metrics_v2_pb2 as pb

    m = pb.Metrics()
    _pids(m, doc)
    cpu = doc.get("cpu") or {}
    usage = cpu.get("usage") or {}
    throttling = cpu.get("throttling") or {}
    m.cpu.usage_usec = usage.get("total", 0) // 1000
    m.cpu.user_usec = usage.get("user", 0) // 1000
    m.cpu.system_usec = usage.get("kernel", 0) // 1000
    m.cpu.nr_periods = throttling.get("periods", 0)
    m.cpu.nr_throttled = throttling.get("throttledPeriods", 0)
    m.cpu.throttled_usec = throttling.get("throttledTime", 0) // 1000
    memory = doc.get("memory") or {}
    raw = memory.get("raw") or {}
    for field in m.memory.DESCRIPTOR.fields:
        if field.name in raw:
            setattr(m.memory, field.name, raw[field.name])
    usage_entry = memory.get("usage") or {}
    swap_entry = memory.get("swap") or {}
    m.memory.usage = usage_entry.get("usage", 0)
    m.memory.usage_limit = usage_entry.get("limit", 0)
    m.memory.max_usage = usage_entry.get("max", 0)
    m.memory.swap_usage = max(0, swap_entry.get("usage", 0) - m.memory.usage)
    m.memory.swap_limit = swap_entry.get("limit", 0)
    reads = {}
    for key, rkey, wkey in (("ioServiceBytesRecursive", "rbytes", "wbytes"),
                            ("ioServicedRecursive", "rios", "wios")):
        for e in (doc.get("blkio") or {}).get(key) or []:
            dev = reads.setdefault((e.get("major", 0), e.get("minor", 0)), {})
            dev[rkey if e.get("op") == "Read" else wkey] = e.get("value", 0)
    for (major, minor), values in sorted(reads.items()):
        m.io.usage.add(major=major, minor=minor, **values)
    for size, h in (doc.get("hugetlb") or {}).items():
        m.hugetlb.add(pagesize=size, current=h.get("usage", 0), max=h.get("max", 0))
    return m


def metrics_any(doc, cgroup_v2):
    message = v2_metrics(doc) if cgroup_v2 else v1_metrics(doc)
    return any_pb2.Any(type_url=message.DESCRIPTOR.full_name,
                       value=message.SerializeToString())
