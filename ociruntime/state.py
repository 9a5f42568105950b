"""Container state on disk: <root>/<id>/state.json, the per-container lock, live status.

The status is never stored: it is derived each time from the init process (its pid checked
against the start time recorded at create, so a reused pid is not mistaken for it), from
whether exec.fifo still exists (the process is parked until `start` consumes the fifo), and
from the cgroup freezer.  A crash therefore can never leave a stale "running" behind.
"""

import fcntl
import os
import time

from ociruntime import jsonlite
from ociruntime.errors import PyruncError

STATE_FILE = "state.json"
FIFO_NAME = "exec.fifo"
DEFAULT_ROOT = "/run/pyrunc"

CREATING, CREATED, RUNNING, PAUSED, STOPPED = "creating", "created", "running", "paused", "stopped"


def check_id(container_id):
    """runc's rule: letters, digits and _+-. only, and not "." or ".."."""
    ok = container_id and container_id not in (".", "..") and all(
        c.isascii() and (c.isalnum() or c in "_+-.") for c in container_id)
    if not ok:
        raise PyruncError(f"invalid container id {container_id!r}: "
                          "use letters, digits and _ + - . only")


def proc_stat(pid):
    """(state letter, start time in clock ticks) of a live pid, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rindex(b")") + 2:].split()
    return fields[0].decode(), int(fields[19])


def process_alive(pid, start_time):
    """True when pid is still the process started at start_time and has not exited."""
    st = proc_stat(pid)
    return st is not None and st[1] == start_time and st[0] not in ("Z", "X")


def rfc3339_now():
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e9):09d}Z"


def write_atomic(path, data, mode=0o600):
    """Write a file by temp + rename, so readers see the old or the new content, never half."""
    tmp = f"{path}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        os.write(fd, data.encode() if isinstance(data, str) else data)
    finally:
        os.close(fd)
    os.rename(tmp, path)


class ContainerState:
    """One container's directory under the runtime root, and its recorded facts."""

    def __init__(self, root, container_id):
        check_id(container_id)
        self.root = root
        self.id = container_id
        self.dir = os.path.join(root, container_id)
        self.record = None
        self._lock_fd = -1

    # --- the directory and its lock -------------------------------------------------------
    def claim(self):
        """Create the container's directory atomically and lock it (for create)."""
        os.makedirs(self.root, mode=0o711, exist_ok=True)
        try:
            os.mkdir(self.dir, 0o711)
        except FileExistsError:
            raise PyruncError(f"container with id {self.id!r} already exists") from None
        self.lock()

    def lock(self):
        """flock the container directory: one mutating operation at a time."""
        try:
            self._lock_fd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise PyruncError(f"container {self.id!r} does not exist") from None
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)

    def try_lock(self):
        """Take the lock if nobody holds it; False when another pyrunc holds it."""
        self._lock_fd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            self._lock_fd = -1
            return False
        return True

    def unlock(self):
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    def remove(self):
        """Remove the directory and everything in it (state.json, fifo, temp files)."""
        try:
            names = os.listdir(self.dir)
        except FileNotFoundError:
            return
        for name in names:
            try:
                os.unlink(os.path.join(self.dir, name))
            except FileNotFoundError:
                pass
        try:
            os.rmdir(self.dir)
        except FileNotFoundError:
            pass
        self.unlock()

    # --- the recorded facts ---------------------------------------------------------------
    @property
    def fifo_path(self):
        return os.path.join(self.dir, FIFO_NAME)

    def exists(self):
        return os.path.isdir(self.dir)

    def load(self):
        """Read state.json; PyruncError "does not exist" when there is no such container."""
        try:
            with open(os.path.join(self.dir, STATE_FILE), "rb") as f:
                self.record = jsonlite.loads(f.read())
        except FileNotFoundError:
            raise PyruncError(f"container {self.id!r} does not exist") from None
        except ValueError as e:
            raise PyruncError(f"container {self.id!r}: corrupt state.json: {e}") from None
        return self.record

    def save(self, record):
        write_atomic(os.path.join(self.dir, STATE_FILE), jsonlite.dumps(record))
        self.record = record

    # --- derived status -------------------------------------------------------------------
    def status(self):
        rec = self.record
        if rec is None:
            return CREATING
        if not rec.get("pid") or not process_alive(rec["pid"], rec["pid_start"]):
            return STOPPED
        freezer = rec.get("freezer")
        if freezer and _frozen(freezer):
            return PAUSED
        if os.path.exists(self.fifo_path):
            return CREATED
        return RUNNING

    def oci_state(self):
        """The state document `pyrunc state` prints: the spec's fields plus runc's."""
        rec = self.record
        status = self.status()
        doc = {
            "ociVersion": rec["ociVersion"],
            "id": self.id,
            "pid": rec["pid"] if status != STOPPED else 0,
            "status": status,
            "bundle": rec["bundle"],
            "rootfs": rec["rootfs"],
            "created": rec["created"],
            "owner": rec.get("owner", ""),
        }
        if rec.get("annotations"):
            doc["annotations"] = rec["annotations"]
        return doc


def _frozen(freezer_file):
    try:
        with open(freezer_file) as f:
            value = f.read().strip()
    except OSError:
        return False
    return value in ("FROZEN", "1")


def list_containers(root):
    """ContainerState objects (loaded) for every container under root, sorted by id.

    The root also holds pyrunc's own entries, named so that they are no valid id
    (@seccomp-cache): whatever is not a loadable container is passed over, as runc does."""
    try:
        names = sorted(os.listdir(root))
    except FileNotFoundError:
        return []
    found = []
    for name in names:
        try:
            st = ContainerState(root, name)
            st.load()
        except PyruncError:
            continue
        found.append(st)
    return found
