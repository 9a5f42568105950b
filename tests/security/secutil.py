"""Helpers of the escape tests (tests/security): hashing host files, the files a runtime
process maps, a --console-socket receiver, and a hook that records the mounts a container's
init makes before pivot_root.  A module with a unique name so that test modules can import
it (tests/security/conftest.py puts this directory on sys.path)."""

import array
import hashlib
import os
import socket
import threading

import pyrunc_testlib as lib


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def hash_files(paths):
    """{path: sha256} of the regular files among paths."""
    return {p: sha256(p) for p in sorted(set(paths)) if os.path.isfile(p)}


def mapped_files(pid):
    """The regular files mapped into a process (its executable and shared libraries)."""
    files = set()
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            fields = line.split(None, 5)
            if len(fields) == 6 and fields[5].startswith("/"):
                path = fields[5].strip()
                if not path.endswith("(deleted)"):
                    files.add(path)
    return files


def recv_fd(conn):
    """One fd sent with SCM_RIGHTS on a connected unix socket (None when none came)."""
    fds = array.array("i")
    _msg, ancdata, _flags, _addr = conn.recvmsg(1024, socket.CMSG_SPACE(fds.itemsize))
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[:len(data) - len(data) % fds.itemsize])
    return fds[0] if fds else None


class ConsoleSocket:
    """A --console-socket listener: a thread accepts one connection and keeps the pty
    master the runtime sends (runc's recvtty, minus the copying)."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(1)
        self.sock.settimeout(lib.TIMEOUT)
        self.master = None
        self.error = None
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        try:
            conn, _ = self.sock.accept()
            with conn:
                self.master = recv_fd(conn)
        except OSError as e:
            self.error = e

    def wait(self):
        self.thread.join(lib.TIMEOUT)
        return self.master

    def close(self):
        self.sock.close()
        if self.master is not None:
            os.close(self.master)
            self.master = None


def add_mountinfo_hook(bundle, out_path):
    """A createContainer hook that copies the init's mountinfo (in the container's mount
    namespace, before pivot_root: every mount it made, wherever it landed, with host
    paths) to out_path on the host."""
    hooks = bundle.config.setdefault("hooks", {})
    hooks.setdefault("createContainer", []).append({
        "path": "/bin/sh", "args": ["sh", "-c", f"cat /proc/self/mountinfo > {out_path}"]})
