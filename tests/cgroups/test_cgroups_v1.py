"""cgroup v1 (the hybrid layout of this host): linux.resources applied to real containers,
`update`, `events --stats`, pause/resume, cgroupsPath placement and the errors for what
the host lacks."""

import json
import os
import subprocess
import time

import pytest

from pyrunc_testlib import (
    CGROUP_ROOT,
    ID_PREFIX,
    assert_error,
    assert_nothing_left,
)

MiB = 1 << 20
LOOP = "echo ready; while :; do sleep 0.05; done"


def _v1_host():
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                fields = line.split()
                if fields[4] == CGROUP_ROOT:
                    return fields[fields.index("-") + 1] != "cgroup2"
    except OSError:
        pass
    return False


pytestmark = pytest.mark.skipif(not _v1_host(), reason="needs a cgroup v1 (or hybrid) host")


def controller_dir(controller, path):
    """The host directory of cgroup path in the v1 hierarchy that holds controller."""
    return os.path.join(CGROUP_ROOT, controller, path.lstrip("/"))


def read(path):
    with open(path) as f:
        return f.read().strip()


def own_cgroup(controller):
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, names, path = line.rstrip("\n").split(":", 2)
            if controller in names.split(","):
                return path
    raise AssertionError(f"no {controller} line in /proc/self/cgroup")


def started(runtime, bundle, script=LOOP, cid=None):
    """create + start `sh -c script`; wait until it printed "ready"."""
    bundle.sh(script)
    cid = runtime.create(bundle, cid=cid).cid
    runtime.start(cid)
    runtime.wait_output(cid, "ready")
    return cid


def resources(bundle):
    return bundle.linux.setdefault("resources", {})


def test_memory_limit_oom_kills_a_hog(runtime, bundle):
    resources(bundle)["memory"] = {"limit": 32 * MiB, "swap": 32 * MiB}
    bundle.sh("x=a; while true; do x=\"$x$x\"; done")
    result = runtime.run_container(bundle)
    assert result.returncode == 137, (result.returncode, result.stderr)
    assert_nothing_left(runtime, bundle, result.cid)


def test_memory_files_and_oom_event(runtime, bundle):
    """The limits land in the memory files; the hog's death raises oom_kill, which
    `events` reports as an "oom" event, and events ends when the container is deleted
    (as runc: a stopped container's cgroup is still there to watch)."""
    cgroups_path = f"/{ID_PREFIX}mem-{os.urandom(6).hex()}"
    bundle.linux["cgroupsPath"] = cgroups_path
    resources(bundle)["memory"] = {"limit": 32 * MiB, "swap": 48 * MiB,
                                   "reservation": 16 * MiB, "swappiness": 10,
                                   "disableOOMKiller": False, "useHierarchy": True,
                                   "kernelTCP": 8 * MiB}
    bundle.sh('x=a; while true; do x="$x$x"; done')
    cid = runtime.create(bundle).cid
    d = controller_dir("memory", cgroups_path)
    assert int(read(f"{d}/memory.limit_in_bytes")) == 32 * MiB
    assert int(read(f"{d}/memory.memsw.limit_in_bytes")) == 48 * MiB
    assert int(read(f"{d}/memory.soft_limit_in_bytes")) == 16 * MiB
    assert read(f"{d}/memory.swappiness") == "10"
    assert "oom_kill_disable 0" in read(f"{d}/memory.oom_control")
    assert read(f"{d}/memory.use_hierarchy") == "1"
    assert int(read(f"{d}/memory.kmem.tcp.limit_in_bytes")) == 8 * MiB
    events = os.path.join(runtime.scratch.out, "events.json")
    with open(events, "w") as out:
        proc = subprocess.Popen([runtime.binary, "--root", runtime.root, "events",
                                 "--interval", "1h", cid], stdout=out, stderr=subprocess.STDOUT)
    try:
        runtime.start(cid)
        deadline = time.monotonic() + 30
        while runtime.status(cid) != "stopped" or "\n" not in open(events).read():
            assert time.monotonic() < deadline, "no oom event, or the container lives"
            time.sleep(0.05)
        assert proc.poll() is None  # the container stopped: events goes on
        oom_control = dict(line.split() for line in read(f"{d}/memory.oom_control")
                           .splitlines())
        assert int(oom_control["oom_kill"]) >= 1
        runtime.delete(cid)
        assert proc.wait(timeout=30) == 0  # deleted: events ends
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    with open(events) as f:
        lines = [json.loads(line) for line in f.read().splitlines()]
    assert lines == [{"type": "oom", "id": cid}]
    assert not os.path.exists(d)
    assert_nothing_left(runtime, bundle, cid)


