"""Checklist rows (conformance/CHECKLIST.md) that were mapped to a group of tests with no
single test observing the row: hooks (relative path, env, order, namespaces, create-phase
failures), namespace isolation (mount, ipc), what create applies before start, what delete
leaves alone, and the terminal (pty on stdio, /dev/console, consoleSize)."""

import ctypes
import json
import os
import select
import socket
import subprocess
import sys
import threading
import time

import pytest

from pyrunc_testlib import TIMEOUT, assert_error, assert_nothing_left

PY = sys.executable


def _ns(pid, name):
    return os.readlink(f"/proc/{pid}/ns/{name}")


# --- hooks -----------------------------------------------------------------------------------


def test_relative_hook_path_is_an_error(runtime, bundle):
    # config.md "hooks[].path": REQUIRED, MUST be absolute
    bundle.config["hooks"] = {"createRuntime": [{"path": "bin/true"}]}
    result = runtime.create(bundle, check=False)
    assert_error(result, "hooks.createRuntime[0]")
    assert_nothing_left(runtime, bundle, result.cid)


def test_hook_env_is_exactly_the_config_list(runtime, bundle, scratch):
    # config.md "hooks[].env": same meaning as environ; args[0] is argv[0]
    out = os.path.join(scratch.path, "env")
    bundle.config["hooks"] = {"createRuntime": [{
        "path": PY, "args": ["argv-zero", "-c",
                             "import os, sys, json; json.dump([sys.argv, dict(os.environ)], "
                             f"open({out!r}, 'w'))", "one"],
        "env": ["A=1", "B=two words"]}]}
    bundle.set_args("true")
    result = runtime.run_container(bundle)
    assert result.returncode == 0, result.stderr
    argv, env = json.load(open(out))
    assert argv == ["-c", "one"]  # python drops argv[0] and the script; "one" came through
    assert {k: v for k, v in env.items() if k != "LC_CTYPE"} == {"A": "1", "B": "two words"}


def test_hooks_in_one_array_run_in_order(runtime, bundle, scratch):
    # config.md "hooks": entries of one array MUST run in the listed order
    log = os.path.join(scratch.path, "order")
    bundle.config["hooks"] = {phase: [
        {"path": "/bin/sh", "args": ["sh", "-c", f"echo {phase}-{n} >> {log}"]}
        for n in (1, 2, 3)] for phase in ("createRuntime", "poststart")}
    bundle.set_args("true")
    result = runtime.run_container(bundle)
    assert result.returncode == 0, result.stderr
    assert open(log).read().split() == [
        "createRuntime-1", "createRuntime-2", "createRuntime-3",
        "poststart-1", "poststart-2", "poststart-3"]


NS_HOOK = ("import json, os, sys; s = json.load(sys.stdin); "
           "ns = lambda p, n: os.readlink(f'/proc/{p}/ns/{n}'); "
           "print(sys.argv[1], ns('self', 'mnt'), ns('self', 'net'), "
           "ns(s['pid'], 'net') if os.path.exists(f'/proc/{s[\"pid\"]}/ns/net') else '-', "
           "file=open(sys.argv[2], 'a'))")


def test_hooks_run_in_the_namespaces_the_spec_names(runtime, bundle, scratch):
    # config.md: prestart, createRuntime, poststart and poststop run in the runtime's
    # namespaces; createRuntime can reach the new container's namespaces through its pid;
    # createContainer runs in the container's namespaces (its path resolved in the runtime's)
    log = os.path.join(scratch.path, "ns")
    bundle.config["hooks"] = {
        phase: [{"path": PY, "args": ["python3", "-c", NS_HOOK, phase, log]}]
        for phase in ("prestart", "createRuntime", "createContainer", "poststart")}
    if not any(n["type"] == "network" for n in bundle.linux.get("namespaces", [])):
        bundle.linux.setdefault("namespaces", []).append({"type": "network"})
    bundle.sh("echo ready; exec sleep 1000")
    cid = runtime.create(bundle).cid
    pid = runtime.state(cid)["pid"]
    runtime.start(cid)
    runtime.wait_output(cid, "ready")
    seen = {line.split()[0]: line.split()[1:] for line in open(log)}
    host = [_ns("self", "mnt"), _ns("self", "net")]
    container = [_ns(pid, "mnt"), _ns(pid, "net")]
    assert container[0] != host[0] and container[1] != host[1]
    for phase in ("prestart", "createRuntime", "poststart"):
        assert seen[phase][:2] == host, phase
    assert seen["createRuntime"][2] == container[1]  # the host pid reaches the container's ns
    assert seen["createContainer"][:2] == container
    runtime.delete(cid, "--force")
    assert_nothing_left(runtime, bundle, cid)


