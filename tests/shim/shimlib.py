"""Helpers of the shim's end-to-end tests: ctr against a private containerd, and the
shim servers it runs."""

import os
import signal
import subprocess
import sys
import time
import uuid

E2E_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "e2e")
if E2E_DIR not in sys.path:
    sys.path.insert(0, E2E_DIR)

import enginelib  # noqa: E402  (tests/e2e/enginelib.py)

import pyrunc_testlib as lib  # noqa: E402

IMAGE = "docker.io/library/pyrunc-shim-busybox:latest"
RUNTIME = "io.containerd.pyrunc.v2"
PARENT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "reaping_parent.py")
SHIM = os.path.join(os.path.dirname(sys.executable), "containerd-shim-pyrunc-v2")
SERVER_NAME = "pyrunc-shim"  # shim.server.SERVER_NAME
STARTER_NAME = "pyrunc-starter"  # shim.starter.STARTER_NAME
# the Python shim the front (SHIM, a C binary) execs: what a test runs under an interpreter
PYTHON_SHIM = SHIM + "-py"



class Containerd:
    """ctr against our private daemon, in a private namespace."""

    def __init__(self, ctr, directory, namespace):
        self.ctr = ctr
        self.dir = directory
        self.namespace = namespace
        self.address = os.path.join(directory, "containerd.sock")
        self.state = os.path.join(directory, "state")
        self.names = []
        self.daemon = None

    def argv(self, *args):
        """ctr's command line; the commands that make stdio fifos get a --fifo-dir of this
        daemon's own (ctr's default, /run/containerd/fifo, keeps a task's fifos until
        that task is deleted, and a killed or failed test never deletes it)."""
        for command in (("run",), ("tasks", "exec"), ("task", "exec"), ("tasks", "start"),
                        ("task", "start"), ("t", "start"), ("t", "exec")):
            if args[:len(command)] == command and "--fifo-dir" not in args:
                n = len(command)
                args = (*args[:n], "--fifo-dir", os.path.join(self.dir, "fifo"), *args[n:])
                break
        return [self.ctr, "--address", self.address, "--namespace", self.namespace, *args]

    def __call__(self, *args, check=True, **kw):
        return enginelib.run(self.argv(*args), check=check, **kw)

    def new_name(self):
        name = lib.ID_PREFIX + uuid.uuid4().hex[:12]
        self.names.append(name)
        return name

    def run(self, name, *cmd, flags=(), check=True, **kw):
        return self("run", "--runtime", RUNTIME, *flags, IMAGE, name, *cmd, check=check, **kw)

    def tasks(self):
        """{task id: (pid, status)} as `ctr task ls` shows them."""
        out = {}
        for line in self("tasks", "list", check=False).stdout.splitlines()[1:]:
            fields = line.split()
            if len(fields) >= 3:
                out[fields[0]] = (int(fields[1]), fields[2])
        return out

    def servers(self):
        """Pids of the pyrunc shim servers serving this containerd (named SERVER_NAME,
        forked by the starter or exec'd as `... serve`), not counting a server's own
        forks (its fork server, workers, a create's fork chain: same name)."""
        return top_level([pid for pid in enginelib.processes_with_cmdline(self.address)
                          if SHIM in _cmdline(pid) and comm(pid) == SERVER_NAME])

    def starter_socket(self):
        return starter_socket(self.address, self.namespace)

    def starters(self):
        """Pids of the processes listening on this namespace's starter socket."""
        return listening_on(self.starter_socket())

    def spares(self):
        """The starter's spare servers, each (pid, [its worker's pid])."""
        return spares(self.address, self.namespace)

    def stop_starters(self):
        """End this namespace's starter as a finalizer must (SIGTERM: it unlinks its
        socket), SIGKILL if it does not go, and its socket then."""
        stop_starter(self.address, self.namespace)

    def server_of(self, name):
        """The pid of the server that serves task `name`: the init's nearest ancestor
        among the servers (a server is a subreaper: the init ends up its child, or one of
        its forks')."""
        servers = self.servers()
        pid = self.tasks()[name][0]
        while pid > 1 and pid not in servers:
            with open(f"/proc/{pid}/stat") as f:
                pid = int(f.read().rpartition(")")[2].split()[1])
        assert pid in servers, (name, servers)
        return pid

    def kill_servers(self):
        for pid in self.servers():
            socket = socket_of(pid)
            enginelib.kill_pids([pid])
            if socket and os.path.exists(socket):
                os.unlink(socket)

    def cleanup(self):
        for name in self("tasks", "list", "--quiet", check=False).stdout.split():
            self("tasks", "kill", "--signal", "SIGKILL", name, check=False)
        for name in self("tasks", "list", "--quiet", check=False).stdout.split():
            self("tasks", "delete", "--force", name, check=False)
        for name in self("containers", "list", "--quiet", check=False).stdout.split():
            self("containers", "delete", name, check=False)


