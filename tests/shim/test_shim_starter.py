"""The namespace's starter (shim.starter): `start` and `delete` relayed to one warm process
that forks each task's server.  Through a real containerd: servers are still one per task
(or pod), never the starter's children, and a starter or a server killed loses only what
it must.  With a stand-in containerd address (a socket that answers): its requests
(shim.starter's protocol) are untrusted, and it goes when its containerd does, or when idle."""

import os
import shutil
import signal
import socket
import subprocess
import threading

import pytest
import shimlib
from shimlib import PYTHON_SHIM, SERVER_NAME, SHIM, comm, gone, listening_on, parent_pid, wait_until

import pyrunc_testlib as lib

SANDBOX = "io.kubernetes.cri.sandbox-id"
SOCKET_DIR = "/run/containerd/s"
SO_SNDBUFFORCE = 32  # <asm-generic/socket.h>: root may pass the 1 MiB limit


def _starter(c):
    (pid,) = c.starters()
    return pid


def test_ctr_run_rm_goes_through_the_starter(containerd):
    c = containerd
    assert c.run(c.new_name(), "echo", "warm", flags=("--rm",)).stdout == "warm\n"
    starter = _starter(c)
    assert comm(starter) == "pyrunc-starter"
    assert os.stat(c.starter_socket()).st_mode & 0o777 == 0o600
    # standalone tasks: a server each, forked warm, neither of them the starter's child
    names = [c.new_name() for _ in range(2)]
    for n in names:
        c.run(n, "sleep", "1000", flags=("-d",))
    servers = [c.server_of(n) for n in names]
    assert servers[0] != servers[1]
    for server in servers:
        assert comm(server) == SERVER_NAME
        assert parent_pid(server) != starter
    # a pod's tasks: one server
    pod = [c.new_name() for _ in range(2)]
    for n in pod:
        c.run(n, "sleep", "1000", flags=("-d", "--annotation", f"{SANDBOX}={pod[0]}"))
    assert c.server_of(pod[0]) == c.server_of(pod[1]) not in servers
    assert _starter(c) == starter, "one starter for the namespace"


def test_a_killed_starter_loses_no_container(containerd):
    c = containerd
    names = [c.new_name() for _ in range(2)]
    c.run(names[0], "sleep", "1000", flags=("-d",))
    c.run(names[1], "sleep", "1000", flags=("-d", "--annotation", f"{SANDBOX}={names[1]}"))
    starter = _starter(c)
    os.kill(starter, signal.SIGKILL)
    wait_until(lambda: gone(starter), "the starter's death")
    tasks = c.tasks()
    assert all(tasks[n][1] == "RUNNING" for n in names), tasks
    for n in names:  # still managed: exec, kill, wait, delete
        assert c("tasks", "exec", "--exec-id", "e1", n, "echo", "managed").stdout == \
            "managed\n"
        c("tasks", "kill", "--signal", "SIGKILL", n)
    wait_until(lambda: all(c.tasks()[n][1] == "STOPPED" for n in names), "the exits")
    for n in names:
        c("tasks", "delete", n)
        c("containers", "delete", n)
        assert not lib.processes_of(n) and not lib.container_cgroup_dirs(n), n
    # the next start launches a new starter over the dead one's socket
    assert c.run(c.new_name(), "echo", "again", flags=("--rm",)).stdout == "again\n"
    assert _starter(c) != starter


def test_a_killed_server_loses_its_task_only(containerd):
    c = containerd
    victim, survivor = c.new_name(), c.new_name()
    c.run(victim, "sleep", "1000", flags=("-d",))
    c.run(survivor, "sleep", "1000", flags=("-d",))
    server = c.server_of(victim)
    assert server != c.server_of(survivor)
    socket_path = shimlib.socket_of(server)
    os.kill(server, signal.SIGKILL)
    # containerd runs `shim delete` for the task (something to clean: done by the call
    # itself, not the starter) and drops it
    wait_until(lambda: victim not in c.tasks(), "containerd to drop the task")
    wait_until(lambda: not lib.processes_of(victim), "the task's processes to go")
    assert not lib.container_cgroup_dirs(victim)
    bundle = os.path.join(c.state, "io.containerd.runtime.v2.task", c.namespace, victim)
    assert not any(bundle in m["line"] for m in lib.read_mountinfo())
    assert not os.path.exists(socket_path)
    c("containers", "delete", victim)
    assert c.tasks()[survivor][1] == "RUNNING"
    assert c("tasks", "exec", "--exec-id", "e1", survivor, "echo", "alive").stdout == \
        "alive\n"