@pytest.mark.parametrize("phase", ["prestart", "createContainer"])
def test_a_failing_create_phase_hook_fails_create_and_runs_poststop(runtime, bundle, scratch,
                                                                     phase):
    # config.md: a failing prestart/createRuntime/createContainer hook MUST error, stop and
    # destroy the container, then run poststop
    marker = os.path.join(scratch.path, "poststop")
    bundle.config["hooks"] = {
        phase: [{"path": "/bin/sh", "args": ["sh", "-c", "exit 4"]}],
        "poststop": [{"path": "/bin/sh", "args": ["sh", "-c", f"touch {marker}"]}]}
    bundle.sh("echo should not run")
    result = runtime.create(bundle, check=False)
    assert_error(result, f"hooks.{phase}[0]")
    assert os.path.exists(marker)
    assert runtime.run("state", result.cid, check=False).returncode != 0
    assert "should not run" not in runtime.program_output(result.cid)
    assert_nothing_left(runtime, bundle, result.cid)


# --- namespaces and create -------------------------------------------------------------------


def _created(runtime, bundle):
    bundle.sh("echo ready; exec sleep 1000")
    cid = runtime.create(bundle).cid
    return cid, runtime.state(cid)["pid"]


def test_container_mounts_stay_out_of_the_hosts_mount_table(runtime, bundle):
    # config-linux.md "mount" namespace: the container has its own mount table
    bundle.mount("/spec-mnt-ns", "tmpfs", "tmpfs")
    cid, pid = _created(runtime, bundle)
    with open(f"/proc/{pid}/mountinfo") as f:
        assert any(line.split()[4] == "/spec-mnt-ns" for line in f)
    with open("/proc/self/mountinfo") as f:
        assert not any("spec-mnt-ns" in line for line in f)
    runtime.delete(cid, "--force")
    assert_nothing_left(runtime, bundle, cid)


def test_ipc_namespace_hides_the_hosts_sysv_objects(runtime, bundle):
    # config-linux.md "ipc" namespace: System V IPC is isolated
    libc = ctypes.CDLL(None, use_errno=True)
    shmid = libc.shmget(0, 4096, 0o1600)  # IPC_PRIVATE, IPC_CREAT | 0600
    assert shmid >= 0, os.strerror(ctypes.get_errno())
    try:
        with open("/proc/sysvipc/shm") as f:
            assert any(line.split()[1] == str(shmid) for line in f.readlines()[1:])
        out = runtime.sh(bundle, "tail -n +2 /proc/sysvipc/shm | wc -l")
        assert out.split() == ["0"]
    finally:
        libc.shmctl(shmid, 0, None)  # IPC_RMID


def test_create_applies_the_config_before_start(runtime, bundle):
    # runtime.md "create": everything but process.args is applied by create: the
    # namespaces exist, the mounts are made, the sysctls written; the program has not run
    bundle.mount("/spec-created", "tmpfs", "tmpfs")
    bundle.linux["sysctl"] = {"kernel.domainname": "applied-at-create"}
    cid, pid = _created(runtime, bundle)
    types = {"pid": "pid", "ipc": "ipc", "uts": "uts", "mount": "mnt"}
    listed = {n["type"] for n in bundle.linux["namespaces"]}
    for ns_type, name in types.items():
        if ns_type in listed:
            assert _ns(pid, name) != _ns("self", name), ns_type
    with open(f"/proc/{pid}/mountinfo") as f:
        assert any(line.split()[4] == "/spec-created" for line in f)
    domain = subprocess.run(["nsenter", "-t", str(pid), "-u", "cat",
                             "/proc/sys/kernel/domainname"], capture_output=True, text=True)
    assert domain.stdout == "applied-at-create\n", domain.stderr
    assert runtime.program_output(cid) == ""
    runtime.delete(cid, "--force")
    assert_nothing_left(runtime, bundle, cid)