def test_pids_limit_stops_forks(runtime, bundle):
    resources(bundle)["pids"] = {"limit": 5}
    script = ("i=0; while [ $i -lt 20 ]; do sleep 5 & i=$((i+1)); done; echo spawned-$i; "
              "kill $(jobs -p) 2>/dev/null; true")
    bundle.sh(script)
    result = runtime.run_container(bundle)
    assert "can't fork" in result.stderr, (result.stdout, result.stderr)
    assert_nothing_left(runtime, bundle, result.cid)


def test_pids_limit_zero_is_a_real_limit(runtime, bundle):
    """0 is applied as 0 (the spec's SHOULD), after the runtime's own forks are done."""
    cgroups_path = f"/{ID_PREFIX}pids-{os.urandom(6).hex()}"
    bundle.linux["cgroupsPath"] = cgroups_path
    resources(bundle)["pids"] = {"limit": 0}
    cid = runtime.create(bundle).cid
    assert read(controller_dir("pids", cgroups_path) + "/pids.max") == "0"
    runtime.delete(cid, "--force")


def test_cpu_and_cpuset_visible_on_host_and_inside(runtime, bundle):
    cgroups_path = f"/{ID_PREFIX}cpu-{os.urandom(6).hex()}"
    bundle.linux["cgroupsPath"] = cgroups_path
    resources(bundle)["cpu"] = {"quota": 20000, "period": 50000, "shares": 512,
                                "cpus": "0", "mems": "0"}
    bundle.sh("cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us "
              "/sys/fs/cgroup/cpu/cpu.shares /sys/fs/cgroup/cpuset/cpuset.cpus "
              "/sys/fs/cgroup/cpuset/cpuset.mems; grep Cpus_allowed_list /proc/self/status; "
              "echo ready; while :; do sleep 0.05; done")
    cid = runtime.create(bundle).cid
    cpu = controller_dir("cpu", cgroups_path)
    cpuset = controller_dir("cpuset", cgroups_path)
    assert read(f"{cpu}/cpu.cfs_quota_us") == "20000"
    assert read(f"{cpu}/cpu.cfs_period_us") == "50000"
    assert read(f"{cpu}/cpu.shares") == "512"
    assert read(f"{cpuset}/cpuset.cpus") == "0"
    assert read(f"{cpuset}/cpuset.mems") == "0"
    runtime.start(cid)
    out = runtime.wait_output(cid, "ready").split()
    assert out[:5] == ["20000", "50000", "512", "0", "0"]
    assert out[5:7] == ["Cpus_allowed_list:", "0"]
    runtime.delete(cid, "--force")
    assert not os.path.exists(cpu) and not os.path.exists(cpuset)
    assert_nothing_left(runtime, bundle, cid)


