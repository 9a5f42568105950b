"""pyrunc: an OCI container runtime (runc-compatible CLI) in Python with a small C helper.

Also how a one-shot command of ours ends (exit_process): every pyrunc call and the shim's
`start` and `delete` import this package anyway, and a module of its own cost each of
them ~0.06-0.1 ms of CPU (finding, reading and running one more file).  posix, not os: see
ociruntime/paths.py."""

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
