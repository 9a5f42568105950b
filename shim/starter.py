"""The starter: one warm process per (containerd address, namespace) that answers the
shim's `start` and `delete` and forks task servers.

A server exec'd per task pays an interpreter's start-up and the shim's and the runtime's
imports (~25 ms before its threads are up) on the container's path, and `start` and
`delete` an interpreter each (~12 ms of CPU).  The starter has all of that imported once:
`start` becomes a request to it, and each task's server a fork of it, warm.  It is still a
server of its own per task (or per pod), in its own session, never the starter's child (a
double fork): a starter's crash loses no container, and a server's loses its task (or
pod) only.

Single-threaded, so its forks are safe (shim/__init__.py): the forked server starts its
threads itself, after its Create's worker is forked (a task's own server) or its fork
server (a pod's).  It was exec'd with MALLOC_ARENA_MAX=1, which its forks keep.  It goes
when its containerd stops answering (checked every CHECK_EVERY s while idle), after
PYRUNC_SHIM_STARTER_IDLE seconds (default 600) without a request, or when a file of its
code changed (Code), unlinking its socket under SOCKET_DIR's flock as a server does; so on
SIGTERM or SIGINT.

The protocol (shared with any other client of it, such as a front binary in C):
  socket  /run/containerd/s/<sha256 hex of ADDRESS + "/" + NAMESPACE + "/pyrunc-starter">
          (cli.starter_socket), AF_UNIX SOCK_SEQPACKET, 0600, the starter's euid;
  request one message, every field a byte string ended by one NUL: "pyrunc-starter/1",
          the client's cwd (the bundle, for start), N, the N arguments of the shim's
          argv[1:] unchanged, M, the M environment entries "KEY=VALUE" (the client has read
          its stdin to EOF: start's runtime options, unused);
  reply   one message: b"0" + bytes for stdout, exit 0; b"1" + text for stderr (a newline
          added), exit 1; b"F": the client does the work itself.  Anything else, no
          reply (a closed connection, 60 s), or no starter to connect to: as b"F".
`start`: the address of the task's group's server (forking one when none runs, or
handing the task to the spare), written into the bundle; `delete` when nothing is left
to clean: the DeleteResponse; anything else (another action, namespace or address,
something to clean): b"F".

The spare: a task's own server (idle timeout 0, no fork server) starts up, from the fork
to its accept, in ~10 ms that would be on its container's path (containerd sends the
Create as soon as start has answered).  So the starter keeps one forked ahead (make_spare),
once a task of its own group was started and the starter has been idle SPARE_AFTER s (so
its making never competes with a container's start for the host's cores), and again after
one was used or died: single-threaded, in a session of its own, its Create's warm worker
forked (shim.forkserver.warm, spare), waiting on a socket of its own with the starter.  The
next start of a task of its own group hands it the task (the listener by SCM_RIGHTS, the
request's arguments and environment) and answers at once; the spare finishes as a forked
server would (_become_server) and gives its worker the bundle.  No spare ready, or a
hand-over that fails: the fork as before.  It carries the starter's name and command line
(no task's) until it serves, holds none of the starter's fds, and goes with the starter
(EOF on its socket; the starter waits for that on its way out), its worker with it.

A request is untrusted: from the starter's own uid only (SO_PEERCRED; the socket is 0600),
one message of at most MAX_REQUEST bytes, parsed strictly; anything wrong is one b"1"
answer or a dropped connection, never the starter's end.
"""

import gc
import os
import select
import signal
import socket
import struct
import sys
import time

from ociruntime.state import file_identity
from shim import cli, server

IDLE = float(os.environ.get("PYRUNC_SHIM_STARTER_IDLE", "600"))
# how long a hand-over waits for the spare's word that it took the task
HAND_OVER_TIMEOUT = 5.0
# a spare server is made this long after the starter's last request (off any container's
# path: not beside a start on the host's cores); 0 or less: no spare
SPARE_AFTER = float(os.environ.get("PYRUNC_SHIM_SPARE_AFTER", "0.2"))
CHECK_EVERY = 3.0
MAX_REQUEST = 1 << 20
RECV_TIMEOUT = 2.0  # a client sends its request at once: none holds the starter longer
PROG = "containerd-shim-pyrunc-v2"
STARTER_NAME = "pyrunc-starter"  # its process name (/proc/PID/comm); servers' server.SERVER_NAME


