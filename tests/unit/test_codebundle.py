"""The code bundle (ociruntime/codebundle.py, ociruntime.BundleFinder): a pyrunc call
imports our modules from it, each looking as normally imported; a module whose source
changed, and a bundle that is corrupt, for another interpreter or directory, or not to be
trusted, are imported the normal way; no descriptor of it stays open.  Real processes:
each check runs in a fresh `python -I -S`, as the launcher does, on a copy of the package
(with its built C parts) under a temporary directory."""

import json
import marshal
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

import ociruntime

REPO = pathlib.Path(ociruntime.__file__).resolve().parents[1]
BUNDLED, SOURCE = "BundleFinder", "SourceFileLoader"

# the child: puts TREE on sys.path as the launcher does (appended), imports the modules
# named, prints how each was imported, the descriptors left open and extra checks' results
PROBE = r"""
import sys
sys.path.append(sys.argv[1])
import ociruntime.cli
for name in sys.argv[2:]:
    __import__(name)
import inspect, json, os, traceback
out = {}
for name in ["ociruntime.cli", *sys.argv[2:]]:
    m = sys.modules[name]
    out[name] = {"loader": type(m.__loader__).__name__, "file": m.__file__,
                 "origin": m.__spec__.origin, "cached": getattr(m, "__cached__", None),
                 "path": getattr(m, "__path__", None),
                 "spec_loader": m.__spec__.loader is m.__loader__}
fds = os.listdir("/proc/self/fd")
out["fds"] = [os.readlink("/proc/self/fd/" + fd) for fd in fds if os.path.exists(
    "/proc/self/fd/" + fd)]
from ociruntime import paths
out["getsource"] = inspect.getsource(paths.join).splitlines()[0]
try:
    paths.join(1, "x")
except AttributeError:
    frame = traceback.extract_tb(sys.exc_info()[2])[-1]
    out["traceback"] = [frame.filename, frame.line]
out["edited"] = getattr(paths, "EDITED", None)
loader = sys.modules["ociruntime.cli"].__loader__
if type(loader).__name__ == "BundleFinder":  # what runpy, linecache, inspect may ask
    with open(paths.__file__) as f:
        out["loader_api"] = [loader.is_package("ociruntime.libcontainer"),
                             loader.is_package("ociruntime.cli"),
                             loader.get_filename("ociruntime.cli"),
                             loader.get_source("ociruntime.paths") == f.read(),
                             "EDITED" in loader.get_code("ociruntime.paths").co_names]
print(json.dumps(out))
"""


def bundle_file(package_dir):
    return pathlib.Path(ociruntime.bundle_path(str(package_dir)))


