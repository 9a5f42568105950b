"""kill -9 campaign (issue 12): SIGKILL pyrunc at many points of create, start, run, exec
and delete, then `delete --force`.

What a killed runtime leaves must be something pyrunc can see (`state` answers, so an
engine's cleanup finds it) or nothing; after `delete --force` nothing at all is left
(campaign.kill9_problems).  The points are delays after the command starts, from 0 to past
its usual duration (create and run take ~50-100 ms here), evenly spaced;
PYRUNC_KILL9_POINTS sets how many (6 by default; more for a long run).
"""

import os

import campaign
import pytest

POINTS = max(2, int(os.environ.get("PYRUNC_KILL9_POINTS", "6")))
DELAYS = [0.15 * i / (POINTS - 1) for i in range(POINTS)]  # 0 ... 150 ms
OPS = ("create", "start", "run", "exec", "delete")

# Known: a create (or run) killed after its init was forked but before state.json was
# written leaves an init, its cgroups and the state directory that `state`, `list` and
# `delete --force` cannot see.  Being fixed in branch state-faults; until then the kill
# points that hit it are counted in test_kill9_create_invisible_leftovers (a strict xfail)
# instead of failing the per-op tests at random points.  Empty this set once it lands.
INVISIBLE_KNOWN = {"create", "run"}


@pytest.mark.parametrize("op", OPS)
def test_kill9(fuzz_env, op):
    problems = []
    for delay in DELAYS:
        invisible, found = campaign.kill9_problems(fuzz_env, op, delay)
        if invisible and op not in INVISIBLE_KNOWN:
            problems.append(invisible)
        if not invisible:
            problems += found
    assert not problems, campaign.describe(problems)


@pytest.mark.xfail(strict=True, reason="issue 12: kill -9 during create leaves an init, "
                   "cgroups and a state dir pyrunc cannot see; being fixed in branch "
                   "state-faults")
def test_kill9_create_invisible_leftovers(fuzz_env):
    """Dense kill points through create's window between fork and state.json."""
    problems = []
    for i in range(12):
        invisible, _found = campaign.kill9_problems(fuzz_env, "create", 0.025 + 0.01 * i)
        if invisible:
            problems.append(invisible)
    assert not problems, campaign.describe(problems)