class BadRequest(Exception):
    pass


def _warm_up():
    """What a task's server and its Create's worker run, imported here once."""
    import threading  # noqa: F401

    # start and kill: what a task's Start and Kill import, not the workers (~0.8 ms)
    from ociruntime.libcontainer import cgroups, kill, monitor, start  # noqa: F401
    from shim import events, forkserver, reaper, rootfs, service, stdio, ttrpc  # noqa: F401

    forkserver._warm_up()


def _log(line):
    try:
        os.write(2, f"shim: starter: {line}\n".encode())
    except OSError:
        pass


class Code:
    """The files the starter's code came from (the launcher, and every module of pyrunc's
    packages it imported), as they were when it started: once one changes (an upgrade, a
    developer's edit), the servers it would fork would run the old code, so it retires
    and the next start launches one with the new."""

    def __init__(self):
        import ociruntime

        roots = tuple(os.path.dirname(os.path.dirname(os.path.abspath(package.__file__)))
                      + "/" for package in (ociruntime, sys.modules["shim"]))
        files = {os.path.abspath(sys.argv[0])}
        for module in list(sys.modules.values()):
            name = getattr(module, "__file__", None)
            if name and os.path.abspath(name).startswith(roots):
                files.add(os.path.abspath(name))
        self.files = {name: self._stat(name) for name in files}
        self.checked = time.monotonic()

    @staticmethod
    def _stat(name):
        try:
            return file_identity(os.stat(name))
        except OSError:
            return None

    def changed(self):
        """The first file that changed (None if none), at most every CHECK_EVERY s."""
        if time.monotonic() - self.checked < CHECK_EVERY:
            return None
        self.checked = time.monotonic()
        for name, seen in self.files.items():
            if self._stat(name) != seen:
                return name
        return None


def run(listener_fd, path, namespace, containerd_address, idle=IDLE):
    """Serve requests on the listening socket until idle or containerd is gone."""
    server.set_process_name(STARTER_NAME)
    os.set_inheritable(listener_fd, False)
    bound = server._inode(path)
    _warm_up()
    code = Code()
    gc.freeze()  # the warm heap, shared with every fork: no collection writes to it
    starter = Starter(socket.socket(fileno=listener_fd), path, namespace,
                      containerd_address, code)
    _log(f"serving {namespace} on {path} (pid {os.getpid()})")
    try:
        starter.loop(idle)
    finally:
        server._release(path, bound)
        starter.drain()
        starter.drop_spare(wait=True)
        _log("exiting")
    return 0


