"""Checklist rows (conformance/CHECKLIST.md) that had no real-container test yet."""

import json
import os

import pytest

from pyrunc_testlib import assert_error, assert_nothing_left


def test_console_size_is_ignored_without_a_terminal(runtime, bundle):
    # config.md "consoleSize": MUST be ignored when terminal is false or unset
    bundle.process["terminal"] = False
    bundle.process["consoleSize"] = {"height": 24, "width": 80}
    assert runtime.sh(bundle, "test -t 0 || echo notty").split() == ["notty"]


def test_mount_type_is_seen_in_mountinfo(runtime, bundle):
    # config.md "mounts[].type": the filesystem type shows in the fstype column
    bundle.config["mounts"].append({"destination": "/spec-tmp", "type": "tmpfs", "source": "tmpfs"})
    out = runtime.sh(bundle, "grep ' /spec-tmp ' /proc/self/mountinfo")
    assert " - tmpfs " in out


def test_features_versions_and_hooks_are_accepted(runtime, bundle):
    # features.md: ociVersionMin/Max MUST be accepted as config ociVersion; listed hooks exist
    features = json.loads(runtime.run("features").stdout)
    assert "createRuntime" in features["hooks"] and "poststop" in features["hooks"]
    for version in (features["ociVersionMin"], features["ociVersionMax"]):
        bundle.config["ociVersion"] = version
        assert runtime.sh(bundle, "echo ok").split() == ["ok"]


def _sched_getattr(pid):
    """sched_getattr(2) of another process: (policy, flags, runtime, deadline, period)."""
    import ctypes
    import struct

    buf = ctypes.create_string_buffer(56)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syscall(315, pid, buf, 56, 0) != 0:  # SYS_sched_getattr on x86-64
        raise OSError(ctypes.get_errno(), "sched_getattr")
    _size, policy, flags, _nice, _prio, runtime, deadline, period = struct.unpack(
        "<IIQiIQQQ", buf.raw[:48])
    return policy, flags, runtime, deadline, period


def test_scheduler_deadline_parameters_and_flags(runtime, bundle):
    # config.md "scheduler": runtime/deadline/period (SCHED_DEADLINE) and flags reach the
    # process exactly; observed from the host with sched_getattr(2)
    bundle.process["scheduler"] = {
        "policy": "SCHED_DEADLINE", "runtime": 10_000_000, "deadline": 30_000_000,
        "period": 40_000_000, "flags": ["SCHED_FLAG_RESET_ON_FORK"]}
    bundle.sh("echo ready; exec sleep 1000")
    cid = runtime.create(bundle).cid
    runtime.start(cid)
    runtime.wait_output(cid, "ready")
    policy, flags, run, deadline, period = _sched_getattr(runtime.state(cid)["pid"])
    assert (policy, run, deadline, period) == (6, 10_000_000, 30_000_000, 40_000_000)
    assert flags & 0x01, flags  # SCHED_FLAG_RESET_ON_FORK
    runtime.delete(cid, "--force")


def test_exec_cpu_affinity_initial_then_final(runtime, bundle):
    # config.md "execCPUAffinity" (exec'd processes only): `initial` is the affinity the
    # runtime's process has before it joins the container's cgroup, which the process keeps
    # when no `final` is given; `final` is the affinity once inside
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs two CPUs")
    first, second = sorted(os.sched_getaffinity(0))[:2]
    bundle.sh("echo ready; exec sleep 1000")
    cid = runtime.create(bundle).cid
    runtime.start(cid)
    runtime.wait_output(cid, "ready")
    proc = dict(bundle.process, args=["grep", "Cpus_allowed_list", "/proc/self/status"])
    seen = []
    for affinity in ({"initial": str(first)}, {"initial": str(first), "final": str(second)}):
        path = os.path.join(bundle.path, "exec.json")
        with open(path, "w") as f:
            json.dump(dict(proc, execCPUAffinity=affinity), f)
        seen.append(runtime.run("exec", "--process", path, cid).stdout.split()[-1])
    assert seen == [str(first), str(second)]
    runtime.delete(cid, "--force")


def test_a_config_without_linux_still_runs(runtime, bundle):
    # config.md platform objects: `linux` MAY be set; without it the config still parses
    # and runs (runc's defaults: no namespaces of its own, nothing Linux-specific)
    del bundle.config["linux"]
    bundle.config.pop("hostname", None)  # a hostname needs a uts namespace (linux)
    bundle.config["mounts"] = [m for m in bundle.config["mounts"]
                               if m["destination"] in ("/proc", "/dev")]
    bundle.sh("echo ran")
    result = runtime.run_container(bundle)
    assert (result.returncode, result.stdout) == (0, "ran\n"), result.stderr
    assert_nothing_left(runtime, bundle, result.cid)


def test_root_is_required_and_root_path_must_exist(runtime, bundle):
    # config.md root: REQUIRED on Linux; root.path: a directory MUST exist there; and
    # `ls /` inside shows that directory's content
    open(f"{bundle.rootfs}/marker-of-this-rootfs", "w").close()
    assert "marker-of-this-rootfs" in runtime.sh(bundle, "ls /").split()
    for change, needle in ((lambda c: c.pop("root"), "root"),
                           (lambda c: c["root"].update(path="no-such-dir"), "root.path")):
        config = json.loads(json.dumps(bundle.config))
        change(config)
        bundle.write(json.dumps(config))
        cid = runtime.new_id()
        assert_error(runtime.run("create", "--bundle", bundle.path, cid, check=False), needle)
        assert_nothing_left(runtime, bundle, cid)
