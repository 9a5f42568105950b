"""--systemd-cgroup: systemd's cgroup driver. With no systemd (this host, CI), create and run
fail with one clear line before anything is made."""

import os

from pyrunc_testlib import assert_error, assert_nothing_left


def test_systemd_cgroup_is_a_clear_error_and_leaves_nothing(runtime, bundle):
    bundle.linux["cgroupsPath"] = "system.slice:pyrunc:test"
    bundle.write()
    for command in ("create", "run"):
        cid = runtime.new_id()
        result = _global(runtime, command, bundle, cid)
        if os.path.isdir("/run/systemd/system"):
            assert_error(result, "--systemd-cgroup", "not supported")
        else:
            assert_error(result, "--systemd-cgroup", "systemd is not running")
        assert_nothing_left(runtime, bundle, cid)


def test_the_systemd_path_form_without_the_flag_says_what_is_missing(runtime, bundle):
    bundle.linux["cgroupsPath"] = "system.slice:pyrunc:test"
    bundle.write()
    cid = runtime.new_id()
    result = runtime.run("create", "--bundle", bundle.path, cid, check=False)
    assert_error(result, "cgroupsPath", "--systemd-cgroup")
    assert_nothing_left(runtime, bundle, cid)


def _global(runtime, command, bundle, cid):
    """`pyrunc --root R --systemd-cgroup COMMAND ...` (a global flag, before the command)."""
    import subprocess

    return subprocess.run([runtime.binary, "--root", runtime.root, "--systemd-cgroup",
                           command, "--bundle", bundle.path, cid], capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)


def test_features_does_not_claim_the_systemd_driver(runtime):
    """No systemd cgroup driver is built: features says so, whatever the host runs."""
    import json

    cgroup = json.loads(runtime.run("features").stdout)["linux"]["cgroup"]
    assert cgroup["systemd"] is False and cgroup["systemdUser"] is False
    assert cgroup["v1"] is True and cgroup["v2"] is True
