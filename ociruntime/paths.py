"""The few path functions the small calls (state, start, kill, delete) need, on `posix`.

`import os` costs every interpreter ~1 ms of CPU (a tenth of a `pyrunc state`): os pulls
in _collections_abc (its ABC classes), posixpath, genericpath and stat, and the bare
interpreter the launcher starts (-I -S) imports none of them.  Everything else os gives
these calls is `posix` itself, the public module os re-exports (posix.open, posix.kill,
the O_ flags...: the same functions, raising the same OSErrors).  So the modules on
their path (the launcher, cli, log, state, exit_process, container's operations, the cgroup
managers' reading and removing, the shim's `start` and `delete`) use posix and these
helpers, and so do create's and run's for a plain config (the config model, the fork
chain, the rootfs): ~1 ms of CPU off every create and run, whose process tree costs ~30.
What only some configs or commands need (hooks, idmapped mounts, exec, a cgroup's own
sub-cgroups) may import os.  tests/integration/test_cli_imports.py and
tests/shim/test_imports.py hold them to it.

Each helper means what os.path's function of the same name means, for str paths."""

import posix
import sys

_S_IFMT, _S_IFDIR, _S_IFLNK = 0o170000, 0o040000, 0o120000


def join(path, *parts):
    """os.path.join: a part that is absolute starts the path again."""
    for part in parts:
        if part.startswith("/"):
            path = part
        elif not path or path.endswith("/"):
            path += part
        else:
            path += "/" + part
    return path


def dirname(path):
    """os.path.dirname: everything before the last slash, its own trailing slashes off
    (but "/" stays "/")."""
    head = path[:path.rfind("/") + 1]
    if head and head != "/" * len(head):
        head = head.rstrip("/")
    return head


def isdir(path):
    try:
        return posix.stat(path).st_mode & _S_IFMT == _S_IFDIR
    except (OSError, ValueError):
        return False


def exists(path):
    return _stats(posix.stat, path)


def lexists(path):
    return _stats(posix.lstat, path)


def _stats(stat, path):
    try:
        stat(path)
    except (OSError, ValueError):
        return False
    return True


def abspath(path):
    """os.path.abspath; os itself only for a path that is not already absolute and
    normal (the shim's bundle, a getcwd(), always is)."""
    if _is_normal(path):
        return path
    import os

    return os.path.abspath(path)


def realpath(path):
    """os.path.realpath; os itself only unless path is absolute, normal and no component
    of it is a symbolic link (a bundle under containerd's state: the common case)."""
    if _is_normal(path):
        parts = path.split("/")
        try:
            for end in range(2, len(parts) + 1):
                if posix.lstat("/".join(parts[:end])).st_mode & _S_IFMT == _S_IFLNK:
                    break
            else:
                return path
        except FileNotFoundError:
            return path  # nothing below a missing component can be a link
        except (OSError, ValueError):
            pass
    import os

    return os.path.realpath(path)


def normpath(path):
    """os.path.normpath for a str path: no empty or "." components, ".." resolved
    lexically (never above "/"), and a leading "//" kept as POSIX allows."""
    if not path:
        return "."
    slashes = 0
    if path.startswith("/"):
        slashes = 2 if path.startswith("//") and not path.startswith("///") else 1
    parts = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part != ".." or (not slashes and not parts) or (parts and parts[-1] == ".."):
            parts.append(part)
        elif parts:
            parts.pop()
    return "/" * slashes + "/".join(parts) or "."


def fsencode(text):
    """os.fsencode for a str: the filesystem encoding and its error handler."""
    return text.encode(sys.getfilesystemencoding(), sys.getfilesystemencodeerrors())


def _is_normal(path):
    """Whether path is absolute with no empty, "." or ".." component (as getcwd's)."""
    return path.startswith("/") and not {"", ".", ".."} & set(path.split("/")[1:])


def getenv(name):
    """os.environ.get(name) for a str name: posix.environ's keys and values are bytes,
    decoded as os decodes them (the filesystem encoding and its error handler)."""
    value = posix.environ.get(name.encode())
    if value is None:
        return None
    return value.decode(sys.getfilesystemencoding(), sys.getfilesystemencodeerrors())


def read_bytes(path, fstat=False):
    """A file's bytes (with fstat, (its bytes, its fstat)), as open(path, "rb").read()
    reads them, with os calls: open() builds a FileIO and a buffer and asks the kernel for
    two fstats, two lseeks and a TTY ioctl besides the reads (~5-10 us of CPU a file; the
    small calls read state.json, /proc/PID/stat and a freezer file)."""
    fd = posix.open(path, posix.O_RDONLY | posix.O_CLOEXEC)
    try:
        chunks = []
        while True:
            chunk = posix.read(fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
        data = b"".join(chunks)
        return (data, posix.fstat(fd)) if fstat else data
    finally:
        posix.close(fd)
