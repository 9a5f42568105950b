"""The shim's process model under load: many parallel Create/Start/Exec/Kill/Delete calls on
one server, every container with runtime hooks in each parent-run phase (prestart,
createRuntime, poststart, poststop) and an idmapped mount (its id-mapping helper), half of
them in a user namespace.  Every call must succeed, none hang, and every exit status must be
the real one.  Forking the fork chains from the server's threads failed both ways: the
library's waits lost exits to the reaper (ECHILD), and a fork in one thread copied another
Create's pipe ends, so helpers waiting for an EOF hung (shim/forkserver.py)."""

import copy
import json
import os
import threading

import pytest
from google.protobuf import any_pb2
from shimlib import wait_until
from test_task_service import PROCESS_TYPE, SERVICE, Shim

import pyrunc_testlib as lib
from shim import ttrpc
from shim.proto import shim_pb2 as pb

TASKS = 12
EXECS = 2
HOOK = "/bin/true"


def _configure(bundle, scratch, index):
    hooks = {"path": HOOK, "args": [HOOK]}
    bundle.config["hooks"] = {phase: [hooks] for phase in (
        "prestart", "createRuntime", "poststart", "poststop")}
    src = os.path.join(scratch.path, f"idm-{index}")
    os.mkdir(src)
    bundle.config["mounts"].append({
        "destination": "/idm", "type": "bind", "source": src, "options": ["bind", "idmap"],
        "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 100}],
        "gidMappings": [{"containerID": 0, "hostID": 2000, "size": 100}]})
    if index % 2:
        # a user namespace: its root cannot make the mount point in the host-owned rootfs
        os.mkdir(os.path.join(bundle.rootfs, "idm"))
        linux = bundle.config["linux"]
        linux["namespaces"].append({"type": "user"})
        linux["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        linux["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    bundle.write()


def _lifecycle(shim, path, cid, bundle):
    client = ttrpc.Client(path)

    def call(method, request, response_type=None):
        data = client.call(SERVICE, method, request.SerializeToString(), timeout=120)
        if response_type is None:
            return None
        response = response_type()
        response.ParseFromString(data)
        return response

    try:
        created = call("Create", pb.CreateTaskRequest(id=cid, bundle=bundle.path),
                       pb.CreateTaskResponse)
        assert created.pid > 0
        call("Start", pb.StartRequest(id=cid), pb.StartResponse)
        spec = copy.deepcopy(bundle.config["process"])
        for n in range(EXECS):
            spec["args"] = ["sh", "-c", f"exit {n + 3}"]
            exec_id = f"e{n}"
            call("Exec", pb.ExecProcessRequest(id=cid, exec_id=exec_id, spec=any_pb2.Any(
                type_url=PROCESS_TYPE, value=json.dumps(spec).encode())))
            call("Start", pb.StartRequest(id=cid, exec_id=exec_id), pb.StartResponse)
            waited = call("Wait", pb.WaitRequest(id=cid, exec_id=exec_id), pb.WaitResponse)
            assert waited.exit_status == n + 3, (cid, exec_id, waited.exit_status)
            call("Delete", pb.DeleteRequest(id=cid, exec_id=exec_id), pb.DeleteResponse)
        spec["args"] = ["sleep", "1000"]
        call("Exec", pb.ExecProcessRequest(id=cid, exec_id="long", spec=any_pb2.Any(
            type_url=PROCESS_TYPE, value=json.dumps(spec).encode())))
        call("Start", pb.StartRequest(id=cid, exec_id="long"), pb.StartResponse)
        call("Kill", pb.KillRequest(id=cid, exec_id="long", signal=9))
        waited = call("Wait", pb.WaitRequest(id=cid, exec_id="long"), pb.WaitResponse)
        assert waited.exit_status == 128 + 9, (cid, "long", waited.exit_status)
        call("Kill", pb.KillRequest(id=cid, signal=9))
        waited = call("Wait", pb.WaitRequest(id=cid), pb.WaitResponse)
        assert waited.exit_status == 128 + 9, (cid, waited.exit_status)
        deleted = call("Delete", pb.DeleteRequest(id=cid), pb.DeleteResponse)
        assert deleted.exit_status == 128 + 9
    finally:
        client.close()


@pytest.mark.parametrize("grouped", [True, False], ids=["fork-server", "spawned-workers"])
def test_parallel_tasks_with_hooks_and_user_namespaces(scratch, pyrunc_bin, default_config,
                                                       busybox_rootfs, grouped):
    """grouped: the server of a group (a pod's), whose workers come from its fork server;
    else the first task's own server, which spawns them (shim/__init__.py)."""
    shim = Shim(scratch, pyrunc_bin, default_config, busybox_rootfs)
    try:
        tasks = []
        for index in range(TASKS):
            cid, bundle = shim.bundle("sleep", "1000")
            os.rmdir(bundle.rootfs)  # a copy of its own: Create sends no rootfs mount
            lib.copy_rootfs(busybox_rootfs, bundle.rootfs)
            if grouped:
                bundle.config["annotations"] = {"io.containerd.runc.v2.group": "stress"}
            _configure(bundle, scratch, index)
            tasks.append((cid, bundle))
        path = shim.start(*tasks[0])  # one server for all (any server serves any task)
        failures = []

        def run(cid, bundle):
            try:
                _lifecycle(shim, path, cid, bundle)
            except BaseException as e:  # collected: every task reports
                failures.append(f"{cid}: {type(e).__name__}: {e}")

        threads = [threading.Thread(target=run, args=task) for task in tasks]
        for t in threads:
            t.start()
        for t in threads:
            t.join(600)
        assert not any(t.is_alive() for t in threads), "a call hung"
        assert not failures, "\n".join(failures)
        assert len(shim.servers()) == 1
        # the server, and its fork server if grouped (the workers exit when they answer)
        wait_until(lambda: len(shim.processes()) == (2 if grouped else 1),
                   "the server (and its fork server) alone")
        with open(os.path.join(shim.root, "shim.log")) as f:
            log = f.read()
        assert "Traceback" not in log and "No child processes" not in log, log
        for cid, bundle in tasks:
            lib.assert_nothing_left(shim.rt, bundle, cid)
    finally:
        shim.teardown()
