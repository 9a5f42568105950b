"""pyrunc: an OCI container runtime (runc-compatible CLI) in Python with a small C helper.

Also how a one-shot command of ours ends (exit_process): every pyrunc call and the shim's
`start` and `delete` import this package anyway, and a module of its own cost each of
them ~0.06-0.1 ms of CPU (finding, reading and running one more file).  posix, not os: see
ociruntime/paths.py."""

import marshal
import posix
import sys

__version__ = "0.1.0"
OCI_VERSION = "1.3.0"


def exit_process(status):
    """End the command's process with status, skipping the interpreter's teardown: freeing
    every module, function and object one by one costs ~2.3 ms of CPU on each call (a third
    of what pyrunc's `state` does above the bare interpreter), and a one-shot command's
    memory goes back to the kernel whole anyway.  Nothing is lost that teardown would have
    kept: every file a command writes is closed by its `with` block or os.close, stdout and
    stderr are flushed here.  If a flush fails (EPIPE: the reader went away), or atexit or threading
    were imported (handlers to run, threads to join), Python's own exit does it all."""
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            try:
                stream.flush()
            except (OSError, ValueError):
                sys.exit(status)
    if "atexit" in sys.modules or "threading" in sys.modules or type(status) is not int:
        sys.exit(status)
    posix._exit(status & 0xFF)



# --- the code bundle (built by ociruntime/codebundle.py, which describes the file) --------
# Here, not in a module of its own, for exit_process's reason: a module more would cost
# each call about what the bundle saves on one.

BUNDLE_FORMAT = b"pyrunc-codebundle-2\n"


def bundle_path(package_dir):
    """Where the bundle of the package in package_dir is, for this interpreter."""
    return package_dir + "/__pycache__/pyrunc." + sys.implementation.cache_tag + ".bundle"


# A descriptor of the bundle is open only within one call, and O_CLOEXEC: one left open in
# a process that goes on into a container would let the container reopen for writing a
# file that root runs (CVE-2019-5736, CVE-2024-21626).  O_NONBLOCK: a FIFO in its place
# is not waited on.
_OPEN_FLAGS = posix.O_RDONLY | posix.O_CLOEXEC | posix.O_NOFOLLOW | posix.O_NONBLOCK
_CODE = type(exit_process.__code__)


