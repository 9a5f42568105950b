"""`containerd-shim-pyrunc-v2`: containerd's shim v2 command line.

containerd runs the binary three ways (runtime/v2/binary.go and shim/shim.go, 1.6):

  <shim> -namespace NS -address ADDR -publish-binary BIN -id ID [-debug] start
      cwd is the bundle, TTRPC_ADDRESS is in the environment, the runtime options are on
      stdin.  Print the ttrpc address of a server that will serve this task and exit.
      One server serves every task of a group (see group_of): when it already runs, its
      address is printed again; otherwise a daemon is forked first.
  <shim> ... -id ID [-bundle PATH] delete
      The server died: clean up what it left of the task and print a DeleteResponse.
  <shim> -v
      Version.

`start` and `delete` are on every container's critical path, so this module imports
only what they need: posix and ociruntime.paths rather than os (~1.1 ms of CPU: see
ociruntime/paths.py), which only the daemon's fork and its rare paths import; the daemon
(shim.server) loads the runtime after the fork.
"""

import posix
import sys

from ociruntime import paths

SOCKET_DIR = "/run/containerd/s"  # where containerd 1.6's own shims put their sockets
RUNTIME_NAME = "io.containerd.pyrunc.v2"


class Flags:
    """Go `flag` package syntax: -name value, -name=value, --name, bare booleans."""

    STRINGS = ("namespace", "address", "publish-binary", "id", "bundle", "socket",
               "state-root", "idle-timeout", "warm-worker")
    BOOLS = ("debug", "v", "version")

    def __init__(self, argv):
        self.values = {"publish-binary": "containerd"}
        self.bools = set()
        self.action = ""
        args = list(argv)
        while args:
            arg = args.pop(0)
            if not arg.startswith("-") or arg in ("-", "--"):
                if arg == "--":
                    arg = args.pop(0) if args else ""
                self.action = arg
                break
            name, eq, value = arg.lstrip("-").partition("=")
            if name in self.BOOLS:
                if not eq or value.lower() in ("1", "t", "true"):
                    self.bools.add(name)
            elif name in self.STRINGS:
                if not eq:
                    if not args:
                        raise SystemExit(f"flag needs an argument: -{name}")
                    value = args.pop(0)
                self.values[name] = value
            else:
                raise SystemExit(f"flag provided but not defined: -{name}")

    def get(self, name, default=""):
        return self.values.get(name, default)


# Grouping as containerd-shim-runc-v2: a task whose spec carries one of these annotations
# (first match wins) shares the server of its group; the CRI plugin annotates every
# container of a pod with the pod's sandbox id, so a server serves one pod and its death
# costs one pod.  Any other task gets a server of its own, unless the shim's environment
# (containerd's) asks for one server per namespace: PYRUNC_SHIM_GROUP=namespace.
GROUP_ANNOTATIONS = ("io.containerd.runc.v2.group", "io.kubernetes.cri.sandbox-id")
GROUP_ENV = "PYRUNC_SHIM_GROUP"
GROUP_MODES = ("container", "namespace")


def group_of(bundle, task_id):
    """The group a task's server is shared by: "" for the whole namespace, else a name."""
    mode = paths.getenv(GROUP_ENV) or "container"
    if mode not in GROUP_MODES:
        raise ValueError(f"{GROUP_ENV}={mode!r}: expected one of {', '.join(GROUP_MODES)}")
    if mode == "namespace":
        return ""
    annotations = _annotations(paths.join(bundle, "config.json"))
    for key in GROUP_ANNOTATIONS:
        if annotations.get(key):
            return "group:" + annotations[key]
    return "task:" + task_id


def _annotations(config_path):
    """The spec's annotations ({} without a readable config: a bundle half deleted; and {}
    when no string in it can be a group's key: one with no escape in a spec without a
    backslash is its text as written, so the parse, ~1 ms for a spec of 20 KB, and the
    import of jsonlite are skipped for a task outside a group)."""
    try:
        with open(config_path, "rb") as f:
            text = f.read().decode()
    except (OSError, ValueError):
        return {}
    if "\\" not in text and not any(f'"{key}"' in text for key in GROUP_ANNOTATIONS):
        return {}
    from ociruntime import jsonlite

    try:
        spec = jsonlite.loads(text)
    except ValueError:
        return {}
    annotations = spec.get("annotations") if isinstance(spec, dict) else None
    return annotations if isinstance(annotations, dict) else {}


def socket_address(containerd_address, namespace, group=""):
    """The server's socket for (containerd address, namespace, group), hashed like
    containerd's shim.SocketAddress so the path stays short."""
    from ociruntime._native._sys import sha256_hex  # hashlib loads libcrypto: ~4 ms

    key = paths.join(containerd_address, namespace, group, "pyrunc-shim")
    return "unix://" + paths.join(SOCKET_DIR, sha256_hex(key.encode()))


