"""A container that joins another's pid namespace (linux.namespaces pid with a path): the
Python init stays outside it, the stage does setns + fork, and the container's /proc is a
procfs of the joined namespace, opened there by the stage (procfs_pidns).  These check that
it still behaves as a member of that namespace in every way the lifecycle shows.  They run
on this host's kernel and on Debian's in the VM (tests/cgroupv2/test_old_kernel_in_vm.py)."""

import os

from pyrunc_testlib import assert_error, assert_nothing_left


def _ns(pid, name):
    return os.stat(f"/proc/{pid}/ns/{name}").st_ino


def _join(bundle, pid):
    for ns in bundle.linux["namespaces"]:
        if ns["type"] == "pid":
            ns["path"] = f"/proc/{pid}/ns/pid"


def test_joined_pid_namespace_lifecycle(runtime, make_bundle):
    first = make_bundle("first")
    first.set_args("sleep", "60")
    a = runtime.create(first).cid
    runtime.start(a)
    a_pid = runtime.state(a)["pid"]

    second = make_bundle("second")
    # its own /proc shows the joined namespace: pid 1 is the first container's sleep, and
    # its pid there is the one the host's NSpid shows
    second.set_args("sh", "-c", "echo one=$(cat /proc/1/comm); echo self=$$;"
                    " readlink /proc/self >/dev/null && echo ready; exec sleep 60")
    _join(second, a_pid)
    b = runtime.create(second).cid
    b_pid = runtime.state(b)["pid"]
    assert runtime.status(b) == "created"
    assert _ns(b_pid, "pid") == _ns(a_pid, "pid")
    with open(f"/proc/{b_pid}/status") as f:
        status = f.read()
    nspids = next(line for line in status.splitlines() if line.startswith("NSpid:"))
    assert nspids.split()[1] == str(b_pid) and len(nspids.split()) == 3, nspids
    runtime.start(b)
    out = runtime.wait_output(b, "ready")
    assert "one=sleep" in out, out
    inner = nspids.split()[2]
    assert f"self={inner}" in out, out
    # exec into the second container lands in the same namespace
    result = runtime.run("exec", b, "cat", "/proc/1/comm")
    assert result.stdout.strip() == "sleep"
    runtime.kill(b, "KILL")
    runtime.delete(b, "--force")
    assert_nothing_left(runtime, second, b)
    runtime.delete(a, "--force")
    assert_nothing_left(runtime, first, a)


def _proc_options(bundle, *options):
    for mount in bundle.config["mounts"]:
        if mount["destination"] == "/proc":
            mount["options"] = list(options)


def _holder(runtime, make_bundle):
    first = make_bundle("first")
    first.set_args("sleep", "60")
    a = runtime.create(first).cid
    runtime.start(a)
    return a


def test_joined_pid_namespace_proc_takes_the_mount_options(runtime, make_bundle):
    """The init configures the procfs context the stage opened: the config's flags and
    data (hidepid) are on the container's /proc as on any other."""
    a = _holder(runtime, make_bundle)
    second = make_bundle("second")
    _proc_options(second, "nosuid", "noexec", "nodev", "ro", "hidepid=2")
    second.set_args("sh", "-c", "grep ' /proc ' /proc/mounts; echo one=$(cat /proc/1/comm)")
    _join(second, runtime.state(a)["pid"])
    result = runtime.run_container(second)
    assert result.returncode == 0, result
    line = next(x for x in result.stdout.splitlines() if x.startswith("proc /proc "))
    options = line.split()[3].split(",")
    assert "ro" in options and "nosuid" in options and "noexec" in options, line
    assert any(o in ("hidepid=2", "hidepid=invisible") for o in options), line
    assert "one=sleep" in result.stdout, result.stdout
    runtime.delete(a, "--force")


def test_joined_pid_namespace_bad_proc_option_is_one_error(runtime, make_bundle):
    a = _holder(runtime, make_bundle)
    second = make_bundle("second")
    _proc_options(second, "nosuid", "bogus=1")
    _join(second, runtime.state(a)["pid"])
    result = runtime.create(second, check=False)
    assert_error(result, "proc", "bogus")
    assert_nothing_left(runtime, second, result.cid)
    runtime.delete(a, "--force")


def test_joined_pid_namespace_without_procfs_starts(runtime, make_bundle):
    """No procfs mount at all: the parked stage reopens exec.fifo through a detached
    procfs of the joined namespace (init._detached_procfs), opened there by the stage as
    the /proc mount is; start works."""
    a = _holder(runtime, make_bundle)
    second = make_bundle("second")
    second.config["mounts"] = [m for m in second.config["mounts"] if m["destination"] != "/proc"]
    second.linux["maskedPaths"] = []
    second.linux["readonlyPaths"] = []
    second.set_args("echo", "no-proc")
    _join(second, runtime.state(a)["pid"])
    b = runtime.create(second).cid
    runtime.start(b)
    runtime.wait_output(b, "no-proc")
    runtime.delete(b, "--force")
    assert_nothing_left(runtime, second, b)
    runtime.delete(a, "--force")
