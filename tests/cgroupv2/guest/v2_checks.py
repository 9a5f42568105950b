"""cgroup v2, for real: these run inside a throwaway VM booted with cgroup_no_v1=all (a pure
cgroup2 host), driven by tests/cgroupv2/test_v2_in_vm.py. Named v2_*.py so that a normal
pytest run on the (v1 hybrid) host does not collect them.

Each check runs real containers through pyrunc and reads the container's cgroup files
from the outside, as the v1 tests do on the host."""

import json
import os
import subprocess

import pytest

from pyrunc_testlib import CGROUP_ROOT, ID_PREFIX, assert_error, assert_nothing_left

MiB = 1 << 20
LOOP = "echo ready; while :; do sleep 0.05; done"


def _pure_v2():
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[4] == CGROUP_ROOT:
                return fields[fields.index("-") + 1] == "cgroup2"
    return False


pytestmark = pytest.mark.skipif(not _pure_v2(), reason="needs a pure cgroup v2 host")


def read(path):
    with open(path) as f:
        return f.read().strip()


def cgdir(path):
    return os.path.join(CGROUP_ROOT, path.lstrip("/"))


def new_path(kind):
    return f"/{ID_PREFIX}{kind}-{os.urandom(6).hex()}"


def resources(bundle):
    return bundle.linux.setdefault("resources", {})


def started(runtime, bundle, script=LOOP):
    bundle.sh(script)
    cid = runtime.create(bundle).cid
    runtime.start(cid)
    runtime.wait_output(cid, "ready")
    return cid


def test_memory_files_and_oom_kill(runtime, bundle):
    path = new_path("mem")
    bundle.linux["cgroupsPath"] = path
    resources(bundle)["memory"] = {"limit": 32 * MiB, "swap": 48 * MiB,
                                   "reservation": 16 * MiB}
    bundle.sh('x=a; while true; do x="$x$x"; done')
    cid = runtime.create(bundle).cid
    d = cgdir(path)
    assert int(read(f"{d}/memory.max")) == 32 * MiB
    assert int(read(f"{d}/memory.swap.max")) == 16 * MiB  # v1 swap is memory + swap
    assert int(read(f"{d}/memory.low")) == 16 * MiB
    runtime.start(cid)
    runtime.wait_exit(runtime.state(cid)["pid"])
    events = dict(line.split() for line in read(f"{d}/memory.events").splitlines())
    assert int(events["oom_kill"]) >= 1
    runtime.delete(cid)
    assert not os.path.exists(d)
    assert_nothing_left(runtime, bundle, cid)


def test_a_memory_hog_is_oom_killed_under_run(runtime, bundle):
    resources(bundle)["memory"] = {"limit": 32 * MiB, "swap": 32 * MiB}
    bundle.sh('x=a; while true; do x="$x$x"; done')
    result = runtime.run_container(bundle)
    assert result.returncode == 137, (result.returncode, result.stderr)
    assert_nothing_left(runtime, bundle, result.cid)


def test_a_pids_limit_stops_forks(runtime, bundle):
    resources(bundle)["pids"] = {"limit": 5}
    bundle.sh("i=0; while [ $i -lt 20 ]; do sleep 5 & i=$((i+1)); done; echo spawned-$i; "
              "kill $(jobs -p) 2>/dev/null; true")
    result = runtime.run_container(bundle)
    assert "can't fork" in result.stderr, (result.stdout, result.stderr)
    assert_nothing_left(runtime, bundle, result.cid)


def test_pids_limit_zero_and_max(runtime, make_bundle):
    for limit, expected in ((0, "0"), (-1, "max"), (7, "7")):
        bundle = make_bundle(f"pids{expected}")
        path = new_path("pids")
        bundle.linux["cgroupsPath"] = path
        resources(bundle)["pids"] = {"limit": limit}
        cid = runtime.create(bundle).cid
        assert read(cgdir(path) + "/pids.max") == expected
        runtime.delete(cid, "--force")
        assert_nothing_left(runtime, bundle, cid)


def test_cpu_weight_max_and_cpuset(runtime, bundle):
    path = new_path("cpu")
    bundle.linux["cgroupsPath"] = path
    resources(bundle)["cpu"] = {"shares": 2048, "quota": 50000, "period": 100000,
                                "cpus": "0", "mems": "0"}
    cid = started(runtime, bundle)
    d = cgdir(path)
    assert read(f"{d}/cpu.weight") == "174"  # runc's (1.3) conversion: 1024 -> 100
    assert read(f"{d}/cpu.max") == "50000 100000"
    assert read(f"{d}/cpuset.cpus") == "0"
    assert read(f"{d}/cpuset.mems") == "0"
    pid = runtime.state(cid)["pid"]
    assert read(f"/proc/{pid}/cgroup") == f"0::{path}"
    runtime.kill(cid, "KILL")
    runtime.wait_exit(pid)
    runtime.delete(cid)
    assert_nothing_left(runtime, bundle, cid)


