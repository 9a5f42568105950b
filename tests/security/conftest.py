"""Fixtures for the escape tests (tests/security): real containers attempting known escapes.

The generic fixtures (runtime, make_bundle, scratch, ...) come from tests/conftest.py; this
file adds what the attacks need: a static attacker program built from attacker.c and a
console-socket receiver.  Plain helpers live in secutil.py (this directory is put on
sys.path so that test modules can import it).
"""

import os
import shutil
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import secutil  # noqa: E402


@pytest.fixture(scope="session")
def attacker_bin(session_dir):
    """attacker.c built static (it runs inside a busybox rootfs: no loader, no libc)."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to build the attacker program")
    out = os.path.join(session_dir, "attacker")
    result = subprocess.run([cc, "-static", "-O2", "-o", out, os.path.join(HERE, "attacker.c")],
                            capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        pytest.skip(f"cannot build a static attacker (static libc missing?): {result.stderr}")
    return out


@pytest.fixture
def console_socket(scratch):
    """console_socket() -> a listening secutil.ConsoleSocket in the test's scratch dir."""
    made = []

    def make():
        cs = secutil.ConsoleSocket(os.path.join(scratch.path, f"console-{len(made)}.sock"))
        made.append(cs)
        return cs

    yield make
    for cs in made:
        cs.close()
