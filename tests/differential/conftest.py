"""Fixtures of the differential tests: runc (the reference) next to pyrunc.

Each test gets the `differential` fixture, a function that runs one Scenario (see
difflib_runc) with runc, then pyrunc, in the test's scratch directory, and asserts they
agree.  The tests skip when runc is not installed (Debian's runc package)."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import difflib_runc as dl  # noqa: E402  (tests/differential/difflib_runc.py)


@pytest.fixture(scope="session")
def runc_bin(host_can_run_containers):
    if not os.access(dl.RUNC, os.X_OK):
        pytest.skip(f"{dl.RUNC} is missing (apt-get install runc): nothing to compare with")
    return dl.RUNC


@pytest.fixture(scope="session")
def runc_spec_text(runc_bin, session_dir):
    return dl.base_config(session_dir)


@pytest.fixture
def differential(scratch, busybox_rootfs, runc_spec_text, pyrunc_bin):
    def run(scenario):
        return dl.run_scenario(scenario, scratch, busybox_rootfs, runc_spec_text, pyrunc_bin)

    return run
