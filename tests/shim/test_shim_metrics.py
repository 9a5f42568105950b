"""`ctr task metrics` through our shim reports what runc's shim reports for the same
container on the same host: the limits (hierarchical_swap_limit too) and CPU throttling."""

import json

from shimlib import IMAGE, RUNTIME, wait_until

RUNC_SHIM = "io.containerd.runc.v2"
# fields that a throttled, memory-limited busy loop has non-zero under either shim, with the
# value the same under both where it is a limit rather than a measure
V1_FIELDS = {"memory.hierarchical_memory_limit": True, "memory.hierarchical_swap_limit": True,
             "memory.usage.limit": True, "cpu.throttling.periods": False,
             "cpu.throttling.throttled_periods": False, "cpu.throttling.throttled_time": False,
             "pids.current": True}
V2_FIELDS = {"memory.usage_limit": True, "cpu.nr_periods": False, "cpu.nr_throttled": False,
             "cpu.throttled_usec": False, "pids.current": True}


def _flat(doc, prefix=""):
    out = {}
    for key, value in doc.items():
        if isinstance(value, dict):
            out.update(_flat(value, prefix + key + "."))
        else:
            out[prefix + key] = value
    return out


def _metrics(c, name):
    return _flat(json.loads(c("tasks", "metrics", "--format", "json", name).stdout))


def test_metrics_match_runcs_shim(containerd):
    c = containerd
    found = {}
    for runtime in (RUNC_SHIM, RUNTIME):
        name = c.new_name()
        c("run", "-d", "--runtime", runtime, "--memory-limit", str(64 << 20), "--cpus", "0.1",
          IMAGE, name, "sh", "-c", "while :; do :; done")

        def throttled(name=name, runtime=runtime):
            found[runtime] = _metrics(c, name)
            return bool(found[runtime].get("cpu.throttling.throttled_periods")
                        or found[runtime].get("cpu.nr_throttled"))
        wait_until(throttled, f"{runtime}'s container to be throttled")
        c("tasks", "kill", "--signal", "SIGKILL", name)
    runc, ours = found[RUNC_SHIM], found[RUNTIME]
    fields = V2_FIELDS if "cpu.nr_periods" in runc else V1_FIELDS
    for field, same in fields.items():
        assert runc.get(field), (field, runc)  # the test's premise
        assert ours.get(field), (field, ours)
        if same:
            assert ours[field] == runc[field], (field, ours[field], runc[field])