# -- a starter on a stand-in containerd address

@pytest.fixture
def starter(tmp_path):
    """A starter launched by the shim's `start` for a task (a group of its own) under
    tmp_path, as containerd would: (its pid, its socket, the address, the bundle)."""
    bundle = tmp_path / "io.containerd.runtime.v2.task" / "ns" / "t1"
    bundle.mkdir(parents=True)
    (bundle / "config.json").write_text('{"ociVersion": "1.0.2"}')
    address = str(tmp_path / "containerd.sock")
    with shimlib.AnsweringSocket(address, "ns") as containerd:
        try:
            done = _shim(address, bundle, "-id", "t1", "start")
            assert done.returncode == 0, done.stderr
            path = shimlib.starter_socket(address, "ns")
            wait_until(lambda: len(listening_on(path)) == 1, "the starter")
            (pid,) = listening_on(path)
            yield pid, path, address, bundle, containerd
        finally:
            shimlib.enginelib.kill_pids(
                shimlib.enginelib.processes_with_cmdline(str(tmp_path)))
            for name in os.listdir(SOCKET_DIR):
                full = os.path.join(SOCKET_DIR, name)
                if not listening_on(full) and _bound_by(full, str(tmp_path)):
                    os.unlink(full)


def _bound_by(path, directory):
    """Whether the socket path is one of this test's (its log in directory names it)."""
    log = os.path.join(directory, "pyrunc", "ns", "shim.log")
    try:
        with open(log) as f:
            return path in f.read()
    except OSError:
        return False


def _shim(address, bundle, *args, env=None):
    return subprocess.run([SHIM, "-namespace", "ns", "-address", address, *args],
                          cwd=bundle, input=b"", capture_output=True, timeout=lib.TIMEOUT,
                          env=env)