def test_delete_leaves_what_the_container_did_not_create(runtime, bundle, scratch):
    # runtime.md "delete": MUST NOT delete resources the container did not create: a
    # joined network namespace and a bind source stay
    source = os.path.join(scratch.path, "volume")
    os.mkdir(source)
    with open(os.path.join(source, "keep"), "w") as f:
        f.write("data\n")
    holder = subprocess.Popen(["unshare", "--net", "sleep", "1000"])
    try:
        deadline = time.monotonic() + TIMEOUT
        while _ns(holder.pid, "net") == _ns("self", "net"):
            assert time.monotonic() < deadline and holder.poll() is None
            time.sleep(0.01)
        netns = _ns(holder.pid, "net")
        bundle.linux["namespaces"] = [n for n in bundle.linux["namespaces"]
                                      if n["type"] != "network"]
        bundle.linux["namespaces"].append({"type": "network",
                                           "path": f"/proc/{holder.pid}/ns/net"})
        bundle.mount("/volume", "none", source, ["bind"])
        out = runtime.sh(bundle, "cat /volume/keep; readlink /proc/self/ns/net")
        assert out.split() == ["data", netns]
        assert holder.poll() is None and _ns(holder.pid, "net") == netns
        assert open(os.path.join(source, "keep")).read() == "data\n"
    finally:
        holder.kill()
        holder.wait()


# --- the terminal ----------------------------------------------------------------------------


