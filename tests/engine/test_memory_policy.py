"""linux.memoryPolicy: set_mempolicy(2) in the init, kept by the program across execve.

Observed from inside through /proc/self/numa_maps, whose second column is the policy of
each mapping ("default", "bind:0", "interleave:0", "prefer:0", "local").
"""

import os

import pytest

from pyrunc_testlib import assert_error, assert_nothing_left

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/numa_maps"),
                                reason="kernel without NUMA (no /proc/self/numa_maps)")


def _policies(runtime, bundle, policy):
    bundle.linux["memoryPolicy"] = policy
    out = runtime.sh(bundle, "cat /proc/self/numa_maps")
    return {line.split()[1] for line in out.splitlines() if len(line.split()) > 1}


@pytest.mark.parametrize("policy, shown", [
    ({"mode": "MPOL_BIND", "nodes": "0"}, "bind:0"),
    ({"mode": "MPOL_INTERLEAVE", "nodes": "0"}, "interleave:0"),
    ({"mode": "MPOL_PREFERRED", "nodes": "0"}, "prefer:0"),
    ({"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_STATIC_NODES"]}, "bind=static:0"),
    ({"mode": "MPOL_LOCAL"}, "local"),
])
def test_policy_is_the_programs(runtime, bundle, policy, shown):
    assert _policies(runtime, bundle, policy) == {shown}


def test_without_a_policy_the_default_stays(runtime, bundle):
    bundle.linux.pop("memoryPolicy", None)
    out = runtime.sh(bundle, "cat /proc/self/numa_maps")
    assert {line.split()[1] for line in out.splitlines()} == {"default"}


@pytest.mark.parametrize("policy, needle", [
    ({"mode": "MPOL_BIND"}, "needs at least one node"),
    ({"mode": "MPOL_DEFAULT", "nodes": "0"}, "takes no nodes"),
    ({"mode": "MPOL_BIND", "nodes": "x"}, "linux.memoryPolicy.nodes"),
    ({"mode": "MPOL_BIND", "nodes": "63"}, "linux.memoryPolicy"),
])
def test_bad_policies_are_one_error_and_leave_nothing(runtime, bundle, policy, needle):
    bundle.linux["memoryPolicy"] = policy
    bundle.sh("true")
    result = runtime.create(bundle, check=False)
    assert_error(result, needle)
    assert_nothing_left(runtime, bundle, result.cid)
