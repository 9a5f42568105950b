"""Fixtures of the hostile-input campaigns (tests/fuzz): one bundle and runtime per module.

The campaigns run hundreds of inputs; each gets a unique id and the harness
(campaign.run_config) checks and cleans up after every one, so the bundle (a busybox
rootfs with escape symlinks, see campaign.Env) is built once per module.  Teardown is the
testlib's Scratch: `delete --force` for every id used, cgroups and mounts removed.
"""

import os
import sys
import uuid

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import campaign  # noqa: E402

import pyrunc_testlib as lib  # noqa: E402


@pytest.fixture(scope="module")
def fuzz_env(request, pyrunc_bin, session_dir, busybox_rootfs, default_config):
    name = request.module.__name__.rsplit(".", 1)[-1]
    scratch = lib.Scratch(os.path.join(session_dir, f"{name}-{uuid.uuid4().hex[:8]}"))
    runtime = lib.Runtime(pyrunc_bin, os.path.join(scratch.path, "root"), scratch)
    scratch.runtimes.append(runtime)
    env = campaign.Env(runtime, os.path.join(scratch.path, "bundle"), busybox_rootfs,
                       default_config)
    yield env
    errors = scratch.teardown()
    if errors:
        pytest.fail("teardown: " + "; ".join(errors), pytrace=False)
