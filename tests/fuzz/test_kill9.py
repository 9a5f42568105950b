"""kill -9 campaign (issue 12): SIGKILL pyrunc at many points of create, start, run, exec
and delete, then `delete --force`.

What a killed runtime leaves must be something pyrunc can see (`state` answers, so an
engine's cleanup finds it) or nothing (an empty state directory, made an instant before
the first record, is let pass when a new create of the id takes it over); after
`delete --force` nothing
at all is left (campaign.kill9_problems).  The points are delays after the command
starts, evenly spaced from 0 to past its usual duration (create and run take ~50-100 ms
here); PYRUNC_KILL9_POINTS sets how many (6 by default; more for a long run).
"""

import os

import campaign
import pytest

POINTS = max(2, int(os.environ.get("PYRUNC_KILL9_POINTS", "6")))
DELAYS = [0.15 * i / (POINTS - 1) for i in range(POINTS)]  # 0 ... 150 ms
OPS = ("create", "start", "run", "exec", "delete")


@pytest.mark.parametrize("op", OPS)
def test_kill9(fuzz_env, op):
    problems = []
    for delay in DELAYS:
        invisible, found = campaign.kill9_problems(fuzz_env, op, delay)
        problems += [invisible] if invisible else found
    assert not problems, campaign.describe(problems)
