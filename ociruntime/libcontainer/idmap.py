"""Idmapped bind mounts (mount options idmap / ridmap, or a mount's uid/gid mappings).

Setting MOUNT_ATTR_IDMAP needs CAP_SYS_ADMIN over the filesystem's user namespace (the
host's), so, like runc, the runtime makes the idmapped mounts in the parent, before the
fork: open_tree(OPEN_TREE_CLONE) a detached copy of the source, mount_setattr it with a
user namespace that carries the mappings, and hand its fd to the container init, which
moves it onto the destination inside the rootfs (rootfs.Rootfs.mount_one).

The user namespace is a throwaway one: a forked child unshares CLONE_NEWUSER, the parent
writes its maps and keeps an fd of /proc/CHILD/ns/user; the child then exits.

The same helper opens the plain bind sources of a container with a user namespace (runc's
"mount sources"): as the host's root, in the container's mount namespace, an O_PATH
handle of each, from which the init binds without walking the path.  The container's
mapped root need not be able to search the source's parents (a source below a 0700
directory of the host's root).
"""

import fcntl
import os

from ociruntime.config import idmapped as wanted
from ociruntime.errors import PyruncError
from ociruntime.libcontainer import monitor
from ociruntime.libcontainer import syscalls as sc
from ociruntime.libcontainer.mountopts import MountOptions

_AT_FDCWD = -100
_FDS_PER_MESSAGE = 253  # the kernel's SCM_MAX_FD


def check(cfg, ns_plan):
    """Refuse, before anything exists, an idmapped mount that cannot be made."""
    for index, mount in enumerate(cfg.mounts):
        if not wanted(mount):
            continue
        where = f"mounts[{index}]"
        if not MountOptions(mount.options).is_bind:
            raise PyruncError(f"{where}: idmapped mounts are only supported for bind mounts")
        if not mount.uid_mappings and not ns_plan.has("user"):
            raise PyruncError(f"{where}: an idmapped mount needs uidMappings and gidMappings "
                              "or a user namespace to take them from")


class Item:
    """One idmapped mount to make: the config index, the absolute source, whether the tree
    is recursive (rbind) and the idmap too (ridmap), and the maps (None: the container's
    own user namespace).  idmapped false: a plain bind source, only opened."""

    def __init__(self, index, source, rbind, ridmap, maps, idmapped=True):
        self.index, self.source, self.rbind, self.ridmap, self.maps = (
            index, source, rbind, ridmap, maps)
        self.idmapped = idmapped


def _absolute_source(mount, bundle):
    source = mount.source or ""
    return source if source.startswith("/") else os.path.join(bundle, source)


def items(cfg, ns_plan, bundle):
    from ociruntime.libcontainer.namespaces import format_id_map

    found = []
    for index, mount in enumerate(cfg.mounts):
        if not wanted(mount):
            continue
        opts = MountOptions(mount.options)
        maps = None
        if mount.uid_mappings:
            maps = (format_id_map(mount.uid_mappings), format_id_map(mount.gid_mappings))
        found.append(Item(index, _absolute_source(mount, bundle), opts.recursive,
                          opts.idmap == "ridmap", maps))
    return found


def source_items(cfg, bundle):
    """The plain bind mounts, whose sources the helper opens (see the module's doc)."""
    return [Item(index, _absolute_source(mount, bundle), False, False, None, idmapped=False)
            for index, mount in enumerate(cfg.mounts)
            if MountOptions(mount.options).is_bind and not wanted(mount)]


def in_parent(ns_plan):
    """Without a user namespace the container's mount namespace is the host user
    namespace's, and the parent can make the mounts itself; with one, the detached mounts
    must come from the container's mount namespace, or the init (unprivileged over the
    host's) could not attach them: a helper made by the intermediate does it (start_helper)."""
    return not ns_plan.has("user")


def prepare(items_, min_fd):
    """{mount index: fd of a detached idmapped mount}, made in the runtime's own context
    (containers without a user namespace).  The fds are close-on-exec, >= min_fd."""
    return _make_all(items_, None, min_fd)


def _make_all(items_, container_userns, min_fd):
    made = {}
    userns = {}
    try:
        for item in items_:
            where = f"mounts[{item.index}]"
            if not item.idmapped:
                made[item.index] = _open_source(item, min_fd)
                continue
            key = item.maps
            if key is None:
                ns_fd = container_userns
            else:
                if key not in userns:
                    try:
                        userns[key] = mapped_userns(*key)
                    except OSError as e:
                        raise PyruncError(f"{where}: a user namespace for the idmapped "
                                          f"mount: {e.strerror}") from None
                ns_fd = userns[key]
            made[item.index] = _clone(item, ns_fd, min_fd)
    except BaseException:
        for fd in made.values():
            os.close(fd)
        raise
    finally:
        for fd in userns.values():
            os.close(fd)
    return made


def _open_source(item, min_fd):
    try:
        fd = os.open(item.source, os.O_PATH | os.O_CLOEXEC)
    except OSError as e:
        raise PyruncError(f"mounts[{item.index}]: bind source {item.source}: "
                          f"{e.strerror}") from None
    if fd < min_fd:
        moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, min_fd)
        os.close(fd)
        fd = moved
    return fd


