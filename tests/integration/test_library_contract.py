"""The library's contract for a long-lived caller (the shim), exercised in this process on
real containers (made by the CLI): every failure has its type (ociruntime.errors), and no
failure leaves the container's lock held, so the same Container object keeps working."""

import os
import threading

import pytest

from ociruntime import errors
from ociruntime.errors import PyruncError
from ociruntime.libcontainer.container import Container, CreateOptions
from pyrunc_testlib import TIMEOUT


def _close_fds_of(path):
    """Close this process's fds of path: a lock an operation kept (and lost track of)."""
    for name in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{name}") == path:
                os.close(int(name))
        except OSError:
            pass


def _in_thread(fn, container=None):
    """Run fn with a deadline: a leaked flock makes the next operation block forever.  On
    a timeout the lock an earlier call kept is let go (so the teardown can clean up)."""
    outcome = []

    def target():
        try:
            outcome.append(("ok", fn()))
        except BaseException as e:  # handed to the test below
            outcome.append(("raised", e))

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(TIMEOUT)
    if worker.is_alive() and container is not None:
        _close_fds_of(container.state.dir)
        worker.join(TIMEOUT)
        pytest.fail(f"{fn} blocked: an earlier call left the lock held")
    assert not worker.is_alive(), f"{fn} blocked"
    kind, value = outcome[0]
    if kind == "raised":
        raise value
    return value


def test_typed_errors_and_no_leaked_lock(runtime, bundle):
    bundle.set_args("sleep", "1000")
    cid = runtime.new_id()
    runtime.create(bundle, cid=cid)
    c = Container(runtime.root, cid)
    _in_thread(c.start)
    _in_thread(c.pause)
    with pytest.raises(PyruncError) as paused_twice:
        _in_thread(c.pause)  # paused already: an error, and the lock is released
    _in_thread(c.resume, c)
    assert runtime.status(cid) == "running"
    assert isinstance(paused_twice.value, errors.WrongState)
    with pytest.raises(errors.WrongState):
        _in_thread(c.start)
    with pytest.raises(errors.AlreadyExists):
        c.create(CreateOptions(bundle=bundle.path))
    with pytest.raises(errors.WrongState):
        _in_thread(c.resume)
    with pytest.raises(errors.WrongState):
        _in_thread(c.delete)  # running, no force
    _in_thread(lambda: c.delete(force=True))
    with pytest.raises(errors.NotFound):
        Container(runtime.root, cid).load()
    with pytest.raises(errors.NotFound):
        c.delete()
    c.delete(force=True)  # gone already: no error, as runc


def test_start_of_a_dead_created_container_then_delete(runtime, bundle):
    """The init of a created container dies: start fails with WrongState, and a delete
    through the same object does not block on a lock start kept."""
    bundle.set_args("sleep", "1000")
    cid = runtime.new_id()
    runtime.create(bundle, cid=cid)
    c = Container(runtime.root, cid).load()
    os.kill(c.state.record["pid"], 9)
    runtime.wait_exit(c.state.record["pid"])
    with pytest.raises(PyruncError) as err:
        _in_thread(c.start)
    _in_thread(lambda: c.delete(force=True), c)
    assert not os.path.exists(os.path.join(runtime.root, cid))
    assert isinstance(err.value, errors.WrongState)


def test_bad_config_is_invalid_config(runtime, bundle):
    bundle.config["process"]["rlimits"] = [{"type": "RLIMIT_BOGUS", "soft": 1, "hard": 1}]
    bundle.write()
    cid = runtime.new_id()
    with pytest.raises(errors.InvalidConfig):
        Container(runtime.root, cid).create(CreateOptions(bundle=bundle.path))
    assert not os.path.exists(os.path.join(runtime.root, cid))
    with pytest.raises(errors.InvalidConfig):
        Container(runtime.root, "../bad")


def test_a_callers_migration_prime_is_used_and_waited_for(runtime, bundle):
    """CreateOptions.primed: create uses the caller's started prime instead of its own,
    and waits for it on every way out (here a config refused before any fork)."""
    bundle.config["process"]["rlimits"] = [{"type": "RLIMIT_BOGUS", "soft": 1, "hard": 1}]
    bundle.write()
    waited = []
    opts = CreateOptions(bundle=bundle.path)
    opts.primed = lambda: waited.append(True)
    with pytest.raises(errors.InvalidConfig):
        Container(runtime.root, runtime.new_id()).create(opts)
    assert waited


def test_every_type_is_a_pyrunc_error():
    """Code that catches PyruncError keeps catching every typed failure."""
    for cls in errors.BY_NAME.values():
        assert issubclass(cls, errors.PyruncError)
