"""containerd killed (-9) and started again under running tasks, as an upgrade or a crash
does: it finds each task's server again through the bundle's `address` file, and the
tasks go on being managed (exec, kill, their exit status, delete), and new tasks start
(through the same starter, or a new one if the old one found containerd gone).  The
reaping parent (reaping_parent.py) restarts containerd on SIGHUP without ending the
shims."""

import os
import signal

from shimlib import comm, gone, parent_pid, wait_until


def restart_containerd(c):
    """SIGHUP to the reaping parent: it kills containerd -9 and starts it again; wait for
    the new one's answer."""
    old = _containerd_pid(c)
    c.daemon.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: _containerd_pid(c) not in (None, old), "containerd's restart",
               timeout=30)
    wait_until(lambda: c("version", check=False, timeout=10).returncode == 0,
               "the restarted containerd's answer", timeout=60)


def _containerd_pid(c):
    """containerd's pid: the reaping parent's child named containerd."""
    for entry in os.listdir("/proc"):
        if entry.isdigit() and comm(int(entry)) == "containerd" \
                and parent_pid(int(entry)) == c.daemon.proc.pid:
            return int(entry)
    return None


def test_tasks_outlive_a_restarted_containerd(containerd):
    c = containerd
    first, second = c.new_name(), c.new_name()
    c.run(first, "sleep", "1000", flags=("-d",))
    c.run(second, "sh", "-c", "trap 'exit 7' TERM; while :; do sleep 0.1; done",
          flags=("-d",))
    servers = {name: c.server_of(name) for name in (first, second)}
    pids = {name: c.tasks()[name][0] for name in (first, second)}
    assert len(c.starters()) == 1

    restart_containerd(c)

    # the same tasks, the same processes, the same servers
    tasks = c.tasks()
    assert {name: tasks[name] for name in (first, second)} == {
        name: (pids[name], "RUNNING") for name in (first, second)}
    assert all(not gone(pid) for pid in servers.values())
    assert c("tasks", "exec", "--exec-id", "after", first, "echo", "still here").stdout \
        == "still here\n"

    # managed as before: an exit status through the reconnected server, then delete
    c("tasks", "kill", "--signal", "SIGTERM", second)
    wait_until(lambda: c.tasks()[second][1] == "STOPPED", "the task's exit", timeout=30)
    deleted = c("tasks", "delete", second)
    assert "exit code 7" in deleted.stderr  # ctr's warning of a task's non-zero exit
    assert second not in c.tasks()
    wait_until(lambda: gone(servers[second]), "the deleted task's server", timeout=30)
    c("containers", "delete", second)

    # the starter serves the restarted containerd (its address answered again before
    # the starter's next check) or left when it found it dead and another is launched:
    # either way one starter, and a new task starts
    assert c.run(c.new_name(), "echo", "again", flags=("--rm",)).stdout == "again\n"
    assert len(c.starters()) == 1
