"""Kubernetes through pyrunc: containerd's CRI plugin driven the way the kubelet drives it
(the runtime.v1 gRPC API, tests/cri/proto/cri_api.proto) against a private containerd,
with two RuntimeClass handlers:
- `pyrunc`: runtime_type io.containerd.pyrunc.v2, our shim (one server per pod);
- `runc-pyrunc`: runtime_type io.containerd.runc.v2 (runc's shim) with BinaryName pyrunc.
No registry is reachable: the pause image (sleep forever) and the busybox image are built
from the tests' busybox rootfs and imported with ctr; pods use the host network (no CNI).
README's Kubernetes section shows the same configuration.
"""

import os
import signal
import sys
import time
import uuid

import grpc
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
for _path in (os.path.join(HERE, "proto"), os.path.join(os.path.dirname(HERE), "shim")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import cri_api_pb2 as api  # noqa: E402  (compiled by setup.py build_ext --inplace)
from e2e.conftest import engine_dir, host_paths_created  # noqa: E402, F401  (fixtures)
from shimlib import (  # noqa: E402
    PARENT,
    SERVER_NAME,
    SHIM,
    Containerd,
    comm,
    enginelib,
    wait_until,
)

import pyrunc_testlib as lib  # noqa: E402

K8S_NAMESPACE = "k8s.io"  # the containerd namespace of the CRI plugin
PAUSE_IMAGE = "docker.io/library/pyrunc-cri-pause:latest"
IMAGE = "docker.io/library/pyrunc-cri-busybox:latest"
HANDLERS = ("pyrunc", "runc-pyrunc")

CONFIG = """\
version = 2
root = "{d}/root"
state = "{d}/state"

[grpc]
  address = "{d}/containerd.sock"

[ttrpc]
  address = "{d}/containerd.sock.ttrpc"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause}"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  disable_apparmor = true
  # the pause container asks for oom_score_adj -998; a test host (itself a container) may
  # not lower it below containerd's own, and neither can runc there
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{d}/cni/bin"
    conf_dir = "{d}/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "pyrunc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.pyrunc]
      runtime_type = "io.containerd.pyrunc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc-pyrunc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc-pyrunc.options]
        BinaryName = "{pyrunc}"
        Root = "{d}/runc-root"
"""


class CRI:
    """A CRI client: the kubelet's calls, over containerd's gRPC socket."""

    def __init__(self, address):
        self.channel = grpc.insecure_channel("unix://" + address)

    def _call(self, service, method, request, timeout=60):
        response_type = getattr(api, method + "Response")
        call = self.channel.unary_unary(f"/runtime.v1.{service}/{method}",
                                        request_serializer=type(request).SerializeToString,
                                        response_deserializer=response_type.FromString)
        return call(request, timeout=timeout)

    def runtime(self, method, request, timeout=60):
        return self._call("RuntimeService", method, request, timeout)

    def image(self, method, request):
        return self._call("ImageService", method, request)

    def close(self):
        self.channel.close()


class Cluster:
    """The private containerd with CRI, its CRI client, ctr in the k8s.io namespace, and
    what the tests made (pods to remove, the cgroup parent to clean)."""

    def __init__(self, directory, ctr):
        self.dir = directory
        self.ctr = Containerd(ctr, directory, K8S_NAMESPACE)
        self.cri = CRI(self.ctr.address)
        self.cgroup_parent = lib.ID_PREFIX + "cri-" + uuid.uuid4().hex[:8]
        self.pods = []

    def pod_config(self, name):
        """A host-network pod (no CNI here) with its own log directory and cgroup; no
        hostname, as the kubelet sends none for a host-network pod."""
        uid = uuid.uuid4().hex
        host = api.NamespaceOption(network=api.NODE)
        return api.PodSandboxConfig(
            metadata=api.PodSandboxMetadata(name=name, uid=uid, namespace="default"),
            log_directory=os.path.join(self.dir, "pods", uid),
            linux=api.LinuxPodSandboxConfig(
                cgroup_parent="/" + self.cgroup_parent,
                security_context=api.LinuxSandboxSecurityContext(namespace_options=host)))

    def run_pod(self, name, handler):
        config = self.pod_config(name)
        pod = self.cri.runtime("RunPodSandbox", api.RunPodSandboxRequest(
            config=config, runtime_handler=handler)).pod_sandbox_id
        self.pods.append(pod)
        return pod, config

    def run_container(self, pod, config, name, command):
        host = api.NamespaceOption(network=api.NODE)
        cid = self.cri.runtime("CreateContainer", api.CreateContainerRequest(
            pod_sandbox_id=pod, sandbox_config=config, config=api.ContainerConfig(
                metadata=api.ContainerMetadata(name=name), image=api.ImageSpec(image=IMAGE),
                command=command, log_path=f"{name}.log",
                linux=api.LinuxContainerConfig(security_context=api.LinuxContainerSecurityContext(
                    namespace_options=host))))).container_id
        self.cri.runtime("StartContainer", api.StartContainerRequest(container_id=cid))
        return cid

    def state(self, cid):
        return self.cri.runtime("ContainerStatus",
                                api.ContainerStatusRequest(container_id=cid)).status.state

    def remove_pod(self, pod):
        self.cri.runtime("StopPodSandbox", api.StopPodSandboxRequest(pod_sandbox_id=pod))
        self.cri.runtime("RemovePodSandbox", api.RemovePodSandboxRequest(pod_sandbox_id=pod))
        self.pods.remove(pod)

    def cgroup_dirs(self):
        return enginelib.cgroup_dirs(self.cgroup_parent)


def _remove_cgroup_tree(top):
    """Teardown: kill what is left in the cgroup tree top, then remove it, deepest first."""
    if not os.path.isdir(top):
        return
    for root, _dirs, _files in sorted(os.walk(top), key=lambda w: -len(w[0])):
        for _ in range(50):
            try:
                with open(os.path.join(root, "cgroup.procs")) as f:
                    pids = [int(p) for p in f.read().split()]
            except OSError:
                pids = []
            if not pids:
                break
            enginelib.kill_pids(pids)
            time.sleep(0.1)
        try:
            os.rmdir(root)
        except OSError:
            pass


@pytest.fixture(scope="module")
def cluster(engine_dir, busybox_rootfs, pyrunc_bin, host_paths_created):  # noqa: F811
    daemon_bin, ctr = enginelib.require_engine("containerd", "ctr")
    if not os.path.exists(SHIM):
        pytest.fail(f"{SHIM} is not installed (.ci/setup installs it)")
    host_paths_created("/run/containerd", "/run/containerd/s")
    c = Cluster(engine_dir, ctr)
    host_paths_created(*c.cgroup_dirs())
    config = os.path.join(engine_dir, "config.toml")
    with open(config, "w") as f:
        f.write(CONFIG.format(d=engine_dir, pause=PAUSE_IMAGE,
                              pyrunc=os.path.abspath(pyrunc_bin)))
    env = dict(os.environ, PATH=os.path.dirname(SHIM) + ":" + os.environ.get("PATH", ""))
    daemon = enginelib.Daemon([sys.executable, PARENT, daemon_bin, "--config", config],
                              os.path.join(engine_dir, "containerd.log"), env=env)
    c.ctr.daemon = daemon
    try:
        daemon.wait_ready(lambda: _answers(c.cri), "containerd's CRI plugin")
        for name, cmd in ((PAUSE_IMAGE, ("/bin/sleep", "2147483647")), (IMAGE, ("/bin/sh",))):
            tar = enginelib.write_oci_archive(
                busybox_rootfs, os.path.join(engine_dir, name.rsplit("/", 1)[1] + ".tar"),
                name, cmd=cmd)
            c.ctr("images", "import", "--all-platforms", tar)
        yield c
    finally:
        try:
            for pod in list(c.pods):
                try:
                    c.remove_pod(pod)
                except grpc.RpcError:
                    pass
            c.cri.close()
        finally:
            c.ctr.kill_servers()
            daemon.stop()
            c.ctr.stop_starters()
            enginelib.kill_pids(enginelib.processes_with_cmdline(engine_dir))
            for top in c.cgroup_dirs():
                _remove_cgroup_tree(top)


def _answers(cri):
    try:
        return bool(cri.runtime("Version", api.VersionRequest(version="v1"),
                                timeout=5).runtime_name)
    except grpc.RpcError:
        return False


def _ancestors(pid):
    """(name, command line) of pid's ancestors."""
    out = []
    while pid > 1:
        with open(f"/proc/{pid}/stat") as f:
            pid = int(f.read().rpartition(")")[2].split()[1])
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            out.append((comm(pid),
                        f.read().replace(b"\0", b" ").decode(errors="replace").strip()))
    return out


def _log_lines(path):
    """The CRI log file's lines as (stream, text): `<time> <stream> <F|P> <text>`."""
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [tuple(line.split(" ", 3)[1::2]) for line in f.read().splitlines()]


@pytest.mark.parametrize("handler", HANDLERS)
def test_a_pod_runs_through_the_handler(cluster, handler):
    c = cluster
    assert c.cri.image("ImageStatus", api.ImageStatusRequest(
        image=api.ImageSpec(image=PAUSE_IMAGE))).image.id, "the pause image is imported"
    pod, config = c.run_pod("web", handler)
    cid = c.run_container(pod, config, "app", [
        "sh", "-c", "echo hello-from-app; echo err-from-app >&2; exec sleep 1000"])
    assert c.state(cid) == api.CONTAINER_RUNNING
    # the runtime the handler names: our shim's server, or runc's shim running pyrunc
    pid = c.ctr.tasks()[cid][0]
    ancestors = _ancestors(pid)
    if handler == "pyrunc":
        assert any(SHIM in a and name == SERVER_NAME for name, a in ancestors), ancestors
    else:
        assert any("containerd-shim-runc-v2" in a for _, a in ancestors), ancestors
        state = os.path.join(c.dir, "runc-root", K8S_NAMESPACE, cid, "state.json")
        assert os.path.exists(state), "pyrunc (BinaryName) made the container"
    # the logs, written by the CRI plugin from the container's stdout and stderr
    log = os.path.join(config.log_directory, "app.log")
    wait_until(lambda: len(_log_lines(log)) >= 2, "the container's log")
    assert sorted(_log_lines(log)) == [("stderr", "err-from-app"), ("stdout", "hello-from-app")]
    # ExecSync: the kubelet's probes and `kubectl exec` without a terminal
    out = c.cri.runtime("ExecSync", api.ExecSyncRequest(
        container_id=cid, cmd=["sh", "-c", "echo exec-out; echo exec-err >&2; exit 3"],
        timeout=30))
    assert (out.exit_code, out.stdout, out.stderr) == (3, b"exec-out\n", b"exec-err\n")
    stats = c.cri.runtime("ContainerStats", api.ContainerStatsRequest(container_id=cid)).stats
    assert stats.attributes.id == cid
    assert stats.cpu.usage_core_nano_seconds.value > 0, stats
    assert stats.memory.working_set_bytes.value > 0, stats
    c.remove_pod(pod)
    with pytest.raises(grpc.RpcError) as err:
        c.state(cid)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert cid not in c.ctr.tasks() and pod not in c.ctr.tasks()
    wait_until(lambda: not lib.processes_of(cid), "the container's processes to go")


def test_a_killed_pod_server_leaves_the_other_pods_running(cluster):
    c = cluster
    pods = []
    for name in ("victim", "survivor"):
        pod, config = c.run_pod(name, "pyrunc")
        pods.append((pod, c.run_container(pod, config, "app", ["sleep", "1000"])))
    (victim_pod, victim), (survivor_pod, survivor) = pods
    server = c.ctr.server_of(victim_pod)
    assert c.ctr.server_of(victim) == server, "a pod's containers share its server"
    assert c.ctr.server_of(survivor) != server, "another pod has a server of its own"
    os.kill(server, signal.SIGKILL)
    wait_until(lambda: c.state(victim) == api.CONTAINER_EXITED, "the CRI to see the exit")
    assert c.state(survivor) == api.CONTAINER_RUNNING
    out = c.cri.runtime("ExecSync", api.ExecSyncRequest(container_id=survivor,
                                                        cmd=["echo", "alive"], timeout=30))
    assert (out.exit_code, out.stdout) == (0, b"alive\n")
    for pod, _ in pods:
        c.remove_pod(pod)
