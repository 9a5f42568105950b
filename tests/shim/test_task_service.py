"""The shim's task service, driven over its real ttrpc socket without containerd.

Each test starts `containerd-shim-pyrunc-v2 start` the way containerd does (cwd = the
bundle, under <state>/io.containerd.runtime.v2.task/<namespace>/<id>) and talks to the
server it forks with the project's ttrpc client, using the task API's own messages.  The
containers are real (busybox), their stdio real fifos as containerd makes them, and the
events go through a real publish binary: a script that records its arguments and stdin.
"""

import base64
import copy
import json
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest
from google.protobuf import any_pb2
from shimlib import SERVER_NAME, comm, parent_pid, stop_starter, top_level, wait_until

import pyrunc_testlib as lib
from shim import ttrpc
from shim.cli import is_mount_point
from shim.proto import (
    events_pb2,
    metrics_v1_pb2,
    metrics_v2_pb2,
    mount_pb2,
    runc_options_pb2,
    task_pb2,
)
from shim.proto import shim_pb2 as pb

SHIM = os.path.join(os.path.dirname(sys.executable), "containerd-shim-pyrunc-v2")
PYTHON_SHIM = SHIM + "-py"  # the Python shim the front (SHIM, a C binary) execs
PARENT = os.path.join(os.path.dirname(__file__), "reaping_parent.py")
SERVICE = "containerd.task.v2.Task"
PROCESS_TYPE = "types.containerd.io/opencontainers/runtime-spec/1/Process"
RESOURCES_TYPE = "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources"

PUBLISH = """#!/bin/sh
{{ printf '%s\\n' "$*"; base64 -w0; echo; }} >> {log}
"""


def _read_fifo(fd, timeout=lib.TIMEOUT):
    """Everything written to a fifo until its last writer closed it."""
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            time.sleep(0.01)
            continue
        if not data:
            return out.decode()
        out += data
    raise AssertionError(f"fifo never reached EOF; read so far {out!r}")


