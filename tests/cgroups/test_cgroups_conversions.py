"""The v1 -> v2 conversions (runc's formulas) and how a v2 host treats v1-only settings.
Pure functions: these run on any host."""

import pytest

from ociruntime.config import parse_resources
from ociruntime.errors import PyruncError
from ociruntime.libcontainer.cgroups.files import (
    blkio_weight_to_io_weight,
    cpu_shares_to_weight,
    swap_to_v2,
)
from ociruntime.libcontainer.cgroups.v2limits import _controllers_for, _refuse_v1_only


@pytest.mark.parametrize("shares, weight", [
    (0, 0), (1, 1), (2, 1), (100, 17), (512, 59), (1024, 100), (262144, 10000),
    (500000, 10000)])
def test_cpu_shares_to_weight_matches_runc(shares, weight):
    assert cpu_shares_to_weight(shares) == weight


@pytest.mark.parametrize("blkio, io", [(0, 0), (10, 1), (500, 4950), (1000, 10000)])
def test_blkio_weight_to_io_weight_matches_runc(blkio, io):
    assert blkio_weight_to_io_weight(blkio) == io


@pytest.mark.parametrize("swap, memory, v2", [
    (0, -1, -1),         # unlimited memory, swap unset: unlimited swap
    (-1, 100, -1),       # explicit unlimited swap
    (0, 100, 0),         # swap unset
    (300, -1, 300),      # unlimited memory: swap taken as is
    (300, 100, 200),     # memory+swap minus memory
    (100, 100, 0),       # equal: no swap at all
])
def test_swap_to_v2(swap, memory, v2):
    assert swap_to_v2(swap, memory) == v2


@pytest.mark.parametrize("swap, memory, needle", [
    (300, 0, "without a memory limit"), (50, 100, "must be >= the memory limit")])
def test_swap_to_v2_errors(swap, memory, needle):
    with pytest.raises(PyruncError, match=needle):
        swap_to_v2(swap, memory)


@pytest.mark.parametrize("doc, field", [
    ({"memory": {"kernel": 1}}, "memory.kernel"),
    ({"memory": {"kernelTCP": 1}}, "memory.kernelTCP"),
    ({"memory": {"swappiness": 10}}, "memory.swappiness"),
    ({"memory": {"disableOOMKiller": True}}, "memory.disableOOMKiller"),
    ({"memory": {"useHierarchy": False}}, "memory.useHierarchy"),
    ({"cpu": {"realtimeRuntime": 10}}, "cpu.realtimeRuntime"),
    ({"blockIO": {"leafWeight": 10}}, "blockIO.leafWeight"),
    ({"network": {"classID": 1}}, "network"),
])
def test_v1_only_settings_are_refused_on_v2(doc, field):
    with pytest.raises(PyruncError, match=f"linux.resources.{field}: cgroup v2 has no"):
        _refuse_v1_only(parse_resources(doc))


def test_v2_accepts_what_it_can_express():
    res = parse_resources({"memory": {"useHierarchy": True, "disableOOMKiller": False,
                                      "limit": 10}, "cpu": {"shares": 1024}})
    _refuse_v1_only(res)
    assert _controllers_for(res) == {"memory": "memory", "cpu": "cpu"}


def test_controllers_for_unified_keys():
    res = parse_resources({"unified": {"memory.high": "1", "cgroup.max.depth": "2",
                                       "io.weight": "100"}, "pids": {"limit": 1}})
    assert _controllers_for(res) == {"pids": "pids", "memory": "unified['memory.high']",
                                     "io": "unified['io.weight']"}
    with pytest.raises(PyruncError, match="CONTROLLER.PARAMETER"):
        _controllers_for(parse_resources({"unified": {"nodot": "1"}}))
