"""containerd (Debian's 1.6) runs containers through containerd-shim-pyrunc-v2:
`ctr run --runtime io.containerd.pyrunc.v2`, against a private daemon (tests/shim/conftest.py).
"""

import os
import signal
import time

import enginelib
from shimlib import IMAGE, RUNTIME, SHIM, _cmdline, parent_pid, socket_of, started, wait_until

import pyrunc_testlib as lib


def test_run_rm_output_and_exit_status(containerd):
    c = containerd
    assert c.run(c.new_name(), "/bin/echo", "hello", flags=("--rm",)).stdout == "hello\n"
    out = c.run(c.new_name(), "sh", "-c", "echo out; echo err >&2; exit 3", flags=("--rm",),
                check=False)
    assert (out.returncode, out.stdout, out.stderr) == (3, "out\n", "err\n"), out
    # a signal death (from outside: pid 1 of a pid namespace ignores its own SIGKILL): ctr
    # exits with 128 + the signal's number, as a shell would
    name = c.new_name()
    fg = started(c.argv("run", "--rm", "--runtime", RUNTIME, IMAGE, name, "sh", "-c",
                        "echo before; exec sleep 1000"))
    try:
        wait_until(lambda: c.tasks().get(name, (0, ""))[1] == "RUNNING", "the task to run")
        c("tasks", "kill", "--signal", "SIGKILL", name)
        out, err = fg.communicate(timeout=60)
    finally:
        if fg.poll() is None:
            fg.kill()
            fg.wait()
    assert (fg.returncode, out) == (137, b"before\n"), (fg.returncode, out, err)
    assert c.tasks() == {}


def test_detached_exec_ps_pause_metrics_kill_delete(containerd):
    c = containerd
    name = c.new_name()
    c.run(name, "sleep", "1000", flags=("-d",))
    pid, status = c.tasks()[name]
    assert status == "RUNNING"
    out = c("tasks", "exec", "--exec-id", "x1", name, "sh", "-c", "echo in-exec; exit 5",
            check=False)
    assert (out.returncode, out.stdout) == (5, "in-exec\n"), out
    ps = c("tasks", "ps", name).stdout.split()
    assert str(pid) in ps, ps
    c("tasks", "pause", name)
    assert c.tasks()[name][1] == "PAUSED"
    c("tasks", "resume", name)
    assert c.tasks()[name][1] == "RUNNING"
    metrics = c("tasks", "metrics", name).stdout
    values = dict(line.split()[:2] for line in metrics.splitlines() if len(line.split()) >= 2)
    # the container's cgroup metrics (v1 names, or v2's): its one process (sleep), some
    # memory and cpu time
    assert values.get("pids.current") == "1", metrics
    assert int(values.get("memory.usage_in_bytes", values.get("memory.usage", "0"))) > 0, \
        metrics
    assert int(values.get("cpuacct.usage", values.get("cpu.usage_usec", "0"))) > 0, metrics
    c("tasks", "kill", "--signal", "SIGKILL", name)
    wait_until(lambda: c.tasks()[name][1] == "STOPPED", "the task to stop")
    deleted = c("tasks", "delete", name)
    assert "exit code 137" in deleted.stderr, deleted  # killed by SIGKILL: 128 + 9
    c("containers", "delete", name)
    assert name not in c.tasks()
    assert not lib.processes_of(name)
    assert not lib.container_cgroup_dirs(name)


def test_tty(containerd):
    c = containerd
    status, out = enginelib.run_in_pty(c.argv(
        "run", "--rm", "-t", "--runtime", RUNTIME, IMAGE, c.new_name(), "sh", "-c",
        "tty; echo done; exit 4"))
    lines = [line for line in out.replace("\r", "").splitlines() if line.strip("\0^@")]
    assert "/dev/pts/0" in out and "done" in lines, out
    assert status == 4, (status, out)


def test_events_reach_containerd(containerd):
    c = containerd
    watcher = started(c.argv("events"))
    try:
        time.sleep(0.5)
        name = c.new_name()
        c.run(name, "true", flags=("--rm",))
        time.sleep(0.5)
    finally:
        watcher.send_signal(signal.SIGTERM)
        out = watcher.communicate(timeout=30)[0].decode()
    mine = [line for line in out.splitlines() if name in line]
    topics = [t for t in ("/tasks/create", "/tasks/start", "/tasks/exit", "/tasks/delete")
              if any(f" {t} " in line for line in mine)]
    assert topics == ["/tasks/create", "/tasks/start", "/tasks/exit", "/tasks/delete"], out


