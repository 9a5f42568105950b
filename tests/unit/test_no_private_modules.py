"""No module of the runtime or the shim imports a private module of CPython (issue 15: `_json`,
`_signal`, `_socket`, ... change or vanish between versions; public APIs, or C of our own in
ociruntime/_native, where a public module costs too much).

Read from the source (AST), so that a lazy import inside a function counts as much as one at
the top: every `import _x...`, `from _x... import`, `__import__("_x")` and
`importlib.import_module("_x")` whose top-level name starts with one underscore is refused,
unless ALLOWED says why it is not CPython's private API.  Our own modules are named from
their package (ociruntime._native._helper) or relatively, and are never a top-level name.
"""

import ast
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
PACKAGES = ("ociruntime", "shim")

ALLOWED = {
    "_thread": "documented in the library reference (_thread: Low-level threading API)",
    "_cffi_backend": "cffi's run-time module (every module cffi generates imports it), "
                     "not CPython's: none of ours imports it by name; one that did would "
                     "be using cffi's API",
}


def sources():
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            if "__pycache__" not in path.parts:
                yield path


def imported_names(tree):
    """(line, module) for each module the code names for import, absolute ones only."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module
        elif isinstance(node, ast.Call) and node.args and _is_import_call(node.func):
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                yield node.lineno, arg.value


def _is_import_call(func):
    if isinstance(func, ast.Name):
        return func.id in ("__import__", "import_module")
    return isinstance(func, ast.Attribute) and func.attr == "import_module"


def private(name):
    top = name.split(".")[0]
    return top.startswith("_") and not top.startswith("__") and top not in ALLOWED


def test_the_scan_sees_every_form():
    code = ("import _signal\nimport os, _socket as s\nfrom _json import scanner\n"
            "def f():\n    import _posixsubprocess.x\n"
            "importlib.import_module('_ssl')\n__import__('_pickle')\n"
            "import _thread\nfrom . import _helper\nfrom ociruntime._native import _helper\n"
            "from __future__ import annotations\n")
    found = [name for _, name in imported_names(ast.parse(code)) if private(name)]
    assert found == ["_signal", "_socket", "_json", "_posixsubprocess.x", "_ssl", "_pickle"]


@pytest.mark.parametrize("path", list(sources()), ids=lambda p: str(p.relative_to(REPO)))
def test_no_private_cpython_module_is_imported(path):
    relative = str(path.relative_to(REPO))
    tree = ast.parse(path.read_text(), filename=relative)
    bad = [f"{relative}:{line}: {name}" for line, name in imported_names(tree) if private(name)]
    assert not bad, bad


def test_the_scan_covers_the_packages():
    paths = {str(p.relative_to(REPO)) for p in sources()}
    assert "ociruntime/cli.py" in paths and "shim/cli.py" in paths
    assert "ociruntime/libcontainer/process.py" in paths
