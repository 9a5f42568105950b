"""Fixtures for the tests that run real containers (tests/integration).

Nothing here is autouse and nothing heavy runs at import time, so the unit tests pay
nothing for it.  The integration fixtures skip (with the reason) when the host cannot run
containers: not root, or no /bin/busybox to build the rootfs from.

Each test gets a scratch directory under one session directory (in /dev/shm or /tmp, see
scratch_base) whose name starts with "pyrunc-it-" (so a leaked mount shows up in
`grep pyrunc /proc/self/mountinfo`):

    <session>/<test>-<uuid>/root      the --root of the test's runtime
    <session>/<test>-<uuid>/bundle    config.json + rootfs/ (a per-test busybox copy)
    <session>/<test>-<uuid>/out       stdio files of the runtime and its containers

Teardown never trusts the test to have cleaned up (see pyrunc_testlib.Scratch): it runs
`delete --force` for every id the test used, kills what is still in the containers'
cgroups and removes them, detaches any mount left under the scratch directory, and only
then removes the directory.  It runs when the test failed, too.
"""

import copy
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import uuid

import pytest

TESTS_DIR = pathlib.Path(__file__).resolve().parent
REPO_DIR = TESTS_DIR.parent
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))

import pyrunc_testlib as lib  # noqa: E402  (tests/pyrunc_testlib.py)


def find_runtime():
    """$PYRUNC, else `pyrunc` on PATH, else the repo's venv (.venv/bin/pyrunc); None if none."""
    env = os.environ.get("PYRUNC")
    if env:
        return env
    found = shutil.which("pyrunc")
    if found:
        return found
    venv = REPO_DIR / ".venv" / "bin" / "pyrunc"
    return str(venv) if venv.exists() else None


@pytest.fixture(scope="session")
def host_can_run_containers():
    if os.geteuid() != 0:
        pytest.skip("the integration tests run real containers and need root")
    if not os.path.exists(lib.BUSYBOX):
        pytest.skip(f"{lib.BUSYBOX} (Debian's busybox-static) is missing: no rootfs to build")
    return True


@pytest.fixture(scope="session")
def pyrunc_bin(host_can_run_containers):
    binary = find_runtime()
    if binary is None or not os.access(binary, os.X_OK):
        pytest.skip("pyrunc not found: set $PYRUNC, put it on PATH, or install it into "
                    f"{REPO_DIR / '.venv'}")
    return binary


def scratch_base():
    """Where the session directory goes: $PYRUNC_TEST_TMPDIR, else /dev/shm when it is a
    tmpfs that allows exec (a per-test rootfs is ~400 symlinks, which a busy ext4 makes
    slower than the container runs themselves), else /tmp."""
    env = os.environ.get("PYRUNC_TEST_TMPDIR")
    if env:
        return env
    try:
        flags = os.statvfs("/dev/shm").f_flag
        shm_ok = (not flags & (os.ST_NOEXEC | os.ST_RDONLY) and os.access("/dev/shm", os.W_OK)
                  and any(m["mountpoint"] == "/dev/shm" and m["fstype"] == "tmpfs"
                          for m in lib.read_mountinfo()))
    except OSError:
        shm_ok = False
    return "/dev/shm" if shm_ok else "/tmp"


@pytest.fixture(scope="session")
def session_dir(host_can_run_containers):
    """One directory for the whole run, traversable by any uid (user-namespace tests map the
    container's root to an unprivileged host uid that must still reach the rootfs)."""
    path = tempfile.mkdtemp(prefix="pyrunc-it-", dir=scratch_base())
    os.chmod(path, 0o755)
    yield path
    for mountpoint in lib.mounts_under(path):
        lib.umount_detach(mountpoint)
    if not lib.mounts_under(path):
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def busybox_rootfs(session_dir):
    """The busybox rootfs, built once from /bin/busybox; each bundle gets a copy of it."""
    return lib.build_rootfs(os.path.join(session_dir, "rootfs"), lib.busybox_applets())


@pytest.fixture(scope="session")
def default_config(pyrunc_bin, session_dir):
    """The runtime's own `pyrunc spec` output, read once; each bundle gets a deep copy."""
    path = os.path.join(session_dir, "spec")
    os.mkdir(path)
    subprocess.run([pyrunc_bin, "spec", "--bundle", path], check=True, capture_output=True,
                   timeout=lib.TIMEOUT)
    with open(os.path.join(path, "config.json")) as f:
        return json.load(f)


@pytest.fixture
def scratch(request, session_dir):
    """The test's scratch directory; its teardown removes every trace of the test."""
    name = "".join(c if c.isalnum() or c in "_-." else "_" for c in request.node.name)[:40]
    s = lib.Scratch(os.path.join(session_dir, f"{name}-{uuid.uuid4().hex[:8]}"))
    yield s
    errors = s.teardown()
    if errors:
        pytest.fail("teardown: " + "; ".join(errors), pytrace=False)


@pytest.fixture
def runtime(pyrunc_bin, scratch):
    """A Runtime with a private --root; every id it hands out is deleted at teardown."""
    rt = lib.Runtime(pyrunc_bin, os.path.join(scratch.path, "root"), scratch)
    scratch.runtimes.append(rt)
    return rt


@pytest.fixture
def make_bundle(scratch, default_config, busybox_rootfs):
    """Factory: make_bundle(name="bundle") -> a new Bundle with its own copy of the busybox
    rootfs (tests may change it freely) and a deep copy of `pyrunc spec`'s config
    (root.path "rootfs", read-only, args ["true"])."""

    def make(name="bundle"):
        path = os.path.join(scratch.path, name)
        os.mkdir(path, 0o755)
        rootfs = lib.copy_rootfs(busybox_rootfs, os.path.join(path, "rootfs"))
        config = copy.deepcopy(default_config)
        config["root"] = {"path": "rootfs", "readonly": True}
        config["process"]["args"] = ["true"]
        config["process"]["terminal"] = False
        return lib.Bundle(path, config, rootfs)

    return make


@pytest.fixture
def bundle(make_bundle):
    return make_bundle()


@pytest.fixture(scope="session")
def state_validator():
    """A validator for specs/state-schema.json (skips when the file or jsonschema is absent)."""
    schema_path = REPO_DIR / "specs" / "state-schema.json"
    if not schema_path.exists():
        pytest.skip(f"{schema_path} is absent")
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(schema_path.read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)
