"""The shim as a long-lived caller of the runtime library, over its real ttrpc socket:
failures reach containerd with containerd's error codes (NotFound, AlreadyExists,
FailedPrecondition, InvalidArgument), and no failed call leaves a container's lock held
(the next call on the task answers instead of blocking).  Also the shim's command line on
the Pythons after Debian's (3.12, 3.13)."""

import json
import os
import subprocess
import sys
import uuid

import pytest
from shimlib import stop_starter
from test_task_service import PARENT, PYTHON_SHIM, Shim, _create

import pyrunc_testlib as lib
from shim import ttrpc
from shim.proto import shim_pb2 as pb
from shim.proto import task_pb2

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PYENV = os.path.expanduser("~/.pyenv/versions")
QUICK = 20  # seconds: far beyond any of these calls; a held lock makes them hang forever


@pytest.fixture
def server(scratch, pyrunc_bin, default_config, busybox_rootfs):
    """test_task_service's containerd-like client of one shim server."""
    s = Shim(scratch, pyrunc_bin, default_config, busybox_rootfs)
    yield s
    s.teardown()


def _code(shim, path, method, request, response_type=None):
    """The ttrpc error code of a call that must fail (quickly)."""
    with pytest.raises(ttrpc.TTRPCError) as err:
        data = shim.client(path).call("containerd.task.v2.Task", method,
                                      request.SerializeToString(), timeout=QUICK)
        if response_type is not None:
            response_type().ParseFromString(data)
    return err.value.code


def _call(shim, path, method, request, response_type=None):
    data = shim.client(path).call("containerd.task.v2.Task", method,
                                  request.SerializeToString(), timeout=QUICK)
    if response_type is None:
        return None
    response = response_type()
    response.ParseFromString(data)
    return response


def test_pause_twice_is_failed_precondition_and_resume_still_works(server):
    shim = server
    cid, bundle = shim.bundle("sleep", "1000")
    path = shim.start(cid, bundle)
    _create(shim, path, cid, bundle)
    _call(shim, path, "Start", pb.StartRequest(id=cid), pb.StartResponse)
    _call(shim, path, "Pause", pb.PauseRequest(id=cid))
    paused_twice = _code(shim, path, "Pause", pb.PauseRequest(id=cid))
    _call(shim, path, "Resume", pb.ResumeRequest(id=cid))  # hangs if Pause kept the lock
    assert _call(shim, path, "State", pb.StateRequest(id=cid),
                 pb.StateResponse).status == task_pb2.RUNNING
    assert paused_twice == ttrpc.FAILED_PRECONDITION
    assert _code(shim, path, "Resume", pb.ResumeRequest(id=cid)) == ttrpc.FAILED_PRECONDITION
    _call(shim, path, "Kill", pb.KillRequest(id=cid, signal=9))
    _call(shim, path, "Wait", pb.WaitRequest(id=cid), pb.WaitResponse)
    _call(shim, path, "Delete", pb.DeleteRequest(id=cid), pb.DeleteResponse)
    lib.assert_nothing_left(shim.rt, bundle, cid)


def test_start_after_the_init_died_then_delete(server):
    """A created task's init is killed: Start fails (FailedPrecondition: it is stopped) and
    Delete still answers."""
    shim = server
    cid, bundle = shim.bundle("sleep", "1000")
    path = shim.start(cid, bundle)
    created = _create(shim, path, cid, bundle)
    os.kill(created.pid, 9)
    waited = _call(shim, path, "Wait", pb.WaitRequest(id=cid), pb.WaitResponse)
    assert waited.exit_status == 137
    assert _code(shim, path, "Start", pb.StartRequest(id=cid)) == ttrpc.FAILED_PRECONDITION
    deleted = _call(shim, path, "Delete", pb.DeleteRequest(id=cid), pb.DeleteResponse)
    assert deleted.exit_status == 137
    lib.assert_nothing_left(shim.rt, bundle, cid)


