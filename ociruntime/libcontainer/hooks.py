"""OCI hooks: run each hook of a phase in order, the container state JSON on its stdin.

Which process runs a phase follows the spec's namespace rules: prestart and createRuntime
run from the `create` parent (runtime namespaces), createContainer from the container init
before pivot_root, startContainer from the exec stage (C), poststart from `start` and
poststop from `delete`.  A hook that exits non-zero, is killed, or outlives its `timeout`
fails; its output is kept for the error message.

A hook without `env` inherits its runner's environment, as runc's hooks do (Go's exec with
a nil Env): the runtime's for the hooks run by the runtime, the container process's env
for createContainer and startContainer (runc's init has nothing else).  `"env": []` is an
empty environment.
"""

import os

from ociruntime import OCI_VERSION, jsonlite
from ociruntime.errors import HookError

PHASES = ("prestart", "create_runtime", "create_container", "start_container", "poststart",
          "poststop")
JSON_NAMES = {"create_runtime": "createRuntime", "create_container": "createContainer",
              "start_container": "startContainer"}


# signals Python leaves ignored, which a hook must not inherit: SIGPIPE, SIGXFSZ
_PYTHON_IGNORED = (13, 25)


def state_json(container_id, status, pid, bundle, annotations):
    doc = {"ociVersion": OCI_VERSION, "id": container_id, "status": status, "bundle": bundle,
           "annotations": dict(annotations or {})}
    if pid:
        doc["pid"] = pid
    return jsonlite.dumps(doc)


def to_record(hooks):
    """Hooks as plain JSON-able dicts, for state.json (later commands run them)."""
    return [{"path": h.path, "args": list(h.args),
             "env": None if h.env is None else list(h.env), "timeout": h.timeout}
            for h in hooks]


class _Hook:
    __slots__ = ("path", "args", "env", "timeout")

    def __init__(self, path, args=(), env=(), timeout=None):
        self.path, self.args, self.env, self.timeout = path, args, env, timeout


def from_record(records):
    return [_Hook(**r) for r in records or ()]


def run_all(hooks, phase, state, warn=None, env=None):
    """Run the hooks of one phase in order.  With warn given (poststop, and poststart of a
    pre-1.3 config), a failure is logged and the next hook still runs; otherwise it raises.
    env: what a hook without `env` gets (default: this process's environment)."""
    for index, hook in enumerate(hooks):
        try:
            run_one(hook, state, env)
        except HookError as e:
            where = f"hooks.{JSON_NAMES.get(phase, phase)}[{index}]: "
            if warn is None:
                raise HookError(where + str(e)) from None
            warn(where + str(e))


def _environment(hook, default):
    """The hook's own env, else default (K=V strings), else this process's environment."""
    if hook.env is None and default is None:
        return os.environ
    entries = hook.env if hook.env is not None else default
    return dict(e.split("=", 1) if "=" in e else (e, "") for e in entries)


def run_one(hook, state, env=None):
    from ociruntime.libcontainer import monitor

    mon = monitor.current()
    env = _environment(hook, env)
    out = os.memfd_create("pyrunc-hook-output", os.MFD_CLOEXEC)
    read_end, write_end = os.pipe()
    try:
        pid = mon.start(lambda: os.posix_spawn(
            hook.path, list(hook.args) or [hook.path], env,
            file_actions=[(os.POSIX_SPAWN_DUP2, read_end, 0), (os.POSIX_SPAWN_DUP2, out, 1),
                          (os.POSIX_SPAWN_DUP2, out, 2)],
            setsigdef=_PYTHON_IGNORED))
    except (OSError, ValueError) as e:
        # ValueError: what posix_spawn refuses before the syscall (an empty args[0])
        os.close(read_end)
        os.close(write_end)
        os.close(out)
        raise HookError(f"{hook.path}: {getattr(e, 'strerror', None) or e}") from None
    os.close(read_end)
    try:
        try:
            os.write(write_end, state.encode())
        except BrokenPipeError:
            pass  # a hook need not read its stdin
        os.close(write_end)
        write_end = -1
        status = mon.wait(pid, hook.timeout or None)  # the one wait (monitor.py)
        if status is None:
            os.kill(pid, 9)
            mon.wait(pid)
            raise HookError(f"{hook.path}: timed out after {hook.timeout}s")
        if status:
            output = os.pread(out, 4096, 0).decode(errors="replace").strip()
            how = (f"killed by signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status)
                   else f"exit status {os.WEXITSTATUS(status)}")
            raise HookError(f"{hook.path}: {how}" + (f": {output}" if output else ""))
    finally:
        if write_end >= 0:
            os.close(write_end)
        os.close(out)
