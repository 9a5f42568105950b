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

`start` and `delete` are relayed to the namespace's starter (shim.starter: a warm process
that forks task servers), launched by the first `start` that finds none; the relay is
shim.starter's.  `delete` with something to clean, and anything the starter hands back
(b"F"), is done here.  The binary containerd runs is a C front
(ociruntime/_native/shim_front.c) that relays `start` and `delete` to a running starter
itself and execs this module's script, containerd-shim-pyrunc-v2-py, for anything else.

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
        self.argv = list(argv)
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


def group_of(bundle, task_id, mode=None):
    """The group a task's server is shared by: "" for the whole namespace, else a name.
    mode: GROUP_ENV's value in the caller's environment (None: this process's)."""
    mode = (paths.getenv(GROUP_ENV) if mode is None else mode) or "container"
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


def _can_connect(path, kind=None):
    """Whether a server answers on path.  The socket calls come from _native._sys, not
    `socket` (enum, selectors: ~8 ms), as `start` runs once per container."""
    from ociruntime._native._sys import SOCK_STREAM, connect_unix

    try:
        posix.close(connect_unix(path, 0.0, SOCK_STREAM if kind is None else kind))
        return True
    except OSError:
        return False


def _write_address(bundle, address):
    """containerd reads <bundle>/address to reconnect to the shim after a restart."""
    tmp = paths.join(bundle, "address.tmp")
    with open(tmp, "w") as f:
        f.write(address)
    posix.rename(tmp, paths.join(bundle, "address"))


def _lock_socket_dir():
    """SOCKET_DIR opened, for its flock: the lock under which servers and starters are
    made and retire (so a start sees a live one or no socket)."""
    if not paths.isdir(SOCKET_DIR):
        import os

        os.makedirs(SOCKET_DIR, 0o711, exist_ok=True)
    return posix.open(SOCKET_DIR, posix.O_RDONLY | posix.O_DIRECTORY | posix.O_CLOEXEC)


def serve_task(containerd_address, namespace, bundle, task_id, group_mode, launch):
    """start's work, here or in the starter: the address of the server of the task's group
    (bundle an absolute path), written into the bundle; when none runs, its socket is
    bound and launch(listener fd, path, group) makes the server (the fd is closed after)."""
    import fcntl

    group = group_of(bundle, task_id, group_mode)
    address = socket_address(containerd_address, namespace, group)
    path = address[len("unix://"):]
    # the socket directory is the lock: concurrent starts make one daemon, and a daemon
    # retires (unlinks its socket) only under it (shim.server)
    lock_fd = _lock_socket_dir()
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        if paths.exists(path):
            if _can_connect(path):
                _write_address(bundle, address)
                return address
            posix.unlink(path)  # a dead server's socket
        from ociruntime._native._sys import listen_unix

        listener = listen_unix(path, 128)
        try:
            _write_address(bundle, address)
            launch(listener, path, group)
        except BaseException:
            posix.unlink(path)
            raise
        finally:
            posix.close(listener)
    finally:
        posix.close(lock_fd)
    return address


def cmd_start(flags):
    try:
        sys.stdin.buffer.read()  # the runtime options (io.containerd.runc.v1.Options): unused
    except (OSError, ValueError):
        pass
    reply = relay(flags)
    if reply is None:  # no starter: launch one, then ask it
        launch_starter(flags)
        reply = relay(flags)
    if reply not in (None, b"F"):
        return _answer(reply)
    address = serve_task(flags.get("address"), flags.get("namespace"), posix.getcwd(),
                         flags.get("id"), None, lambda listener, path, group: _fork_daemon(
                             flags, listener, path, posix.getcwd(), group))
    sys.stdout.write(address)
    return 0


def _fork_daemon(flags, listener, path, bundle, group):
    import os

    if os.fork() == 0:
        _daemon(flags, listener, path, bundle, group)  # never returns


STARTER_PROTOCOL = b"pyrunc-starter/1"
RELAY_TIMEOUT = 60.0


def starter_socket(containerd_address, namespace):
    """The namespace's starter's socket (shim.starter: hashed as the servers' are)."""
    from ociruntime._native._sys import sha256_hex

    key = paths.join(containerd_address, namespace, "pyrunc-starter")
    return paths.join(SOCKET_DIR, sha256_hex(key.encode()))