class _ConsoleSocket:
    """Accepts one --console-socket connection and keeps the pty master it carries."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(1)
        self.sock.settimeout(TIMEOUT)
        self.master = None
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        conn, _ = self.sock.accept()
        with conn:
            _, fds, _, _ = socket.recv_fds(conn, 4096, 1)
            self.master = fds[0]

    def read_all(self):
        self.thread.join(TIMEOUT)
        assert self.master is not None, "no pty master came over the console socket"
        out = b""
        while True:
            ready, _, _ = select.select([self.master], [], [], TIMEOUT)
            assert ready, f"the container's terminal went quiet: {out!r}"
            try:
                chunk = os.read(self.master, 4096)
            except OSError:  # EIO: every slave fd is closed
                break
            if not chunk:
                break
            out += chunk
        return out.decode(errors="replace")

    def close(self):
        self.sock.close()
        if self.master is not None:
            os.close(self.master)


def test_terminal_pty_on_stdio_console_and_size(runtime, bundle, scratch):
    # config.md "terminal": a pty on stdin/stdout/stderr; "consoleSize": its size;
    # config-linux.md "/dev/console": the pty bound onto /dev/console
    bundle.process["terminal"] = True
    bundle.process["consoleSize"] = {"height": 33, "width": 101}
    bundle.sh("test -t 0 && test -t 1 && test -t 2 && echo all-tty; tty; stty size; "
              "grep ' /dev/console ' /proc/self/mountinfo | cut -d' ' -f9")
    cs = _ConsoleSocket(os.path.join(scratch.path, "console.sock"))
    try:
        cid = runtime.create(bundle, "--console-socket", cs.path).cid
        pid = runtime.state(cid)["pid"]
        runtime.start(cid)
        lines = [line.strip() for line in cs.read_all().splitlines() if line.strip()]
        runtime.wait_exit(pid)
    finally:
        cs.close()
    assert lines[0] == "all-tty", lines
    assert lines[1].startswith("/dev/pts/"), lines
    assert lines[2] == "33 101", lines
    assert lines[3] == "devpts", lines
    runtime.delete(cid)
    assert_nothing_left(runtime, bundle, cid)


# --- scheduler -------------------------------------------------------------------------------


@pytest.mark.parametrize("policy, number", [("SCHED_FIFO", 1), ("SCHED_RR", 2)])
def test_scheduler_realtime_priority(runtime, bundle, policy, number):
    # config.md "scheduler.policy" and "scheduler.priority": chrt -p shows both
    bundle.process["scheduler"] = {"policy": policy, "priority": 9}
    # with RT group scheduling (cgroup v1 cpu.rt_runtime_us) a new cgroup has no realtime
    # budget: give the container some, or sched_setattr fails with EPERM
    if os.path.exists("/sys/fs/cgroup/cpu/cpu.rt_runtime_us"):
        bundle.linux.setdefault("resources", {})["cpu"] = {
            "realtimeRuntime": 10000, "realtimePeriod": 1000000}
    out = runtime.sh(bundle, "cat /proc/self/stat").strip()
    fields = out[out.rindex(")") + 2:].split()  # fields[0] is field 3 (state)
    assert (int(fields[40 - 3]), int(fields[41 - 3])) == (9, number), out


# --- mount options ---------------------------------------------------------------------------

# option -> (tokens that must show, tokens that must not) among the mount's per-mount and
# superblock options in mountinfo; the defaults of a tmpfs are rw,relatime with suid, dev,
# exec, diratime, async
MOUNT_OPTIONS = {
    "ro": ({"ro"}, {"rw"}), "rw": ({"rw"}, {"ro"}),
    "nosuid": ({"nosuid"}, set()), "suid": (set(), {"nosuid"}),
    "nodev": ({"nodev"}, set()), "dev": (set(), {"nodev"}),
    "noexec": ({"noexec"}, set()), "exec": (set(), {"noexec"}),
    "noatime": ({"noatime"}, {"relatime"}), "atime": ({"relatime"}, {"noatime"}),
    "relatime": ({"relatime"}, {"noatime"}),
    # norelatime only clears MS_RELATIME: a new mount then gets the kernel's default,
    # relatime, as with mount(8) and runc (strictatime is the way to turn it off)
    "norelatime": (set(), {"noatime"}),
    "strictatime": (set(), {"relatime", "noatime"}), "nostrictatime": ({"relatime"}, set()),
    "nodiratime": ({"nodiratime"}, set()), "diratime": (set(), {"nodiratime"}),
    "sync": ({"sync"}, set()), "async": (set(), {"sync"}),
    "dirsync": ({"dirsync"}, set()),
    "lazytime": ({"lazytime"}, set()), "nolazytime": (set(), {"lazytime"}),
    "nosymfollow": ({"nosymfollow"}, set()), "symfollow": (set(), {"nosymfollow"}),
    "defaults": ({"rw"}, {"nosuid", "nodev", "noexec"}),
}


def test_must_level_mount_options_show_in_mountinfo(runtime, bundle):
    # config.md "mounts[].options": the mount(8) options a runtime MUST implement take
    # effect (iversion, noiversion, silent and loud leave no trace in mountinfo: accepted
    # in conformance/test_spec_features.py::test_every_listed_mount_option_is_accepted)
    for option in MOUNT_OPTIONS:
        bundle.mount(f"/o/{option}", "tmpfs", "tmpfs", [option])
    src = os.path.join(bundle.path, "remount-src")
    os.mkdir(src)
    bundle.mount("/o/remount", "none", src, ["bind", "remount", "ro"])
    out = runtime.sh(bundle, "grep ' /o/' /proc/self/mountinfo")
    seen = {}
    for line in out.splitlines():
        fields = line.split()
        seen[fields[4][len("/o/"):]] = set(fields[5].split(",")) | set(fields[-1].split(","))
    assert "ro" in seen["remount"], seen["remount"]
    for option, (shown, hidden) in MOUNT_OPTIONS.items():
        assert shown <= seen[option] and not hidden & seen[option], (option, seen[option])
