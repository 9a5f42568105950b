"""`update` records what it sets in the container's state (runc keeps its config there):
a later update of another field starts from the recorded limits instead of losing them.
On the host's cgroup v1 (hybrid) layout, with real containers."""

import json
import os

import pytest

from pyrunc_testlib import CGROUP_ROOT, ID_PREFIX, assert_nothing_left

MiB = 1 << 20
LOOP = "echo ready; while :; do sleep 0.05; done"

pytestmark = pytest.mark.skipif(not os.path.isdir(os.path.join(CGROUP_ROOT, "memory")),
                                reason="needs the v1 memory controller")


def _read(path):
    with open(path) as f:
        return f.read().strip()


def _recorded(runtime, cid):
    with open(os.path.join(runtime.root, cid, "state.json")) as f:
        return json.load(f)["resources"]


def _started(runtime, bundle, cgroups_path):
    bundle.linux["cgroupsPath"] = cgroups_path
    bundle.linux.setdefault("resources", {}).update(
        {"memory": {"limit": 64 * MiB}, "pids": {"limit": 50}, "cpu": {"shares": 512}})
    bundle.sh(LOOP)
    cid = runtime.create(bundle).cid
    runtime.start(cid)
    runtime.wait_output(cid, "ready")
    return cid


def test_updates_accumulate_in_the_state_and_in_the_cgroup(runtime, bundle):
    path = f"/{ID_PREFIX}updstate-{os.urandom(6).hex()}"
    cid = _started(runtime, bundle, path)
    mem = os.path.join(CGROUP_ROOT, "memory", path.lstrip("/"))
    pids = os.path.join(CGROUP_ROOT, "pids", path.lstrip("/"))
    cpu = os.path.join(CGROUP_ROOT, "cpu", path.lstrip("/"))
    created = _recorded(runtime, cid)
    assert created["memory"] == {"limit": 64 * MiB}
    assert created["pids"] == {"limit": 50}
    assert created["devices"]  # the config's rules are kept as well

    runtime.run("update", "--pids-limit", "9", cid)
    runtime.run("update", "--memory", "80m", "--memory-swap", "160m", cid)
    runtime.run("update", "--cpu-quota", "20000", "--cpu-period", "50000", cid)
    res = _recorded(runtime, cid)
    assert res["pids"] == {"limit": 9}
    assert res["memory"] == {"limit": 80 * MiB, "swap": 160 * MiB}
    assert res["cpu"] == {"shares": 512, "quota": 20000, "period": 50000}
    assert res["devices"] == created["devices"]
    assert _read(f"{pids}/pids.max") == "9"
    assert int(_read(f"{mem}/memory.limit_in_bytes")) == 80 * MiB
    assert (_read(f"{cpu}/cpu.shares"), _read(f"{cpu}/cpu.cfs_quota_us")) == ("512", "20000")

    # -r with one field: the others stay, in the record and in the files
    runtime.run("update", "-r", "-", cid, input=json.dumps({"memory": {"reservation": 8 * MiB}}))
    res = _recorded(runtime, cid)
    assert res["memory"] == {"limit": 80 * MiB, "swap": 160 * MiB, "reservation": 8 * MiB}
    assert res["pids"] == {"limit": 9}
    assert int(_read(f"{mem}/memory.soft_limit_in_bytes")) == 8 * MiB
    assert int(_read(f"{mem}/memory.limit_in_bytes")) == 80 * MiB

    # events --stats reads the cgroup: the updated pids limit is what it reports
    stats = json.loads(runtime.run("events", "--stats", cid).stdout)
    assert stats["data"]["pids"]["limit"] == 9

    runtime.kill(cid, "KILL")
    runtime.delete(cid, "--force")
    assert_nothing_left(runtime, bundle, cid)


def test_a_refused_update_records_nothing(runtime, bundle):
    path = f"/{ID_PREFIX}updstate-{os.urandom(6).hex()}"
    cid = _started(runtime, bundle, path)
    before = _recorded(runtime, cid)
    result = runtime.run("update", "--pids-limit", "nine", cid, check=False)
    assert result.returncode != 0
    # memory+swap below memory: the kernel (and runc) refuse it
    result = runtime.run("update", "--memory", "40m", "--memory-swap", "20m", cid, check=False)
    assert result.returncode != 0
    assert _recorded(runtime, cid) == before
    runtime.kill(cid, "KILL")
    runtime.delete(cid, "--force")
    assert_nothing_left(runtime, bundle, cid)


def test_update_replaces_the_device_rules(runtime, bundle):
    devices = os.path.join(CGROUP_ROOT, "devices")
    if not os.path.isdir(devices):
        pytest.skip("no v1 devices controller")
    path = f"/{ID_PREFIX}upddev-{os.urandom(6).hex()}"
    bundle.linux.setdefault("resources", {})["devices"] = [
        {"allow": False, "access": "rwm"},
        {"allow": True, "type": "c", "major": 4, "minor": 64, "access": "rw"}]
    cid = _started(runtime, bundle, path)
    listing = os.path.join(devices, path.lstrip("/"), "devices.list")
    assert "c 4:64 rw" in _read(listing).splitlines()
    rules = [{"allow": False, "access": "rwm"},
             {"allow": True, "type": "c", "major": 4, "minor": 65, "access": "r"}]
    runtime.run("update", "-r", "-", cid, input=json.dumps({"devices": rules}))
    lines = _read(listing).splitlines()
    assert "c 4:65 r" in lines and "c 4:64 rw" not in lines
    assert "c 1:3 rwm" in lines  # runc's default devices stay allowed
    assert _recorded(runtime, cid)["devices"] == rules
    runtime.kill(cid, "KILL")
    runtime.delete(cid, "--force")
    assert_nothing_left(runtime, bundle, cid)