def state_root(bundle, namespace):
    """Where the shim keeps its containers' runtime state: beside containerd's own state
    (the bundle is <state>/io.containerd.runtime.v2.task/<ns>/<id>), per namespace."""
    state = paths.dirname(paths.dirname(paths.dirname(paths.abspath(bundle))))
    return paths.join(state, "pyrunc", namespace)


def _can_connect(path):
    """Whether a server answers on path.  The socket calls come from _native._sys, not
    `socket` (enum, selectors: ~8 ms), as `start` runs once per container."""
    from ociruntime._native._sys import connect_unix

    try:
        posix.close(connect_unix(path))
        return True
    except OSError:
        return False


def _write_address(address):
    """containerd reads <bundle>/address to reconnect to the shim after a restart."""
    tmp = "address.tmp"
    with open(tmp, "w") as f:
        f.write(address)
    posix.rename(tmp, "address")


def cmd_start(flags):
    import fcntl

    namespace = flags.get("namespace")
    try:
        sys.stdin.buffer.read()  # the runtime options (io.containerd.runc.v1.Options): unused
    except (OSError, ValueError):
        pass
    bundle = posix.getcwd()
    group = group_of(bundle, flags.get("id"))
    address = socket_address(flags.get("address"), namespace, group)
    path = address[len("unix://"):]
    if not paths.isdir(SOCKET_DIR):
        import os

        os.makedirs(SOCKET_DIR, 0o711, exist_ok=True)
    # the socket directory is the lock: concurrent starts make one daemon, and a daemon
    # retires (unlinks its socket) only under it (shim.server)
    lock_fd = posix.open(SOCKET_DIR, posix.O_RDONLY | posix.O_DIRECTORY | posix.O_CLOEXEC)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        if paths.exists(path):
            if _can_connect(path):
                _write_address(address)
                sys.stdout.write(address)
                return 0
            posix.unlink(path)  # a dead server's socket
        import os

        from ociruntime._native._sys import listen_unix

        listener = listen_unix(path, 128)
        _write_address(address)
        pid = os.fork()
        if pid == 0:
            os.close(lock_fd)
            _daemon(flags, listener, path, bundle, group)  # never returns
        os.close(listener)
    finally:
        posix.close(lock_fd)
    sys.stdout.write(address)
    return 0


