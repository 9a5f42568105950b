"""pyrunc on a pure cgroup v2 host, for real: guest/v2_checks.py run in the throwaway VM
(see vmguest), each reported here as its own test."""

import os

import pytest
import vmguest

CHECKS = os.path.relpath(vmguest.CHECKS, vmguest.REPO)


@pytest.mark.parametrize("name", vmguest.functions_of(CHECKS))
def test_on_cgroup_v2(guest_results, name):
    vmguest.assert_passed(guest_results, CHECKS, name)
