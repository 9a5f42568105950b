"""Every child the library forks and waits for goes through the process monitor
(libcontainer/monitor.py): a long-lived caller with a reaper of its own (the shim's
waitpid(-1)) would otherwise take the status from under the library's wait."""

import ast
import pathlib

LIBRARY = pathlib.Path(__file__).resolve().parents[2] / "ociruntime"

# the only direct calls, each for a reason the monitor cannot serve
ALLOWED = {
    ("libcontainer/monitor.py", "fork"),  # the monitor itself
    ("libcontainer/monitor.py", "waitpid"),
    # the fork chain's intermediate makes the init and exits: it never waits for it
    ("libcontainer/init.py", "fork"),
    # run/exec in the foreground: a subreaper reaping every orphan until its program ends
    ("libcontainer/run.py", "waitpid"),
}


def direct_calls():
    found = set()
    for path in LIBRARY.rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "os"
                    and node.func.attr in ("fork", "waitpid", "wait", "wait4", "waitid")):
                found.add((path.relative_to(LIBRARY).as_posix(), node.func.attr, node.lineno))
    return found


def test_the_library_forks_and_waits_through_the_monitor():
    stray = sorted(call for call in direct_calls() if call[:2] not in ALLOWED)
    assert not stray, stray