def test_update_changes_limits_of_a_running_container(runtime, bundle):
    cgroups_path = f"/{ID_PREFIX}upd-{os.urandom(6).hex()}"
    bundle.linux["cgroupsPath"] = cgroups_path
    resources(bundle)["memory"] = {"limit": 64 * MiB}
    resources(bundle)["pids"] = {"limit": 50}
    cid = started(runtime, bundle)
    mem = controller_dir("memory", cgroups_path)
    pids = controller_dir("pids", cgroups_path)
    cpu = controller_dir("cpu", cgroups_path)
    assert int(read(f"{mem}/memory.limit_in_bytes")) == 64 * MiB
    # runc's flags, sizes with suffixes
    runtime.run("update", "--memory", "100m", "--memory-swap", "200m", "--pids-limit", "7",
                "--cpu-quota", "30000", "--cpu-period", "60000", "--cpu-share", "256", cid)
    assert int(read(f"{mem}/memory.limit_in_bytes")) == 100 * MiB
    assert int(read(f"{mem}/memory.memsw.limit_in_bytes")) == 200 * MiB
    assert read(f"{pids}/pids.max") == "7"
    assert (read(f"{cpu}/cpu.cfs_quota_us"), read(f"{cpu}/cpu.cfs_period_us"),
            read(f"{cpu}/cpu.shares")) == ("30000", "60000", "256")
    # shrinking memory and memsw together: the runtime orders the writes
    runtime.run("update", "--memory", "40m", "--memory-swap", "40m", cid)
    assert int(read(f"{mem}/memory.limit_in_bytes")) == 40 * MiB
    assert int(read(f"{mem}/memory.memsw.limit_in_bytes")) == 40 * MiB
    # growing memory alone past memory+swap: refused with the reason
    assert_error(runtime.run("update", "--memory", "64m", cid, check=False),
                 "above the memory+swap limit")
    assert int(read(f"{mem}/memory.limit_in_bytes")) == 40 * MiB
    # -r FILE and -r - (the LinuxResources JSON)
    path = os.path.join(runtime.scratch.out, "res.json")
    with open(path, "w") as f:
        json.dump({"pids": {"limit": -1}, "memory": {"limit": 48 * MiB, "swap": 96 * MiB}}, f)
    runtime.run("update", "-r", path, cid)
    assert read(f"{pids}/pids.max") == "max"
    assert int(read(f"{mem}/memory.limit_in_bytes")) == 48 * MiB
    runtime.run("update", "--resources", "-", cid, input='{"pids": {"limit": 9}}')
    assert read(f"{pids}/pids.max") == "9"
    # checkBeforeUpdate: a limit below the current usage is refused, nothing changes
    usage = int(read(f"{mem}/memory.usage_in_bytes"))
    assert usage > 4096
    low = json.dumps({"memory": {"limit": 4096, "checkBeforeUpdate": True}})
    result = runtime.run("update", "-r", "-", cid, input=low, check=False)
    assert_error(result, "memory.limit", "usage")
    assert int(read(f"{mem}/memory.limit_in_bytes")) == 48 * MiB
    assert runtime.status(cid) == "running"
    # bad input: one clear line
    assert_error(runtime.run("update", "--memory", "lots", cid, check=False), "--memory")
    assert_error(runtime.run("update", "-r", "-", cid, input='{"pids": {}}', check=False),
                 "pids.limit")
    assert_error(runtime.run("update", "--l3-cache-schema", "L3:0=f", cid, check=False),
                 "not supported")
    runtime.delete(cid, "--force")
    assert_error(runtime.run("update", "--memory", "64m", cid, check=False))


def test_events_stats_reports_memory_pids_cpu(runtime, bundle):
    resources(bundle)["pids"] = {"limit": 20}
    resources(bundle)["memory"] = {"limit": 64 * MiB}
    cid = started(runtime, bundle)
    result = runtime.run("events", "--stats", cid)
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    event = json.loads(lines[0])
    assert event["type"] == "stats" and event["id"] == cid
    data = event["data"]
    assert set(data) >= {"cpu", "memory", "pids", "blkio", "hugetlb"}
    assert data["pids"]["current"] >= 2  # sh and its sleep, at times just sh
    assert data["pids"]["limit"] == 20
    assert data["memory"]["usage"]["limit"] == 64 * MiB
    assert data["memory"]["usage"]["usage"] > 0
    assert "cache" in data["memory"]["raw"] and "failcnt" in data["memory"]["usage"]
    assert data["cpu"]["usage"]["total"] > 0
    assert {"kernel", "user"} <= set(data["cpu"]["usage"])
    assert len(data["cpu"]["usage"]["percpu"]) == os.cpu_count()
    # streaming: one stats line per interval, on while the container is stopped, until it
    # is deleted (as runc)
    out_path = os.path.join(runtime.scratch.out, "events.json")
    with open(out_path, "w") as out:
        proc = subprocess.Popen([runtime.binary, "--root", runtime.root, "events",
                                 "--interval", "100ms", cid], stdout=out)
    try:
        deadline = time.monotonic() + 30
        while open(out_path).read().count("\n") < 2:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        runtime.kill(cid, "KILL")
        while runtime.status(cid) != "stopped":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        stopped_at = open(out_path).read().count("\n")
        while open(out_path).read().count("\n") < stopped_at + 2:
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        assert_error(runtime.run("events", "--stats", cid, check=False), "not running")
        assert_error(runtime.run("events", "--interval", "0s", cid, check=False),
                     "interval")
        runtime.delete(cid)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    events = [json.loads(line) for line in open(out_path).read().splitlines()]
    assert len(events) >= 4 and all(e["type"] == "stats" for e in events)


