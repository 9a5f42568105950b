"""containerd (Debian's 1.6, its runc v2 shim) drives pyrunc unchanged, through
`ctr run --runc-binary PATH`.

A private daemon (own root, state, sockets; the CRI plugin disabled), a private ctr
namespace, and an image imported from an OCI layout tar of the busybox rootfs.  ctr's
default spec has no seccomp profile: `ctr run --seccomp` adds containerd's default one,
which every run here asks for.  The shim runs pyrunc with cwd = bundle, a relative root.path and
--root /run/containerd/runc/<namespace>, and reads its JSON log.
"""

import hashlib
import os
import shutil
import uuid

import enginelib
import pytest

IMAGE = "docker.io/library/pyrunc-e2e-busybox:latest"


class Containerd:
    def __init__(self, ctr, directory, namespace, pyrunc):
        self.ctr = ctr
        self.dir = directory
        self.address = os.path.join(directory, "containerd.sock")
        self.namespace = namespace
        self.pyrunc = pyrunc
        self.fifo_dir = os.path.join(directory, "fifo")
        self.daemon = None
        self.names = []

    def argv(self, *args):
        return [self.ctr, "--address", self.address, "--namespace", self.namespace, *args]

    def __call__(self, *args, check=True, **kw):
        return enginelib.run(self.argv(*args), check=check, **kw)

    def run_args(self, *flags):
        return ("run", "--seccomp", "--runc-binary", self.pyrunc, "--fifo-dir", self.fifo_dir,
                *flags)

    def runc_root(self):
        return f"/run/containerd/runc/{self.namespace}"

    def new_name(self):
        name = f"pyrunc-e2e-{uuid.uuid4().hex[:10]}"
        self.names.append(name)
        return name

    def shim_socket(self, name):
        """Where containerd 1.6 puts the shim's socket for a container: a shim ended
        abruptly (after a failed create) leaves it behind."""
        key = os.path.join(self.address, self.namespace, name).encode()
        return os.path.join("/run/containerd/s", hashlib.sha256(key).hexdigest())




@pytest.fixture(scope="module")
def containerd(engine_dir, pyrunc_bin, busybox_rootfs, host_paths_created):
    daemon_bin, ctr = enginelib.require_engine("containerd", "ctr")
    namespace = f"pyrunc-e2e-{uuid.uuid4().hex[:8]}"
    # fixed paths of containerd 1.6's shim: its sockets, and the runc root per namespace
    host_paths_created("/run/containerd", "/run/containerd/s", "/run/containerd/runc",
                       "/run/containerd/fifo", f"/run/containerd/runc/{namespace}",
                       *enginelib.cgroup_dirs(namespace))
    c = Containerd(ctr, engine_dir, namespace, pyrunc_bin)
    c.daemon = enginelib.start_containerd([daemon_bin], engine_dir)
    try:
        enginelib.containerd_ready_with(c, c.daemon, busybox_rootfs, engine_dir, IMAGE)
        yield c
    finally:
        if c.daemon.proc.poll() is None:
            for line in c("tasks", "list", "--quiet", check=False).stdout.split():
                c("tasks", "delete", "--force", line, check=False)
            for line in c("containers", "list", "--quiet", check=False).stdout.split():
                c("containers", "delete", line, check=False)
        c.daemon.stop()
        # shims outlive a stopped daemon by design: end ours (their command line holds our
        # private socket address)
        enginelib.kill_pids(enginelib.processes_with_cmdline(c.address))
        shutil.rmtree(c.runc_root(), ignore_errors=True)
        for name in c.names:
            if os.path.lexists(c.shim_socket(name)):
                os.unlink(c.shim_socket(name))


def test_run_plain_and_exit_codes(containerd):
    c = containerd
    out = c(*c.run_args("--rm"), IMAGE, c.new_name(), "/bin/echo", "hello").stdout
    assert out == "hello\n"
    code = c(*c.run_args("--rm"), IMAGE, c.new_name(), "/bin/sh", "-c", "exit 3",
             check=False)
    assert code.returncode == 3, code
    # the shim shows the msg of the last "error" line of pyrunc's JSON log
    name = c.new_name()
    failed = c(*c.run_args("--rm"), IMAGE, name, "/no/such/program", check=False)
    assert failed.returncode != 0
    assert 'exec: "/no/such/program": no such file or directory' in failed.stderr, failed
    c("containers", "delete", name, check=False)


def test_default_seccomp_profile_applies(containerd):
    c = containerd
    out = c(*c.run_args("--rm"), IMAGE, c.new_name(), "/bin/grep", "Seccomp:",
            "/proc/self/status").stdout.split()
    assert out == ["Seccomp:", "2"], out


def test_run_tty(containerd):
    c = containerd
    status, out = enginelib.run_in_pty(
        c.argv(*c.run_args("--rm", "-t"), IMAGE, c.new_name(), "/bin/sh", "-c",
               "tty; echo done"))
    assert status == 0, out
    assert "/dev/pts/0" in out and "done" in out, repr(out)


def test_detached_task_exec_ps_pause_kill_delete(containerd):
    c = containerd
    name = c.new_name()
    c(*c.run_args("-d"), IMAGE, name, "/bin/sleep", "1000")
    assert os.path.isdir(os.path.join(c.runc_root(), name))
    out = c("tasks", "exec", "--fifo-dir", c.fifo_dir, "--exec-id", "e1", name,
            "/bin/echo", "in exec").stdout
    assert out == "in exec\n"
    code = c("tasks", "exec", "--fifo-dir", c.fifo_dir, "--exec-id", "e2", name,
             "/bin/sh", "-c", "exit 4", check=False)
    assert code.returncode == 4, code
    failed = c("tasks", "exec", "--fifo-dir", c.fifo_dir, "--exec-id", "e3", name,
               "/no/such/program", check=False)
    assert failed.returncode != 0 and "no such file or directory" in failed.stderr, failed
    status, out = enginelib.run_in_pty(c.argv("tasks", "exec", "--fifo-dir", c.fifo_dir, "-t",
                                              "--exec-id", "e4", name, "/bin/tty"))
    assert status == 0 and "/dev/pts/" in out, repr(out)
    pid = c("tasks", "list").stdout.split(name, 1)[1].split()[0]
    ps = c("tasks", "ps", name).stdout
    assert pid in ps.split(), ps
    c("tasks", "pause", name)
    assert "PAUSED" in c("tasks", "list").stdout
    c("tasks", "resume", name)
    assert "RUNNING" in c("tasks", "list").stdout
    c("tasks", "kill", "--signal", "KILL", name)
    enginelib.wait_for(lambda: "STOPPED" in c("tasks", "list").stdout, "task stopped")
    c("tasks", "delete", name)
    c("containers", "delete", name)
    assert not os.path.exists(os.path.join(c.runc_root(), name))
