"""What engines rely on when they call the runtime, checked on pyrunc directly (no engine
needed): the behaviours observed by watching podman/conmon, containerd's shim (go-runc)
and dockerd call runc.  The engine flows themselves are in test_podman.py,
test_containerd.py and test_docker.py."""

import json
import os
import subprocess

import pytest

from pyrunc_testlib import assert_error, assert_nothing_left


def test_create_writes_a_bare_pid_and_prints_nothing(runtime, bundle):
    """conmon and the shim read the pid file right after `create` returns: a bare integer,
    no newline; fds 1 and 2 belong to the container, so nothing is printed on success."""
    bundle.set_args("sleep", "100")
    pid_file = os.path.join(runtime.scratch.path, "pid")
    result = runtime.create(bundle, "--pid-file", pid_file)
    assert result.stderr == "" and result.stdout == ""
    with open(pid_file) as f:
        text = f.read()
    assert text.isdigit(), repr(text)
    assert int(text) == runtime.state(result.cid)["pid"]
    # exec --detach: the same contract for the exec'd process
    exec_pid_file = os.path.join(runtime.scratch.path, "exec-pid")
    runtime.start(result.cid)
    out = runtime.run("exec", "--detach", "--pid-file", exec_pid_file, result.cid,
                      "sleep", "100")
    assert out.stdout == "" and out.stderr == ""
    with open(exec_pid_file) as f:
        text = f.read()
    assert text.isdigit(), repr(text)
    with open(f"/proc/{text}/cmdline", "rb") as f:
        assert f.read().split(b"\0")[0] == b"sleep"
    runtime.kill(result.cid, "KILL")
    runtime.run("delete", "--force", result.cid)
    assert_nothing_left(runtime, bundle, result.cid)


def test_container_stays_a_descendant_of_a_subreaper_caller(runtime, bundle):
    """conmon and the shim set PR_SET_CHILD_SUBREAPER and wait for the container process:
    after `create` it must be their descendant (reparented to them, not to pid 1)."""
    bundle.set_args("sleep", "100")
    pid_file = os.path.join(runtime.scratch.path, "pid")
    script = (
        "import ctypes, os, subprocess, sys\n"
        "ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)\n"  # PR_SET_CHILD_SUBREAPER
        "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)\n"
        "pid = int(open(sys.argv[sys.argv.index('--pid-file') + 1]).read())\n"
        "ppid = int(open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()[1])\n"
        "print(ppid == os.getpid())\n")
    cid = runtime.new_id()
    bundle.write()
    result_path = os.path.join(runtime.scratch.path, "result")
    with open(result_path, "w+") as out:  # a file: the container inherits stdout
        subprocess.run(
            ["python3", "-c", script, runtime.binary, "--root", runtime.root, "create",
             "--bundle", bundle.path, "--pid-file", pid_file, cid],
            stdin=subprocess.DEVNULL, stdout=out, stderr=out, timeout=60, check=True)
        out.seek(0)
        assert out.read().strip() == "True"
    runtime.run("delete", "--force", cid)
    assert_nothing_left(runtime, bundle, cid)


def test_json_log_is_what_podman_and_containerd_parse(runtime, bundle):
    """--log FILE --log-format json: the error is a JSON line {level, msg, time}.  podman
    unmarshals the whole file as one JSON object; containerd shows the msg of the last
    "error" line.  A missing program says "no such file or directory" in lower case (docker
    matches it case-sensitively to exit with 127, podman too)."""
    log = os.path.join(runtime.scratch.path, "log.json")
    bundle.set_args("/bin/no-such-program")
    result = runtime.create(bundle, check=False, global_args=("--log", log,
                                                               "--log-format", "json"))
    assert result.returncode != 0
    with open(log) as f:
        text = f.read()
    whole = json.loads(text)  # podman: the whole file is one object
    assert whole["level"] == "error"
    assert set(whole) == {"level", "msg", "time"}
    assert "no such file or directory" in whole["msg"]
    errors = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert errors[-1]["level"] == "error" and errors[-1]["msg"] == whole["msg"]
    runtime.run("delete", "--force", result.cid)
    assert_nothing_left(runtime, bundle, result.cid)


@pytest.mark.parametrize("args, words", [
    (["no-such-program"], "executable file not found in $PATH"),
    (["/bin/no-such-program"], "no such file or directory"),
    (["/etc/passwd"], "permission denied"),
])
def test_exec_failures_use_the_words_engines_map(runtime, bundle, args, words):
    """Engines map "executable file not found in $PATH" / "no such file or directory" to
    exit 127 and "permission denied" to 126, by the exact (lower-case) words."""
    bundle.set_args("sleep", "100")
    cid = runtime.create(bundle).cid
    runtime.start(cid)
    result = runtime.run("exec", cid, *args, check=False)
    assert result.returncode != 0
    assert words in result.stderr, result.stderr
    bundle.set_args(*args)
    created = runtime.create(bundle, check=False)
    assert words in created.stderr, created.stderr
    for c in (cid, created.cid):
        runtime.run("delete", "--force", c)
        assert_nothing_left(runtime, bundle, c)


