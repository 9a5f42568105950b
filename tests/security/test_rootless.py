"""A real unprivileged caller: `pyrunc spec --rootless` output run by uid 1000.

The state goes to $XDG_RUNTIME_DIR/pyrunc (runc's rule), no cgroup is made (the caller
cannot write the cgroup tree: runc's rootless rule), the user namespace maps the caller's
own uid and gid only (written by the caller itself, setgroups denied), devices are bound
from the host instead of made with mknod, /sys is a read-only rbind.  Root cleans up in a
finalizer."""

import json
import os
import shutil
import subprocess
import tempfile

import pytest

from pyrunc_testlib import copy_rootfs, processes_of

UID = GID = 1000


def _userns_allowed():
    try:
        with open("/proc/sys/kernel/unprivileged_userns_clone") as f:
            if f.read().strip() == "0":
                return "kernel.unprivileged_userns_clone is 0"
    except FileNotFoundError:
        pass
    with open("/proc/sys/user/max_user_namespaces") as f:
        if f.read().strip() == "0":
            return "user.max_user_namespaces is 0"
    return None


def _as_user():
    os.setgroups([])
    os.setresgid(GID, GID, GID)
    os.setresuid(UID, UID, UID)


@pytest.fixture
def rootless(runtime, busybox_rootfs, scratch):
    """(bundle dir, env) for uid 1000: a bundle made by its own `spec --rootless`, and an
    XDG_RUNTIME_DIR of its own.  The runtime fixture's --root is pointed there, so its
    teardown (as root) deletes what is left."""
    why = _userns_allowed()
    if why:
        pytest.skip(f"the host forbids unprivileged user namespaces: {why}")
    base = tempfile.mkdtemp(prefix="pyrunc-rootless-", dir="/tmp")
    scratch.add_finalizer(lambda: shutil.rmtree(base, ignore_errors=True))
    os.chmod(base, 0o755)
    xdg = os.path.join(base, "xdg")
    os.mkdir(xdg, 0o700)
    os.chown(xdg, UID, GID)
    bundle = os.path.join(base, "bundle")
    os.mkdir(bundle, 0o755)
    os.chown(bundle, UID, GID)
    copy_rootfs(busybox_rootfs, os.path.join(bundle, "rootfs"))
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": base,
           "XDG_RUNTIME_DIR": xdg}
    runtime.root = os.path.join(xdg, "pyrunc")
    spec = runtime.run("spec", "--rootless", cwd=bundle, preexec_fn=_as_user, env=env)
    assert spec.returncode == 0
    with open(os.path.join(bundle, "config.json")) as f:
        config = json.load(f)
    assert config["linux"]["uidMappings"] == [{"containerID": 0, "hostID": UID, "size": 1}]
    assert config["linux"]["gidMappings"] == [{"containerID": 0, "hostID": GID, "size": 1}]
    config["process"]["terminal"] = False
    return bundle, config, env


def _write(bundle, config, *args):
    config["process"]["args"] = list(args)
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(config, f)


def test_rootless_run(runtime, rootless):
    bundle, config, env = rootless
    _write(bundle, config, "sh", "-c", "id -u; id -g; cat /proc/self/uid_map; "
           "ls /dev/null && echo devices-ok; touch /sys/x 2>/dev/null || echo sys-ro")
    cid = runtime.new_id()
    result = _root_free_run(runtime, env, bundle, "run", cid)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.split()
    assert lines[:2] == ["0", "0"], result.stdout
    assert lines[2:5] == ["0", str(UID), "1"], result.stdout
    assert "devices-ok" in result.stdout and "sys-ro" in result.stdout, result.stdout
    assert not os.path.exists(os.path.join(env["XDG_RUNTIME_DIR"], "pyrunc", cid))


def _root_free_run(runtime, env, bundle, *args):
    """pyrunc as uid 1000 with no --root (Runtime.run always adds one): the default must
    be $XDG_RUNTIME_DIR/pyrunc."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        # files, not pipes: a created container keeps the caller's stdio open
        proc = subprocess.run([runtime.binary, *args], cwd=bundle, preexec_fn=_as_user,
                              env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                              timeout=60)
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(proc.args, proc.returncode,
                                           out.read().decode(), err.read().decode())


def test_rootless_lifecycle(runtime, rootless):
    bundle, config, env = rootless
    _write(bundle, config, "sleep", "60")
    cid = runtime.new_id()
    for args in (("create", cid), ("start", cid)):
        result = _root_free_run(runtime, env, bundle, *args)
        assert result.returncode == 0, result.stderr
        state = json.loads(_root_free_run(runtime, env, bundle, "state", cid).stdout)
    assert state["status"] == "running"
    pid = state["pid"]
    assert os.stat(f"/proc/{pid}").st_uid == UID
    # no cgroup of its own: the caller cannot write the tree
    with open(f"/proc/{pid}/cgroup") as f:
        assert cid not in f.read()
    assert os.path.isdir(os.path.join(env["XDG_RUNTIME_DIR"], "pyrunc", cid))
    # exec joins its user namespace: root there with the spec's capabilities, no setgroups
    result = _root_free_run(runtime, env, bundle, "exec", cid, "sh", "-c",
                            "id -u; grep CapEff /proc/self/status")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0", "CapEff:", "0000000020000420"], result.stdout
    result = _root_free_run(runtime, env, bundle, "kill", cid, "KILL")
    assert result.returncode == 0, result.stderr
    runtime.wait_exit(pid)
    state = json.loads(_root_free_run(runtime, env, bundle, "state", cid).stdout)
    assert state["status"] == "stopped"
    result = _root_free_run(runtime, env, bundle, "delete", cid)
    assert result.returncode == 0, result.stderr
    assert not os.path.exists(os.path.join(env["XDG_RUNTIME_DIR"], "pyrunc", cid))
    assert not processes_of(cid)


def test_rootless_resources_without_a_cgroup_are_an_error(runtime, rootless):
    bundle, config, env = rootless
    config["linux"]["resources"] = {"pids": {"limit": 10}}
    _write(bundle, config, "true")
    cid = runtime.new_id()
    result = _root_free_run(runtime, env, bundle, "run", cid)
    assert result.returncode != 0
    assert "cannot set pids limit" in result.stderr, result.stderr
    assert not os.path.exists(os.path.join(env["XDG_RUNTIME_DIR"], "pyrunc", cid))