def _request(argv):
    """This call as the starter's request: the cwd, the arguments, the environment."""
    encoding, errors = sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()
    env = [key + b"=" + value for key, value in posix.environ.items()]
    fields = [STARTER_PROTOCOL, posix.getcwdb(), str(len(argv)).encode(),
              *(arg.encode(encoding, errors) for arg in argv), str(len(env)).encode(), *env]
    return b"\0".join(fields) + b"\0"


def relay(flags):
    """The starter's reply to this call (b"0..." or b"1..."; b"F": do it here), or None
    when no starter answers the connect."""
    from ociruntime._native._sys import SOCK_SEQPACKET, connect_unix

    try:
        fd = connect_unix(starter_socket(flags.get("address"), flags.get("namespace")),
                          RELAY_TIMEOUT, SOCK_SEQPACKET)
    except OSError:
        return None
    try:
        posix.write(fd, _request(flags.argv))
        reply = posix.read(fd, 1 << 16)
    except OSError:
        return b"F"
    finally:
        posix.close(fd)
    return reply if reply[:1] in (b"0", b"1") else b"F"


def _answer(reply):
    """The starter's b"0" or b"1" reply as this call's output and exit status."""
    if reply[:1] == b"0":
        sys.stdout.buffer.write(reply[1:])
        sys.stdout.flush()
        return 0
    sys.stderr.write(reply[1:].decode(errors="replace") + "\n")
    return 1


def launch_starter(flags):
    """Start the namespace's starter unless one answers (under SOCKET_DIR's flock: one
    starter per namespace): its socket bound here, 0600, then a fork that execs
    `... starter` with one malloc arena (which its forks, the servers, keep)."""
    import fcntl
    import os

    from ociruntime._native._sys import SOCK_SEQPACKET, listen_unix

    path = starter_socket(flags.get("address"), flags.get("namespace"))
    lock_fd = _lock_socket_dir()
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        if _can_connect(path, SOCK_SEQPACKET):
            return
        if paths.exists(path):
            os.unlink(path)  # a dead starter's socket
        listener = listen_unix(path, 128, SOCK_SEQPACKET)
        try:
            os.chmod(path, 0o600)
            root = state_root(posix.getcwd(), flags.get("namespace"))
            if os.fork() == 0:
                try:
                    _detach(root, listener)
                    _exec_shim(flags, listener, path, root, (), "starter")
                except BaseException as e:
                    _last_word("the starter", e)
                os._exit(1)
        except BaseException:
            os.unlink(path)
            raise
        finally:
            os.close(listener)
    finally:
        posix.close(lock_fd)


def _detach(root, keep=-1):
    """A daemon's start (the server's, the starter's): no fd but stdio and keep (the
    lock's would hold SOCKET_DIR's flock while it lives), its own session, stdio away
    from containerd's pipes (containerd waits for them to close before it reads the
    address), its log the namespace's shim.log, cwd /."""
    import os

    close_fds_but(keep)
    os.setsid()
    _daemon_stdio(root)


