"""pyrunc on a pure cgroup v2 host, for real: a throwaway VM.

This host has the v1 hybrid layout, and its cgroup mounts are not ours to change, so the
v2 checks (tests/cgroupv2/guest/v2_checks.py) run in a VM: Debian's kernel (taken from
the linux-image-amd64 package by .ci/setup-vm, nothing installed on the host) booted by
virtme-ng under QEMU in software emulation (KVM here cannot boot a normal kernel), with
the host's root shared read-only over 9p and `cgroup_no_v1=all`, so /sys/fs/cgroup is
cgroup2 alone. Guest code runs ~15x slower and a boot costs ~25 s, so the checks run as
one pytest batch in one boot; each then shows up here as its own test, with the guest's
own failure text. The guest's exit status and output reach this side through a
read-write directory and the console.
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
KERNEL_DIR = os.environ.get("PYRUNC_VM_KERNEL_DIR", "/var/cache/pyrunc-vm/kernel")
VNG = os.path.join(os.path.dirname(sys.executable), "vng")
BOOT_TIMEOUT = 1200  # seconds for boot + the whole batch under emulation
# .ci/setup-vm writes this once the VM tools are installed: with it a missing piece is a
# failure (CI must run the v2 checks), without it a skip (a developer's machine)
SETUP_MARKER = "/var/cache/pyrunc-vm/installed"
CONTROLLERS = "cpu cpuset io memory pids hugetlb rdma misc"


def check_names():
    with open(CHECKS) as f:
        tree = ast.parse(f.read())
    return [node.name for node in tree.body
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")]


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


@pytest.fixture(scope="session")
def guest_results():
    kernel, why = _missing()
    if kernel is None:
        if os.path.exists(SETUP_MARKER):
            pytest.fail(why)
        pytest.skip(why)
    outdir = tempfile.mkdtemp(prefix="pyrunc-v2vm-")
    os.chmod(outdir, 0o755)
    junit = os.path.join(outdir, "junit.xml")
    script = (
        f"for c in {CONTROLLERS}; do echo +$c > /sys/fs/cgroup/cgroup.subtree_control "
        "2>/dev/null; done; "
        f"cd {REPO} && PYTHONDONTWRITEBYTECODE=1 "
        f"{sys.executable} -m pytest -q -p no:cacheprovider -o 'python_files=v2_*.py' "
        f"-o addopts= {os.path.relpath(os.path.dirname(CHECKS), REPO)} "
        f"--junitxml={junit}; echo guest-pytest-exit=$?")
    env = dict(os.environ, PATH=os.path.dirname(VNG) + ":" + os.environ.get("PATH", ""))
    try:
        done = subprocess.run(
            [VNG, "--run", kernel, "--disable-kvm", "--force-9p", "--memory", "2G",
             "--cpus", "2", "--append", "cgroup_no_v1=all", "--rwdir", outdir,
             "--exec", script],
            capture_output=True, text=True, timeout=BOOT_TIMEOUT, env=env, cwd=outdir,
            stdin=subprocess.DEVNULL)
        console = done.stdout + done.stderr
        results = {}
        if os.path.exists(junit):
            for case in ET.parse(junit).getroot().iter("testcase"):
                outcome, text = "passed", ""
                for child in case:
                    if child.tag in ("failure", "error", "skipped"):
                        outcome = child.tag
                        text = (child.get("message") or "") + "\n" + (child.text or "")
                results[case.get("name")] = (outcome, text)
        yield {"results": results, "console": console, "exit": done.returncode}
    finally:
        shutil.rmtree(outdir, ignore_errors=True)


@pytest.mark.parametrize("name", check_names())
def test_on_cgroup_v2(guest_results, name):
    results = guest_results["results"]
    if name not in results:
        pytest.fail(f"the guest did not report {name} (VM exit {guest_results['exit']}); "
                    f"console:\n{guest_results['console'][-6000:]}")
    outcome, text = results[name]
    assert outcome == "passed", f"in the v2 guest: {outcome}\n{text[-4000:]}"