def test_twenty_containers_in_one_shim(containerd):
    c = containerd
    names = [c.new_name() for _ in range(20)]
    # one group (runc's shim's annotation): one server for all twenty
    group = ("--annotation", f"io.containerd.runc.v2.group={names[0]}")
    runs = [started(c.argv("run", "-d", "--runtime", RUNTIME, *group, IMAGE, n, "sleep",
                           "1000")) for n in names]
    for proc in runs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    tasks = c.tasks()
    assert all(tasks[n][1] == "RUNNING" for n in names), tasks
    assert len({c.server_of(n) for n in names}) == 1
    # no other process of ours either (no `start` left behind, no per-container helper):
    # beside the namespace's starter, the server and its fork server (shim/__init__.py),
    # a child of it, once the last create's worker, which exits when it has answered, is
    # gone (the starter's spare server, for the next task of its own group, is the
    # starter's)
    starters = c.starters()
    assert len(starters) == 1

    def shims():
        theirs = starters + [pid for spare, worker in c.spares() for pid in (spare, *worker)]
        return [pid for pid in enginelib.processes_with_cmdline(c.address)
                if SHIM in _cmdline(pid) and pid not in theirs]
    wait_until(lambda: len(shims()) == 2, "the server and its fork server alone")
    servers = c.servers()
    assert len(servers) == 1, [_cmdline(pid) for pid in shims()]
    (fork_server,) = set(shims()) - set(servers)
    assert parent_pid(fork_server) == servers[0]
    assert all(lib.processes_of(n) for n in names)
    for n in names:
        c("tasks", "kill", "--signal", "SIGKILL", n)
    wait_until(lambda: all(c.tasks()[n][1] == "STOPPED" for n in names), "20 exits")
    for n in names:
        c("tasks", "delete", n)
        c("containers", "delete", n)
    mounts = [m["line"] for m in lib.read_mountinfo()]
    for n in names:
        assert not lib.processes_of(n) and not lib.container_cgroup_dirs(n), n
        assert not [line for line in mounts if n in line], n


def test_killed_shim_containerd_learns_the_exits_and_nothing_leaks(containerd):
    c = containerd
    names = [c.new_name() for _ in range(3)]
    for n in names:
        c.run(n, "sleep", "1000",
              flags=("-d", "--annotation", f"io.containerd.runc.v2.group={names[0]}"))
    servers = {c.server_of(n) for n in names}
    assert len(servers) == 1
    server = servers.pop()
    socket = socket_of(server)
    assert os.path.exists(socket)
    os.kill(server, signal.SIGKILL)
    # containerd runs `containerd-shim-pyrunc-v2 delete` per task and publishes the exits
    wait_until(lambda: not any(n in c.tasks() for n in names), "containerd to drop the tasks")
    for n in names:
        wait_until(lambda n=n: not lib.processes_of(n), f"the processes of {n} to go")
        assert not lib.container_cgroup_dirs(n), n
        bundle = os.path.join(c.state, "io.containerd.runtime.v2.task", c.namespace, n)
        assert not any(bundle in m["line"] for m in lib.read_mountinfo()), n
        c("containers", "delete", n)
    assert not os.path.exists(socket), "the killed server's socket is removed"
    # the killed server and its containers were re-parented to the reaping parent (this
    # host's pid 1 reaps nothing): all reaped, none a zombie
    wait_until(lambda: not zombie_children(c.daemon.proc.pid), "the orphans to be reaped")
    # no mount left under containerd's root or state (bundle rootfs, overlay snapshots)
    assert not [m["line"] for m in lib.read_mountinfo() if c.dir in m["line"]]
    # and the next container gets a new server
    assert c.run(c.new_name(), "echo", "again", flags=("--rm",)).stdout == "again\n"


def test_oom_kill_is_published(containerd):
    c = containerd
    watcher = started(c.argv("events"))
    name = c.new_name()
    try:
        time.sleep(0.5)
        # a shell variable of 64 MiB in a 16 MiB container: the kernel's OOM killer
        out = c.run(name, "sh", "-c", "a=$(head -c 67108864 /dev/zero | tr '\\0' x); "
                    "echo ${#a}", flags=("--rm", "--memory-limit", str(16 << 20)),
                    check=False)
        time.sleep(1.0)
    finally:
        watcher.send_signal(signal.SIGTERM)
        events = watcher.communicate(timeout=30)[0].decode()
    assert out.returncode != 0, out
    assert any(" /tasks/oom " in line and name in line for line in events.splitlines()), \
        events


def zombie_children(parent):
    """Pids of the zombies whose parent is `parent`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
        except OSError:
            continue
        if fields[0] == "Z" and int(fields[1]) == parent:
            found.append(int(entry))
    return found