def test_absolute_cgroups_path_lands_under_each_mount_and_delete_removes_it(runtime, bundle):
    top = f"{ID_PREFIX}abs-{os.urandom(6).hex()}"
    cgroups_path = f"/{top}/inner"
    bundle.linux["cgroupsPath"] = cgroups_path
    cid = started(runtime, bundle)
    pid = runtime.state(cid)["pid"]
    for controller in ("memory", "pids", "cpu", "freezer", "devices"):
        d = controller_dir(controller, cgroups_path)
        assert pid in map(int, read(f"{d}/cgroup.procs").split()), controller
    with open(f"/proc/{pid}/cgroup") as f:
        lines = f.read().splitlines()
    assert any(line.endswith(":memory:" + cgroups_path) for line in lines), lines
    runtime.delete(cid, "--force")
    for controller in ("memory", "pids", "cpu", "freezer", "devices"):
        # both levels were made by create, so delete removes both
        assert not os.path.exists(controller_dir(controller, f"/{top}")), controller
    assert_nothing_left(runtime, bundle, cid)


def test_relative_cgroups_path_lands_under_the_runtime_cgroup(runtime, bundle):
    name = f"{ID_PREFIX}rel-{os.urandom(6).hex()}"
    bundle.linux["cgroupsPath"] = name
    cid = started(runtime, bundle)
    pid = runtime.state(cid)["pid"]
    expected = os.path.join(own_cgroup("memory"), name)
    with open(f"/proc/{pid}/cgroup") as f:
        assert f"memory:{expected}" in f.read()
    d = controller_dir("memory", expected)
    assert pid in map(int, read(f"{d}/cgroup.procs").split())
    runtime.delete(cid, "--force")
    assert not os.path.exists(d)
    assert_nothing_left(runtime, bundle, cid)


def test_same_cgroups_path_reaches_the_same_directory(runtime, make_bundle):
    """Two containers with one cgroupsPath join the same directory; it goes when both are
    deleted."""
    cgroups_path = f"/{ID_PREFIX}same-{os.urandom(6).hex()}"
    first, second = make_bundle("one"), make_bundle("two")
    for b in (first, second):
        b.linux["cgroupsPath"] = cgroups_path
        resources(b)["pids"] = {"limit": 30}
    a = started(runtime, first)
    b = started(runtime, second)
    d = controller_dir("pids", cgroups_path)
    procs = set(map(int, read(f"{d}/cgroup.procs").split()))
    assert {runtime.state(a)["pid"], runtime.state(b)["pid"]} <= procs
    for cid in (b, a):
        runtime.delete(cid, "--force")
    assert not os.path.exists(d)
    assert_nothing_left(runtime, first, a)


def test_pause_resume_freezes_and_thaws(runtime, bundle):
    bundle.linux["cgroupsPath"] = cgroups_path = f"/{ID_PREFIX}frz-{os.urandom(6).hex()}"
    cid = started(runtime, bundle, "echo ready; while :; do echo tick; sleep 0.01; done")
    freezer = controller_dir("freezer", cgroups_path) + "/freezer.state"

    def ticks():
        return runtime.program_output(cid).count("tick")

    runtime.run("pause", cid)
    assert runtime.status(cid) == "paused"
    assert read(freezer) == "FROZEN"
    frozen_at = ticks()
    time.sleep(0.3)
    assert ticks() == frozen_at
    runtime.run("resume", cid)
    assert runtime.status(cid) == "running"
    assert read(freezer) == "THAWED"
    deadline = time.monotonic() + 10
    while ticks() == frozen_at:
        assert time.monotonic() < deadline, "the counter did not move after resume"
        time.sleep(0.01)
    runtime.delete(cid, "--force")
    assert_nothing_left(runtime, bundle, cid)


