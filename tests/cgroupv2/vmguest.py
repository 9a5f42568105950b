"""The throwaway VM that tests/cgroupv2 boots, and the one pytest batch run inside it.

This host has the v1 hybrid layout (its cgroup mounts are not ours to change) and a newer
kernel than most users run, so two kinds of checks run in a VM: Debian's kernel (taken
from the linux-image-amd64 package by .ci/setup-vm, nothing installed on the host; 6.1
for Debian 12) booted by virtme-ng under QEMU in software emulation (KVM here cannot boot
a normal kernel), with the host's root shared read-only over 9p and `cgroup_no_v1=all`,
so /sys/fs/cgroup is cgroup2 alone:
  - the v2 checks (guest/v2_checks.py), which need a pure cgroup v2 host;
  - host test files that must also pass on that older kernel (OLD_KERNEL_FILES).
Guest code runs ~15x slower and a boot costs ~25 s, so all of them run as one pytest
batch in one boot; each then shows up on the host as its own test, with the guest's own
failure text.  The guest's junit report and output reach the host through a read-write
directory and the console.
"""

import ast
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
CHECKS = os.path.join(HERE, "guest", "v2_checks.py")
# a container joining another's pid namespace, and CVE-2019-5736 with it: its /proc is
# made in a way (procfs_pidns) whose kernel side changed up to this host's kernel (6.18);
# the cgroup joins (clone3 CLONE_INTO_CGROUP on a pure cgroup2 host, and its fallback)
OLD_KERNEL_FILES = ("tests/security/test_join_pidns.py", "tests/security/test_cve_2019_5736.py",
                    "tests/cgroups/test_cgroup_joins.py")
KERNEL_DIR = os.environ.get("PYRUNC_VM_KERNEL_DIR", "/var/cache/pyrunc-vm/kernel")
VNG = os.path.join(os.path.dirname(sys.executable), "vng")
BOOT_TIMEOUT = 1800  # seconds for boot + the whole batch under emulation
# .ci/setup-vm writes this once the VM tools are installed: with it a missing piece is a
# failure (CI must run the VM batch), without it a skip (a developer's machine)
SETUP_MARKER = "/var/cache/pyrunc-vm/installed"
CONTROLLERS = "cpu cpuset io memory pids hugetlb rdma misc"
# pyrunc_testlib.TIMEOUT in the guest: a delete --force there once took over the usual 30 s
# with the host's two cores busy (TIMEOUT bounds a hang, it measures nothing)
GUEST_TIMEOUT = 120


def functions_of(path):
    """The test functions of a file (module level, as the guest's junit names them)."""
    with open(os.path.join(REPO, path)) as f:
        tree = ast.parse(f.read())
    return [node.name for node in tree.body
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")]


def _classname(path):
    """junit's classname for a test file given relative to the repo."""
    return os.path.splitext(path)[0].replace("/", ".")


def _missing():
    kernels = sorted(glob.glob(os.path.join(KERNEL_DIR, "boot", "vmlinuz-*")))
    if not kernels:
        return None, f"no kernel under {KERNEL_DIR}/boot (.ci/setup-vm fetches it)"
    for tool in ("qemu-system-x86_64",):
        if shutil.which(tool) is None:
            return None, f"{tool} is not installed (.ci/setup-vm installs it)"
    if not os.access(VNG, os.X_OK):
        return None, f"{VNG} is not installed (.ci/setup-vm installs virtme-ng)"
    return kernels[-1], None


def run_batch():
    """Boot the VM once and run every guest test; yields {"results": {(classname, name):
    (outcome, text)}, "console", "exit", "kernel"}.  A generator: the session fixture."""
    kernel, why = _missing()
    if kernel is None:
        if os.path.exists(SETUP_MARKER):
            pytest.fail(why)
        pytest.skip(why)
    outdir = tempfile.mkdtemp(prefix="pyrunc-vm-")
    os.chmod(outdir, 0o755)
    junit = os.path.join(outdir, "junit.xml")
    # files named on the command line are collected whatever python_files says
    script = (
        f"for c in {CONTROLLERS}; do echo +$c > /sys/fs/cgroup/cgroup.subtree_control "
        "2>/dev/null; done; uname -r; "
        f"cd {REPO} && PYTHONDONTWRITEBYTECODE=1 PYRUNC_TEST_TIMEOUT={GUEST_TIMEOUT} "
        f"{sys.executable} -m pytest -q -p no:cacheprovider -o 'python_files=v2_*.py' "
        f"-o addopts= {os.path.relpath(os.path.dirname(CHECKS), REPO)} "
        f"{' '.join(OLD_KERNEL_FILES)} --junitxml={junit}; echo guest-pytest-exit=$?")
    env = dict(os.environ, PATH=os.path.dirname(VNG) + ":" + os.environ.get("PATH", ""))
    try:
        done = subprocess.run(
            [VNG, "--run", kernel, "--disable-kvm", "--force-9p", "--memory", "2G",
             "--cpus", "2", "--append", "cgroup_no_v1=all", "--rwdir", outdir,
             "--exec", script],
            capture_output=True, text=True, timeout=BOOT_TIMEOUT, env=env, cwd=outdir,
            stdin=subprocess.DEVNULL)
        results = {}
        if os.path.exists(junit):
            for case in ET.parse(junit).getroot().iter("testcase"):
                outcome, text = "passed", ""
                for child in case:
                    if child.tag in ("failure", "error", "skipped"):
                        outcome = child.tag
                        text = (child.get("message") or "") + "\n" + (child.text or "")
                results[(case.get("classname"), case.get("name"))] = (outcome, text)
        yield {"results": results, "console": done.stdout + done.stderr,
               "exit": done.returncode, "kernel": os.path.basename(kernel)}
    finally:
        shutil.rmtree(outdir, ignore_errors=True)


def assert_passed(guest, path, name):
    """The guest's verdict on one test of a file (relative to the repo)."""
    result = guest["results"].get((_classname(path), name))
    if result is None:
        pytest.fail(f"the guest did not report {path}::{name} (VM exit {guest['exit']}); "
                    f"console:\n{guest['console'][-6000:]}")
    outcome, text = result
    assert outcome == "passed", f"in the VM ({guest['kernel']}): {outcome}\n{text[-4000:]}"
