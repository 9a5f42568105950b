"""Helpers of the shim's end-to-end tests: ctr against a private containerd, and the
shim servers it runs."""

import os
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
        """Pids of the pyrunc shim servers serving this containerd (`... serve`), not
        counting a server's own short-lived forks (a create's fork chain, same cmdline)."""
        return top_level([pid for pid in enginelib.processes_with_cmdline(self.address)
                          if _cmdline(pid).endswith(" serve") and SHIM in _cmdline(pid)])

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
            if os.path.exists(socket):
                os.unlink(socket)

    def cleanup(self):
        for name in self("tasks", "list", "--quiet", check=False).stdout.split():
            self("tasks", "kill", "--signal", "SIGKILL", name, check=False)
        for name in self("tasks", "list", "--quiet", check=False).stdout.split():
            self("tasks", "delete", "--force", name, check=False)
        for name in self("containers", "list", "--quiet", check=False).stdout.split():
            self("containers", "delete", name, check=False)


def socket_of(pid):
    """The socket path a server listens on: its command line has -socket fd:N:PATH."""
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        argv = f.read().decode().split("\0")
    return argv[argv.index("-socket") + 1].split(":", 2)[2]


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