@pytest.mark.parametrize("res, needles", [
    ({"unified": {"memory.high": "1000000"}}, ("linux.resources.unified", "v1")),
    ({"network": {"classID": 1048577}}, ("network.classID", "net_cls", "not mounted")),
    ({"network": {"priorities": [{"name": "lo", "priority": 1}]}},
     ("network.priorities[0]", "net_prio", "not mounted")),
    ({"hugepageLimits": [{"pageSize": "2MB", "limit": 0}]}, ("hugepageLimits[0]", "hugetlb")),
    ({"rdma": {"mlx5_0": {"hcaHandles": 3}}}, ("rdma", "not mounted")),
    # Linux 6 keeps memory.kmem.limit_in_bytes but ignores it: an error, not a silent no-op
    ({"memory": {"kernel": 64 * MiB}}, ("memory.kernel", "memory.kmem.limit_in_bytes")),
    ({"blockIO": {"leafWeight": 100}}, ("blockIO.leafWeight", "blkio.leaf_weight")),
    ({"memory": {"swappiness": 101}}, ("memory.swappiness", "0 to 100")),
    ({"memory": {"useHierarchy": False}}, ("memory.useHierarchy", "memory.use_hierarchy")),
])
def test_what_the_host_lacks_is_a_clear_error_and_leaves_nothing(runtime, bundle, res,
                                                                  needles):
    # a valid limit next to the bad one: nothing may be half-applied or left behind
    resources(bundle).update({"pids": {"limit": 10}, **res})
    bundle.sh("echo ran")
    result = runtime.create(bundle, check=False)
    assert_error(result, *needles)
    assert runtime.program_output(result.cid) == ""
    assert_nothing_left(runtime, bundle, result.cid)


def test_blkio_weight_and_throttle(runtime, bundle):
    cgroups_path = f"/{ID_PREFIX}blk-{os.urandom(6).hex()}"
    bundle.linux["cgroupsPath"] = cgroups_path
    with open("/proc/self/mountinfo") as f:
        root_dev = next(line.split()[2] for line in f if line.split()[4] == "/")
    major, minor = map(int, root_dev.split(":"))
    d = controller_dir("blkio", cgroups_path)
    resources(bundle)["blockIO"] = {
        "throttleReadBpsDevice": [{"major": major, "minor": minor, "rate": 1048576}],
        "throttleWriteIOPSDevice": [{"major": major, "minor": minor, "rate": 100}]}
    resources(bundle)["blockIO"]["weight"] = 300
    result = runtime.create(bundle, check=False)
    if result.returncode != 0:
        # no weight file under this host's I/O scheduler: the error names field and files
        assert_error(result, "blockIO.weight", "does not exist")
        assert_nothing_left(runtime, bundle, result.cid)
        pytest.skip("this host's I/O scheduler has no blkio weight")
    cid = result.cid
    assert read(f"{d}/blkio.throttle.read_bps_device") == f"{major}:{minor} 1048576"
    assert read(f"{d}/blkio.throttle.write_iops_device") == f"{major}:{minor} 100"
    weight_file = "blkio.weight" if os.path.exists(f"{d}/blkio.weight") else "blkio.bfq.weight"
    assert read(f"{d}/{weight_file}").split()[-1] == "300"
    stats = json.loads(runtime.run("events", "--stats", cid).stdout)["data"]
    assert "blkio" in stats
    runtime.delete(cid, "--force")
    assert_nothing_left(runtime, bundle, cid)


def test_cpu_burst_realtime_idle_and_their_updates(runtime, bundle):
    cgroups_path = f"/{ID_PREFIX}rt-{os.urandom(6).hex()}"
    bundle.linux["cgroupsPath"] = cgroups_path
    cpu = controller_dir("cpu", cgroups_path)
    if not os.path.exists(os.path.join(CGROUP_ROOT, "cpu", "cpu.rt_runtime_us")):
        pytest.skip("no realtime group scheduling in this kernel")
    resources(bundle)["cpu"] = {"quota": 50000, "period": 100000, "burst": 10000,
                                "realtimeRuntime": 1000, "realtimePeriod": 100000, "idle": 1}
    cid = started(runtime, bundle)
    assert read(f"{cpu}/cpu.cfs_burst_us") == "10000"
    assert read(f"{cpu}/cpu.rt_runtime_us") == "1000"
    assert read(f"{cpu}/cpu.rt_period_us") == "100000"
    assert read(f"{cpu}/cpu.idle") == "1"
    runtime.run("update", "--cpu-rt-runtime", "2000", "--cpu-rt-period", "200000",
                "--cpu-idle", "0", "--cpu-burst", "0", cid)
    assert read(f"{cpu}/cpu.rt_runtime_us") == "2000"
    assert read(f"{cpu}/cpu.rt_period_us") == "200000"
    assert read(f"{cpu}/cpu.idle") == "0"
    assert read(f"{cpu}/cpu.cfs_burst_us") == "0"
    # v2-only input is refused on update too, and changes nothing
    result = runtime.run("update", "-r", "-", cid, check=False,
                         input='{"pids": {"limit": 3}, "unified": {"pids.max": "4"}}')
    assert_error(result, "unified")
    assert read(controller_dir("pids", cgroups_path) + "/pids.max") == "max"
    # the shares the kernel clamps are reported, as runc does
    assert_error(runtime.run("update", "--cpu-share", "1", cid, check=False),
                 "minimum allowed cpu-shares is 2")
    runtime.delete(cid, "--force")
    assert_nothing_left(runtime, bundle, cid)


