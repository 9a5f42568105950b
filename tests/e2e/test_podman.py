"""podman (Debian's 4.3, with conmon) drives pyrunc unchanged.

`podman --runtime PATH run --rm --network none --rootfs ROOTFS`, storage in private
--root/--runroot/--tmpdir directories, with podman's default seccomp profile.
This host has no CAP_SYS_RESOURCE, so the container's nofile/nproc limits are lowered to
what the host allows (`--ulimit`).  Most flows go through a symlink named runc: podman
passes --log-format=json only to a runtime whose basename is runc or crun.
"""

import json
import os
import shutil
import subprocess

import enginelib
import pytest

RUN_FLAGS = ("--network", "none",
             "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024")
# podman's default containers.conf asks for the systemd cgroup manager (there is no
# systemd here); the private one keeps podman on cgroupfs and without events.
CONTAINERS_CONF = """\
[engine]
cgroup_manager = "cgroupfs"
events_logger = "none"
"""
PYRUNC_ROOT = "/run/pyrunc"  # podman gives a runtime other than runc/crun no --root


class Podman:
    def __init__(self, binary, runtime, directory, rootfs):
        self.binary = binary
        self.runtime = runtime
        self.dir = directory
        self.rootfs = rootfs
        conf = os.path.join(directory, "containers.conf")
        with open(conf, "w") as f:
            f.write(CONTAINERS_CONF)
        self.env = {**os.environ, "CONTAINERS_CONF": conf}
        self.names = []

    def __call__(self, *args, check=True, runtime=None, **kw):
        argv = [self.binary, "--root", os.path.join(self.dir, "storage"),
                "--runroot", os.path.join(self.dir, "runroot"),
                "--tmpdir", os.path.join(self.dir, "tmp"),
                "--runtime", runtime or self.runtime, *args]
        return enginelib.run(argv, check=check, env=self.env, **kw)

    def run(self, *args, flags=(), **kw):
        return self("run", "--rm", *RUN_FLAGS, *flags, "--rootfs", self.rootfs, *args, **kw)

    def name(self, suffix):
        name = f"pyrunc-e2e-{suffix}-{os.getpid()}"
        self.names.append(name)
        return name

    def container_id(self, name):
        return self("inspect", "--format", "{{.Id}}", name).stdout.strip()


@pytest.fixture(scope="module")
def podman(engine_dir, runc_symlink, engine_rootfs, host_paths_created):
    (binary,) = enginelib.require_engine("podman")
    root_was_there = os.path.lexists(PYRUNC_ROOT)
    host_paths_created("/etc/cni/net.d/cni.lock", "/dev/shm/libpod_lock", PYRUNC_ROOT,
                       *enginelib.cgroup_dirs("libpod_parent"))
    p = Podman(binary, runc_symlink, engine_dir, engine_rootfs)
    yield p
    for name in p.names:
        p("rm", "--force", "--time", "0", name, check=False)
    # a runtime failure podman could not clean up after leaves pyrunc's state behind
    for cid in leftover_containers(engine_dir):
        enginelib.run([runc_symlink, "delete", "--force", cid], check=False)
    left = leftover_containers(engine_dir)
    assert not left, f"pyrunc state left under {PYRUNC_ROOT}: {left}"
    if not root_was_there:
        # the compiled seccomp programs pyrunc keeps under its root; the root itself goes
        # with host_paths_created once it is empty
        shutil.rmtree(os.path.join(PYRUNC_ROOT, "@seccomp-cache"), ignore_errors=True)
    # podman's storage leaves its overlay mount behind; engine_dir's teardown detaches it


def leftover_containers(engine_dir):
    """Ids under pyrunc's default root whose bundle is in this module's directory."""
    found = []
    for cid in pyrunc_ids():
        try:
            with open(os.path.join(PYRUNC_ROOT, cid, "state.json")) as f:
                bundle = json.load(f).get("bundle", "")
        except (OSError, ValueError):
            continue
        if bundle.startswith(engine_dir + "/"):
            found.append(cid)
    return found


