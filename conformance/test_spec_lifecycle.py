"""runtime.md: the operations (state, create, start, kill, delete), their errors and the
lifecycle, observed from outside with busybox programs."""

import json
import os

from pyrunc_testlib import assert_nothing_left

WAIT = "echo ready; while :; do sleep 0.05; done"


def started(runtime, bundle, script=WAIT):
    bundle.sh(script)
    cid = runtime.create(bundle).cid
    runtime.start(cid)
    runtime.wait_output(cid, "ready")
    return cid


def run_to_exit(runtime, bundle):
    """create + start; wait until the program has exited; return the id."""
    cid = runtime.create(bundle).cid
    pid = runtime.state(cid)["pid"]
    runtime.start(cid)
    runtime.wait_exit(pid)
    return cid


def test_state_of_unknown_id_is_an_error(runtime):
    # runtime.md "state": MUST generate an error if the container does not exist
    assert runtime.run("state", "no-such-container-x", check=False).returncode != 0


def test_operations_without_id_are_errors(runtime, bundle):
    # runtime.md: start/kill/delete/state MUST generate an error without a container ID
    bundle.write()
    for op in ("state", "start", "kill", "delete"):
        assert runtime.run(op, check=False).returncode != 0, op
    assert runtime.run("create", "--bundle", bundle.path, check=False).returncode != 0


def test_state_fields_through_the_lifecycle(runtime, bundle, state_validator):
    # runtime.md "State": ociVersion, id, status, pid (created/running), bundle (absolute);
    # status created -> running -> stopped
    bundle.config["annotations"] = {"org.example.key": "value"}
    bundle.sh("read x < /dev/null; echo ready; sleep 60")
    cid = runtime.create(bundle).cid
    st = runtime.state(cid)
    state_validator.validate(st)
    assert (st["id"], st["status"]) == (cid, "created")
    assert st["bundle"] == os.path.realpath(bundle.path)
    assert st["pid"] > 0 and os.path.exists(f"/proc/{st['pid']}")
    assert st["annotations"] == {"org.example.key": "value"}
    assert "ociVersion" in st
    runtime.start(cid)
    runtime.wait_output(cid, "ready")
    assert runtime.status(cid) == "running"
    runtime.kill(cid, "KILL")
    runtime.wait_exit(st["pid"])
    assert runtime.status(cid) == "stopped"
    runtime.delete(cid)
    assert runtime.run("state", cid, check=False).returncode != 0
    assert_nothing_left(runtime, bundle, cid)


def test_create_does_not_run_the_program(runtime, bundle):
    # runtime.md "create": process.args MUST NOT run until start
    bundle.sh("echo ran > /tmp/marker")
    bundle.config["root"]["readonly"] = False
    cid = runtime.create(bundle).cid
    pid = runtime.state(cid)["pid"]
    assert not os.path.exists(os.path.join(bundle.rootfs, "tmp", "marker"))
    runtime.start(cid)
    runtime.wait_exit(pid)
    assert open(os.path.join(bundle.rootfs, "tmp", "marker")).read() == "ran\n"
    runtime.delete(cid)


def test_duplicate_id_is_an_error_and_the_first_is_untouched(runtime, bundle):
    # runtime.md "create": an ID already in use MUST generate an error; no new container
    cid = runtime.create(bundle).cid
    again = runtime.create(bundle, cid=cid, check=False)
    assert again.returncode != 0
    assert runtime.status(cid) == "created"
    runtime.delete(cid, "--force")
    assert_nothing_left(runtime, bundle, cid)


def test_start_on_a_running_or_stopped_container_is_an_error(runtime, bundle):
    # runtime.md "start": MUST error if not created, with no effect on the container
    cid = started(runtime, bundle)
    assert runtime.start(cid, check=False).returncode != 0
    assert runtime.status(cid) == "running"
    runtime.kill(cid, "KILL")
    runtime.wait_exit(runtime.state(cid)["pid"])
    assert runtime.start(cid, check=False).returncode != 0
    assert runtime.status(cid) == "stopped"
    runtime.delete(cid)


def test_start_without_process_is_an_error(runtime, bundle):
    # config.md "process": OPTIONAL at create, start MUST error when it is absent
    del bundle.config["process"]
    cid = runtime.create(bundle).cid
    assert runtime.start(cid, check=False).returncode != 0
    runtime.delete(cid, "--force")
    assert_nothing_left(runtime, bundle, cid)


def test_kill_delivers_the_signal(runtime, bundle):
    # runtime.md "kill": MUST send the given signal to the container process
    cid = started(runtime, bundle,
                  "trap 'echo got-USR1' USR1; echo ready; while :; do sleep 0.05; done")
    runtime.kill(cid, "USR1")
    runtime.wait_output(cid, "got-USR1")
    runtime.delete(cid, "--force")