def _clone(item, userns_fd, min_fd):
    where = f"mounts[{item.index}]"
    try:
        tree = sc.open_tree(_AT_FDCWD, item.source, sc.OPEN_TREE_CLONE
                            | (sc.AT_RECURSIVE if item.rbind else 0))
    except OSError as e:
        raise PyruncError(f"{where}: bind source {item.source}: {e.strerror}") from None
    try:
        sc.mount_setattr(tree, "", sc.AT_EMPTY_PATH | (sc.AT_RECURSIVE if item.ridmap else 0),
                         sc.MOUNT_ATTR_IDMAP, 0, 0, userns_fd)
        if tree < min_fd:
            moved = fcntl.fcntl(tree, fcntl.F_DUPFD_CLOEXEC, min_fd)
            os.close(tree)
            tree = moved
    except OSError as e:
        os.close(tree)
        raise PyruncError(f"{where}: idmapping {item.source}: {e.strerror} (does its "
                          "filesystem support idmapped mounts?)") from None
    return tree


class Helper:
    """A process forked by the intermediate while it is still in the host's namespaces;
    finish(pid) has it enter pid's mount namespace, make the idmapped mounts there (the
    container's user namespace is pid's) and send them back."""

    def __init__(self, items_, min_fd):
        import socket

        self.items = items_
        self.min_fd = min_fd
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.pid = monitor.fork_or_close(mine, theirs)
        if self.pid == 0:
            mine.close()
            self._serve(theirs)
        theirs.close()
        self.sock = mine

    def _serve(self, sock):
        import array
        import socket

        code = 1
        try:
            try:
                target = int(sock.recv(64))
                mnt = os.open(f"/proc/{target}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
                user = os.open(f"/proc/{target}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
                sc.setns(mnt, sc.CLONE_NEWNS)
                made = list(_make_all(self.items, user, 3).items())
                # SCM_RIGHTS carries at most SCM_MAX_FD fds a message: "more:" batches,
                # then the "ok:" one
                for start in range(0, max(len(made), 1), _FDS_PER_MESSAGE):
                    batch = made[start:start + _FDS_PER_MESSAGE]
                    head = b"ok:" if start + _FDS_PER_MESSAGE >= len(made) else b"more:"
                    fds = array.array("i", (fd for _, fd in batch))
                    sock.sendmsg([head + ",".join(str(i) for i, _ in batch).encode()],
                                 [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)] if fds else [])
                code = 0
            except PyruncError as e:
                sock.send(b"error:" + str(e).encode())
            except OSError as e:
                sock.send(f"error:idmapped mounts: {e.strerror}".encode())
        finally:
            os._exit(code)

    def finish(self, target_pid):
        import array
        import socket

        fds = array.array("i")
        indexes = []
        try:
            self.sock.send(str(target_pid).encode())
            space = socket.CMSG_SPACE(4 * min(len(self.items), _FDS_PER_MESSAGE))
            while True:
                data, anc, _, _ = self.sock.recvmsg(65536, space)
                for level, kind, payload in anc:
                    if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                        fds.frombytes(payload[:len(payload) - len(payload) % 4])
                if not data.startswith(b"more:"):
                    break
                indexes += data[5:].decode().split(",")
        finally:
            self.sock.close()
            monitor.reap(self.pid)
        if not data.startswith(b"ok:"):
            for fd in fds:
                os.close(fd)
            text = data.decode(errors="replace")
            raise PyruncError(text[6:] if text.startswith("error:") else
                              "idmapped mounts: the helper died")
        if len(data) > 3:
            indexes += data[3:].decode().split(",")
        result = {}
        for index, fd in zip(indexes, fds, strict=True):
            if fd < self.min_fd:
                moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, self.min_fd)
                os.close(fd)
                fd = moved
            os.set_inheritable(fd, False)
            result[int(index)] = fd
        return result


def mapped_userns(uid_map, gid_map):
    """An fd of a new, empty user namespace with these maps (text as in /proc/PID/uid_map).

    The helper and this process speak in explicit messages, never an end-of-file: a
    process forked elsewhere meanwhile (another thread of a long-lived caller) would hold
    copies of the write ends and keep the EOF from coming.  So the helper waits for a
    byte (or this process's death: PDEATHSIG), and this process for a byte or the helper's
    exit (its pidfd)."""
    ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
    done_r, done_w = os.pipe2(os.O_CLOEXEC)
    parent_pid = os.getpid()
    pid = monitor.fork_or_close(ready_r, ready_w, done_r, done_w)
    if pid == 0:
        code = 1
        try:
            sc.prctl(sc.PR_SET_PDEATHSIG, 9)
            if os.getppid() == parent_pid:
                os.close(ready_r)
                os.close(done_w)
                sc.unshare(sc.CLONE_NEWUSER)
                os.write(ready_w, b"1")
                os.read(done_r, 1)  # until the parent has opened our namespace
                code = 0
        finally:
            os._exit(code)
    os.close(ready_w)
    os.close(done_r)
    try:
        if _byte_or_exit(ready_r, pid) != b"1":
            raise OSError(1, "the user namespace helper failed")
        for name, text in (("uid_map", uid_map), ("gid_map", gid_map)):
            with open(f"/proc/{pid}/{name}", "w") as f:
                f.write(text)
        return os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(ready_r)
        try:
            os.write(done_w, b"1")
        except BrokenPipeError:
            pass  # it is gone already
        os.close(done_w)
        monitor.reap(pid)


def _byte_or_exit(fd, pid):
    """The byte child pid writes on pipe fd; b"" once it exited without one."""
    import select

    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        pidfd = None  # exited, and a reaper of the caller's took it already
    if pidfd is not None:
        try:
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            poller.register(pidfd, select.POLLIN)
            poller.poll()
        finally:
            os.close(pidfd)
    os.set_blocking(fd, False)
    try:
        return os.read(fd, 1)  # (written just before it exited: still there)
    except BlockingIOError:
        return b""
