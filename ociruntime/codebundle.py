"""Builds the package's code bundle: every pure-Python module of ociruntime compiled into
one file per interpreter (ociruntime.bundle_path), which ociruntime.BundleFinder imports
them from.  Every pyrunc call is a fresh interpreter importing 10-34 of our modules; the
path finder's way costs each ~50-100 us of CPU (a directory listing, stats, the .pyc's
open, read and checks), the bundle's ~30-80 less (benchmarks/README.md, "One code
bundle"; ~0.13 ms less for `state`, ~0.8-1.3 for `run`, once the finder's own cost is paid).
.ci/setup builds it for each venv it sets up, after compileall:

    python -m ociruntime.codebundle build [PACKAGE_DIR]

PACKAGE_DIR (by default this package's directory) must be spelled as the importing
interpreter's sys.path will spell it: the bundle holds that path, and is ignored anywhere
else (a moved or copied tree imports normally until it is built again there).  The shim's
modules are not in it: its server is long-lived, forked warm by its starter.

The file: BUNDLE_FORMAT, the header's length (4 bytes, little-endian), the header
(marshal: sys.hexversion, sys.implementation.cache_tag, the package directory, the build
id, the names, the records), then each module's code object (marshal) followed by the
build id (16 bytes of a SHA-256 of the rest).  The names: module name -> index of its
first record; a module's five records, unsigned 64-bit ints in the machine's byte order
(a bundle from another machine's order matches no source's mtime and size): the source's
st_mtime_ns and st_size, whether it is a package (its source then __init__.py), the
offset of its code from the header's end, the code's length with the id.  Written to a
temporary file renamed over the old one, mode 0644 (BundleFinder ignores a bundle writable
by group or others), and only when a source or the interpreter changed: the same sources
give the same file, and a process that read the old index reads the new one's code.
"""

import argparse
import hashlib
import importlib.machinery
import marshal
import os
import sys
import tempfile

import ociruntime

ID_SIZE = 16  # the build id's bytes after each code object


def modules(package_dir, package="ociruntime"):
    """(name, source path, is a package) of every module the path finder would import
    from a .py file below package_dir: not one that a package directory or an extension
    module of the same name shadows, nor any in a directory without __init__.py."""
    names = os.listdir(package_dir)
    shadowing = {name.split(".")[0] for name in names
                 if name.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))}
    for name in sorted(names):
        path = os.path.join(package_dir, name)
        if name == "__init__.py":
            yield package, path, True
        elif name.endswith(".py") and name[:-3] not in shadowing and name.count(".") == 1:
            if not os.path.isfile(os.path.join(package_dir, name[:-3], "__init__.py")):
                yield f"{package}.{name[:-3]}", path, False
        elif (name.isidentifier() and os.path.isdir(path)
              and os.path.isfile(os.path.join(path, "__init__.py"))):
            yield from modules(path, f"{package}.{name}")


def build(package_dir=None):
    """Writes package_dir's bundle unless it is up to date: (its path, the number of
    modules, whether it was written)."""
    package_dir = os.path.abspath(package_dir or ociruntime.__path__[0])
    path = ociruntime.bundle_path(package_dir)
    sources = []
    for name, source, is_package in modules(package_dir):
        st = os.stat(source)  # before the read: an edit in between makes the entry stale
        sources.append((name, source, st.st_mtime_ns, st.st_size, int(is_package)))
    current = ociruntime.BundleFinder.load(package_dir)
    if current is not None and current_sources(current) == {
            name: (mtime_ns, size, is_package) for name, _, mtime_ns, size, is_package
            in sources}:
        return path, len(sources), False
    names, records, blobs, offset = {}, [], [], 0
    for name, source, mtime_ns, size, is_package in sources:
        with open(source, "rb") as f:
            code = compile(f.read(), source, "exec", dont_inherit=True, optimize=0)
        blobs.append(marshal.dumps(code))
        names[name] = len(records)
        records += (mtime_ns, size, is_package, offset, len(blobs[-1]) + ID_SIZE)
        offset += len(blobs[-1]) + ID_SIZE
    records = b"".join(n.to_bytes(8, sys.byteorder) for n in records)
    digest = hashlib.sha256(repr((sys.hexversion, sys.implementation.cache_tag, package_dir,
                                  names)).encode() + records)
    for blob in blobs:
        digest.update(blob)
    build_id = digest.digest()[:ID_SIZE]
    header = marshal.dumps((sys.hexversion, sys.implementation.cache_tag, package_dir,
                            build_id, names, records))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".pyrunc-bundle.")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o644)
            f.write(ociruntime.BUNDLE_FORMAT + len(header).to_bytes(4, "little") + header)
            for blob in blobs:
                f.write(blob + build_id)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except BaseException:
        try:
            os.unlink(temp)
        except FileNotFoundError:
            pass
        raise
    return path, len(sources), True


def current_sources(finder):
    """{name: (st_mtime_ns, st_size, is a package)} of the sources finder's bundle holds."""
    r = finder.records
    return {name: (r[i], r[i + 1], r[i + 2]) for name, i in finder.names.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m ociruntime.codebundle",
                                     description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    cmd = sub.add_parser("build", help="write the bundle of this interpreter")
    cmd.add_argument("package_dir", nargs="?", help="the ociruntime directory to bundle")
    args = parser.parse_args(argv)
    path, count, written = build(args.package_dir)
    print(f"{path}: {count} modules{'' if written else ', up to date'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
