"""Which tasks share a shim server (runc's shim's grouping): a pod (the CRI plugin's
sandbox-id annotation) or an io.containerd.runc.v2.group, else one task per server; so a
dead server costs containerd its group's tasks only.  tests/shim/test_shim_grouping_ns.py
has the per-namespace mode."""

import os
import signal
import subprocess

from shimlib import SHIM, socket_of, wait_until

import pyrunc_testlib as lib

SANDBOX = "io.kubernetes.cri.sandbox-id"
GROUP = "io.containerd.runc.v2.group"


def _server_of(c, name):
    return c.server_of(name)


def test_a_task_without_a_group_gets_its_own_server(containerd):
    c = containerd
    first, second = c.new_name(), c.new_name()
    c.run(first, "sleep", "1000", flags=("-d",))
    c.run(second, "sleep", "1000", flags=("-d",))
    assert _server_of(c, first) != _server_of(c, second)


def test_a_pod_or_a_group_shares_one_server(containerd):
    c = containerd
    pod = [c.new_name() for _ in range(2)]
    group = [c.new_name() for _ in range(2)]
    for n in pod:  # the sandbox is annotated with its own id, its containers with it
        c.run(n, "sleep", "1000", flags=("-d", "--annotation", f"{SANDBOX}={pod[0]}"))
    for n in group:
        c.run(n, "sleep", "1000", flags=("-d", "--annotation", f"{GROUP}=g-{group[0]}"))
    assert _server_of(c, pod[0]) == _server_of(c, pod[1])
    assert _server_of(c, group[0]) == _server_of(c, group[1])
    assert _server_of(c, pod[0]) != _server_of(c, group[0])


def test_killing_one_pods_server_leaves_the_other_pods_running(containerd):
    c = containerd
    pods = [[c.new_name() for _ in range(2)] for _ in range(2)]
    for pod in pods:
        for n in pod:
            c.run(n, "sleep", "1000", flags=("-d", "--annotation", f"{SANDBOX}={pod[0]}"))
    victim, survivor = pods
    server = _server_of(c, victim[0])
    socket = socket_of(server)
    os.kill(server, signal.SIGKILL)
    # containerd learns the dead pod's exits (`shim delete`) and drops its tasks ...
    wait_until(lambda: not any(n in c.tasks() for n in victim), "the dead pod's tasks to go")
    for n in victim:
        wait_until(lambda n=n: not lib.processes_of(n), f"the processes of {n} to go")
        c("containers", "delete", n)
    assert not os.path.exists(socket)
    # ... and the other pod is untouched: its tasks run and answer
    tasks = c.tasks()
    assert all(tasks[n][1] == "RUNNING" for n in survivor), tasks
    out = c("tasks", "exec", "--exec-id", "alive", survivor[1], "echo", "alive")
    assert out.stdout == "alive\n"


def test_a_tasks_own_server_goes_with_it(containerd):
    c = containerd
    name = c.new_name()
    c.run(name, "sleep", "1000", flags=("-d",))
    server = _server_of(c, name)
    socket = socket_of(server)
    c("tasks", "kill", "--signal", "SIGKILL", name)
    wait_until(lambda: c.tasks()[name][1] == "STOPPED", "the task to stop")
    c("tasks", "delete", name)
    # no other task can find it (its socket is the task's own): it does not linger
    wait_until(lambda: server not in c.servers(), "the task's server to exit")
    assert not os.path.exists(socket)
    c("containers", "delete", name)


def test_a_bad_grouping_mode_is_one_clear_error(tmp_path):
    env = dict(os.environ, PYRUNC_SHIM_GROUP="per-galaxy")
    done = subprocess.run([SHIM, "-namespace", "ns", "-address", str(tmp_path / "sock"),
                           "-id", "x", "start"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, input="", timeout=60)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == ("containerd-shim-pyrunc-v2: start: PYRUNC_SHIM_GROUP='per-galaxy': "
                           "expected one of container, namespace\n"), done.stderr
    assert os.listdir(tmp_path) == [], "nothing made"
