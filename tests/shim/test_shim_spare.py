"""The starter's spare server (shim.starter.Starter.make_spare): a task's server forked
ahead, with its Create's worker, that the next `start` of a task of its own group is
handed, so the server's start-up is off the container's path.  It is used, replaced,
never required (dead, or not taking the task: the starter forks the server as without
one), and never outlives the starter."""

import os
import signal
import socket
import threading
import time

import shimlib
from shimlib import SERVER_NAME, comm, gone, listening_on, parent_pid, wait_until
from test_shim_starter import _ask, _request, starter  # noqa: F401  (a fixture)

import pyrunc_testlib as lib


def _one_spare(address, namespace):
    def found():
        pairs = shimlib.spares(address, namespace)
        return len(pairs) == 1 and len(pairs[0][1]) == 1

    wait_until(found, "a spare and its worker")
    return shimlib.spares(address, namespace)[0]


def test_a_spare_serves_the_next_task_and_another_is_made(containerd):
    c = containerd
    assert c.run(c.new_name(), "echo", "first", flags=("--rm",)).stdout == "first\n"
    spare, (worker,) = _one_spare(c.address, c.namespace)
    assert parent_pid(worker) == spare
    name = c.new_name()
    c.run(name, "sleep", "1000", flags=("-d",))
    assert c.server_of(name) == spare
    assert comm(spare) == SERVER_NAME
    assert c("tasks", "exec", "--exec-id", "e1", name, "echo", "served").stdout == "served\n"
    wait_until(lambda: c.spares()
               and c.spares()[0][0] != spare,
               "the next spare")
    c("tasks", "kill", "--signal", "SIGKILL", name)
    wait_until(lambda: c.tasks()[name][1] == "STOPPED", "the exit")
    c("tasks", "delete", name)
    c("containers", "delete", name)
    assert not lib.processes_of(name) and not lib.container_cgroup_dirs(name)
    wait_until(lambda: gone(spare), "the spare's server to go with its task")


def test_a_dead_spare_is_replaced_by_a_fork(containerd):
    c = containerd
    assert c.run(c.new_name(), "echo", "first", flags=("--rm",)).stdout == "first\n"
    spare, (worker,) = _one_spare(c.address, c.namespace)
    os.kill(spare, signal.SIGKILL)
    # at once: the starter may not have seen it die
    assert c.run(c.new_name(), "echo", "forked", flags=("--rm",)).stdout == "forked\n"
    wait_until(lambda: gone(spare) and gone(worker), "the spare and its worker")
    again, _ = _one_spare(c.address, c.namespace)
    assert again != spare


def test_the_spare_goes_with_the_starter(containerd):
    c = containerd
    assert c.run(c.new_name(), "echo", "first", flags=("--rm",)).stdout == "first\n"
    spare, (worker,) = _one_spare(c.address, c.namespace)
    c.stop_starters()
    # the starter waited for it: gone already
    assert gone(spare) and gone(worker)


def test_a_spare_that_cannot_take_the_task_is_replaced_by_a_fork(starter):  # noqa: F811
    """A hand-over that fails (here its message over the socket's limit: an environment
    of 600 kB) forks the server as without a spare, and drops that spare."""
    pid, path, address, bundle, _ = starter
    spare, (worker,) = _one_spare(address, "ns")
    t2 = bundle.parent / "t2"
    t2.mkdir()
    (t2 / "config.json").write_text('{"ociVersion": "1.0.2"}')
    flags = ["-namespace", "ns", "-address", address, "-id", "t2", "start"]
    reply = _ask(path, _request(str(t2), flags, ["BIG=" + "x" * 600_000]))
    assert reply[:1] == b"0", reply
    served = reply[1:].decode().removeprefix("unix://")
    (server,) = listening_on(served)
    assert server != spare
    wait_until(lambda: comm(server) == SERVER_NAME, "the forked server's start")
    wait_until(lambda: gone(spare) and gone(worker), "the dropped spare")
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(served)  # it serves
    os.kill(server, signal.SIGTERM)
    wait_until(lambda: gone(server), "the server's exit")


def test_a_spare_that_dies_holding_the_task_leaves_it_to_a_fork(containerd):
    """The hand-over waits for the spare's word that it took the task: a spare stopped
    when the task is sent (so the send succeeds into its socket) and killed then never
    answers, and the start goes to the fork path.  Without that word the start would
    answer with a socket nobody serves: ctr's Create refused, a dead socket left."""
    c = containerd
    assert c.run(c.new_name(), "echo", "first", flags=("--rm",)).stdout == "first\n"
    spare, (worker,) = _one_spare(c.address, c.namespace)
    os.kill(spare, signal.SIGSTOP)
    done = {}
    name = c.new_name()
    runner = threading.Thread(target=lambda: done.update(
        result=c.run(name, "echo", "forked", flags=("--rm",), check=False)))
    runner.start()
    try:
        time.sleep(1.0)  # the start is waiting for the stopped spare's word
        assert runner.is_alive()
    finally:
        os.kill(spare, signal.SIGKILL)
        runner.join(60)
    result = done["result"]
    assert result.returncode == 0, result.stderr
    assert result.stdout == "forked\n"
    wait_until(lambda: gone(spare) and gone(worker), "the killed spare and its worker")