def _daemon(flags, listener, path, bundle, group):
    """The forked child becomes the server: its own session, stdio away from containerd's
    pipes (containerd waits for them to close before it reads the address), logs to a
    file, and a fresh exec (`... serve`): a clean command line with no task id in it, and
    one malloc arena (every ttrpc call runs in a thread; glibc would give each its own)."""
    import os

    try:
        os.setsid()
        root = state_root(bundle, flags.get("namespace"))
        os.makedirs(root, 0o711, exist_ok=True)
        null = os.open(os.devnull, os.O_RDWR)
        log = os.open(os.path.join(root, "shim.log"),
                      os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(null, 0)
        os.dup2(null, 1)
        os.dup2(log, 2)
        os.close(null)
        os.close(log)
        os.chdir("/")
        argv = [sys.executable, "-I", "-S", os.path.abspath(sys.argv[0]),
                "-namespace", flags.get("namespace"), "-address", flags.get("address"),
                "-publish-binary", flags.get("publish-binary"),
                "-socket", f"fd:{listener}:{path}", "-state-root", root]
        if group.startswith("task:"):  # no other task finds this server: no lingering
            argv += ["-idle-timeout", "0", "-warm-worker", _fork_warm_worker(listener)]
        os.set_inheritable(listener, True)
        if "debug" in flags.bools:
            argv.append("-debug")
        os.execve(sys.executable, argv + ["serve"], dict(os.environ, MALLOC_ARENA_MAX="1"))
    except BaseException as e:  # the daemon's last word goes to its log
        try:
            os.write(2, f"shim: cannot start the server: {type(e).__name__}: {e}\n".encode())
        except OSError:
            pass
    os._exit(1)


def _fork_warm_worker(listener):
    """Fork the Create's worker of a task's own server (shim.forkserver.warm) just before
    this process execs the server: it imports the library beside the server's start-up
    and waits for the request.  A fork, not a fresh interpreter: this process (start's
    daemon child) has no threads, and the worker skips an interpreter's start-up (~10 ms
    of CPU on the container's path).  The server (this pid after the exec) is its parent;
    "PID:FD", FD the server's end of their socket.  The worker keeps only its end, on fd
    3, and stdio: never the server's listener."""
    import os

    from ociruntime._native._sys import SOCK_SEQPACKET, socketpair

    mine, theirs = socketpair(SOCK_SEQPACKET)  # not socket's: its imports would delay the exec
    server = os.getpid()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(listener)
            os.close(mine)
            if theirs != 3:
                os.dup2(theirs, 3)
                os.close(theirs)
            from shim.forkserver import warm

            warm(server)  # never returns
        finally:
            os._exit(1)
    os.close(theirs)
    os.set_inheritable(mine, True)
    return f"{pid}:{mine}"


def cmd_serve(flags):
    """The server (exec'd by start): -socket fd:N:PATH is its listening socket,
    -state-root where the namespace's containers keep their runtime state, -idle-timeout
    how long it outlives its last task (0 for a task's own server), -warm-worker PID:FD
    the Create's worker start forked for it (_fork_warm_worker)."""
    import os

    from shim.server import IDLE_TIMEOUT, serve

    _, fd, path = flags.get("socket").split(":", 2)
    idle = float(flags.get("idle-timeout") or IDLE_TIMEOUT)
    return serve(int(fd), path, flags.get("state-root"), namespace=flags.get("namespace"),
                 containerd_address=flags.get("address"),
                 publish_binary=flags.get("publish-binary"),
                 ttrpc_address=os.environ.get("TTRPC_ADDRESS", ""),
                 debug="debug" in flags.bools, idle_timeout=idle,
                 warm_worker=flags.get("warm-worker"))


def cmd_delete(flags):
    """After the server died: kill and delete the task's container, unmount its rootfs,
    print the DeleteResponse containerd expects (exit status 137, as runc's shim)."""
    bundle = flags.get("bundle") or posix.getcwd()
    root = state_root(bundle, flags.get("namespace"))
    task_id = flags.get("id")
    if (paths.exists(paths.join(root, task_id))
            or is_mount_point(paths.join(bundle, "rootfs"))):
        from shim.cleanup import delete_after_crash

        data = delete_after_crash(bundle, task_id, root)
    else:
        # containerd runs this after every disconnect, also after a clean delete: with
        # nothing left to clean, answer without loading the runtime
        data = _killed_response()
    _remove_dead_socket(_recorded_address(bundle)
                        or socket_address(flags.get("address"), flags.get("namespace"),
                                          group_of(bundle, task_id)))
    sys.stdout.buffer.write(data)
    sys.stdout.flush()
    return 0


def _recorded_address(bundle):
    """The server's address as start wrote it into the bundle (None if absent or not one
    of ours): delete, after every task, then needs neither the spec nor hashlib (~4 ms)."""
    try:
        with open(paths.join(bundle, "address")) as f:
            address = f.read().strip()
    except OSError:
        return None
    name = address.removeprefix("unix://" + SOCKET_DIR + "/")
    if name == address or not name or "/" in name or name.startswith("."):
        return None
    return address


def is_mount_point(path):
    """Whether something is mounted on path (/proc/self/mountinfo: os.path.ismount misses
    a bind mount from the same filesystem)."""
    path = paths.realpath(path).encode(sys.getfilesystemencoding(),
                                  sys.getfilesystemencodeerrors())  # os.fsencode
    try:
        with open("/proc/self/mountinfo", "rb") as f:
            for line in f:
                point = line.split(b" ", 5)[4]
                if b"\\" in point:
                    point = point.decode("unicode_escape").encode("latin-1")
                if point == path:
                    return True
    except OSError:
        pass
    return False


def _remove_dead_socket(address):
    """A killed server leaves its socket behind: remove it if nothing answers there."""
    import fcntl

    path = address[len("unix://"):]
    if not paths.exists(path):
        return
    lock_fd = posix.open(SOCKET_DIR, posix.O_RDONLY | posix.O_DIRECTORY | posix.O_CLOEXEC)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        if paths.exists(path) and not _can_connect(path):
            posix.unlink(path)
    finally:
        posix.close(lock_fd)


def _killed_response():
    """DeleteResponse{exit_status: 137, exited_at: now}, encoded by hand (shim.proto)."""
    import time

    from shim import protowire as pw

    now = time.time_ns()
    stamp = pw.field_varint(1, now // 10**9) + pw.field_varint(2, now % 10**9)
    return pw.field_varint(2, 128 + 9) + pw.field_bytes(3, stamp)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    try:
        flags = Flags(argv)
    except SystemExit as e:
        sys.stderr.write(f"containerd-shim-pyrunc-v2: {e}\n")
        return 2
    if flags.bools & {"v", "version"}:
        sys.stdout.write(f"{sys.argv[0]}:\n  Version:  {_version()}\n  Runtime:  "
                         f"{RUNTIME_NAME}\n")
        return 0
    if not flags.get("namespace"):
        sys.stderr.write("containerd-shim-pyrunc-v2: shim namespace cannot be empty\n")
        return 1
    actions = {"start": cmd_start, "delete": cmd_delete, "serve": cmd_serve}
    action = actions.get(flags.action)
    if action is None:
        sys.stderr.write(f"containerd-shim-pyrunc-v2: unknown action {flags.action!r} "
                         "(start or delete; containerd runs this binary)\n")
        return 2
    try:
        return action(flags)
    except Exception as e:
        sys.stderr.write(f"containerd-shim-pyrunc-v2: {flags.action}: {e}\n")
        return 1


def _version():
    import os

    here = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "ociruntime", "_native", "COMMIT")
    try:
        with open(here) as f:
            return f.read().strip()
    except OSError:
        return "unknown"