def test_events_stats_of_a_created_container_and_stopped_one(runtime, bundle):
    bundle.sh("true")
    cid = runtime.create(bundle).cid
    data = json.loads(runtime.run("events", "--stats", cid).stdout)["data"]
    assert data["pids"]["current"] == 1  # the parked exec stage
    runtime.start(cid)
    deadline = time.monotonic() + 30
    while runtime.status(cid) != "stopped":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert_error(runtime.run("events", cid, check=False), "not running")
    runtime.delete(cid)
    assert_nothing_left(runtime, bundle, cid)


def test_runtime_hooks_already_see_the_limits(runtime, bundle):
    """With prestart/createRuntime hooks the limits are set before they run (runc's
    order); the program's cgroup has them from its first instruction either way."""
    cgroups_path = f"/{ID_PREFIX}hook-{os.urandom(6).hex()}"
    bundle.linux["cgroupsPath"] = cgroups_path
    resources(bundle)["pids"] = {"limit": 11}
    marker = os.path.join(runtime.scratch.out, "hook-saw")
    pids_max = controller_dir("pids", cgroups_path) + "/pids.max"
    bundle.config.setdefault("hooks", {})["createRuntime"] = [
        {"path": "/bin/sh", "args": ["sh", "-c", f"cat {pids_max} > {marker}"]}]
    bundle.sh("cat /sys/fs/cgroup/pids/pids.max")
    result = runtime.run_container(bundle)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "11"
    assert read(marker) == "11"
    assert_nothing_left(runtime, bundle, result.cid)


def _remove_test_cgroups(*cgroup_paths):
    """What a failed cpuset test may leave: these cgroup paths (innermost first) in each
    hierarchy a container's cgroup is made in."""
    for controller in ("cpuset", "memory", "pids", "cpu", "freezer", "devices", "blkio"):
        for path in cgroup_paths:
            try:
                os.rmdir(controller_dir(controller, path))
            except OSError:
                pass


def test_a_parent_cpuset_still_empty_is_filled_before_the_container_joins(runtime, bundle):
    """Twenty creates at once with cgroupsPath /ns/<id> (containerd's): one makes /ns, and
    another's /ns/<id> can be made below it before /ns has its cpus and mems.  Copying an
    empty parent's sets gave the container an empty cpuset, and joining it failed with
    ENOSPC (ctr: 'failed to create shim task: No space left on device').  Here the parent is
    that half-made cgroup, made by the test: create fills it, top down, as runc does."""
    top = f"{ID_PREFIX}cpuset-{os.urandom(6).hex()}"
    parent = controller_dir("cpuset", f"/{top}")
    os.mkdir(parent)
    try:
        assert read(f"{parent}/cpuset.cpus") == ""  # a new v1 cpuset starts empty
        bundle.linux["cgroupsPath"] = f"/{top}/inner"
        cid = started(runtime, bundle)
        inner = f"{parent}/inner"
        assert read(f"{inner}/cpuset.cpus") == read(f"{CGROUP_ROOT}/cpuset/cpuset.cpus")
        assert read(f"{parent}/cpuset.mems") == read(f"{CGROUP_ROOT}/cpuset/cpuset.mems")
        runtime.delete(cid, "--force")
        assert_nothing_left(runtime, bundle, cid)
    finally:
        _remove_test_cgroups(f"/{top}/inner", f"/{top}")


