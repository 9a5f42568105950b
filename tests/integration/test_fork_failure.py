"""A fork that fails (EAGAIN at a pids limit) leaves no fd behind in the library's
helpers: the pipes and sockets made for the child are closed before the error goes up.

The library calls run in a child process placed in a pids cgroup of its own whose limit is
the one process it already is, so that every fork of it fails for real."""

import os
import subprocess
import sys
import uuid

import pytest

from pyrunc_testlib import CGROUP_ROOT, TIMEOUT

CALLS = r'''
import errno, os, sys
with open(os.path.join(sys.argv[1], "cgroup.procs"), "w") as f:
    f.write(str(os.getpid()))  # pids.max is 1: from here on no fork succeeds
from ociruntime.libcontainer import idmap, netdev, process, procfs_pidns
from ociruntime.libcontainer.stage import sealed_stage_fd
stage_fd = sealed_stage_fd()
pidns_fd = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
calls = {
    "process.spawn": lambda: process.spawn(lambda sync: None),
    "idmap.Helper": lambda: idmap.Helper([], 3),
    "idmap.mapped_userns": lambda: idmap.mapped_userns("0 100000 1", "0 100000 1"),
    "netdev.Helper": lambda: netdev.Helper([]),
    "procfs_pidns._context_in": lambda: procfs_pidns._context_in(pidns_fd, stage_fd),
}
for name, call in calls.items():
    before = sorted(os.listdir("/proc/self/fd"))
    try:
        call()
        print(name, "forked")
        continue
    except OSError as e:
        failed = errno.errorcode.get(e.errno)
    after = sorted(os.listdir("/proc/self/fd"))
    print(name, failed, "leaked" if after != before else "clean")
'''


@pytest.fixture
def pids_cgroup_of_one():
    pids = os.path.join(CGROUP_ROOT, "pids")
    if os.path.isfile(os.path.join(pids, "cgroup.procs")):
        parent = pids  # v1
    elif "pids" in open(os.path.join(CGROUP_ROOT, "cgroup.subtree_control")).read().split():
        parent = CGROUP_ROOT  # v2 with the pids controller given to its children
    else:
        pytest.skip("no pids controller to limit a process with")
    path = os.path.join(parent, f"pyrunc-test-fork-{uuid.uuid4().hex[:12]}")
    os.mkdir(path)
    try:
        with open(os.path.join(path, "pids.max"), "w") as f:
            f.write("1")
        yield path
    finally:
        os.rmdir(path)


def test_a_failed_fork_leaves_no_fd_behind(pids_cgroup_of_one):
    result = subprocess.run([sys.executable, "-c", CALLS, pids_cgroup_of_one],
                            capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"{name} EAGAIN clean" for name in (
            "process.spawn", "idmap.Helper", "idmap.mapped_userns", "netdev.Helper",
            "procfs_pidns._context_in")], result.stdout
