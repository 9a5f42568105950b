"""Fixtures for the shim's end-to-end tests: a private containerd (own root, state and
sockets, the CRI plugin disabled) that finds containerd-shim-pyrunc-v2 on its PATH, run
under a reaping parent (this host's pid 1 does not reap orphans, and a shim's children are
orphaned when it is killed), with a busybox image imported from an OCI archive.

The engine helpers and fixtures are tests/e2e's."""

import os
import sys
import uuid

import pytest
from e2e.conftest import engine_dir, host_paths_created  # noqa: F401  (fixtures)
from shimlib import IMAGE, PARENT, SHIM, Containerd, enginelib

import pyrunc_testlib as lib


@pytest.fixture(scope="module")
def containerd(request, engine_dir, busybox_rootfs, host_paths_created):  # noqa: F811
    daemon_bin, ctr = enginelib.require_engine("containerd", "ctr")
    if not os.path.exists(SHIM):
        pytest.fail(f"{SHIM} is not installed (.ci/setup installs it)")
    namespace = f"pyrunc-shim-{uuid.uuid4().hex[:8]}"
    # fixed paths of containerd 1.6 (its shims' sockets) and the cgroups ctr names
    # /<namespace>/<id>
    host_paths_created("/run/containerd", "/run/containerd/s", "/run/containerd/fifo",
                       *enginelib.cgroup_dirs(namespace))
    c = Containerd(ctr, engine_dir, namespace)
    env = dict(os.environ, PATH=os.path.dirname(SHIM) + ":" + os.environ.get("PATH", ""))
    # a test module may give containerd (and so the shims) more environment
    env.update(getattr(request.module, "CONTAINERD_ENV", {}))
    c.daemon = enginelib.start_containerd([sys.executable, PARENT, daemon_bin], engine_dir,
                                          env=env)
    try:
        enginelib.containerd_ready_with(c, c.daemon, busybox_rootfs, engine_dir, IMAGE)
        yield c
    finally:
        try:
            if c.daemon.proc.poll() is None:
                c.cleanup()
        finally:
            # our servers first (the reaping parent waits for every descendant), and the
            # sockets they leave when killed
            c.kill_servers()
            c.daemon.stop()
            c.stop_starters()
            enginelib.kill_pids(enginelib.processes_with_cmdline(engine_dir))
            for name in c.names:
                lib.kill_and_remove_cgroups(name)


@pytest.fixture(autouse=True)
def _clean_containerd_after_each_test(request):
    """A test that uses containerd leaves no task or container to the next one, even when
    it fails half-way."""
    c = request.getfixturevalue("containerd") if "containerd" in request.fixturenames \
        else None
    yield
    if c is not None and c.daemon.proc.poll() is None:
        c.cleanup()
