"""linux.netDevices: a host interface (one end of a veth pair made by the test) moved into
the container's network namespace, renamed, with its addresses, up."""

import os
import shutil
import subprocess
import time
import uuid

import pytest

from pyrunc_testlib import assert_error, assert_nothing_left

IP = shutil.which("ip")


@pytest.fixture
def dummy(scratch):
    """A veth pair on the host, down, with documentation addresses on the end to move (no
    traffic goes anywhere); deleted at teardown if still on the host (moving an end into a
    container that is then deleted destroys both)."""
    if IP is None:
        pytest.skip("iproute2's ip is needed to make a veth pair")
    name = "pyr" + uuid.uuid4().hex[:8]
    subprocess.run([IP, "link", "add", name, "type", "veth", "peer", "name", name + "p"],
                   check=True)
    scratch.add_finalizer(lambda: subprocess.run([IP, "link", "del", name + "p"],
                                                 capture_output=True))
    subprocess.run([IP, "addr", "add", "198.51.100.10/24", "dev", name], check=True)
    subprocess.run([IP, "addr", "add", "2001:db8::10/64", "dev", name, "nodad"], check=True)
    return name


def host_has(name):
    return os.path.exists(f"/sys/class/net/{name}")


def test_a_device_moves_in_renamed_with_its_addresses_and_up(runtime, bundle, dummy):
    bundle.linux["netDevices"] = {dummy: {"name": "ctr0"}}
    out = runtime.sh(bundle, "ip -o addr show dev ctr0; ip -o link show dev ctr0")
    assert "198.51.100.10/24" in out and "2001:db8::10/64" in out
    assert ",UP" in out or "<UP" in out, out
    assert not host_has(dummy)  # moved, and destroyed with the namespace (virtual)
    # the kernel tears a network namespace down asynchronously (a workqueue), so the
    # host-side peer of the veth pair goes away a little after the container is deleted
    assert wait_gone(dummy + "p"), f"{dummy}p still on the host"


def wait_gone(name, tries=500):
    for _ in range(tries):
        if not host_has(name):
            return True
        time.sleep(0.01)
    return False


def test_a_name_template_is_allowed(runtime, bundle, dummy):
    bundle.linux["netDevices"] = {dummy: {"name": "eth%d"}}
    out = runtime.sh(bundle, "ls /sys/class/net")
    assert "eth0" in out.split()


def test_a_name_clash_is_an_error(runtime, bundle, dummy):
    bundle.linux["netDevices"] = {dummy: {"name": "lo"}}
    result = runtime.create(bundle, check=False)
    assert_error(result, "linux.netDevices", dummy, "taken")
    assert_nothing_left(runtime, bundle, result.cid)


def test_net_devices_need_a_network_namespace(runtime, bundle, dummy):
    bundle.linux["namespaces"] = [ns for ns in bundle.linux["namespaces"]
                                  if ns["type"] != "network"]
    bundle.linux["netDevices"] = {dummy: {}}
    result = runtime.create(bundle, check=False)
    assert_error(result, "linux.netDevices", "network namespace")
    assert host_has(dummy)
    assert_nothing_left(runtime, bundle, result.cid)


def test_an_unknown_device_is_an_error(runtime, bundle):
    bundle.linux["netDevices"] = {"pyrnosuchdev0": {}}
    result = runtime.create(bundle, check=False)
    assert_error(result, "linux.netDevices", "pyrnosuchdev0", "no such")
    assert_nothing_left(runtime, bundle, result.cid)
