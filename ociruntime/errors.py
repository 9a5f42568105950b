"""The exceptions pyrunc reports to its caller, typed by what the caller can do about them.

Every one is a PyruncError: the CLI prints any of them as one `pyrunc: <message>` line and
exits 1 (runc's status for every failure); the shim maps the type to a ttrpc/containerd
error code (shim.service).  Callers decide by type, never by a message's text.
"""


class PyruncError(Exception):
    """A failure to report as `pyrunc: <message>` with a non-zero exit status."""


class NotFound(PyruncError):
    """No such container (or process)."""


class AlreadyExists(PyruncError):
    """A container with that id exists already."""


class WrongState(PyruncError):
    """The container is not in a state the operation needs (not running, not paused, not
    stopped, not created)."""


class InvalidConfig(PyruncError):
    """The config, a flag or a request is invalid: the same call will fail again."""


class HostLimit(PyruncError):
    """The host cannot do it now (out of pids, memory, fds, rlimits): may work later."""


class Internal(PyruncError):
    """Anything else: a bug, or a failure with no better type."""


class HookError(PyruncError):
    """An OCI hook failed (non-zero exit, killed, timed out, not runnable)."""


# the types a forked child can name when it reports a failure (process.py's "error")
BY_NAME = {cls.__name__: cls for cls in (PyruncError, NotFound, AlreadyExists, WrongState,
                                         InvalidConfig, HostLimit, Internal, HookError)}

def type_name(error):
    """The name of the BY_NAME type error is (one of its bases for a subclass)."""
    return next((c.__name__ for c in type(error).__mro__ if c.__name__ in BY_NAME),
                "PyruncError")


# errno values that mean "the host ran out of something": EAGAIN ENOMEM ENFILE EMFILE
# ENOSPC EDQUOT
HOST_LIMIT_ERRNOS = frozenset((11, 12, 23, 24, 28, 122))


def from_os_error(error, message):
    """The PyruncError an unexpected OSError stands for (HostLimit or Internal)."""
    cls = HostLimit if error.errno in HOST_LIMIT_ERRNOS else Internal
    return cls(message)