def _ask(path, message, timeout=30.0):
    """One message to the starter: its reply (b"" when it drops the connection)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as s:
        s.settimeout(timeout)
        s.setsockopt(socket.SOL_SOCKET, SO_SNDBUFFORCE, 4 << 20)
        s.connect(path)
        s.send(message)
        try:
            return s.recv(1 << 16)
        except ConnectionResetError:
            return b""


def _request(cwd, args, env=()):
    fields = [b"pyrunc-starter/1", cwd.encode(), str(len(args)).encode(),
              *(a.encode() for a in args), str(len(env)).encode(), *(e.encode() for e in env)]
    return b"\0".join(fields) + b"\0"


def test_hostile_requests_are_answered_cleanly(starter):
    pid, path, address, bundle, _ = starter
    flags = ["-namespace", "ns", "-address", address, "-id", "t1"]
    good = _request(str(bundle), [*flags, "delete"])
    bad = [
        b"garbage",
        b"pyrunc-starter/1\0/\0",
        _request(str(bundle), [*flags, "delete"])[:-1],  # no final NUL
        good.replace(b"\x007\x00", b"\x0099999999\x00", 1),  # a count beyond the fields
        good.replace(b"\x007\x00", b"\x00-1\x00", 1),
        good.replace(b"\x007\x00", b"\x005\x00", 1),  # counts that do not add up
        _request("relative", [*flags, "start"]),
        _request(str(bundle), [*flags[:-2], "-no-such-flag", "start"]),
        _request(str(bundle / "gone"), [*flags, "start"]),  # no bundle to write into
        b"\xff" * 100 + b"\0",
        b"pyrunc-starter/1\0" + b"\0" * ((1 << 20) + 10),  # over the size limit
    ]
    for message in bad:
        reply = _ask(path, message)
        assert reply[:1] == b"1", (message[:80], reply)
    # not its business: another namespace, another action
    assert _ask(path, _request(str(bundle), ["-namespace", "other", "-address", address,
                                             "-id", "t1", "delete"])) == b"F"
    assert _ask(path, _request(str(bundle), [*flags, "serve"])) == b"F"
    # an empty message, and a client that connects and says nothing: dropped, and the
    # starter answers the next one
    assert _ask(path, b"") == b""
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as silent:
        silent.connect(path)
        assert _ask(path, good)[:1] == b"0"
    # another uid that may open the socket (CAP_DAC_OVERRIDE kept): dropped unanswered
    if shutil.which("setpriv"):
        code = (f"import socket\ns = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)\n"
                f"try:\n    s.connect({path!r})\n    s.send({good!r})\n"
                "    print(repr(s.recv(100)))\n"
                "except (BrokenPipeError, ConnectionResetError):\n    print(repr(b''))\n")
        other = subprocess.run(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
             "--inh-caps=+dac_override", "--ambient-caps=+dac_override",
             "/usr/bin/python3", "-I", "-S", "-c", code],
            capture_output=True, text=True, timeout=lib.TIMEOUT)
        assert other.returncode == 0, other.stderr
        assert other.stdout.strip() == "b''"
    assert listening_on(path) == [pid], "the same starter, alive"
    assert _ask(path, good)[:1] == b"0"


def test_the_starter_goes_with_its_containerd(starter):
    pid, path, _, _, containerd = starter
    containerd.sock.close()
    wait_until(lambda: gone(pid), "the starter's exit")
    assert not os.path.exists(path), "the starter removed its socket"


def test_a_starter_goes_when_its_code_changes(starter):
    """An upgrade (here the launcher's mtime moved on, then back) must not leave the old
    code forking servers: the starter goes, and the next start launches a new one."""
    pid, path, address, bundle, _ = starter
    launcher = os.path.realpath(PYTHON_SHIM)  # the starter's code, not the C front's
    st = os.stat(launcher)
    os.utime(launcher, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    try:
        wait_until(lambda: gone(pid), "the starter's exit")
    finally:
        os.utime(launcher, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert not os.path.exists(path)
    done = _shim(address, bundle, "-id", "t1", "start")
    assert done.returncode == 0, done.stderr
    wait_until(lambda: len(listening_on(path)) == 1, "the new starter")
    assert listening_on(path) != [pid]


def test_an_idle_starter_goes(starter):
    pid, path, address, bundle, _ = starter
    os.kill(pid, signal.SIGTERM)  # the fixture's starter, without the idle setting
    wait_until(lambda: not os.path.exists(path), "the stopped starter's socket to go")
    env = dict(os.environ, PYRUNC_SHIM_STARTER_IDLE="1")
    done = _shim(address, bundle, "-id", "t1", "start", env=env)
    assert done.returncode == 0, done.stderr
    wait_until(lambda: len(listening_on(path)) == 1, "the new starter")
    (pid,) = listening_on(path)
    wait_until(lambda: gone(pid), "the idle starter's exit")
    assert not os.path.exists(path)


def test_start_and_delete_work_without_the_starter(tmp_path):
    """A starter that hands everything back (b"F"; a stand-in bound at its socket, which
    also keeps a real one from being launched): start forks and execs the server itself
    (`... serve`), delete answers itself."""
    bundle = tmp_path / "io.containerd.runtime.v2.task" / "ns" / "t1"
    bundle.mkdir(parents=True)
    (bundle / "config.json").write_text('{"ociVersion": "1.0.2"}')
    address = str(tmp_path / "containerd.sock")
    path = shimlib.starter_socket(address, "ns")
    assert not os.path.lexists(path)
    refuser = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    refuser.bind(path)
    refuser.listen(16)
    answered = []

    def refuse():
        while True:
            try:
                conn, _ = refuser.accept()
            except OSError:
                return
            with conn:
                if conn.recv(1 << 20):
                    answered.append(True)
                    conn.send(b"F")

    thread = threading.Thread(target=refuse, daemon=True)
    thread.start()
    server_socket = None
    try:
        done = _shim(address, bundle, "-id", "t1", "start")
        assert done.returncode == 0, done.stderr
        server_socket = done.stdout.decode().removeprefix("unix://")
        wait_until(lambda: [comm(pid) for pid in listening_on(server_socket)] == [SERVER_NAME],
                   "the exec'd server (named)")
        (server,) = listening_on(server_socket)
        assert shimlib._cmdline(server).endswith(" serve")
        assert listening_on(path) == [os.getpid()], "no starter was launched"
        done = _shim(address, bundle, "-id", "t1", "delete")
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith(b"\x10\x89\x01")
        # each call asked twice: the C front, then the Python shim it execs on b"F"
        assert len(answered) == 4
    finally:
        refuser.shutdown(socket.SHUT_RDWR)
        refuser.close()
        os.unlink(path)
        thread.join(10)
        shimlib.enginelib.kill_pids(shimlib.enginelib.processes_with_cmdline(str(tmp_path)))
        if server_socket and os.path.lexists(server_socket):
            os.unlink(server_socket)