def build(tree):
    """`python -m ociruntime.codebundle build` for tree's package: its output line."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    result = subprocess.run([sys.executable, "-m", "ociruntime.codebundle", "build"],
                            cwd=tree, env=env, capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(str(bundle_file(tree / "ociruntime"))), result.stdout
    return result.stdout


def probe(tree, *modules):
    result = subprocess.run([sys.executable, "-I", "-S", "-c", PROBE, str(tree), *modules],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return json.loads(result.stdout)


@pytest.fixture
def tree(tmp_path):
    """A copy of the package (sources and built C parts, no bytecode) with its bundle."""
    shutil.copytree(REPO / "ociruntime", tmp_path / "ociruntime",
                    ignore=shutil.ignore_patterns("__pycache__"))
    assert build(tmp_path).endswith(" modules\n")
    return tmp_path


MODULES = ("ociruntime.libcontainer", "ociruntime.libcontainer.cgroups.v1",
           "ociruntime._native", "ociruntime._native._sys", "ociruntime.paths")


def loaders(out):
    return {name: out[name]["loader"] for name in ("ociruntime.cli", *MODULES)}


def test_modules_come_from_the_bundle_and_look_as_normally_imported(tree):
    bundled = probe(tree, *MODULES)
    assert loaders(bundled) == {**dict.fromkeys(("ociruntime.cli", *MODULES), BUNDLED),
                                "ociruntime._native._sys": "ExtensionFileLoader"}
    bundle_file(tree / "ociruntime").unlink()
    normal = probe(tree, *MODULES)
    assert set(loaders(normal).values()) == {SOURCE, "ExtensionFileLoader"}
    # the same __file__, __spec__.origin, __cached__ and package __path__ (the real
    # directory: _native's extension module is found through it)
    for name in ("ociruntime.cli", *MODULES):
        assert {**bundled[name], "loader": None} == {**normal[name], "loader": None}, name
    assert bundled["ociruntime._native"]["path"] == [str(tree / "ociruntime" / "_native")]
    # the source, for inspect and for tracebacks (the code's filename is the source's)
    assert bundled["getsource"] == normal["getsource"] == "def join(path, *parts):"
    assert bundled["traceback"][0] == str(tree / "ociruntime" / "paths.py")
    assert bundled["traceback"] == normal["traceback"] and bundled["traceback"][1]
    assert bundled["loader_api"] == [True, False, bundled["ociruntime.cli"]["file"], True,
                                     False]


def test_a_changed_source_is_imported_from_the_source(tree):
    package = tree / "ociruntime"
    with open(package / "paths.py", "a") as f:
        f.write("\nEDITED = 1\n")
    st = os.stat(package / "errors.py")  # the same content, another mtime
    os.utime(package / "errors.py", ns=(st.st_atime_ns, st.st_mtime_ns + 1000))
    (package / "added.py").write_text("ADDED = 2\n")
    out = probe(tree, "ociruntime.errors", "ociruntime.added", *MODULES)
    assert out["edited"] == 1
    assert out["loader_api"][3:] == [True, True]  # get_code: the changed source's
    assert out["ociruntime.paths"]["loader"] == SOURCE
    assert out["ociruntime.errors"]["loader"] == SOURCE
    assert out["ociruntime.added"]["loader"] == SOURCE
    assert out["ociruntime.cli"]["loader"] == BUNDLED
    # and a rebuild takes the changes in
    assert build(tree).endswith(" modules\n")
    out = probe(tree, "ociruntime.errors", "ociruntime.added", *MODULES)
    assert out["edited"] == 1
    assert {out[name]["loader"] for name in ("ociruntime.paths", "ociruntime.errors",
                                             "ociruntime.added")} == {BUNDLED}


def rewrite_header(path, change):
    """The bundle at path with change(header tuple) as its header (the code after it is
    addressed from the header's end, so stays valid)."""
    data = path.read_bytes()
    start = len(ociruntime.BUNDLE_FORMAT) + 4
    end = start + int.from_bytes(data[start - 4:start], "little")
    header = marshal.dumps(change(marshal.loads(data[start:end])))
    path.write_bytes(data[:start - 4] + len(header).to_bytes(4, "little") + header
                     + data[end:])


def other_version(header):
    return (header[0] + 1, *header[1:])


def other_tag(header):
    return (header[0], "cpython-39", *header[2:])


def other_directory(header):
    return (*header[:2], header[2] + "x", *header[3:])


def same(header):
    return header


SPOILERS = {
    "garbage": lambda p: p.write_bytes(os.urandom(4096)),
    "empty": lambda p: p.write_bytes(b""),
    "cut in the header": lambda p: p.write_bytes(p.read_bytes()[:100]),
    "old format": lambda p: p.write_bytes(b"pyrunc-codebundle-1\n" + p.read_bytes()[20:]),
    "a huge header length": lambda p: p.write_bytes(
        ociruntime.BUNDLE_FORMAT + b"\xff\xff\xff\x7f" + p.read_bytes()[24:]),
    "another Python": lambda p: rewrite_header(p, other_version),
    "another cache tag": lambda p: rewrite_header(p, other_tag),
    "another directory": lambda p: rewrite_header(p, other_directory),
    "writable by others": lambda p: p.chmod(0o646),
    "writable by the group": lambda p: p.chmod(0o664),
    "a symlink": lambda p: (p.rename(p.with_name("elsewhere")),
                            p.symlink_to(p.with_name("elsewhere"))),
    "a directory": lambda p: (p.unlink(), p.mkdir()),
    "a FIFO": lambda p: (p.unlink(), os.mkfifo(p)),
}


@pytest.mark.parametrize("spoil", SPOILERS, ids=list(SPOILERS))
def test_a_bundle_not_to_use_is_ignored(tree, spoil):
    path = bundle_file(tree / "ociruntime")
    rewrite_header(path, same)  # the test's rewriting keeps a good bundle good
    assert set(loaders(probe(tree, *MODULES)).values()) == {BUNDLED, "ExtensionFileLoader"}
    SPOILERS[spoil](path)
    assert set(loaders(probe(tree, *MODULES)).values()) == {SOURCE, "ExtensionFileLoader"}


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
def test_a_bundle_of_another_user_is_ignored_by_root(tree):
    path = bundle_file(tree / "ociruntime")
    os.chown(path, 65534, 65534)
    assert set(loaders(probe(tree, *MODULES)).values()) == {SOURCE, "ExtensionFileLoader"}


def test_damaged_code_is_compiled_from_the_source(tree):
    """An intact index over damaged code (cut short, or bytes changed): each module comes
    from its source, through the bundle's loader."""
    path = bundle_file(tree / "ociruntime")
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2] + bytes(len(data) // 4))
    out = probe(tree, *MODULES)
    assert set(loaders(out).values()) == {BUNDLED, "ExtensionFileLoader"}
    assert out["traceback"][0] == str(tree / "ociruntime" / "paths.py")


def test_a_moved_tree_imports_normally(tree, tmp_path_factory):
    moved = tmp_path_factory.mktemp("moved")
    shutil.copytree(tree / "ociruntime", moved / "ociruntime")
    out = probe(moved, *MODULES)
    assert set(loaders(out).values()) == {SOURCE, "ExtensionFileLoader"}
    assert out["ociruntime.cli"]["file"] == str(moved / "ociruntime" / "cli.py")


def test_no_descriptor_of_the_bundle_stays_open(tree):
    out = probe(tree, *MODULES)
    assert out["ociruntime.cli"]["loader"] == BUNDLED
    assert not [fd for fd in out["fds"] if "bundle" in fd], out["fds"]


def test_a_bundle_rebuilt_under_a_running_process(tree):
    """A process that read the index before a rebuild moved every module's code: what it
    imports next is compiled from the source (the build id after each code object differs),
    not read from the old offsets."""
    child = subprocess.Popen(
        [sys.executable, "-I", "-S", "-c",
         "import sys; sys.path.append(sys.argv[1]); import ociruntime; input()\n"
         "from ociruntime.libcontainer import kill\n"
         "print(type(kill.__loader__).__name__, callable(kill.kill))", str(tree)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        with open(tree / "ociruntime" / "_native" / "__init__.py", "a") as f:
            f.write("# " + "x" * 10000 + "\n")  # the first module in the bundle
        build(tree)
        out, err = child.communicate("\n", timeout=60)
    finally:
        child.kill()
        child.wait()
    assert child.returncode == 0, err
    assert out.split() == [BUNDLED, "True"]


def test_a_build_is_atomic_idempotent_and_reproducible(tree):
    path = bundle_file(tree / "ociruntime")
    first = path.stat()
    assert first.st_mode & 0o777 == 0o644
    assert build(tree).endswith(", up to date\n")  # run from the bundle itself (runpy)
    assert path.stat().st_ino == first.st_ino
    content = path.read_bytes()
    path.unlink()
    old_umask = os.umask(0o002)
    try:
        build(tree)
    finally:
        os.umask(old_umask)
    assert path.read_bytes() == content
    assert path.stat().st_mode & 0o777 == 0o644
    os.utime(tree / "ociruntime" / "log.py")
    assert not build(tree).endswith(", up to date\n")
    assert path.stat().st_ino != first.st_ino
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temp file left


def test_the_checkout_s_pyrunc_imports_through_its_bundle():
    """The launcher's call (its sys.path as it builds it, the checkout's bundle):
    no .pyc of ours is opened but the package's own, the bundle is, with O_CLOEXEC."""
    launcher = os.environ.get("PYRUNC") or str(REPO / ".venv" / "bin" / "pyrunc")
    if not os.path.exists(launcher) or not shutil.which("strace"):
        pytest.skip("needs the checkout's launcher (.ci/setup) and strace")
    with open(launcher) as f:
        interpreter = f.readline()[2:].split()[0]
    # what .ci/setup ran (up to date unless a source was edited since)
    subprocess.run([interpreter, "-m", "ociruntime.codebundle", "build"], cwd=REPO,
                   capture_output=True, timeout=120, check=True)
    result = subprocess.run(["strace", "-f", "-e", "trace=openat,open", launcher, "--version"],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    opened = [line for line in result.stderr.splitlines()
              if "open" in line and "= -1" not in line]
    ours = [line for line in opened if "/ociruntime/" in line]
    assert [line for line in ours if ".bundle" in line and "O_CLOEXEC" in line], ours
    # the package's own __init__ is imported before its finder is installed
    first = str(REPO / "ociruntime" / "__pycache__" / "__init__.")
    assert not [line for line in ours if line.split('"')[1].endswith(".pyc")
                and not line.split('"')[1].startswith(first)], ours