# BundleFinder imports the package's modules from its code bundle: a module's code object,
# compiled by the builder from its source, is read with one open, pread and close of the
# bundle if the source is still the file it was compiled from (st_mtime_ns and st_size:
# one stat); otherwise, or for a module the bundle lacks, the path finder imports it as
# always, so an edit is always honoured.  A module looks as normally imported (__file__,
# __cached__, a package's __path__ its directory, code whose filename is its source) but
# for its loader.  ~30-80 us of CPU less a module than the path finder's way (the
# directory's stat and listing, the source's two stats, the .pyc's open, fstat, reads,
# close and checks; benchmarks/README.md, "One code bundle").
#
# The index is read once: the names (name -> first of its five records) and the records as
# one array of unsigned 64-bit ints (mtime_ns, size, is a package, offset, length), half
# the CPU a tuple per module costs to load in a fresh process; the source's path follows
# from the name.  Each code object ends with the bundle's build id, so a bundle replaced
# since the index was read (a rebuild under a long-lived process) is seen without an
# fstat: the module is then compiled from its source.  Comments, not docstrings, in this
# class: every call unmarshals this module's code (~3 us a KB in a fresh process).
class BundleFinder:
    def __init__(self, package_dir, path, build_id, base, names, records):
        self.root, self.path, self.build_id = package_dir, path, build_id
        self.base, self.names, self.records = base, names, records

    # The finder for package_dir's bundle, or None: none there, or one that is not for this
    # interpreter (sys.hexversion, cache tag), this directory or this format, corrupt, or
    # not to be trusted: not a regular file, owned by neither root nor us, or writable by
    # group or others (code root may run is root's, and only its owner's to change).
    @classmethod
    def load(cls, package_dir):
        if sys.flags.optimize or sys.pycache_prefix is not None:  # the .pyc would differ
            return None
        path = bundle_path(package_dir)
        try:
            fd = posix.open(path, _OPEN_FLAGS)
        except OSError:
            return None
        try:
            st = posix.fstat(fd)
            # a regular file (S_IFREG) not writable by group or others (0o022), root's or ours
            if st.st_mode & 0o170022 != 0o100000 or (st.st_uid and st.st_uid != posix.geteuid()):
                return None
            head = posix.read(fd, 8192)
            start = len(BUNDLE_FORMAT) + 4
            base = start + int.from_bytes(head[start - 4:start], "little")
            if head[:start - 4] != BUNDLE_FORMAT or base > st.st_size:
                return None
            if base > len(head):
                head += posix.pread(fd, base - len(head), len(head))
                if len(head) != base:
                    return None
            version, tag, built_in, build_id, names, records = marshal.loads(head[start:base])
            if (version != sys.hexversion or tag != sys.implementation.cache_tag
                    or built_in != package_dir or type(names) is not dict):
                return None
            return cls(package_dir, path, build_id, base, names, memoryview(records).cast("Q"))
        except Exception:  # corrupt: whatever marshal, the unpacking or the cast raise
            return None
        finally:
            posix.close(fd)

    def find_spec(self, name, path=None, target=None):
        if name not in self.names:
            return None
        try:
            origin, i, is_package = self._source(name)
            st = posix.stat(origin)
            if st.st_mtime_ns != self.records[i] or st.st_size != self.records[i + 1]:
                return None
        except Exception:  # its source gone, or a damaged entry: the path finder's
            return None
        spec = _ModuleSpec(name, self, origin=origin, is_package=is_package)
        directory, _, filename = origin.rpartition("/")
        spec.has_location = True
        spec.cached = (directory + "/__pycache__/" + filename[:-3] + "."
                       + sys.implementation.cache_tag + ".pyc")
        if is_package:
            spec.submodule_search_locations.append(directory)
        spec.loader_state = i
        return spec

    # (the module's source path, the index of its first record, is a package)
    def _source(self, name):
        i = self.names[name]
        rel = name.partition(".")[2].replace(".", "/")
        if self.records[i + 2]:
            return (self.root + "/" + rel if rel else self.root) + "/__init__.py", i, True
        return self.root + "/" + rel + ".py", i, False

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        spec = module.__spec__
        exec(self._code(spec.loader_state, spec.origin), module.__dict__)

    # module i's code object; compiled from origin if the bundle was replaced since its
    # index was read, or is damaged
    def _code(self, i, origin):
        try:
            fd = posix.open(self.path, _OPEN_FLAGS)
            try:
                data = posix.pread(fd, self.records[i + 4], self.base + self.records[i + 3])
            finally:
                posix.close(fd)
            if data.endswith(self.build_id):
                code = marshal.loads(data)  # which ignores the id after the code
                if type(code) is _CODE:
                    return code
        except Exception:  # the bundle gone or damaged: the source's
            pass
        return _compile(origin)

    # what tools ask of a loader: runpy (`python -m ociruntime.X`), linecache, inspect,
    # importlib.resources
    def get_code(self, name):
        spec = self.find_spec(name)
        if spec is None:  # changed since the build: from the source
            return _compile(self.get_filename(name))
        return self._code(spec.loader_state, spec.origin)

    def get_filename(self, name):
        if name not in self.names:
            raise ImportError(f"{name} is not in pyrunc's code bundle", name=name)
        return self._source(name)[0]

    def get_source(self, name):
        from importlib.util import decode_source

        with open(self.get_filename(name), "rb") as f:
            return decode_source(f.read())

    def is_package(self, name):
        return self.get_filename(name).endswith("/__init__.py")

    def get_resource_reader(self, name):
        from importlib.resources.readers import FileReader
        from types import SimpleNamespace

        return FileReader(SimpleNamespace(path=self.get_filename(name)))


def _compile(source):
    with open(source, "rb") as f:
        return compile(f.read(), source, "exec", dont_inherit=True)


def _install_bundle():
    finder = BundleFinder.load(__path__[0])
    if finder is not None:
        # a new import of the package (a test's) replaces the finder the last one installed
        sys.meta_path[:] = [finder] + [f for f in sys.meta_path
                                       if getattr(f, "path", None) != finder.path]


_ModuleSpec = type(__spec__)
_install_bundle()