def test_device_rules_are_enforced_by_the_bpf_program(runtime, bundle):
    """A device node the rules do not allow can be made (mknod is allowed for all) but not
    opened; the default devices can."""
    bundle.linux["devices"] = [{"path": "/dev/loop-control", "type": "c", "major": 10,
                                "minor": 237, "fileMode": 0o666}]
    bundle.sh("head -c 1 /dev/loop-control; head -c 3 /dev/zero | wc -c")
    result = runtime.run_container(bundle)
    assert "Operation not permitted" in result.stderr, result.stderr
    assert result.stdout.split() == ["3"], result.stdout
    assert_nothing_left(runtime, bundle, result.cid)


def test_unified_is_written_verbatim(runtime, bundle):
    path = new_path("uni")
    bundle.linux["cgroupsPath"] = path
    resources(bundle)["unified"] = {"memory.high": str(64 * MiB), "pids.max": "9"}
    cid = runtime.create(bundle).cid
    assert read(cgdir(path) + "/memory.high") == str(64 * MiB)
    assert read(cgdir(path) + "/pids.max") == "9"
    runtime.delete(cid, "--force")
    assert_nothing_left(runtime, bundle, cid)


def test_update_and_events_stats(runtime, bundle):
    path = new_path("upd")
    bundle.linux["cgroupsPath"] = path
    resources(bundle)["memory"] = {"limit": 64 * MiB}
    cid = started(runtime, bundle)
    d = cgdir(path)
    runtime.run("update", "--memory", str(96 * MiB), "--pids-limit", "50",
                "--cpu-quota", "20000", "--cpu-period", "100000", cid)
    assert int(read(f"{d}/memory.max")) == 96 * MiB
    assert read(f"{d}/pids.max") == "50"
    assert read(f"{d}/cpu.max") == "20000 100000"
    runtime.run("update", "-r", "-", cid, input=json.dumps({"pids": {"limit": 60}}))
    assert read(f"{d}/pids.max") == "60"
    stats = json.loads(runtime.run("events", "--stats", cid).stdout)
    assert stats["type"] == "stats"
    data = stats["data"]
    assert data["pids"]["current"] >= 1 and data["pids"]["limit"] == 60
    assert data["memory"]["usage"]["limit"] == 96 * MiB
    assert data["cpu"]["usage"]["total"] > 0
    runtime.delete(cid, "--force")
    assert_nothing_left(runtime, bundle, cid)


def _kv(path):
    return {k: int(v) for k, v in (line.split() for line in read(path).splitlines())}


def test_shim_metrics_read_the_cgroup_as_runcs_shim(runtime, bundle):
    """The shim's Stats answer (io.containerd.cgroups.v2.Metrics) holds what
    containerd/cgroups' manager reads for runc's shim: each field from its cgroup file,
    "max" as 2**64-1, swap on its own, every memory.stat counter, memory.events.  The
    container is paused while it is read, and only values the files hold steady across
    the read are compared."""
    from ociruntime.libcontainer.container import Container
    from shim.metrics import metrics_any
    from shim.proto import metrics_v2_pb2

    path = new_path("met")
    bundle.linux["cgroupsPath"] = path
    resources(bundle)["memory"] = {"limit": 32 * MiB, "swap": 96 * MiB}
    resources(bundle)["pids"] = {"limit": 50}
    # a hog in a subshell gets OOM-killed (memory.events: max, oom, oom_kill); the init
    # lives on beside one long sleep, so pids.current is 2 at any moment of the pause (a
    # loop of short sleeps left it 1 between two sleeps)
    cid = started(runtime, bundle,
                  '(x=a; while true; do x="$x$x"; done) & wait; '
                  'sleep 1000 & echo ready; wait')
    runtime.run("pause", cid)
    d = cgdir(path)
    before = (_kv(f"{d}/memory.stat"), _kv(f"{d}/memory.events"), _kv(f"{d}/cpu.stat"))
    manager = Container(runtime.root, cid).load().cgroup_manager()
    any_ = metrics_any(manager, True)
    after = (_kv(f"{d}/memory.stat"), _kv(f"{d}/memory.events"), _kv(f"{d}/cpu.stat"))
    runtime.delete(cid, "--force")
    assert any_.type_url == "io.containerd.cgroups.v2.Metrics"
    m = metrics_v2_pb2.Metrics.FromString(any_.value)

    assert m.memory.usage_limit == 32 * MiB
    assert m.memory.swap_limit == 64 * MiB  # memory.swap.max alone, not memory + swap
    assert m.pids.limit == 50 and m.pids.current == 2
    assert m.memory.usage > 0 and m.memory.max_usage >= m.memory.usage
    assert m.memory_events.oom_kill >= 1 and m.memory_events.max >= 1
    compared = 0
    for message, old, new in zip((m.memory, m.memory_events, m.cpu), before, after, strict=True):
        for name in (field.name for field in message.DESCRIPTOR.fields):
            value = getattr(message, name)
            if name in old and old[name] == new[name]:
                assert int(value) == old[name], name
                compared += 1
    assert compared > 30  # the premise: memory.stat's counters (20-31 too) were compared
    assert_nothing_left(runtime, bundle, cid)