def test_error_codes(server):
    shim = server
    cid, bundle = shim.bundle("sleep", "1000")
    path = shim.start(cid, bundle)
    assert _code(shim, path, "State", pb.StateRequest(id=cid)) == ttrpc.NOT_FOUND
    _create(shim, path, cid, bundle)
    with pytest.raises(ttrpc.TTRPCError) as err:
        _create(shim, path, cid, bundle, mount=False)
    assert err.value.code == ttrpc.ALREADY_EXISTS
    _call(shim, path, "Start", pb.StartRequest(id=cid), pb.StartResponse)
    assert _code(shim, path, "Start", pb.StartRequest(id=cid)) == ttrpc.FAILED_PRECONDITION
    assert _code(shim, path, "Delete", pb.DeleteRequest(id=cid)) == ttrpc.FAILED_PRECONDITION
    _call(shim, path, "Kill", pb.KillRequest(id=cid, signal=9))
    _call(shim, path, "Wait", pb.WaitRequest(id=cid), pb.WaitResponse)
    assert _code(shim, path, "Kill", pb.KillRequest(id=cid, signal=9)) == ttrpc.NOT_FOUND
    assert _code(shim, path, "Pause", pb.PauseRequest(id=cid)) == ttrpc.FAILED_PRECONDITION
    _call(shim, path, "Delete", pb.DeleteRequest(id=cid), pb.DeleteResponse)
    lib.assert_nothing_left(shim.rt, bundle, cid)

    bad, bad_bundle = shim.bundle("true")
    bad_bundle.config["process"]["rlimits"] = [{"type": "RLIMIT_BOGUS", "soft": 1,
                                                "hard": 1}]
    bad_bundle.write()
    with pytest.raises(ttrpc.TTRPCError) as err:
        _create(shim, path, bad, bad_bundle)
    assert err.value.code == ttrpc.INVALID_ARGUMENT
    assert "RLIMIT_BOGUS" in err.value.message
    lib.assert_nothing_left(shim.rt, bad_bundle, bad)


def _pythons():
    found = [os.path.join(PYENV, v, "bin", "python3") for v in ("3.12.1", "3.13.0")]
    return [p for p in found if os.access(p, os.X_OK)]


@pytest.mark.parametrize("python", _pythons() or [None])
def test_shim_command_line_on_newer_pythons(python, scratch):
    """`start` and `delete`, as containerd runs them, with the interpreter of a newer
    Python: they compute the server's socket address (a sha256) with what that Python has.
    The daemon `start` forks cannot serve there (no protobuf in that Python): only the
    command line's own work is checked."""
    if python is None:
        pytest.skip(f"no Python 3.12/3.13 under {PYENV}")
    namespace = f"pyrunc-py-{uuid.uuid4().hex[:8]}"
    bundle = os.path.join(scratch.path, "state", "io.containerd.runtime.v2.task", namespace,
                          "task")
    os.makedirs(bundle)
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": REPO, "TTRPC_ADDRESS": ""}
    containerd = os.path.join(scratch.path, "containerd.sock")
    base = [python, PYTHON_SHIM, "-namespace", namespace, "-address", containerd, "-id", "task"]
    # start launches the namespace's starter, which (as the server) cannot run there, dies
    # at once and leaves its socket: start does the work itself, the finalizer removes it
    scratch.add_finalizer(lambda: stop_starter(containerd, namespace))
    done = subprocess.run(base + ["delete"], cwd=bundle, env=env, capture_output=True,
                          timeout=lib.TIMEOUT)
    assert done.returncode == 0, done.stderr.decode()
    response = pb.DeleteResponse()
    response.ParseFromString(done.stdout)
    assert response.exit_status == 137
    # under a reaping parent: the daemon start forks must not become a zombie of pid 1
    done = subprocess.run([sys.executable, PARENT], cwd=bundle, env=env, capture_output=True,
                          input=json.dumps(base + ["start"]).encode(), timeout=lib.TIMEOUT)
    assert done.returncode == 0, done.stderr.decode()
    address = done.stdout.decode().strip()
    assert address.startswith("unix:///run/containerd/s/")
    socket_path = address[len("unix://"):]
    scratch.add_finalizer(lambda: os.path.exists(socket_path) and os.unlink(socket_path))
    with open(os.path.join(bundle, "address")) as f:
        assert f.read() == address
