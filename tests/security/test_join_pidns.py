"""A container that joins another's pid namespace (linux.namespaces pid with a path): the
Python init stays outside it, the stage does setns + fork, and the container's /proc is a
procfs of the joined namespace (fsconfig pidns=).  These check that it still behaves as a
member of that namespace in every way the lifecycle shows."""

import os

from pyrunc_testlib import assert_nothing_left


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
