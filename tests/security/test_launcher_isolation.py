"""The installed launchers run Python isolated (-I): engines run them as root with their own
environment, and a PYTHONPATH holding a sitecustomize.py must not run code as root.

pip rewrites the launchers' `#!python -I` line and drops the flag; .ci/setup puts it back.
These tests run the installed scripts as an engine would and look for the injected code's
mark."""

import os
import pathlib
import subprocess

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
SHIM = REPO / ".venv" / "bin" / "containerd-shim-pyrunc-v2"


@pytest.fixture
def injected(tmp_path):
    """A PYTHONPATH directory whose sitecustomize.py leaves a mark when imported."""
    mark = tmp_path / "imported"
    (tmp_path / "sitecustomize.py").write_text(f"open({str(mark)!r}, 'w').close()\n")
    env = dict(os.environ, PYTHONPATH=str(tmp_path), PYTHONHOME="/nonexistent-python-home")
    return env, mark


def test_pyrunc_ignores_pythonpath(pyrunc_bin, injected):
    env, mark = injected
    result = subprocess.run([pyrunc_bin, "--version"], env=env, capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("pyrunc version")
    assert not mark.exists(), "pyrunc imported a sitecustomize.py from PYTHONPATH"


def test_shim_ignores_pythonpath(injected):
    """Through the front (the C binary), which execs the Python shim for -v."""
    if not os.access(SHIM, os.X_OK):
        pytest.skip(f"{SHIM} is not installed (.ci/setup installs it)")
    env, mark = injected
    result = subprocess.run([str(SHIM), "-v"], env=env, capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 0, result.stderr
    assert "Version" in result.stdout
    assert not mark.exists(), "the shim imported a sitecustomize.py from PYTHONPATH"


@pytest.mark.parametrize("name", ["pyrunc", "containerd-shim-pyrunc-v2-py"])
def test_installed_launchers_are_isolated_and_skip_site(name):
    """pip rewrites the #! line without its flags; .ci/setup puts `-IS` back on both (the
    Python shim, which the shim's C front execs, is the same launcher under another
    name), or every call would pay for site and, worse, honour PYTHONPATH as root."""
    script = REPO / ".venv" / "bin" / name
    if not script.exists():
        pytest.skip(f"{script} is not installed (.ci/setup installs it)")
    first = script.read_text().splitlines()[0]
    assert first.startswith("#!") and first.endswith(" -IS"), first