def test_kill_and_delete_errors_engines_recognise(runtime, bundle):
    """containerd's shim maps "container not running" (kill of a stopped container) and
    "does not exist" (unknown id) to NotFound; `delete --force` of an id that is gone
    (after a crash, or podman's cleanup after a failed create) succeeds, so a retry is
    harmless."""
    unknown = runtime.new_id()
    assert_error(runtime.kill(unknown, "KILL", check=False), "does not exist")
    assert_error(runtime.delete(unknown, check=False), "does not exist")
    for _ in range(2):
        forced = runtime.delete(unknown, "--force", check=False)
        assert forced.returncode == 0 and forced.stderr == "", forced
    cid = runtime.create(bundle).cid  # args ["true"]
    runtime.start(cid)
    runtime.wait_exit(runtime.state(cid)["pid"])
    assert_error(runtime.kill(cid, "TERM", check=False), "container not running")
    runtime.delete(cid)
    assert runtime.delete(cid, "--force", check=False).returncode == 0
    assert_nothing_left(runtime, bundle, cid)


def test_containerd_style_create(runtime, bundle):
    """containerd runs the runtime with cwd = bundle, a relative root.path, --root under
    its own state dir, and may leak an fd (3) into `create`."""
    bundle.set_args("sh", "-c", "echo hello")
    assert bundle.config["root"]["path"] == "rootfs"
    r, w = os.pipe()
    try:
        cid = runtime.new_id()
        bundle.write()
        pid_file = os.path.join(bundle.path, "init.pid")
        runtime.run("create", "--bundle", bundle.path, "--pid-file", pid_file, cid,
                    cwd=bundle.path, pass_fds=(w,), stdout_path=runtime.output_path(cid))
    finally:
        os.close(r)
        os.close(w)
    runtime.start(cid)
    runtime.wait_output(cid, "hello")
    runtime.wait_exit(runtime.state(cid)["pid"])
    runtime.delete(cid)
    assert_nothing_left(runtime, bundle, cid)


def test_docker_style_prestart_hook_reads_state(runtime, bundle):
    """docker's config always has a prestart hook (libnetwork-setkey) that reads the
    state JSON on its stdin."""
    out = os.path.join(runtime.scratch.path, "hook-state.json")
    bundle.config.setdefault("hooks", {})["prestart"] = [
        {"path": "/bin/sh", "args": ["sh", "-c", f"cat > {out}"]}]
    bundle.set_args("sleep", "100")
    cid = runtime.create(bundle).cid
    with open(out) as f:
        state = json.load(f)
    assert state["id"] == cid and state["pid"] == runtime.state(cid)["pid"]
    assert state["bundle"] == bundle.path
    runtime.run("delete", "--force", cid)
    assert_nothing_left(runtime, bundle, cid)


def test_docker_style_zero_blkio_weight(runtime, bundle):
    """docker always sends linux.resources.blockIO {"weight": 0}: 0 means "not set" (as
    runc reads it), not a value to write (the kernel refuses 0)."""
    bundle.linux.setdefault("resources", {})["blockIO"] = {"weight": 0}
    bundle.set_args("true")
    result = runtime.run_container(bundle)
    assert result.returncode == 0, result
    assert_nothing_left(runtime, bundle, result.cid)


def test_update_reads_resources_json(runtime, bundle):
    """containerd's shim runs `update --resources -` with the JSON on stdin; docker's
    older paths pass `--resources=FILE`."""
    bundle.set_args("sleep", "100")
    cid = runtime.create(bundle).cid
    runtime.start(cid)
    doc = json.dumps({"pids": {"limit": 123}})
    runtime.run("update", "--resources", "-", cid, input=doc)
    path = os.path.join(runtime.scratch.path, "resources.json")
    with open(path, "w") as f:
        f.write(json.dumps({"pids": {"limit": 321}}))
    runtime.run("update", f"--resources={path}", cid)
    # what `docker update --pids-limit` sends through the shim: the whole resources, the
    # fields not set being 0 (meaning "unset", as runc reads them)
    docker_doc = {"memory": {"limit": 0, "reservation": 0, "swap": 0, "kernel": 0,
                             "kernelTCP": 0},
                  "cpu": {"shares": 0, "quota": 0, "period": 0, "cpus": "", "mems": ""},
                  "blockIO": {"weight": 0}, "pids": {"limit": 55}}
    runtime.run("update", "--resources", "-", cid, input=json.dumps(docker_doc))
    with open(f"/proc/{runtime.state(cid)['pid']}/cgroup") as f:
        pids_path = next(line.rstrip().split(":", 2)[2] for line in f
                         if "pids" in line.split(":")[1].split(","))
    with open(f"/sys/fs/cgroup/pids{pids_path}/pids.max") as f:
        assert f.read().strip() == "55"
    runtime.run("delete", "--force", cid)
    assert_nothing_left(runtime, bundle, cid)
