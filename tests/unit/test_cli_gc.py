"""The launcher runs pyrunc with the cyclic garbage collector off (a one-shot call frees its
memory at exit); what may live long turns it back on with run.collect_cycles_again."""

import ast
import pathlib
import subprocess
import sys

from ociruntime import cli

REPO = str(pathlib.Path(cli.__file__).resolve().parents[1])
LAUNCHER = pathlib.Path(REPO, "ociruntime", "_bin", "pyrunc")


def run_isolated(body):
    code = f"import sys\nsys.path.insert(0, {REPO!r})\n" + body
    result = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_the_launcher_turns_the_collector_off_for_pyrunc_only():
    """pyrunc's calls before their imports (their collections are what it saves); the
    shim's branch (its server lives for days) keeps the collector."""
    tree = ast.parse(LAUNCHER.read_text())
    branch = next(node for node in tree.body if isinstance(node, ast.If)
                  and "containerd-shim-" in ast.unparse(node.test))
    shim, pyrunc = ([ast.unparse(s) for s in body] for body in (branch.body, branch.orelse))
    assert pyrunc == ["import gc", "gc.disable()", "from ociruntime.cli import main"], pyrunc
    assert not any("gc" in s for s in shim), shim


def test_collect_cycles_again_collects_new_cycles_and_freezes_the_old():
    body = ("import gc\ngc.disable()\n"
            "old = []\nold.append(old)\n"  # made while off: frozen, never scanned
            "from ociruntime.libcontainer.run import collect_cycles_again\n"
            "collect_cycles_again()\n"
            "frozen = gc.get_freeze_count()\n"
            "new = []\nnew.append(new)\ndel new\n"
            "print(gc.isenabled(), frozen > 0, gc.collect() >= 1)\n"
            "collect_cycles_again()\n"  # a second call changes nothing
            "print(gc.get_freeze_count() == frozen)\n")
    assert run_isolated(body) == ["True", "True", "True", "True"]
