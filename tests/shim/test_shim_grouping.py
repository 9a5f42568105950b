"""Which tasks share a shim server (runc's shim's grouping): a pod (the CRI plugin's
sandbox-id annotation) or an io.containerd.runc.v2.group, else one task per server; so a
dead server costs containerd its group's tasks only.  tests/shim/test_shim_grouping_ns.py
has the per-namespace mode."""

import os
import signal

from shimlib import socket_of, wait_until

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
