"""Fixtures for the end-to-end tests: the engines' private directories, the busybox image
tars, and host paths the engines create that must not outlive the tests."""

import os
import shutil
import sys
import tempfile

import pytest

E2E_DIR = os.path.dirname(os.path.abspath(__file__))
if E2E_DIR not in sys.path:
    sys.path.insert(0, E2E_DIR)

import enginelib  # noqa: E402  (tests/e2e/enginelib.py)


@pytest.fixture(scope="module")
def engine_dir(host_can_run_containers, session_dir, request):
    """A private directory for one engine test module; whatever an engine left mounted
    under it is detached and it is removed at teardown."""
    # beside the session directory, with a short name: podman refuses a --runroot longer
    # than 50 characters
    path = tempfile.mkdtemp(prefix="pyrunc-e2e-", dir=os.path.dirname(session_dir))
    os.chmod(path, 0o755)
    yield path
    enginelib.detach_mounts_under(path)
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def host_paths_created():
    """Register host paths an engine creates outside our private directories (fixed by the
    engine: /run/containerd/s, podman's CNI lock, cgroups ...); those absent now are
    removed at teardown (directories only when empty, deepest first)."""
    watched = []

    def watch(*paths):
        for path in paths:
            if not os.path.lexists(path):
                watched.append(path)

    yield watch
    for path in sorted(set(watched), key=len, reverse=True):
        if os.path.isdir(path) and not os.path.islink(path):
            # only when empty: another test run may be using it right now
            for root, dirs, _files in os.walk(path, topdown=False):
                for d in dirs:
                    try:
                        os.rmdir(os.path.join(root, d))
                    except OSError:
                        pass
            try:
                os.rmdir(path)
            except OSError:
                pass
        elif os.path.lexists(path):
            try:
                os.unlink(path)
            except OSError:
                pass


@pytest.fixture(scope="module")
def runc_symlink(pyrunc_bin, engine_dir):
    """pyrunc through a symlink named runc: podman passes --log-format=json only to a
    runtime whose basename is runc or crun."""
    bindir = os.path.join(engine_dir, "bin")
    os.makedirs(bindir, exist_ok=True)
    link = os.path.join(bindir, "runc")
    os.symlink(os.path.abspath(pyrunc_bin), link)
    return link


@pytest.fixture(scope="module")
def engine_rootfs(busybox_rootfs, engine_dir):
    """A private copy of the busybox rootfs (podman --rootfs writes into it)."""
    import pyrunc_testlib as lib

    return lib.copy_rootfs(busybox_rootfs, os.path.join(engine_dir, "rootfs"))
