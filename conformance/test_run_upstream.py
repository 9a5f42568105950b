"""The upstream-suite runner's own pieces: TAP parsing, verdicts, and the private controller
view it gives each program (v1 controllers the kernel has but the host never mounted).

The view is exercised for real: pyrunc runs a container in it with hugetlb and net_cls/net_prio
limits, the container reads them back from its own /sys/fs/cgroup, and afterwards the host's
mounts are unchanged and the kernel has taken the controllers back.
"""

import os
import shlex
import subprocess

import pytest
import run_upstream

TAP = """TAP version 13
ok 1 - find network cgroup
not ok 2 - pids limit is set correctly
ok 3 # SKIP no hugetlb
1..3
"""


def test_tap_counts_and_failures():
    ok, not_ok, skip, plan, failures = run_upstream.parse_tap(TAP)
    assert (ok, not_ok, skip, plan) == (1, 1, 1, 3)
    assert failures == ["not ok 2 - pids limit is set correctly"]


def test_an_error_diagnostic_without_a_test_is_a_failure():
    text = 'TAP version 13\n1..0\n---\n"error": "The post-start hooks MUST be called"\n...\n'
    _ok, not_ok, _skip, plan, failures = run_upstream.parse_tap(text)
    assert (not_ok, plan) == (1, 0)
    assert failures == ["error diagnostic with no test: The post-start hooks MUST be called"]


@pytest.mark.parametrize("rc, counts, plan, timed_out, expected", [
    (0, (3, 0, 0), 3, False, "pass"),
    (0, (2, 1, 0), 3, False, "fail"),
    (1, (3, 0, 0), 3, False, "fail"),      # a clean TAP stream but a non-zero exit
    (0, (2, 0, 0), 3, False, "fail"),      # fewer results than planned
    (0, (0, 0, 2), 2, False, "skip"),
    (0, (0, 0, 0), None, False, "pass"),   # *_fail programs: no TAP, exit 0 = refused
    (1, (0, 0, 0), None, False, "error"),
    (0, (3, 0, 0), 3, True, "timeout"),
])
def test_verdict(rc, counts, plan, timed_out, expected):
    assert run_upstream.verdict(rc, *counts, plan, timed_out) == expected


def _host_cgroup_mounts():
    with open("/proc/self/mountinfo") as f:
        return sorted(line.split(" ", 4)[4] for line in f if " - cgroup" in line)


@pytest.fixture
def controller_view():
    groups = run_upstream.unmounted_v1_controllers()
    names = {name for group in groups for name in group}
    if not {"hugetlb", "net_cls", "net_prio"} <= names:
        pytest.skip("needs a v1/hybrid host whose kernel has hugetlb and net_cls/net_prio "
                    f"unmounted (unmounted here: {sorted(names) or 'none'})")
    before = _host_cgroup_mounts()
    yield groups
    assert run_upstream.released(groups), "a controller stayed in a hierarchy of its own"
    assert _host_cgroup_mounts() == before


def test_controller_view_applies_hugetlb_and_net_limits(runtime, bundle, scratch,
                                                        controller_view):
    # every pyrunc command runs in its own private mount namespace holding the view, as the
    # runner runs each validation program and its cleanup
    view = run_upstream.cgroup_view_script(controller_view)
    wrapper = os.path.join(scratch.path, "pyrunc-in-view")
    with open(wrapper, "w") as f:
        f.write("#!/bin/sh\nexec unshare -m sh -c " + shlex.quote(view + 'exec "$0" "$@"')
                + f" {runtime.binary} \"$@\"\n")
    os.chmod(wrapper, 0o755)
    runtime.binary = wrapper
    bundle.linux["cgroupsPath"] = f"/pyrunc-view-{os.urandom(6).hex()}"
    bundle.linux["resources"] = {
        "hugepageLimits": [{"pageSize": "2MB", "limit": 4 << 21}],
        "network": {"classID": 0x100001, "priorities": [{"name": "lo", "priority": 7}]}}
    out = runtime.sh(bundle, "cd /sys/fs/cgroup && cat hugetlb/hugetlb.2MB.limit_in_bytes "
                             "net_cls/net_cls.classid && grep '^lo ' net_prio/net_prio.ifpriomap")
    assert out.split() == [str(4 << 21), str(0x100001), "lo", "7"]
    # run deleted the container: its cgroups are gone from the controllers only it could see
    listing = subprocess.run(["unshare", "-m", "sh", "-c", view + "ls /sys/fs/cgroup/hugetlb "
                              "/sys/fs/cgroup/net_cls"], capture_output=True, text=True,
                             check=True).stdout
    assert bundle.linux["cgroupsPath"].lstrip("/") not in listing
