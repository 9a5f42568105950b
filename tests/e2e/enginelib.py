"""Helpers for the end-to-end tests that drive pyrunc through real engines (podman,
containerd + ctr, dockerd + docker): image tars made from the busybox rootfs, private
daemons started and stopped by pid, commands with a timeout.

Everything an engine keeps (storage, state, sockets, pid files, runtime --root) lives
under the test's own directory, so nothing is shared with an engine the host may run.
"""

import hashlib
import io
import json
import os
import signal
import subprocess
import tarfile
import time

import pyrunc_testlib as lib

TIMEOUT = 90.0
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Where .ci/run's e2e setup step installs the engines (Debian's packages).
ENGINE_BINARIES = {
    "podman": "/usr/bin/podman",
    "containerd": "/usr/bin/containerd",
    "ctr": "/usr/bin/ctr",
    "dockerd": "/usr/sbin/dockerd",
    "docker": "/usr/bin/docker",
}
# A private containerd: its own root, state and sockets under directory d, CRI off.
CONTAINERD_CONFIG = """\
version = 2
root = "{d}/root"
state = "{d}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = "{d}/containerd.sock"

[ttrpc]
  address = "{d}/containerd.sock.ttrpc"
"""
# .ci's e2e setup writes this marker once it installed the engines: without it a missing
# engine binary is a skip (a developer's machine), with it a failure (CI must run them).
SETUP_MARKER = "/var/lib/pyrunc-e2e/engines-installed"


def engine_binary(name):
    """The engine binary's path, or None when it is missing and CI's setup did not
    promise it (then the test skips)."""
    path = ENGINE_BINARIES[name]
    if os.access(path, os.X_OK):
        return path
    if os.path.exists(SETUP_MARKER):
        raise AssertionError(f"{path} is missing although tests/e2e/setup installed the "
                             "engines")
    return None


def require_engine(*names):
    """The engine binaries' paths; skip when one is missing and CI did not install it."""
    import pytest

    paths = []
    for name in names:
        path = engine_binary(name)
        if path is None:
            pytest.skip(f"{ENGINE_BINARIES[name]} is missing (install Debian's podman, "
                        "containerd and docker.io: bash tests/e2e/setup)")
        paths.append(path)
    return paths


def run(argv, *, check=True, timeout=TIMEOUT, env=None, input=None, cwd=None):
    """subprocess.run with text output captured; on failure the AssertionError shows it."""
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env,
                            input=input if input is not None else "", cwd=cwd)
    if check and result.returncode != 0:
        raise AssertionError(f"{argv} exited {result.returncode}\nstdout: {result.stdout}\n"
                             f"stderr: {result.stderr}")
    return result


# --- images ---------------------------------------------------------------------------------
def rootfs_tar_bytes(rootfs):
    """An uncompressed tar of rootfs (paths relative, no leading ./): an image layer."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(os.listdir(rootfs)):
            tar.add(os.path.join(rootfs, name), arcname=name)
    return buf.getvalue()


def write_rootfs_tar(rootfs, dest):
    with open(dest, "wb") as f:
        f.write(rootfs_tar_bytes(rootfs))
    return dest


def _blob(tar, data):
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    info = tarfile.TarInfo("blobs/sha256/" + digest.split(":", 1)[1])
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))
    return digest


def _file(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def write_oci_archive(rootfs, dest, name, cmd=("/bin/sh",)):
    """An OCI image layout tar (one layer: rootfs) that `ctr images import` reads; the
    image is called `name` (io.containerd.image.name) and runs cmd by default."""
    layer = rootfs_tar_bytes(rootfs)
    layer_digest = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = json.dumps({
        "architecture": "amd64", "os": "linux",
        "config": {"Env": [PATH_ENV], "Cmd": list(cmd)},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    }).encode()
    with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as tar:
        _file(tar, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        _blob(tar, layer)
        config_digest = _blob(tar, config)
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": config_digest, "size": len(config)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": layer_digest, "size": len(layer)}],
        }).encode()
        manifest_digest = _blob(tar, manifest)
        index = json.dumps({
            "schemaVersion": 2,
            "manifests": [{
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": manifest_digest, "size": len(manifest),
                "platform": {"architecture": "amd64", "os": "linux"},
                "annotations": {"io.containerd.image.name": name,
                                "org.opencontainers.image.ref.name": "latest"},
            }],
        }).encode()
        _file(tar, "index.json", index)
    return dest


# --- daemons --------------------------------------------------------------------------------
class Daemon:
    """A daemon we started: stop() sends TERM (then KILL) to its pid, and only to it."""

    def __init__(self, argv, log_path, env=None):
        self.argv = argv
        self.log_path = log_path
        with open(log_path, "ab") as log:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, env=env,
                                         start_new_session=True)

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-6000:]
        except OSError:
            return ""

    def wait_ready(self, probe, what, timeout=60.0):
        """Poll probe() (True once the daemon answers) until it is ready."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"{what} exited {self.proc.returncode}:\n{self.log()}")
            if probe():
                return
            time.sleep(0.2)
        raise AssertionError(f"{what} not ready after {timeout}s:\n{self.log()}")

    def stop(self, timeout=30.0):
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout)


def kill_pids(pids):
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def start_containerd(daemon_argv, engine_dir, env=None):
    """A private containerd (CONTAINERD_CONFIG, everything under engine_dir), started, not
    yet waited for: the caller keeps the Daemon to stop it whatever happens next."""
    config = os.path.join(engine_dir, "config.toml")
    with open(config, "w") as f:
        f.write(CONTAINERD_CONFIG.format(d=engine_dir))
    return Daemon([*daemon_argv, "--config", config],
                  os.path.join(engine_dir, "containerd.log"), env=env)


def containerd_ready_with(ctr, daemon, rootfs, engine_dir, image):
    """Wait until containerd answers `ctr version`, then import rootfs as image."""
    daemon.wait_ready(lambda: ctr("version", check=False, timeout=10).returncode == 0,
                      "containerd")
    tar = write_oci_archive(rootfs, os.path.join(engine_dir, "image.tar"), image)
    ctr("images", "import", "--all-platforms", tar)


def processes_with_cmdline(needle, *more):
    """Pids of the host's processes whose command line contains needle (a private path
    of this test, so only processes this test started match), and each of `more`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if needle in cmdline and all(m in cmdline for m in more) and int(entry) != os.getpid():
            found.append(int(entry))
    return found


def cgroup_dirs(name):
    """name (a cgroup an engine makes at the top: libpod_parent, docker) in every
    hierarchy."""
    return [os.path.join(h, name) for h in lib.cgroup_hierarchies()]


def detach_mounts_under(path):
    """Detach whatever an engine left mounted under path (deepest first)."""
    for mountpoint in lib.mounts_under(path):
        lib.umount_detach(mountpoint)


def run_in_pty(argv, *, timeout=TIMEOUT, env=None):
    """Run argv with a pseudo-terminal as its stdin, stdout and stderr (ctr -t wants a real
    console); returns (exit status, everything it wrote)."""
    return lib.run_on_pty(argv, env=env, timeout=timeout)


def wait_for(predicate, what, timeout=TIMEOUT):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for: {what}")
        time.sleep(0.1)


def cgroup_v1_file(pid, controller, name):
    """The content of a v1 controller file of pid's cgroup, as the host sees it."""
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            if controller in controllers.split(","):
                with open(os.path.join("/sys/fs/cgroup", controller, path.lstrip("/"),
                                       name)) as g:
                    return g.read().strip()
    raise AssertionError(f"pid {pid} has no {controller} cgroup")