def _daemon_stdio(root):
    """_detach's end (a starter's spare, in a session of its own already, runs it when it
    becomes a server): stdin and stdout /dev/null, stderr root's shim.log, cwd /."""
    import os

    os.makedirs(root, 0o711, exist_ok=True)
    null = os.open(os.devnull, os.O_RDWR)
    log = os.open(os.path.join(root, "shim.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND,
                  0o600)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.dup2(log, 2)
    os.close(null)
    os.close(log)
    os.chdir("/")


def close_fds_but(keep=-1):
    """Close every fd but stdio and keep."""
    import os

    if keep > 3:
        os.closerange(3, keep)
    os.closerange(max(3, keep + 1), 1 << 20)


def _last_word(what, e):
    """A daemon's failure to start, into its log."""
    try:
        posix.write(2, f"shim: cannot start {what}: {type(e).__name__}: {e}\n".encode())
    except OSError:
        pass


def _daemon(flags, listener, path, bundle, group):
    """The forked child becomes the server, when no starter does it (shim.starter): a
    daemon (_detach) and a fresh exec (`... serve`, _exec_shim): a clean command line with
    no task id in it."""
    import os

    try:
        root = state_root(bundle, flags.get("namespace"))
        _detach(root, listener)
        extra = ["-publish-binary", flags.get("publish-binary")]
        if group.startswith("task:"):  # no other task finds this server: no lingering
            extra += ["-idle-timeout", "0", "-warm-worker",
                      _fork_warm_worker(listener, bundle)]
        if "debug" in flags.bools:
            extra.append("-debug")
        _exec_shim(flags, listener, path, root, extra, "serve")
    except BaseException as e:  # the daemon's last word goes to its log
        _last_word("the server", e)
    os._exit(1)


def _exec_shim(flags, listener, path, root, extra, action):
    """Exec this shim again as a daemon (`serve`, `starter`): -I -S, the namespace's flags,
    its listening socket kept open (-socket fd:N:PATH), and one malloc arena (every ttrpc
    call runs in a thread, where glibc would give each its own; a starter's forks keep
    it).  Never returns."""
    import os

    argv = [sys.executable, "-I", "-S", os.path.abspath(sys.argv[0]),
            "-namespace", flags.get("namespace"), "-address", flags.get("address"),
            "-socket", f"fd:{listener}:{path}", "-state-root", root, *extra, action]
    os.set_inheritable(listener, True)
    os.execve(sys.executable, argv, dict(os.environ, MALLOC_ARENA_MAX="1"))


def _fork_warm_worker(listener, bundle=""):
    """Fork the Create's worker of a task's own server (shim.forkserver.warm) just before
    this process execs the server: it imports the library beside the server's start-up
    and waits for the request.  A fork, not a fresh interpreter: this process (start's
    daemon child) has no threads, and the worker skips an interpreter's start-up (~10 ms
    of CPU on the container's path).  The server (this pid after the exec) is its parent;
    "PID:FD", FD the server's end of their socket.  The worker keeps only its end, on fd
    3, and stdio: never the server's listener.  bundle: the task's, whose config it
    parses while it waits."""
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

            warm(server, bundle)  # never returns
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


def cmd_starter(flags):
    """The namespace's starter (launch_starter): -socket fd:N:PATH its listening socket,
    -state-root where its log is."""
    from shim.starter import run

    _, fd, path = flags.get("socket").split(":", 2)
    return run(int(fd), path, flags.get("namespace"), flags.get("address"))


def cmd_delete(flags):
    """After the server died: kill and delete the task's container, unmount its rootfs,
    print the DeleteResponse containerd expects (exit status 137, as runc's shim).  With
    nothing to clean the starter answers, if one runs."""
    reply = relay(flags)
    if reply not in (None, b"F"):
        return _answer(reply)
    cwd = posix.getcwd()
    data = delete_if_clean(flags, cwd, None)
    if data is None:
        bundle = paths.join(cwd, flags.get("bundle") or cwd)
        from shim.cleanup import delete_after_crash

        data = delete_after_crash(bundle, flags.get("id"),
                                  state_root(bundle, flags.get("namespace")))
        _remove_dead_socket(_server_address(flags, bundle, None))
    sys.stdout.buffer.write(data)
    sys.stdout.flush()
    return 0


def delete_if_clean(flags, cwd, group_mode):
    """delete's answer when nothing is left to clean (containerd runs it after every
    disconnect, also after a clean delete: answered without loading the runtime), a dead
    server's socket removed; None when there is something to clean.  cwd: the caller's
    (absolute), group_mode as group_of's."""
    bundle = paths.join(cwd, flags.get("bundle") or cwd)
    root = state_root(bundle, flags.get("namespace"))
    if (paths.exists(paths.join(root, flags.get("id")))
            or is_mount_point(paths.join(bundle, "rootfs"))):
        return None
    data = _killed_response()
    _remove_dead_socket(_server_address(flags, bundle, group_mode))
    return data


def _server_address(flags, bundle, group_mode):
    return (_recorded_address(bundle)
            or socket_address(flags.get("address"), flags.get("namespace"),
                              group_of(bundle, flags.get("id"), group_mode)))


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
    lock_fd = _lock_socket_dir()
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
    actions = {"start": cmd_start, "delete": cmd_delete, "serve": cmd_serve,
               "starter": cmd_starter}
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