def pyrunc_ids():
    try:
        return set(os.listdir(PYRUNC_ROOT))
    except FileNotFoundError:
        return set()


def test_run_plain_and_exit_codes(podman, pyrunc_bin):
    assert podman.run("/bin/echo", "hello").stdout == "hello\n"
    # the runtime by its own name too (podman then reads its log as text)
    assert podman.run("/bin/echo", "direct", runtime=pyrunc_bin).stdout == "direct\n"
    assert podman.run("/bin/sh", "-c", "exit 3", check=False).returncode == 3


def test_default_seccomp_profile_applies(podman):
    """podman's default seccomp profile: the program runs in filter mode (2)."""
    out = podman.run("/bin/grep", "Seccomp:", "/proc/self/status").stdout.split()
    assert out == ["Seccomp:", "2"], out


@pytest.mark.parametrize("program, code, words", [
    ("/no/such/program", 127, "no such file or directory"),
    ("no-such-program", 127, "executable file not found in $PATH"),
    ("/etc/passwd", 126, "permission denied"),
])
def test_run_exec_failures(podman, program, code, words):
    """podman reads pyrunc's JSON log and maps its words to 127 / 126."""
    result = podman.run(program, check=False)
    assert result.returncode == code, result
    assert words in result.stderr, result.stderr


def test_run_interactive_and_tty(podman):
    assert podman.run("/bin/cat", flags=("-i",), input="from stdin\n").stdout == "from stdin\n"
    out = podman.run("/bin/sh", "-c", "tty; echo done", flags=("-t",)).stdout
    assert out.replace("\r", "").splitlines() == ["/dev/pts/0", "done"], repr(out)


def test_detached_exec_pause_stop_rm(podman):
    name = podman.name("detached")
    podman("run", "-d", "--name", name, *RUN_FLAGS, "--rootfs", podman.rootfs,
           "/bin/sleep", "1000")
    cid = podman.container_id(name)
    assert cid in pyrunc_ids()
    assert podman("exec", name, "/bin/echo", "in exec").stdout == "in exec\n"
    out = podman("exec", "-t", name, "/bin/tty").stdout
    assert out.strip() == "/dev/pts/0", repr(out)
    failed = podman("exec", name, "/no/such/program", check=False)
    assert failed.returncode == 127, failed
    assert podman("exec", name, "/bin/sh", "-c", "exit 5", check=False).returncode == 5
    # exec -d: `exec --detach --pid-file`, the process left to conmon
    podman("exec", "-d", name, "/bin/sleep", "999")
    enginelib.wait_for(lambda: "sleep 999" in podman("top", name).stdout, "exec -d process")
    podman("pause", name)
    assert podman("inspect", "--format", "{{.State.Status}}", name).stdout.strip() == "paused"
    podman("unpause", name)
    assert podman("inspect", "--format", "{{.State.Status}}", name).stdout.strip() == "running"
    podman("stop", "--time", "1", name)
    assert podman("inspect", "--format", "{{.State.Status}}", name).stdout.strip() == "exited"
    # sleep as pid 1 ignores TERM: podman falls back to KILL
    assert podman("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip() == "137"
    podman("rm", name)
    assert cid not in pyrunc_ids()


def test_kill(podman):
    name = podman.name("kill")
    podman("run", "-d", "--name", name, *RUN_FLAGS, "--rootfs", podman.rootfs,
           "/bin/sh", "-c", "trap 'exit 7' USR1; while true; do sleep 0.1; done")
    podman("kill", "--signal", "USR1", name)
    assert podman("wait", name).stdout.strip() == "7"
    # killing the stopped container: podman reports it is not running
    again = podman("kill", name, check=False)
    assert again.returncode != 0
    assert "not running" in again.stderr or "state" in again.stderr, again.stderr
    cid = podman.container_id(name)
    podman("rm", name)
    assert cid not in pyrunc_ids()
    leftovers = subprocess.run(["grep", "-c", cid, "/proc/self/mountinfo"],
                               capture_output=True, text=True)
    assert leftovers.stdout.strip() == "0"
