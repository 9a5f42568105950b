"""Runtime log lines: runc's text or JSON format, to --log FILE or stderr.

Engines read these: containerd shows the msg of the last "error" JSON line, podman parses
the file.  On success pyrunc prints nothing: fds 1 and 2 belong to the container.  (posix,
not os: see ociruntime/paths.py.)
"""

import posix
import sys

from ociruntime import jsonlite
from ociruntime.state import rfc3339_now

_settings = {"path": None, "format": "text", "debug": False}
_APPEND = posix.O_WRONLY | posix.O_APPEND | posix.O_CREAT | posix.O_CLOEXEC


def configure(path=None, fmt="text", debug=False):
    """As runc at its start: an unknown format or a log file that cannot be opened (it is
    created now, even if nothing is logged) is an error before anything else is done."""
    from ociruntime.errors import PyruncError

    if fmt not in ("text", "json"):
        raise PyruncError(f"invalid log-format: {fmt}")
    if path:
        try:
            posix.close(posix.open(path, _APPEND, 0o644))
        except OSError as e:
            raise PyruncError(f"open {path}: {e.strerror}") from None
    _settings.update(path=path, format=fmt, debug=debug)


def _line(level, msg):
    if _settings["format"] == "json":
        return jsonlite.dumps({"level": level, "msg": msg, "time": rfc3339_now()}) + "\n"
    return f'time="{rfc3339_now()}" level={level} msg={jsonlite.dumps(msg)}\n'


def _write_log(level, msg):
    path = _settings["path"]
    if not path:
        return False
    try:
        fd = posix.open(path, _APPEND, 0o644)
    except OSError:
        return False
    try:
        posix.write(fd, _line(level, msg).encode())
    finally:
        posix.close(fd)
    return True


def error(msg):
    """The one error line: to the log file (if any) and always to stderr.  A text with
    line breaks (a kernel's or a child's message) is joined into that one line."""
    msg = " ".join(str(msg).splitlines())
    _write_log("error", msg)
    try:
        sys.stderr.write(f"pyrunc: {msg}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def warn(msg):
    if not _write_log("warning", msg):
        try:
            sys.stderr.write(f"pyrunc: warning: {msg}\n")
        except (OSError, ValueError):
            pass


def debug(msg):
    if _settings["debug"]:
        _write_log("debug", msg) or sys.stderr.write(f"pyrunc: debug: {msg}\n")