def socket_of(pid):
    """The socket path a server listens on (the listening unix socket among its fds)."""
    inodes = _socket_inodes(pid)
    found = {path for inode, path in _unix_listeners() if inode in inodes}
    return found.pop() if len(found) == 1 else None


def listening_on(path):
    """Pids holding a listening unix socket bound to path (not their forks that hold a
    copy of it: the top level ones)."""
    inodes = {inode for inode, bound in _unix_listeners() if bound == path}
    if not inodes:
        return []
    return top_level([int(e) for e in os.listdir("/proc")
                      if e.isdigit() and _socket_inodes(int(e)) & inodes])


def _unix_listeners():
    """(inode, path) of the host's listening unix sockets bound to a path."""
    out = []
    with open("/proc/net/unix") as f:
        for line in f.read().splitlines()[1:]:
            fields = line.split()
            if len(fields) >= 8 and int(fields[3], 16) & 0x10000:  # __SO_ACCEPTCON
                out.append((int(fields[6]), fields[7]))
    return out


def _socket_inodes(pid):
    found = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                found.add(int(target[8:-1]))
    except OSError:
        pass
    return found


def starter_socket(address, namespace):
    from shim.cli import starter_socket

    return starter_socket(address, namespace)


def spares(address, namespace):
    """(spare, [its worker]) of the starter of (address, namespace) (shim.starter: a task's
    server forked ahead, part of the starter until it is handed a task): the processes
    named as the starter, in a session of their own, that do not listen on its socket,
    and their children."""
    starters = listening_on(starter_socket(address, namespace))
    named = [pid for pid in enginelib.processes_with_cmdline(address)
             if comm(pid) == STARTER_NAME and pid not in starters]
    return [(pid, [p for p in named if parent_pid(p) == pid]) for pid in named
            if _session(pid) == pid]


def _session(pid):
    try:
        return os.getsid(pid)
    except OSError:
        return None


def stop_starter(address, namespace, timeout=30.0):
    """SIGTERM to the (address, namespace) starter and wait for it (it unlinks its socket
    on the way out); SIGKILL after timeout, and its socket removed then."""
    path = starter_socket(address, namespace)
    pids = listening_on(path)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while any(os.path.exists(f"/proc/{pid}") and parent_pid(pid) is not None
              and _state(pid) != "Z" for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    enginelib.kill_pids(pids)
    if os.path.lexists(path) and not listening_on(path):
        os.unlink(path)


class AnsweringSocket:
    """A listening unix socket at path (a stand-in containerd address for the shim's own
    calls: the starter goes when its containerd's address stops answering); a context
    manager that also stops that address's starters of the namespace on the way out."""

    def __init__(self, path, namespace):
        import socket

        self.path, self.namespace = path, namespace
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.bind(path)
        self.sock.listen(128)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        try:
            stop_starter(self.path, self.namespace)
        finally:
            self.sock.close()


def gone(pid):
    """Whether pid has exited (gone, or a zombie not reaped yet)."""
    return parent_pid(pid) is None or _state(pid) == "Z"


def comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def _state(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0]
    except OSError:
        return "Z"


def top_level(pids):
    """The pids whose parent is not among them (a server, not its fork server and that
    one's workers); a pid gone meanwhile (a worker that has just exited) is none."""
    return [pid for pid in pids if (parent := parent_pid(pid)) is not None
            and parent not in pids]


def parent_pid(pid):
    """pid's parent (None once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rpartition(")")[2].split()[1])
    except (OSError, ValueError):
        return None


def _cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def wait_until(predicate, what, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for: {what}")
        time.sleep(0.1)


def started(argv, env=None):
    """A command running in the background (its output to a pipe read at the end)."""
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, env=env)
