"""dockerd (Debian's docker.io 20.10, with its own managed containerd) drives pyrunc
unchanged, as an added runtime: `docker run --runtime pyrunc --network none`.

A private daemon: its own data-root, exec-root, pidfile, socket and (empty) daemon.json,
no bridge and no iptables.  The image is `docker import` of a tar of the busybox rootfs.
Containers run under docker's default seccomp profile.  docker's config always has a prestart hook
(libnetwork-setkey) that reads the state JSON on stdin, and blockIO {"weight": 0}.
"""

import os

import enginelib
import pytest

IMAGE = "pyrunc-e2e-busybox:latest"
RUN_FLAGS = ("--runtime", "pyrunc", "--network", "none")


class Docker:
    def __init__(self, docker, directory):
        self.docker = docker
        self.dir = directory
        self.sock = os.path.join(directory, "docker.sock")
        self.daemon = None
        self.names = []

    def __call__(self, *args, check=True, **kw):
        return enginelib.run([self.docker, "--host", "unix://" + self.sock, *args],
                             check=check, **kw)

    def run(self, *args, flags=(), **kw):
        return self("run", "--rm", *RUN_FLAGS, *flags, IMAGE, *args, **kw)

    def name(self, suffix):
        name = f"pyrunc-e2e-{suffix}-{os.getpid()}"
        self.names.append(name)
        return name

    def status(self, name):
        return self("inspect", "--format", "{{.State.Status}}", name).stdout.strip()


@pytest.fixture(scope="module")
def docker(engine_dir, pyrunc_bin, busybox_rootfs, host_paths_created):
    dockerd, client = enginelib.require_engine("dockerd", "docker")
    host_paths_created("/run/docker", "/run/docker/plugins", "/etc/docker",
                       "/run/containerd", "/run/containerd/s",  # its containerd's shims
                       "/var/lib/docker", *enginelib.cgroup_dirs("docker"))
    d = Docker(client, engine_dir)
    config = os.path.join(engine_dir, "daemon.json")
    with open(config, "w") as f:
        f.write("{}\n")
    exec_root = os.path.join(engine_dir, "exec")
    d.daemon = enginelib.Daemon(
        [dockerd, "--config-file", config, "--data-root", os.path.join(engine_dir, "data"),
         "--exec-root", exec_root, "--pidfile", os.path.join(engine_dir, "docker.pid"),
         "--host", "unix://" + d.sock, "--bridge=none", "--iptables=false",
         "--ip6tables=false", "--ip-masq=false", "--userland-proxy=false",
         "--add-runtime", f"pyrunc={os.path.abspath(pyrunc_bin)}"],
        os.path.join(engine_dir, "dockerd.log"))
    try:
        d.daemon.wait_ready(lambda: d("version", check=False, timeout=10).returncode == 0,
                            "dockerd")
        tar = enginelib.write_rootfs_tar(busybox_rootfs, os.path.join(engine_dir, "rootfs.tar"))
        d("import", "--change", f'ENV {enginelib.PATH_ENV}', tar, IMAGE)
        yield d
    finally:
        if d.daemon.proc.poll() is None:
            for name in d.names:
                d("rm", "--force", name, check=False)
        d.daemon.stop()
        # dockerd stops its containerd; end any shim of ours that outlived it (their
        # command line holds our private exec-root)
        enginelib.kill_pids(enginelib.processes_with_cmdline(exec_root))


def test_run_plain_and_exit_codes(docker):
    assert docker.run("/bin/echo", "hello").stdout == "hello\n"
    assert docker.run("/bin/sh", "-c", "exit 3", check=False).returncode == 3
    assert docker.run("/bin/cat", flags=("-i",), input="from stdin\n").stdout == "from stdin\n"


def test_default_seccomp_profile_applies(docker):
    out = docker.run("/bin/grep", "Seccomp:", "/proc/self/status").stdout.split()
    assert out == ["Seccomp:", "2"], out


@pytest.mark.parametrize("program, code", [
    ("/no/such/program", 127), ("no-such-program", 127), ("/etc/passwd", 126)])
def test_run_exec_failures(docker, program, code):
    """dockerd maps runc's words ("no such file or directory", "executable file not
    found", "permission denied"), case-sensitively, to 127 and 126."""
    result = docker.run(program, check=False)
    assert result.returncode == code, result


def test_detached_exec_pause_stop_rm(docker):
    name = docker.name("detached")
    docker("run", "-d", "--name", name, *RUN_FLAGS, IMAGE, "/bin/sleep", "1000")
    assert docker.status(name) == "running"
    assert docker("exec", name, "/bin/echo", "in exec").stdout == "in exec\n"
    assert docker("exec", name, "/bin/sh", "-c", "exit 6", check=False).returncode == 6
    # dockerd 20.10 answers 126 to any failed exec, with runc as with pyrunc
    failed = docker("exec", name, "/no/such/program", check=False)
    assert failed.returncode == 126, failed
    assert "no such file or directory" in failed.stdout + failed.stderr, failed
    assert docker("exec", "-i", name, "/bin/cat", input="x\n").stdout == "x\n"
    status, out = enginelib.run_in_pty([docker.docker, "--host", "unix://" + docker.sock,
                                        "exec", "-t", name, "/bin/tty"])
    assert status == 0 and "/dev/pts/" in out, repr(out)
    status, out = enginelib.run_in_pty([docker.docker, "--host", "unix://" + docker.sock,
                                        "run", "--rm", "-t", *RUN_FLAGS, IMAGE, "/bin/tty"])
    assert status == 0 and "/dev/pts/0" in out, repr(out)
    assert "/bin/sleep 1000" in docker("top", name).stdout
    # docker update -> containerd's shim -> `pyrunc update --resources -` (JSON on stdin)
    pid = int(docker("inspect", "--format", "{{.State.Pid}}", name).stdout)
    docker("update", "--pids-limit", "55", name)
    assert enginelib.cgroup_v1_file(pid, "pids", "pids.max") == "55"
    docker("pause", name)
    assert docker.status(name) == "paused"
    docker("unpause", name)
    assert docker.status(name) == "running"
    docker("stop", "--time", "1", name)
    assert docker.status(name) == "exited"
    exit_code = docker("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip()
    assert exit_code == "137"  # sleep as pid 1 ignores TERM: docker falls back to KILL
    docker("rm", name)
    assert name not in docker("ps", "--all", "--format", "{{.Names}}").stdout
