"""cgroups.prime_migration(): create rewrites the runtime's own pid into its own cgroup to
start the kernel's grace period early.  It must move nothing: no other process (only
os.getpid() is written), and not the runtime either, wherever it runs: in a cgroup
namespace with the host's cgroupfs, /proc/self/cgroup says "/" and the joined path named
the hierarchy's root, so the runtime was moved out of its cgroup."""

import os
import shutil
import subprocess
import sys
import uuid

import pytest

from pyrunc_testlib import CGROUP_ROOT, ID_PREFIX, TIMEOUT

PROBE = """
from ociruntime.libcontainer import cgroups
print(open("/proc/self/cgroup").readline().strip())
print(getattr(cgroups, "_own_procs_file", lambda: "?")())
cgroups.prime_migration()()
print(open("/proc/self/cgroup").readline().strip())
"""


def first_hierarchy_dir():
    """The directory of this process's cgroup in the first hierarchy /proc/self/cgroup
    lists (the one prime_migration writes to), as the host's mount shows it."""
    with open("/proc/self/cgroup") as f:
        _, controllers, path = f.readline().rstrip("\n").split(":", 2)
    name = controllers.split(",")[0].replace("name=", "")
    if not controllers:
        name = "" if os.path.exists(f"{CGROUP_ROOT}/cgroup.procs") else "unified"
    return os.path.join(CGROUP_ROOT, name, path.lstrip("/"))


@pytest.fixture
def own_cgroup():
    """A new cgroup below ours in the first hierarchy, removed at teardown."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare(1)")
    path = os.path.join(first_hierarchy_dir(), ID_PREFIX + uuid.uuid4().hex[:12])
    os.mkdir(path)
    yield path
    os.rmdir(path)  # the probe has exited: the cgroup is empty


def probe(cgroup, *wrapper):
    """Run PROBE in cgroup (the process moved there before it starts, wrapped by wrapper);
    its lines: own cgroup, the procs file it would write, own cgroup after the prime."""
    script = f'echo $$ > {cgroup}/cgroup.procs && exec "$@"'
    result = subprocess.run(["sh", "-c", script, "sh", *wrapper, sys.executable, "-c", PROBE],
                            capture_output=True, text=True, timeout=TIMEOUT, check=True)
    return result.stdout.splitlines()


def test_the_prime_writes_into_the_runtime_s_own_cgroup(own_cgroup):
    before, procs, after = probe(own_cgroup)
    assert procs == f"{own_cgroup}/cgroup.procs"
    assert before == after and before.endswith("/" + os.path.basename(own_cgroup))


def test_the_prime_moves_nothing_in_a_cgroup_namespace_with_the_host_s_cgroupfs(own_cgroup):
    before, procs, after = probe(own_cgroup, "unshare", "--cgroup")
    assert before.endswith(":/"), before  # the namespace's root is own_cgroup
    assert after == before, "the prime moved the runtime out of its cgroup"
    assert procs == "None"