def test_a_parent_cpuset_with_sets_of_its_own_passes_them_down(runtime, bundle):
    """A parent that has its sets (one cpu of the host's) gives them to the container's
    cpuset below it, which create made and fills without reading it first; the parent's
    sets are left as they were."""
    top = f"{ID_PREFIX}cpuset-{os.urandom(6).hex()}"
    parent = controller_dir("cpuset", f"/{top}")
    os.mkdir(parent)
    try:
        cpu = read(f"{CGROUP_ROOT}/cpuset/cpuset.cpus").replace("-", ",").split(",")[0]
        with open(f"{parent}/cpuset.cpus", "w") as f:
            f.write(cpu)
        with open(f"{parent}/cpuset.mems", "w") as f:
            f.write(read(f"{CGROUP_ROOT}/cpuset/cpuset.mems"))
        bundle.linux["cgroupsPath"] = f"/{top}/mid/inner"
        cid = started(runtime, bundle)
        for d in (f"{parent}/mid", f"{parent}/mid/inner"):
            assert read(f"{d}/cpuset.cpus") == cpu
            assert read(f"{d}/cpuset.mems") == read(f"{CGROUP_ROOT}/cpuset/cpuset.mems")
        assert read(f"{parent}/cpuset.cpus") == cpu
        runtime.delete(cid, "--force")
        assert_nothing_left(runtime, bundle, cid)
        assert not os.path.exists(f"{parent}/mid")
    finally:
        _remove_test_cgroups(f"/{top}/mid/inner", f"/{top}/mid", f"/{top}")


# containerd's default spec (c 136:* has no minor)
CONTAINERD_DEVICES = [{"allow": False, "access": "rwm"}] + [
    dict({"allow": True, "type": "c", "major": major, "access": "rwm"},
         **({"minor": minor} if minor is not None else {}))
    for major, minor in ((1, 3), (1, 8), (1, 7), (5, 0), (1, 5), (1, 9), (5, 1), (136, None),
                         (5, 2))]


@pytest.mark.parametrize("rules", [
    CONTAINERD_DEVICES,
    # a deny between two equal allows: the second allow is written again
    CONTAINERD_DEVICES + [{"allow": False, "type": "c", "major": 1, "minor": 3,
                           "access": "rwm"}],
], ids=["containerd-defaults", "deny-between"])
def test_device_rules_written_once_leave_the_list_every_line_would(runtime, bundle, rules):
    """create writes an allow line that repeats one written since the last deny once
    (containerd's default rules repeat nine of runc's defaults): the container's
    devices.list is what writing every line, in order, gives a new cgroup."""
    from ociruntime.libcontainer.cgroups.v1 import DEFAULT_ALLOW

    resources(bundle)["devices"] = rules
    cid = started(runtime, bundle)
    try:
        got = read(controller_dir("devices", own_cgroup_of(runtime, cid)) + "/devices.list")
        reference = controller_dir("devices", f"/{ID_PREFIX}devref-{os.urandom(6).hex()}")
        os.mkdir(reference)
        try:
            for rule in rules:
                kind = rule.get("type", "a")
                line = "a" if kind == "a" else (
                    f"{kind} {rule.get('major', '*')}:{rule.get('minor', '*')} {rule['access']}")
                with open(f"{reference}/devices.{'allow' if rule['allow'] else 'deny'}",
                          "w") as f:
                    f.write(line)
            for line in DEFAULT_ALLOW:
                with open(f"{reference}/devices.allow", "w") as f:
                    f.write(line)
            expected = read(f"{reference}/devices.list")
        finally:
            os.rmdir(reference)
        assert sorted(got.splitlines()) == sorted(expected.splitlines())
        # with the deny between, runc's default allows it again: only if written again
        assert "c 1:3 rwm" in got.splitlines()
    finally:
        runtime.delete(cid, "--force")
    assert_nothing_left(runtime, bundle, cid)


def own_cgroup_of(runtime, cid):
    """The container's cgroup path in the devices hierarchy, from its init's
    /proc/PID/cgroup."""
    pid = runtime.state(cid)["pid"]
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _, names, path = line.rstrip("\n").split(":", 2)
            if "devices" in names.split(","):
                return path
    raise AssertionError("no devices line")