def test_pause_resume_through_cgroup_freeze(runtime, bundle):
    path = new_path("frz")
    bundle.linux["cgroupsPath"] = path
    cid = started(runtime, bundle)
    runtime.run("pause", cid)
    assert runtime.status(cid) == "paused"
    assert read(cgdir(path) + "/cgroup.freeze") == "1"
    runtime.run("resume", cid)
    assert runtime.status(cid) == "running"
    assert read(cgdir(path) + "/cgroup.freeze") == "0"
    runtime.delete(cid, "--force")
    assert_nothing_left(runtime, bundle, cid)


def test_kill_all_ps_and_delete_removes_the_cgroup(runtime, bundle):
    path = new_path("all")
    bundle.linux["cgroupsPath"] = path
    bundle.config["linux"]["namespaces"] = [
        ns for ns in bundle.config["linux"]["namespaces"] if ns["type"] != "pid"]
    cid = started(runtime, bundle, "sleep 1000 & sleep 1000 & echo ready; wait")
    pids = json.loads(runtime.run("ps", "--format", "json", cid).stdout)
    assert len(pids) >= 3
    assert sorted(pids) == sorted(int(p) for p in read(cgdir(path) + "/cgroup.procs").split())
    runtime.run("kill", "--all", cid, "KILL")
    runtime.wait_exit(runtime.state(cid)["pid"])
    runtime.delete(cid)
    assert not os.path.exists(cgdir(path))
    assert_nothing_left(runtime, bundle, cid)


def test_default_and_relative_cgroups_paths(runtime, make_bundle):
    bundle = make_bundle("default")
    cid = runtime.create(bundle).cid
    pid = runtime.state(cid)["pid"]
    own = read(f"/proc/{pid}/cgroup").split("::", 1)[1]
    assert cid in own and os.path.isdir(cgdir(own))
    runtime.delete(cid, "--force")
    assert not os.path.exists(cgdir(own))
    bundle = make_bundle("relative")
    bundle.linux["cgroupsPath"] = f"{ID_PREFIX}rel-{os.urandom(4).hex()}"
    cid = runtime.create(bundle).cid
    mine = read("/proc/self/cgroup").split("::", 1)[1]
    pid = runtime.state(cid)["pid"]
    theirs = read(f"/proc/{pid}/cgroup").split("::", 1)[1]
    assert theirs == os.path.join(mine, bundle.linux["cgroupsPath"])
    runtime.delete(cid, "--force")
    assert_nothing_left(runtime, bundle, cid)


def test_a_v1_only_setting_is_a_clear_error(runtime, bundle):
    resources(bundle)["memory"] = {"kernel": 8 * MiB}
    bundle.write()
    cid = runtime.new_id()
    result = runtime.run("run", "--bundle", bundle.path, cid, check=False)
    assert_error(result, "kernel")
    assert_nothing_left(runtime, bundle, cid)


def test_cgroup_namespace_shows_the_container_at_the_root(runtime, bundle):
    namespaces = bundle.config["linux"]["namespaces"]
    if not any(ns["type"] == "cgroup" for ns in namespaces):
        namespaces.append({"type": "cgroup"})
    bundle.sh("cat /proc/self/cgroup; ls /sys/fs/cgroup/cgroup.procs")
    result = runtime.run_container(bundle)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0::/", "/sys/fs/cgroup/cgroup.procs"]
    assert_nothing_left(runtime, bundle, result.cid)


def test_the_runtime_is_importable_here():
    """The guest runs the checkout's own interpreter and build (a sanity check that the
    batch really ran on this kernel)."""
    out = subprocess.run(["uname", "-r"], capture_output=True, text=True, check=True).stdout
    assert out.strip() and _pure_v2()
