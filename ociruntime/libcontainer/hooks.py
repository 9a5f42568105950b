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

A hook gets fds 0-2 only (the state on stdin, its output captured on 1 and 2), never an
fd the runtime inherited from its caller, and runs in the directory its runner names:
the bundle for prestart, createRuntime and poststart (runc 1.1 runs them from `create`,
which works in the bundle), the rootfs for createContainer; poststop keeps the caller's.
The hook is started by subprocess (fork and exec in C, close_range and chdir in the
child: safe in the threaded shim, no process-wide chdir) and waited for through the
process monitor alone.
"""

import os

from ociruntime import OCI_VERSION, jsonlite
from ociruntime.errors import HookError

PHASES = ("prestart", "create_runtime", "create_container", "start_container", "poststart",
          "poststop")
JSON_NAMES = {"create_runtime": "createRuntime", "create_container": "createContainer",
              "start_container": "startContainer"}


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


def run_recorded(record, container_id, phase, status, warn=None):
    """A container's hooks of one phase from its state record (start's poststart,
    delete's poststop; the caller checks that the record holds some): poststart in the
    bundle (runc 1.1 runs it from create, in the bundle), poststop where the caller is, as
    runc's delete."""
    state = state_json(container_id, status, record["pid"], record["bundle"],
                       record.get("annotations"))
    run_all(from_record(record["hooks"][phase]), phase, state, warn=warn,
            cwd=record["bundle"] if phase == "poststart" else None)


def run_all(hooks, phase, state, warn=None, env=None, cwd=None):
    """Run the hooks of one phase in order.  With warn given (poststop, and poststart of a
    pre-1.3 config), a failure is logged and the next hook still runs; otherwise it raises.
    env: what a hook without `env` gets (default: this process's environment); cwd: the
    hooks' working directory (default: this process's)."""
    for index, hook in enumerate(hooks):
        try:
            run_one(hook, state, env, cwd)
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


def _spawn(hook, env, stdin, out, cwd):
    """Start the hook; its pid.  close_fds: nothing but 0-2 reaches it; restore_signals:
    SIGPIPE and SIGXFSZ, which Python ignores, are default again.  The Popen is told at
    once that its process is settled: the monitor waits for it, and a Popen that thinks
    its child alive would waitpid the pid from its finaliser, maybe another's by then."""
    import subprocess  # only with hooks: it brings threading, which slows the CLI's exit

    proc = subprocess.Popen(list(hook.args) or [hook.path], executable=hook.path, env=env,
                            stdin=stdin, stdout=out, stderr=out, cwd=cwd, close_fds=True,
                            restore_signals=True)
    proc.returncode = 0
    return proc.pid


def run_one(hook, state, env=None, cwd=None):
    from ociruntime.libcontainer import monitor

    env = _environment(hook, env)
    try:
        status, output = monitor.run(lambda stdin, out: _spawn(hook, env, stdin, out, cwd),
                                     state.encode(), hook.timeout or None)
    except (OSError, ValueError) as e:
        # ValueError: what is refused before the fork (a NUL byte somewhere)
        what = getattr(e, "strerror", None) or e
        if isinstance(e, OSError) and e.filename == cwd and cwd is not None:
            what = f"working directory {cwd}: {what}"
        raise HookError(f"{hook.path}: {what}") from None
    if status is None:
        raise HookError(f"{hook.path}: timed out after {hook.timeout}s")
    if status:
        output = output.strip()
        raise HookError(f"{hook.path}: {monitor.describe(status)}"
                        + (f": {output}" if output else ""))
