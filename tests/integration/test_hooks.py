"""OCI hooks on real containers: order, namespaces, state on stdin, failure rules (v1.3.0).

Each hook is a host shell script appending "<name> <state JSON>" to a log file in the
bundle; startContainer runs inside the container, so its script is copied into the rootfs
and writes to a bind-mounted directory.
"""

import json
import os

import pytest

from pyrunc_testlib import assert_error, assert_nothing_left

HOOK_SCRIPT = "#!/bin/sh\necho \"$1 $(cat)\" >> \"$2\"\n"


def _setup(bundle):
    """(host hook path, container hook path, host log path, container log path)."""
    logdir = os.path.join(bundle.path, "hooklog")
    os.mkdir(logdir)
    script = os.path.join(bundle.path, "hook.sh")
    with open(script, "w") as f:
        f.write(HOOK_SCRIPT)
    os.chmod(script, 0o755)
    inner = os.path.join(bundle.rootfs, "bin", "hook.sh")
    with open(inner, "w") as f:
        f.write(HOOK_SCRIPT)
    os.chmod(inner, 0o755)
    bundle.mount("/hooklog", "bind", logdir, ["rbind"])
    return script, "/bin/hook.sh", os.path.join(logdir, "log"), "/hooklog/log"


def _hook(path, name, log, **extra):
    return {"path": path, "args": ["hook.sh", name, log], **extra}


def _log(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [(line.split(" ", 1)[0], json.loads(line.split(" ", 1)[1])) for line in f]


def test_all_phases_run_in_order_with_the_state(runtime, bundle):
    host, inner, log, inner_log = _setup(bundle)
    bundle.config["hooks"] = {
        phase: [_hook(inner if phase == "startContainer" else host, phase,
                      inner_log if phase == "startContainer" else log)]
        for phase in ("prestart", "createRuntime", "createContainer", "startContainer",
                      "poststart", "poststop")}
    bundle.config["annotations"] = {"org.example.key": "value"}
    bundle.sh("echo program ran")
    result = runtime.run_container(bundle)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "program ran\n"
    seen = _log(log)
    assert [name for name, _ in seen] == ["prestart", "createRuntime", "createContainer",
                                          "startContainer", "poststart", "poststop"]
    states = dict(seen)
    for name, state in seen:
        assert state["id"] == result.cid and state["bundle"] == bundle.path, name
        assert state["annotations"] == {"org.example.key": "value"}, name
    # runtime-namespace hooks see the host pid, container-namespace hooks pid 1
    host_pid = states["prestart"]["pid"]
    assert host_pid > 1 and states["createRuntime"]["pid"] == host_pid
    assert states["createContainer"]["pid"] == 1 and states["startContainer"]["pid"] == 1
    assert states["poststart"]["pid"] == host_pid
    # the spec leaves the status of the create-phase hooks open (runc: creating; the
    # runtime-tools suite expects created)
    assert states["prestart"]["status"] in ("creating", "created")
    assert [states[n]["status"] for n in ("startContainer", "poststart", "poststop")] == [
        "created", "running", "stopped"]
    assert_nothing_left(runtime, bundle, result.cid)


def test_start_container_hook_alone(runtime, bundle):
    # regression: the stage's state JSON was built by importing a module after
    # pivot_root, which fails once the host's filesystem is out of reach
    _, inner, log, inner_log = _setup(bundle)
    bundle.config["hooks"] = {"startContainer": [_hook(inner, "startContainer", inner_log)]}
    bundle.sh("echo program ran")
    result = runtime.run_container(bundle)
    assert result.returncode == 0, result.stderr
    assert [name for name, _ in _log(log)] == ["startContainer"]


def test_failing_create_runtime_hook_tears_down_and_runs_poststop(runtime, bundle):
    host, _, log, _ = _setup(bundle)
    bundle.config["hooks"] = {
        "createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", "echo boom >&2; exit 3"]}],
        "poststop": [_hook(host, "poststop", log)]}
    result = runtime.create(bundle, check=False)
    assert_error(result, "hooks.createRuntime[0]", "exit status 3", "boom")
    assert [name for name, _ in _log(log)] == ["poststop"]
    assert_nothing_left(runtime, bundle, result.cid)


@pytest.mark.parametrize("state_size", [0, 1 << 20], ids=["small-state", "big-state"])
def test_start_container_timeout_fails_start_and_destroys(runtime, bundle, state_size):
    # big-state: a state larger than the pipe, which the hook never reads: the exec
    # stage's write of it came before the timed wait and blocked start for the hook's life
    bundle.config["hooks"] = {
        "startContainer": [{"path": "/bin/sleep", "args": ["sleep", "600"], "timeout": 1}]}
    if state_size:
        bundle.config["annotations"] = {"org.example.big": "x" * state_size}
    bundle.sh("echo should not run")
    created = runtime.create(bundle)
    result = runtime.start(created.cid, check=False)
    assert_error(result, "hooks.startContainer[0]", "timed out after 1s")
    assert "should not run" not in runtime.program_output(created.cid)
    assert_nothing_left(runtime, bundle, created.cid)


def test_failing_poststop_hook_only_warns(runtime, bundle):
    host, _, log, _ = _setup(bundle)
    bundle.config["hooks"] = {"poststop": [
        {"path": "/bin/false"}, _hook(host, "poststop-after", log)]}
    bundle.sh("true")
    result = runtime.run_container(bundle)
    assert result.returncode == 0, result.stderr
    assert "hooks.poststop[0]" in result.stderr
    assert [name for name, _ in _log(log)] == ["poststop-after"]
    assert_nothing_left(runtime, bundle, result.cid)


def test_failing_poststart_hook_fails_start_for_1_3_configs(runtime, bundle):
    bundle.config["hooks"] = {"poststart": [{"path": "/bin/false"}]}
    bundle.set_args("sleep", "600")
    created = runtime.create(bundle)
    result = runtime.start(created.cid, check=False)
    assert_error(result, "hooks.poststart[0]")
    assert_nothing_left(runtime, bundle, created.cid)


def test_failing_poststart_hook_only_warns_before_1_3(runtime, bundle):
    bundle.config["ociVersion"] = "1.2.0"
    bundle.config["hooks"] = {"poststart": [{"path": "/bin/false"}]}
    bundle.set_args("sleep", "600")
    created = runtime.create(bundle)
    result = runtime.start(created.cid)
    assert "hooks.poststart[0]" in result.stderr
    assert runtime.status(created.cid) == "running"
    runtime.delete(created.cid, "--force")
    assert_nothing_left(runtime, bundle, created.cid)


def test_timeout_holds_for_a_hook_that_never_reads_a_big_state(runtime, bundle):
    # regression: the state was written to the hook's stdin pipe before the timeout's
    # wait began; a state larger than the pipe (annotations) against a hook that never
    # reads blocked create in that write for as long as the hook lived
    bundle.config["hooks"] = {
        "createRuntime": [{"path": "/bin/sleep", "args": ["sleep", "600"], "timeout": 1}]}
    bundle.config["annotations"] = {"org.example.big": "x" * (1 << 20)}
    bundle.sh("echo should not run")
    result = runtime.create(bundle, check=False)
    assert_error(result, "hooks.createRuntime[0]", "timed out after 1s")
    assert_nothing_left(runtime, bundle, result.cid)