class Starter:
    def __init__(self, listener, path, namespace, containerd_address, code):
        self.listener = listener
        self.path = path
        self.namespace = namespace
        self.address = containerd_address
        self.code = code
        self.stale = False  # its code changed: it hands every request back (b"F")
        self.stopped = False
        # the spare server (Starter.make_spare): our end of its socket; whether it said it
        # is ready; whether one is wanted (a task of its own group was started)
        self.spare = None
        self.spare_ready = False
        self.spare_wanted = False
        self.spare_not_before = 0.0  # after a spare died: not another at once
        self.poller = select.poll()
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)

    def _stop(self, *_):
        self.stopped = True

    def loop(self, idle):
        poller = self.poller
        poller.register(self.listener.fileno(), select.POLLIN)
        poller.register(self.wake_r, select.POLLIN)
        last = time.monotonic()
        while not self.stopped:
            timeout = CHECK_EVERY
            if self.spare_wanted and self.spare is None and SPARE_AFTER > 0:
                due = max(last + SPARE_AFTER, self.spare_not_before)
                timeout = max(0.0, min(timeout, due - time.monotonic()))
                if not timeout:
                    self.make_spare()
                    continue
            ready = poller.poll(timeout * 1000)
            if self.stopped:
                break
            changed = self.code.changed()
            if changed:
                _log(f"{changed} changed: leaving it to a new starter")
                self.stale = True
                break
            if any(fd == self.listener.fileno() for fd, _ in ready):
                self.accept_one()
                last = time.monotonic()
                continue
            if self.spare is not None and any(fd == self.spare.fileno() for fd, _ in ready):
                self.spare_event()
            if any(fd == self.wake_r for fd, _ in ready):
                try:
                    os.read(self.wake_r, 64)
                except BlockingIOError:
                    pass
            if time.monotonic() - last >= idle:
                _log(f"idle for {idle:g} s")
                break
            if not cli._can_connect(self.address):
                _log(f"containerd ({self.address}) does not answer")
                break

    def drain(self):
        """Answer who connected before the socket was unlinked (they would else fall back
        to doing it themselves)."""
        self.listener.setblocking(False)
        while True:
            try:
                self.accept_one()
            except BlockingIOError:
                return

    def accept_one(self):
        try:
            conn, _ = self.listener.accept()
        except BlockingIOError:
            raise
        except OSError as e:
            _log(f"accept: {e}")
            return
        with conn:
            try:
                self.answer(conn)
            except Exception as e:  # a client gone, a failed send: that connection only
                _log(f"request: {type(e).__name__}: {e}")

    def answer(self, conn):
        _, uid, _ = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                        struct.calcsize("3i")))
        if uid != os.geteuid():
            _log(f"dropped a connection from uid {uid}")
            return
        conn.settimeout(RECV_TIMEOUT)
        data, _, msg_flags, _ = conn.recvmsg(MAX_REQUEST + 1)
        if not data:
            return
        if msg_flags & socket.MSG_TRUNC or len(data) > MAX_REQUEST:
            reply = b"1" + f"{PROG}: the starter's request is over {MAX_REQUEST} bytes".encode()
        else:
            try:
                reply = self.handle(data)
            except BadRequest as e:
                reply = b"1" + f"{PROG}: a bad request to the starter: {e}".encode()
        conn.send(reply)

    def handle(self, data):
        cwd, args, env = parse(data)
        if self.stale:
            return b"F"
        try:
            flags = cli.Flags(args)
        except SystemExit as e:
            return b"1" + f"{PROG}: {e}".encode()
        if (flags.get("namespace") != self.namespace or flags.get("address") != self.address
                or flags.bools & {"v", "version"}):
            return b"F"  # not this starter's (or not its) business
        mode = env.get(cli.GROUP_ENV, "")  # the request's, never the starter's own
        try:
            if flags.action == "start":
                address = cli.serve_task(
                    self.address, self.namespace, cwd, flags.get("id"), mode,
                    lambda listener, path, group: self.launch(
                        flags, listener, path, cwd, group, env))
                return b"0" + address.encode()
            if flags.action == "delete":
                data = cli.delete_if_clean(flags, cwd, mode)
                return b"F" if data is None else b"0" + data
        except Exception as e:
            _log(f"{flags.action} {flags.get('id')}: {type(e).__name__}: {e}")
            return b"1" + f"{PROG}: {flags.action}: {e}".encode()
        return b"F"

    def launch(self, flags, listener, path, bundle, group, env):
        """The group's server: the spare when one is ready and the group is a task's own
        (the pod's server of a group shared by tasks is forked: it keeps a fork server),
        else a fork (fork_server), also when the hand-over fails."""
        if group.startswith("task:"):
            self.spare_wanted = True
            if self.spare_ready and self.hand_over(flags, listener, path, bundle, group, env):
                return
        self.fork_server(flags, listener, path, bundle, group, env)

    def make_spare(self):
        """The spare: a task's server forked ahead, a grandchild as fork_server's, that
        has forked its Create's warm worker (single-threaded still) and waits for a task
        on a socket of its own with the starter (_spare).  It says b"ready" once its
        worker is forked; EOF on that socket (the starter gone, or dropping it) ends it
        and its worker."""
        self.spare_ready = False
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            _double_fork(theirs.fileno(), lambda: _spare(theirs, self.namespace, self.address),
                         "a spare server")
        except OSError as e:
            mine.close()
            _log(str(e))
            self.spare_wanted = False  # until the next start of a task of its own group
            return
        finally:
            theirs.close()
        self.spare = mine
        self.poller.register(mine.fileno(), select.POLLIN)

    def spare_event(self):
        """The spare's b"ready", or its end (EOF): a new one is made later."""
        try:
            data = self.spare.recv(64, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data == b"ready":
            self.spare_ready = True
        else:
            _log("the spare server died")
            self.drop_spare()
            self.spare_not_before = time.monotonic() + 1.0

    def drop_spare(self, wait=False):
        """Close our end of the spare's socket (it exits on the EOF, its worker with it);
        wait: until it has (its end closed: no process of the starter's is left)."""
        spare, self.spare = self.spare, None
        self.spare_ready = False
        if spare is None:
            return
        self.poller.unregister(spare.fileno())
        try:
            if wait:
                spare.shutdown(socket.SHUT_WR)
                spare.settimeout(2.0)
                while spare.recv(64):
                    pass
        except OSError:
            pass
        finally:
            spare.close()

    def hand_over(self, flags, listener, path, bundle, group, env):
        """Give the task to the spare: its listener by SCM_RIGHTS, what fork_server's
        server gets; True once the spare has it (it finishes its start-up itself), False
        when the spare cannot take it (gone: the fork path then)."""
        from ociruntime import jsonlite
        from shim import forkserver

        spare, self.spare = self.spare, None
        self.spare_ready = False
        self.poller.unregister(spare.fileno())
        try:
            task = {"argv": flags.argv, "path": path, "bundle": bundle, "group": group,
                    "env": env}
            forkserver._send(spare, jsonlite.dumps(task).encode(), (listener,))
            # a send can succeed into the socket of a spare that is dying (killed, or
            # stopped and then killed): only its word says it has the listener; its end
            # (EOF) before that word leaves the task to the fork path (our listener is
            # still open, and the spare that took nothing serves nothing)
            spare.settimeout(HAND_OVER_TIMEOUT)
            try:
                taken = spare.recv(16) == b"taken"
            except TimeoutError:
                # alive, and the task is in its socket: it serves it when it runs again
                _log(f"the spare server took more than {HAND_OVER_TIMEOUT} s to answer")
                return True
            if not taken:
                _log(f"the spare server ended before it took {group}")
            return taken
        except OSError as e:
            _log(f"the spare server cannot take {group}: {e}")
            return False
        finally:
            spare.close()

    def fork_server(self, flags, listener, path, bundle, group, env):
        """The task's (or pod's) server, a grandchild: the child forks it and exits at
        once, so the server is nobody's child here and the starter keeps no process."""
        _double_fork(listener, lambda: self._become_server(flags, listener, path, bundle,
                                                           group, env), "the task's server")

    def _become_server(self, flags, listener, path, bundle, group, env):
        """In the forked server: the request's environment, a daemon as the exec'd one
        (cli._daemon), its name, then shim.server.serve.  Never returns."""
        def run():
            server.replace_environ(env)
            root = cli.state_root(bundle, self.namespace)
            cli._detach(root, listener)  # closes the starter's fds: its listener, the lock
            server.set_process_name(server.SERVER_NAME)  # before its worker's fork
            alone = group.startswith("task:")  # no other task finds it: no lingering
            return _serve(
                flags, env, self.namespace, self.address, listener, path, root,
                idle_timeout=0 if alone else float(env.get("PYRUNC_SHIM_IDLE_TIMEOUT", "30")),
                warm_worker=cli._fork_warm_worker(listener, bundle) if alone else "")

        _exit_after("the server", run)


def _serve(flags, env, namespace, address, listener, path, root, **options):
    """shim.server.serve for the task's request (its flags and environment)."""
    return server.serve(listener, path, root, namespace=namespace,
                        containerd_address=address,
                        publish_binary=flags.get("publish-binary"),
                        ttrpc_address=env.get("TTRPC_ADDRESS", ""),
                        debug="debug" in flags.bools, **options)


def _exit_after(what, run):
    """A forked daemon's end: exit with run()'s status (1, its error in the log, if it
    raised).  Never returns."""
    code = 1
    try:
        code = run()
    except BaseException as e:
        cli._last_word(what, e)
    finally:
        try:
            sys.stderr.flush()
        finally:
            os._exit(code)


def _double_fork(keep, become, what):
    """become() (never returns) in a grandchild: the child forks it and exits at once, so
    it is nobody's child here and the starter keeps no process; with the starter's fds
    closed but stdio and keep (its listener, lock and sockets stay its own) and its
    signal handling reset.  OSError when it cannot be forked."""
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            cli.close_fds_but(keep)
            if os.fork() == 0:
                become()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    if status != 0:
        raise OSError(f"cannot fork {what}")


def _spare(sock, namespace, address):
    """The spare server (Starter.make_spare): in a session of its own, its Create's warm
    worker forked (shim.forkserver.warm, spare), b"ready", then its task from the
    starter, or EOF: its worker killed and waited for, and gone.  Given a task it is
    that task's server as fork_server's (_become_server), its worker given the task's
    bundle and environment.  Never returns."""
    def run():
        os.setsid()
        me = os.getpid()
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        worker = os.fork()
        if worker == 0:
            try:
                sock.close()
                mine.close()
                os.dup2(theirs.fileno(), 3)
                if theirs.fileno() != 3:
                    theirs.close()
                from shim.forkserver import warm

                warm(me, spare=True)  # never returns
            finally:
                os._exit(1)
        theirs.close()
        from ociruntime import jsonlite
        from shim import forkserver

        sock.send(b"ready")
        data, fds = forkserver._recv(sock, MAX_REQUEST, 1)
        if not data or len(fds) != 1:
            # the worker first: the starter waits for this socket's end (drop_spare)
            os.kill(worker, signal.SIGKILL)
            os.waitpid(worker, 0)
            return 0
        try:
            sock.send(b"taken")  # the starter replies to start once it reads this
        except OSError:
            pass  # the starter gone: the task is ours all the same
        sock.close()
        task = jsonlite.loads(data)
        listener, path, bundle, env = fds[0], task["path"], task["bundle"], task["env"]
        flags = cli.Flags(task["argv"])
        server.replace_environ(env)
        root = cli.state_root(bundle, namespace)
        cli._daemon_stdio(root)
        server.set_process_name(server.SERVER_NAME)
        return _serve(
            flags, env, namespace, address, listener, path, root, idle_timeout=0,
            warm_worker=f"{worker}:{mine.detach()}",
            warm_task=(jsonlite.dumps({"bundle": bundle, "env": env}).encode(), (2,)))

    _exit_after("the spare server", run)


def parse(data):
    """The request (the module's docstring): (cwd, [arg], {key: value}), or BadRequest."""
    fields = data.split(b"\0")
    if len(fields) < 5 or fields[0] != cli.STARTER_PROTOCOL or fields[-1] != b"":
        raise BadRequest("not a pyrunc-starter/1 message")
    cwd = _text(fields[1])
    if not cwd.startswith("/"):
        raise BadRequest("the directory is not absolute")
    n = _count(fields[2], len(fields))
    m = _count(fields[3 + n] if 3 + n < len(fields) else b"", len(fields))
    if 4 + n + m != len(fields) - 1:
        raise BadRequest("the counts do not match the fields")
    args = [_text(arg) for arg in fields[3:3 + n]]
    env = {}
    for entry in fields[4 + n:4 + n + m]:
        key, eq, value = _text(entry).partition("=")
        if eq and key:
            env[key] = value
    return cwd, args, env


def _count(field, limit):
    if not field.isdigit() or len(field) > 7 or int(field) > limit:
        raise BadRequest(f"bad count {field[:20]!r}")
    return int(field)


def _text(field):
    return field.decode(sys.getfilesystemencoding(), sys.getfilesystemencodeerrors())
