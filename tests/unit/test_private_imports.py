"""No module of the runtime or the shim imports another module's underscore names: what
one module offers another is its public API (the C parts in ociruntime/_native are the
exception: they are private modules of their package by name); dunders such as
__version__ are public."""

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]


def private_imports():
    found = []
    for top in ("ociruntime", "shim"):
        for path in (ROOT / top).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if (isinstance(node, ast.ImportFrom) and node.module
                        and node.module.split(".")[0] in ("ociruntime", "shim")
                        and not node.module.startswith("ociruntime._native")):
                    found += [(str(path.relative_to(ROOT)), node.lineno, alias.name)
                              for alias in node.names
                              if alias.name.startswith("_") and not alias.name.endswith("__")]
    return found


def test_no_module_imports_anothers_underscore_names():
    assert private_imports() == []