class Shim:
    """One containerd-like client of the shim: its namespace, bundles, fifos and events."""

    def __init__(self, scratch, pyrunc_bin, default_config, busybox_rootfs):
        self.scratch = scratch
        base = scratch.path
        self.namespace = f"pyrunc-shim-{uuid.uuid4().hex[:8]}"
        self.address = os.path.join(base, "containerd.sock")  # names the group only
        self.tasks_dir = os.path.join(base, "state", "io.containerd.runtime.v2.task",
                                      self.namespace)
        self.root = os.path.join(base, "state", "pyrunc", self.namespace)
        os.makedirs(self.tasks_dir)
        self.events_log = os.path.join(base, "events.log")
        self.publish = os.path.join(base, "publish")
        with open(self.publish, "w") as f:
            f.write(PUBLISH.format(log=self.events_log))
        os.chmod(self.publish, 0o755)
        self.default_config = default_config
        self.busybox_rootfs = busybox_rootfs
        self.rt = lib.Runtime(pyrunc_bin, self.root, scratch)  # teardown: delete --force
        scratch.runtimes.append(self.rt)
        self.parents = []
        self.sockets = set()
        self.clients = {}
        self.fds = []

    # --- like containerd ------------------------------------------------------------------
    def bundle(self, *args):
        cid = self.rt.new_id()
        path = os.path.join(self.tasks_dir, cid)
        os.mkdir(path, 0o711)
        config = copy.deepcopy(self.default_config)
        config["root"] = {"path": "rootfs", "readonly": True}
        config["process"]["args"] = list(args) or ["true"]
        config["process"]["terminal"] = False
        bundle = lib.Bundle(path, config, os.path.join(path, "rootfs"))
        os.mkdir(bundle.rootfs)
        bundle.write()
        return cid, bundle

    def start(self, cid, bundle):
        """`shim start` as containerd runs it; returns the socket path it prints."""
        env = dict(os.environ, TTRPC_ADDRESS="")
        parent = subprocess.Popen([sys.executable, PARENT], cwd=bundle.path,
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        self.parents.append(parent)
        parent.stdin.write(json.dumps([
            SHIM, "-namespace", self.namespace, "-address", self.address, "-publish-binary",
            self.publish, "-id", cid, "start"]).encode())
        parent.stdin.close()
        address = parent.stdout.readline().decode().strip()
        assert address.startswith("unix:///run/containerd/s/"), address
        self.sockets.add(address[len("unix://"):])
        return address[len("unix://"):]

    def client(self, path):
        if path not in self.clients:
            self.clients[path] = ttrpc.Client(path)
        return self.clients[path]

    def call(self, path, method, request, response_type=None):
        data = self.client(path).call(SERVICE, method, request.SerializeToString(), timeout=60)
        if response_type is None:
            return None
        response = response_type()
        response.ParseFromString(data)
        return response

    def fifos(self, cid, *names):
        """containerd's fifos: made, and the side containerd holds opened (non-blocking)."""
        paths, fds = [], []
        for name in names:
            path = os.path.join(self.scratch.path, f"{cid}-{name}")
            os.mkfifo(path, 0o600)
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
            self.fds.append(fd)
            paths.append(path)
            fds.append(fd)
        return paths, fds

    def events(self):
        """(topic, decoded event) in publishing order."""
        if not os.path.exists(self.events_log):
            return []
        lines = open(self.events_log).read().splitlines()  # the last pair may be partial
        out = []
        for args, payload in zip(lines[0::2], lines[1::2], strict=False):
            argv = args.split()
            topic = argv[argv.index("--topic") + 1]
            assert argv[argv.index("--namespace") + 1] == self.namespace
            assert argv[argv.index("--address") + 1] == self.address
            packed = any_pb2.Any()
            packed.ParseFromString(base64.b64decode(payload))
            message = getattr(events_pb2, packed.type_url.rsplit(".", 1)[1])()
            message.ParseFromString(packed.value)
            out.append((topic, message))
        return out

    def wait_events(self, count, timeout=lib.TIMEOUT):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            events = self.events()
            if len(events) >= count:
                return events
            time.sleep(0.02)
        return self.events()

    def servers(self):
        """Pids of shim servers of this test (their command line names our address, and
        their name is the servers'), not counting the server's own forks (its fork
        server, workers, a create's fork chain: same name)."""
        return top_level([pid for pid in self.processes() if comm(pid) == SERVER_NAME])

    def processes(self):
        """Pids of this test's shim processes but the namespace's starter (it goes when
        idle, our address does not answer: the next start launches another)."""
        return [pid for pid, _ in lib.processes_of(self.address)
                if comm(pid) != "pyrunc-starter"]

    def teardown(self):
        stop_starter(self.address, self.namespace)
        for client in self.clients.values():
            client.close()
        for pid in self.servers():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for parent in self.parents:
            try:
                parent.wait(timeout=30)
            except subprocess.TimeoutExpired:
                parent.kill()
                parent.wait()
        for fd in self.fds:
            os.close(fd)
        for path in self.sockets:  # a killed server leaves its socket behind
            if os.path.exists(path):
                os.unlink(path)
        for name in os.listdir(self.tasks_dir):
            lib.umount_detach(os.path.join(self.tasks_dir, name, "rootfs"))


@pytest.fixture
def shim(scratch, pyrunc_bin, default_config, busybox_rootfs):
    s = Shim(scratch, pyrunc_bin, default_config, busybox_rootfs)
    yield s
    s.teardown()


def _create(shim, path, cid, bundle, stdout="", stderr="", stdin="", mount=True):
    rootfs = []
    if mount:  # the snapshot, as containerd hands it over: a bind of the busybox tree
        rootfs = [mount_pb2.Mount(type="bind", source=shim.busybox_rootfs,
                                  options=["rbind", "ro"])]
    return shim.call(path, "Create", pb.CreateTaskRequest(
        id=cid, bundle=bundle.path, rootfs=rootfs, stdin=stdin, stdout=stdout,
        stderr=stderr), pb.CreateTaskResponse)


def test_task_runs_to_its_exit_status_with_its_output_and_events(shim):
    cid, bundle = shim.bundle("sh", "-c", "echo out; echo err >&2; exit 3")
    path = shim.start(cid, bundle)
    (out_path, err_path), (out_fd, err_fd) = shim.fifos(cid, "stdout", "stderr")
    created = _create(shim, path, cid, bundle, stdout=out_path, stderr=err_path)
    assert created.pid > 0
    assert is_mount_point(bundle.rootfs), "the rootfs mount containerd sent is in place"
    state = shim.call(path, "State", pb.StateRequest(id=cid), pb.StateResponse)
    assert state.status == task_pb2.CREATED and state.pid == created.pid
    started = shim.call(path, "Start", pb.StartRequest(id=cid), pb.StartResponse)
    assert started.pid == created.pid
    waited = shim.call(path, "Wait", pb.WaitRequest(id=cid), pb.WaitResponse)
    assert waited.exit_status == 3
    assert waited.exited_at.seconds > 0
    assert _read_fifo(out_fd) == "out\n"
    assert _read_fifo(err_fd) == "err\n"
    state = shim.call(path, "State", pb.StateRequest(id=cid), pb.StateResponse)
    assert state.status == task_pb2.STOPPED and state.exit_status == 3
    deleted = shim.call(path, "Delete", pb.DeleteRequest(id=cid), pb.DeleteResponse)
    assert (deleted.pid, deleted.exit_status) == (created.pid, 3)
    assert not is_mount_point(bundle.rootfs), "Delete unmounts the rootfs"
    lib.assert_nothing_left(shim.rt, bundle, cid)
    events = shim.wait_events(4)
    assert [topic for topic, _ in events] == [
        "/tasks/create", "/tasks/start", "/tasks/exit", "/tasks/delete"]
    assert events[0][1].pid == created.pid and events[0][1].io.stdout == out_path
    assert events[2][1].exit_status == 3 and events[2][1].container_id == cid
    assert events[3][1].exit_status == 3


def _exec_sleep(shim, path, cid, bundle, exec_id):
    """Exec and Start a `sleep 1000` in the task; its pid."""
    spec = copy.deepcopy(bundle.config["process"])
    spec["args"] = ["sleep", "1000"]
    shim.call(path, "Exec", pb.ExecProcessRequest(
        id=cid, exec_id=exec_id,
        spec=any_pb2.Any(type_url=PROCESS_TYPE, value=json.dumps(spec).encode())))
    return shim.call(path, "Start", pb.StartRequest(id=cid, exec_id=exec_id),
                     pb.StartResponse).pid


def test_exec_pids_and_signals(shim):
    cid, bundle = shim.bundle("sleep", "1000")
    path = shim.start(cid, bundle)
    _create(shim, path, cid, bundle)
    shim.call(path, "Start", pb.StartRequest(id=cid), pb.StartResponse)
    spec = copy.deepcopy(bundle.config["process"])
    spec["args"] = ["sh", "-c", "cat; echo done; exit 5"]
    (in_path, out_path), (_, out_fd) = shim.fifos(cid, "x-stdin-r", "x-stdout")
    os.unlink(in_path)
    os.mkfifo(in_path, 0o600)
    # containerd holds the write end of stdin (opened before Exec); the EOF comes when it
    # has closed it and sent CloseIO (the shim holds a write end until then, as runc's)
    writer = os.open(in_path, os.O_RDWR)
    shim.call(path, "Exec", pb.ExecProcessRequest(
        id=cid, exec_id="x1", stdin=in_path, stdout=out_path,
        spec=any_pb2.Any(type_url=PROCESS_TYPE, value=json.dumps(spec).encode())))
    exec_pid = shim.call(path, "Start", pb.StartRequest(id=cid, exec_id="x1"),
                         pb.StartResponse).pid
    os.write(writer, b"hello\n")
    os.close(writer)
    shim.call(path, "CloseIO", pb.CloseIORequest(id=cid, exec_id="x1", stdin=True))
    waited = shim.call(path, "Wait", pb.WaitRequest(id=cid, exec_id="x1"), pb.WaitResponse)
    assert waited.exit_status == 5
    assert _read_fifo(out_fd) == "hello\ndone\n"
    shim.call(path, "Delete", pb.DeleteRequest(id=cid, exec_id="x1"), pb.DeleteResponse)
    # a long exec: listed by Pids with its exec id, killed by its own signal
    exec_pid = _exec_sleep(shim, path, cid, bundle, "x2")
    pids = shim.call(path, "Pids", pb.PidsRequest(id=cid), pb.PidsResponse)
    by_pid = {p.pid: p for p in pids.processes}
    assert exec_pid in by_pid and len(by_pid) == 2
    details = runc_options_pb2.ProcessDetails()
    details.ParseFromString(by_pid[exec_pid].info.value)
    assert details.exec_id == "x2"
    shim.call(path, "Kill", pb.KillRequest(id=cid, exec_id="x2", signal=9))
    assert shim.call(path, "Wait", pb.WaitRequest(id=cid, exec_id="x2"),
                     pb.WaitResponse).exit_status == 137
    shim.call(path, "Kill", pb.KillRequest(id=cid, signal=9))
    assert shim.call(path, "Wait", pb.WaitRequest(id=cid), pb.WaitResponse).exit_status == 137
    with pytest.raises(ttrpc.TTRPCError) as err:
        shim.call(path, "Kill", pb.KillRequest(id=cid, signal=9))
    assert err.value.code == ttrpc.NOT_FOUND
    shim.call(path, "Delete", pb.DeleteRequest(id=cid), pb.DeleteResponse)
    lib.assert_nothing_left(shim.rt, bundle, cid)


def test_pending_waits_hold_up_no_other_call_on_the_connection(shim):
    """Wait is answered by the exit itself (a deferred answer, no thread waits): while an
    init's and an exec's Waits are pending on containerd's one connection, State, Pids
    and Kill still answer, and each Wait gets its own process's exit; a Wait after the
    exit answers at once."""
    import threading

    cid, bundle = shim.bundle("sleep", "1000")
    path = shim.start(cid, bundle)
    _create(shim, path, cid, bundle)
    shim.call(path, "Start", pb.StartRequest(id=cid), pb.StartResponse)
    exec_pid = _exec_sleep(shim, path, cid, bundle, "w1")
    waited = {}

    def wait(exec_id):
        waited[exec_id] = shim.call(path, "Wait", pb.WaitRequest(id=cid, exec_id=exec_id),
                                    pb.WaitResponse)

    waiters = [threading.Thread(target=wait, args=(e,)) for e in ("", "w1")]
    for t in waiters:
        t.start()
    for _ in range(3):  # the Waits are on the connection before and between these
        state = shim.call(path, "State", pb.StateRequest(id=cid), pb.StateResponse)
        assert state.status == task_pb2.RUNNING
        pids = shim.call(path, "Pids", pb.PidsRequest(id=cid), pb.PidsResponse)
        assert exec_pid in {p.pid for p in pids.processes}
    assert waited == {}
    shim.call(path, "Kill", pb.KillRequest(id=cid, exec_id="w1", signal=15))
    waiters[1].join(lib.TIMEOUT)
    assert waited["w1"].exit_status == 143 and "" not in waited
    shim.call(path, "Kill", pb.KillRequest(id=cid, signal=9))
    waiters[0].join(lib.TIMEOUT)
    assert waited[""].exit_status == 137 and waited[""].exited_at.seconds > 0
    again = shim.call(path, "Wait", pb.WaitRequest(id=cid), pb.WaitResponse)
    assert (again.exit_status, again.exited_at) == (137, waited[""].exited_at)
    shim.call(path, "Delete", pb.DeleteRequest(id=cid), pb.DeleteResponse)
    lib.assert_nothing_left(shim.rt, bundle, cid)


def test_pause_resume_update_and_stats(shim):
    cid, bundle = shim.bundle("sleep", "1000")
    path = shim.start(cid, bundle)
    _create(shim, path, cid, bundle)
    shim.call(path, "Start", pb.StartRequest(id=cid), pb.StartResponse)
    shim.call(path, "Pause", pb.PauseRequest(id=cid))
    assert shim.call(path, "State", pb.StateRequest(id=cid),
                     pb.StateResponse).status == task_pb2.PAUSED
    shim.call(path, "Resume", pb.ResumeRequest(id=cid))
    assert shim.call(path, "State", pb.StateRequest(id=cid),
                     pb.StateResponse).status == task_pb2.RUNNING
    shim.call(path, "Update", pb.UpdateTaskRequest(id=cid, resources=any_pb2.Any(
        type_url=RESOURCES_TYPE, value=b'{"pids": {"limit": 42}}')))
    stats = shim.call(path, "Stats", pb.StatsRequest(id=cid), pb.StatsResponse).stats
    if stats.type_url.endswith("v2.Metrics"):
        metrics = metrics_v2_pb2.Metrics()
    else:
        assert stats.type_url == "io.containerd.cgroups.v1.Metrics"
        metrics = metrics_v1_pb2.Metrics()
    metrics.ParseFromString(stats.value)
    assert metrics.pids.current == 1 and metrics.pids.limit == 42
    shim.call(path, "Kill", pb.KillRequest(id=cid, signal=9, all=True))
    shim.call(path, "Wait", pb.WaitRequest(id=cid), pb.WaitResponse)
    shim.call(path, "Delete", pb.DeleteRequest(id=cid), pb.DeleteResponse)
    topics = [t for t, _ in shim.wait_events(6)]
    assert "/tasks/paused" in topics and "/tasks/resumed" in topics
    lib.assert_nothing_left(shim.rt, bundle, cid)


def test_a_created_task_is_deleted_without_start(shim):
    cid, bundle = shim.bundle("true")
    path = shim.start(cid, bundle)
    created = _create(shim, path, cid, bundle)
    deleted = shim.call(path, "Delete", pb.DeleteRequest(id=cid), pb.DeleteResponse)
    assert deleted.pid == created.pid and deleted.exit_status == 137
    lib.assert_nothing_left(shim.rt, bundle, cid)


def _run_to_exit(shim, cid, bundle):
    path = shim.start(cid, bundle)
    _create(shim, path, cid, bundle)
    shim.call(path, "Start", pb.StartRequest(id=cid), pb.StartResponse)
    shim.call(path, "Wait", pb.WaitRequest(id=cid), pb.WaitResponse)
    return path


def test_delete_removes_the_cgroup_and_unmounts_the_rootfs(shim):
    """Once Delete answers, nothing is mounted on the rootfs and every cgroup directory
    the record names is gone."""
    cid, bundle = shim.bundle("true")
    path = _run_to_exit(shim, cid, bundle)
    with open(os.path.join(shim.root, cid, "state.json")) as f:
        dirs = list(json.load(f)["cgroup"]["dirs"].values())
    assert dirs and all(os.path.isdir(d) for d in dirs)
    assert is_mount_point(bundle.rootfs)
    shim.call(path, "Delete", pb.DeleteRequest(id=cid), pb.DeleteResponse)
    assert not is_mount_point(bundle.rootfs), "Delete unmounts the rootfs"
    assert [d for d in dirs if os.path.exists(d)] == []
    lib.assert_nothing_left(shim.rt, bundle, cid)


def test_poststop_hooks_see_the_rootfs_still_mounted(shim):
    """The rootfs is unmounted after the runtime's delete, as runc's shim does after
    `runc delete`: each poststop hook finds it mounted, and Delete leaves nothing
    mounted."""
    cid, bundle = shim.bundle("true")
    seen = os.path.join(shim.scratch.path, "poststop-seen")
    script = (f"grep -c ' {bundle.rootfs} ' /proc/self/mountinfo >> {seen}; "
              f"ls {bundle.rootfs}/bin/busybox >> {seen}")
    bundle.config["hooks"] = {"poststop": [{"path": "/bin/sh", "args": ["sh", "-c", script]}
                                            for _ in range(2)]}
    bundle.write()
    path = _run_to_exit(shim, cid, bundle)
    shim.call(path, "Delete", pb.DeleteRequest(id=cid), pb.DeleteResponse)
    with open(seen) as f:
        assert f.read().split() == ["1", f"{bundle.rootfs}/bin/busybox"] * 2
    assert not is_mount_point(bundle.rootfs)
    lib.assert_nothing_left(shim.rt, bundle, cid)


def test_a_rootfs_still_in_use_is_detached(shim):
    """A file open in the rootfs keeps it busy (a plain umount fails with EBUSY): Delete
    detaches it instead, so nothing is left mounted, and the holder reads on."""
    cid, bundle = shim.bundle("true")
    path = _run_to_exit(shim, cid, bundle)
    fd = os.open(os.path.join(bundle.rootfs, "bin", "busybox"), os.O_RDONLY)
    try:
        shim.call(path, "Delete", pb.DeleteRequest(id=cid), pb.DeleteResponse)
        assert not is_mount_point(bundle.rootfs)
        assert os.pread(fd, 4, 0) == b"\x7fELF"
    finally:
        os.close(fd)
    lib.assert_nothing_left(shim.rt, bundle, cid)


def test_a_failed_unmount_fails_the_delete_and_a_retry_finishes_it(shim):
    """The rootfs cannot be unmounted (its path no longer resolves: the bundle moved and
    a file took its place, ENOTDIR): Delete reports it, not success, and keeps the task;
    once the path is back a second Delete unmounts it."""
    cid, bundle = shim.bundle("true")
    path = _run_to_exit(shim, cid, bundle)
    moved = bundle.path + "-moved"
    os.rename(bundle.path, moved)  # the mount moves along
    try:
        with open(bundle.path, "w"):
            pass
        with pytest.raises(ttrpc.TTRPCError) as failed:
            shim.call(path, "Delete", pb.DeleteRequest(id=cid), pb.DeleteResponse)
        assert "unmounting the rootfs" in failed.value.message
        assert "Not a directory" in failed.value.message, failed.value.message
        assert is_mount_point(os.path.join(moved, "rootfs"))
        state = shim.call(path, "State", pb.StateRequest(id=cid), pb.StateResponse)
        assert state.status == task_pb2.STOPPED
    finally:
        os.unlink(bundle.path)
        os.rename(moved, bundle.path)
    deleted = shim.call(path, "Delete", pb.DeleteRequest(id=cid), pb.DeleteResponse)
    assert deleted.exit_status == 0
    assert not is_mount_point(bundle.rootfs)
    lib.assert_nothing_left(shim.rt, bundle, cid)


def test_a_bad_config_fails_and_leaves_nothing(shim):
    cid, bundle = shim.bundle("true")
    bundle.config["process"]["rlimits"] = [{"type": "RLIMIT_BOGUS", "soft": 1, "hard": 1}]
    bundle.write()
    path = shim.start(cid, bundle)
    with pytest.raises(ttrpc.TTRPCError) as err:
        _create(shim, path, cid, bundle)
    assert "RLIMIT_BOGUS" in err.value.message
    assert not is_mount_point(bundle.rootfs), "the rootfs mount is undone"
    with pytest.raises(ttrpc.TTRPCError) as err:
        shim.call(path, "State", pb.StateRequest(id=cid), pb.StateResponse)
    assert err.value.code == ttrpc.NOT_FOUND
    with pytest.raises(ttrpc.TTRPCError) as err:
        shim.call(path, "Checkpoint", pb.CheckpointTaskRequest(id=cid))
    assert err.value.code == ttrpc.UNIMPLEMENTED
    lib.assert_nothing_left(shim.rt, bundle, cid)


def _warm_workers(server):
    """The server's children that are a Spawner's warm worker (shim.forkserver.warm): a
    task's own server has no other child named as it is (no fork server)."""
    return [int(pid) for pid in os.listdir("/proc") if pid.isdigit()
            and parent_pid(int(pid)) == server and comm(int(pid)) == SERVER_NAME]


def test_a_tasks_own_server_forks_its_creates_worker_before_the_create(shim):
    """The worker of a task's own server's Create starts with the server (forked before
    the server's threads start: it imports what the starter has not while the server
    starts): waiting before the Create, gone after it, and the task it made runs to its
    exit."""
    cid, bundle = shim.bundle("sh", "-c", "exit 3")
    path = shim.start(cid, bundle)
    wait_until(lambda: len(shim.servers()) == 1, "the server")
    [server] = shim.servers()
    wait_until(lambda: len(_warm_workers(server)) == 1, "its warm worker")
    [worker] = _warm_workers(server)

    # one socket, its own on fd 3: not the server's listener (start's, inheritable), once
    # it has closed what the fork gave it (seen right after the fork, it still has them)
    def sockets():
        return [fd for fd in os.listdir(f"/proc/{worker}/fd")
                if os.readlink(f"/proc/{worker}/fd/{fd}").startswith("socket:")]

    wait_until(lambda: sockets() == ["3"], "the worker's only socket on fd 3")
    created = _create(shim, path, cid, bundle)
    assert created.pid > 0
    # the reply does not wait for its exit: it leaves right after (the reaper reaps it)
    wait_until(lambda: worker not in _warm_workers(server),
               "the warm worker made the Create and left")
    shim.call(path, "Start", pb.StartRequest(id=cid), pb.StartResponse)
    waited = shim.call(path, "Wait", pb.WaitRequest(id=cid), pb.WaitResponse)
    assert waited.exit_status == 3
    shim.call(path, "Delete", pb.DeleteRequest(id=cid), pb.DeleteResponse)
    lib.assert_nothing_left(shim.rt, bundle, cid)


def test_a_config_changed_after_start_is_the_one_created(shim):
    """The warm worker reads the bundle's config ahead, while it waits for the Create: a
    config.json rewritten after `start` (the worker parsed the old one) is read again."""
    cid, bundle = shim.bundle("sh", "-c", "exit 3")
    path = shim.start(cid, bundle)
    wait_until(lambda: len(shim.servers()) == 1, "the server")
    [server] = shim.servers()
    wait_until(lambda: len(_warm_workers(server)) == 1, "its warm worker")
    time.sleep(0.2)  # its read of the first config done
    bundle.config["process"]["args"] = ["sh", "-c", "exit 5"]
    bundle.write()
    _create(shim, path, cid, bundle)
    shim.call(path, "Start", pb.StartRequest(id=cid), pb.StartResponse)
    waited = shim.call(path, "Wait", pb.WaitRequest(id=cid), pb.WaitResponse)
    assert waited.exit_status == 5
    shim.call(path, "Delete", pb.DeleteRequest(id=cid), pb.DeleteResponse)
    lib.assert_nothing_left(shim.rt, bundle, cid)


def test_one_server_for_a_group_and_cleanup_after_it_is_killed(shim):
    first, bundle1 = shim.bundle("sleep", "1000")
    second, bundle2 = shim.bundle("sleep", "1000")
    for bundle in (bundle1, bundle2):  # one group, as the CRI plugin annotates a pod
        bundle.config["annotations"] = {"io.kubernetes.cri.sandbox-id": first}
        bundle.write()
    path = shim.start(first, bundle1)
    assert shim.start(second, bundle2) == path, "the second task reuses the server"
    for cid, bundle in ((first, bundle1), (second, bundle2)):
        _create(shim, path, cid, bundle)
        shim.call(path, "Start", pb.StartRequest(id=cid), pb.StartResponse)
    servers = shim.servers()
    assert len(servers) == 1, servers
    connected = shim.call(path, "Connect", pb.ConnectRequest(id=first), pb.ConnectResponse)
    assert connected.shim_pid == servers[0]
    os.kill(servers[0], signal.SIGKILL)
    for cid, bundle in ((first, bundle1), (second, bundle2)):
        # what containerd runs when the connection drops: `delete` in the bundle
        done = subprocess.run(
            [SHIM, "-namespace", shim.namespace, "-address", shim.address, "-publish-binary",
             shim.publish, "-id", cid, "delete"], cwd=bundle.path, capture_output=True,
            timeout=lib.TIMEOUT, check=True)
        response = pb.DeleteResponse()
        response.ParseFromString(done.stdout)
        assert response.exit_status == 137 and response.exited_at.seconds > 0
        assert not is_mount_point(bundle.rootfs)
        lib.assert_nothing_left(shim.rt, bundle, cid)
    assert not os.path.exists(path), "the dead server's socket is removed"


def test_a_failing_start_hook_still_ends_in_an_exit(shim):
    """A failing startContainer hook makes Start fail and the runtime destroy the
    container; Wait answers with the init's own exit (its stage's failure or the
    runtime's SIGKILL), which only the server's reaper sees (the runtime never reaps a
    container process)."""
    cid, bundle = shim.bundle("sleep", "1000")
    bundle.config["hooks"] = {"startContainer": [{"path": "/bin/false"}]}
    bundle.write()
    path = shim.start(cid, bundle)
    _create(shim, path, cid, bundle)
    with pytest.raises(ttrpc.TTRPCError):
        shim.call(path, "Start", pb.StartRequest(id=cid), pb.StartResponse)
    waited = shim.call(path, "Wait", pb.WaitRequest(id=cid), pb.WaitResponse)
    assert waited.exit_status in (1, 128 + 9)
    shim.call(path, "Delete", pb.DeleteRequest(id=cid), pb.DeleteResponse)
    lib.assert_nothing_left(shim.rt, bundle, cid)


@pytest.mark.parametrize("phase", ["prestart", "createRuntime", "poststart"])
def test_a_failing_hook_run_by_the_server_reports_its_own_exit_status(shim, phase):
    """The server runs these hooks (a ttrpc thread, Create's or Start's runtime side) while
    its reaper does waitpid(-1): the hook's status must reach the library through the
    reaper (the process monitor), never a wait of its own that the reaper wins (ECHILD,
    ProcessLookupError: most runs failed so before).  Several tasks, for the race."""
    for _ in range(3):
        cid, bundle = shim.bundle("sleep", "1000")
        bundle.config["hooks"] = {phase: [
            {"path": "/bin/sh", "args": ["sh", "-c", "echo refused >&2; exit 7"]}]}
        bundle.write()
        path = shim.start(cid, bundle)
        with pytest.raises(ttrpc.TTRPCError) as failed:
            _create(shim, path, cid, bundle)
            shim.call(path, "Start", pb.StartRequest(id=cid), pb.StartResponse)
        assert "exit status 7: refused" in str(failed.value), failed.value
        if phase == "poststart":  # the container was made, then destroyed by start
            waited = shim.call(path, "Wait", pb.WaitRequest(id=cid), pb.WaitResponse)
            assert waited.exit_status == 128 + 9
            shim.call(path, "Delete", pb.DeleteRequest(id=cid), pb.DeleteResponse)
        lib.assert_nothing_left(shim.rt, bundle, cid)


def test_closeio_before_an_exec_starts_still_ends_its_stdin(shim):
    """A client may copy its (short) stdin and send CloseIO before Start: the shim must
    not hold the stdin fifo open afterwards, or the process never sees EOF."""
    cid, bundle = shim.bundle("sleep", "1000")
    path = shim.start(cid, bundle)
    _create(shim, path, cid, bundle)
    shim.call(path, "Start", pb.StartRequest(id=cid), pb.StartResponse)
    spec = copy.deepcopy(bundle.config["process"])
    spec["args"] = ["cat"]
    (in_path, out_path), (_, out_fd) = shim.fifos(cid, "y-stdin-r", "y-stdout")
    os.unlink(in_path)
    os.mkfifo(in_path, 0o600)
    writer = os.open(in_path, os.O_RDWR)  # containerd's end, opened before Exec
    shim.call(path, "Exec", pb.ExecProcessRequest(
        id=cid, exec_id="y1", stdin=in_path, stdout=out_path,
        spec=any_pb2.Any(type_url=PROCESS_TYPE, value=json.dumps(spec).encode())))
    shim.call(path, "CloseIO", pb.CloseIORequest(id=cid, exec_id="y1", stdin=True))
    shim.call(path, "Start", pb.StartRequest(id=cid, exec_id="y1"), pb.StartResponse)
    os.write(writer, b"early\n")
    os.close(writer)
    waited = shim.call(path, "Wait", pb.WaitRequest(id=cid, exec_id="y1"), pb.WaitResponse)
    assert waited.exit_status == 0
    assert _read_fifo(out_fd) == "early\n"
    shim.call(path, "Kill", pb.KillRequest(id=cid, signal=9))
    shim.call(path, "Wait", pb.WaitRequest(id=cid), pb.WaitResponse)
    shim.call(path, "Delete", pb.DeleteRequest(id=cid), pb.DeleteResponse)
    lib.assert_nothing_left(shim.rt, bundle, cid)


def test_delete_with_nothing_to_clean_finds_the_server_by_the_bundles_address(shim):
    """`delete`, which containerd runs after every task, takes the server's socket from
    the address file start wrote: it removes a dead server's socket, and neither parses
    the spec nor imports hashlib to find it."""
    import socket as socketlib

    bundle = os.path.join(shim.scratch.path, "deleted-bundle")
    os.mkdir(bundle)  # no config.json: only the address file names the server
    dead = f"/run/containerd/s/pyrunc-test-{uuid.uuid4().hex}"
    with socketlib.socket(socketlib.AF_UNIX) as s:
        s.bind(dead)  # bound, never listening, closed: a dead server's socket
    try:
        with open(os.path.join(bundle, "address"), "w") as f:
            f.write("unix://" + dead)
        done = subprocess.run(
            [sys.executable, "-I", "-X", "importtime", PYTHON_SHIM, "-namespace", shim.namespace,
             "-address", shim.address, "-id", "gone", "delete"],
            cwd=bundle, capture_output=True, timeout=lib.TIMEOUT, check=True)
        response = pb.DeleteResponse()
        response.ParseFromString(done.stdout)
        assert response.exit_status == 137
        assert not os.path.exists(dead), "the dead server's socket is removed"
        imported = [line.rsplit("|", 1)[-1].strip()
                    for line in done.stderr.decode().splitlines() if "|" in line]
        assert "shim.cli" in imported
        assert "hashlib" not in imported and "ociruntime.jsonlite" not in imported
    finally:
        if os.path.exists(dead):
            os.unlink(dead)


def test_a_server_runs_a_task_without_loading_protobuf(shim):
    """The server speaks the task API with shim.messages: the protobuf package (~20 ms and
    ~5 MiB a server) is loaded only for Stats' metrics."""
    cid, bundle = shim.bundle("true")
    path = shim.start(cid, bundle)
    _create(shim, path, cid, bundle)
    shim.call(path, "Start", pb.StartRequest(id=cid), pb.StartResponse)
    assert shim.call(path, "Wait", pb.WaitRequest(id=cid), pb.WaitResponse).exit_status == 0
    [server] = shim.servers()
    with open(f"/proc/{server}/maps") as f:
        maps = f.read()
    assert "site-packages/google" not in maps and "_upb" not in maps
    shim.call(path, "Delete", pb.DeleteRequest(id=cid), pb.DeleteResponse)