def test_kill_on_a_stopped_container_is_an_error(runtime, bundle):
    # runtime.md "kill": only created or running; otherwise MUST error
    bundle.set_args("true")
    cid = run_to_exit(runtime, bundle)
    assert runtime.status(cid) == "stopped"
    assert runtime.kill(cid, "TERM", check=False).returncode != 0
    assert runtime.status(cid) == "stopped"
    runtime.delete(cid)


def test_delete_of_a_running_container_is_an_error(runtime, bundle):
    # runtime.md "delete": MUST error unless stopped, and have no effect.  A created
    # container is the deliberate exception: runc and crun kill and delete it (engines
    # delete tasks they created and never started), so pyrunc does too; see the
    # "Deviations" section of CHECKLIST.md and test_delete_of_a_created_container_kills_it
    cid = started(runtime, bundle)
    assert runtime.delete(cid, check=False).returncode != 0
    assert runtime.status(cid) == "running"
    runtime.delete(cid, "--force")
    assert_nothing_left(runtime, bundle, cid)


def test_delete_of_a_created_container_kills_it(runtime, bundle):
    # the deviation from runtime.md "delete" (as runc and crun): no --force needed
    cid = runtime.create(bundle).cid
    pid = runtime.state(cid)["pid"]
    runtime.delete(cid)
    runtime.wait_exit(pid)
    assert runtime.run("state", cid, check=False).returncode != 0
    assert_nothing_left(runtime, bundle, cid)


def test_config_changes_after_create_do_not_affect_the_container(runtime, bundle):
    # runtime.md "create": changes to config.json after create MUST NOT affect the container
    bundle.sh("echo original")
    cid = runtime.create(bundle).cid
    bundle.sh("echo changed")
    bundle.write()
    runtime.start(cid)
    assert runtime.wait_output(cid, "original") == "original\n"
    runtime.delete(cid, "--force")


def test_id_can_be_reused_after_delete(runtime, bundle):
    # runtime.md "delete": after delete the id MAY be reused (pyrunc allows it)
    cid = runtime.create(bundle).cid
    runtime.delete(cid, "--force")
    again = runtime.create(bundle, cid=cid)
    assert again.returncode == 0
    assert runtime.status(cid) == "created"
    runtime.delete(cid, "--force")


def test_hooks_get_the_state_on_stdin(runtime, bundle, scratch):
    # config.md "hooks": the state MUST be passed on stdin; poststop runs before delete returns
    out = os.path.join(scratch.path, "hooks")
    os.mkdir(out)
    hook = {"path": "/bin/sh"}
    bundle.config["hooks"] = {
        phase: [dict(hook, args=["sh", "-c", f"cat > {out}/{phase}"])]
        for phase in ("createRuntime", "poststart", "poststop")}
    bundle.set_args("true")
    cid = run_to_exit(runtime, bundle)
    runtime.delete(cid)
    states = {p: json.load(open(os.path.join(out, p))) for p in os.listdir(out)}
    assert set(states) == {"createRuntime", "poststart", "poststop"}
    for phase, st in states.items():
        assert st["id"] == cid, phase
        assert st["bundle"] == os.path.realpath(bundle.path), phase
    assert states["poststart"]["status"] == "running"
    assert states["poststop"]["status"] == "stopped"


def test_failing_poststop_hook_only_warns(runtime, bundle, scratch):
    # config.md "poststop": a failure MUST be logged as a warning; later hooks still run
    marker = os.path.join(scratch.path, "second")
    bundle.config["hooks"] = {"poststop": [
        {"path": "/bin/false"},
        {"path": "/bin/sh", "args": ["sh", "-c", f"touch {marker}"]}]}
    bundle.set_args("true")
    cid = run_to_exit(runtime, bundle)
    assert runtime.delete(cid).returncode == 0
    assert os.path.exists(marker)
    assert_nothing_left(runtime, bundle, cid)


def test_poststart_runs_after_the_program_is_executed(runtime, bundle, scratch):
    # config.md "poststart": called after the user-specified process is executed.  The hook
    # reads the container pid from the state on its stdin and records what that process
    # runs: the program (busybox), never the runtime's exec stage still on its way to it.
    out = os.path.join(scratch.path, "exe")
    hook = ("pid=$(sed -n 's/.*\"pid\": *\\([0-9]*\\).*/\\1/p'); "
            f"readlink /proc/$pid/exe > {out}")
    bundle.config["hooks"] = {"poststart": [{"path": "/bin/sh", "args": ["sh", "-c", hook]}]}
    bundle.sh("echo ready; sleep 60")
    cid = runtime.create(bundle).cid
    runtime.start(cid)
    with open(out) as f:
        assert f.read().strip().endswith("/bin/busybox")
    runtime.delete(cid, "--force")
    assert_nothing_left(runtime, bundle, cid)
