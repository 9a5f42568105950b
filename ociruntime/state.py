"""Container state on disk: <root>/<id>/state.json, the per-container lock, live status.

The status is never stored: it is derived each time from the init process (its pid checked
against the start time recorded at create, so a reused pid is not mistaken for it), from
whether exec.fifo still exists (the process is parked until `start` consumes the fifo), and
from the cgroup freezer.  A crash therefore can never leave a stale "running" behind.

The one stored phase is "creating": `create` writes its record before it makes the cgroup
or forks anything (then adds the cgroup and the init's pid as they come), so a create that
is killed half-way leaves a record that `list`, `state` and `delete --force` find.  Killed
before even that, it leaves a directory without a record, unlocked: the next create of the
id takes it over (claim), so nothing that no command sees blocks the id.

Only root (rootless: the owner) may reach anything here: the root and every container
directory are 0700, so nobody else can open exec.fifo (which would start the container, or
feed `start` garbage) or read a state.json.

A record carries STATE_VERSION_KEY, the layout version that wrote it; a record without one
is version 0, the same layout as 1.  A newer layout is refused with one clear line rather
than misread.

posix and ociruntime.paths rather than os: state, start, kill and delete import no os (see
paths); only create's claim() does, for makedirs.
"""

import fcntl
import posix
import time

from ociruntime import __version__, jsonlite, paths
from ociruntime.errors import AlreadyExists, Internal, InvalidConfig, NotFound, PyruncError

STATE_FILE = "state.json"
FIFO_NAME = "exec.fifo"
DEFAULT_ROOT = "/run/pyrunc"
STATE_VERSION = 1  # the layout this pyrunc writes, and the newest it reads
STATE_VERSION_KEY = "pyruncStateVersion"
WRITER_KEY = "pyruncVersion"  # the pyrunc release that wrote the record, for people
PHASE_CREATING = "creating"  # record["phase"] while create runs; absent once created

CREATING, CREATED, RUNNING, PAUSED, STOPPED = "creating", "created", "running", "paused", "stopped"


def check_id(container_id):
    """runc's rule: letters, digits and _+-. only, and not "." or ".."."""
    ok = container_id and container_id not in (".", "..") and all(
        c.isascii() and (c.isalnum() or c in "_+-.") for c in container_id)
    if not ok:
        raise InvalidConfig(f"invalid container id {container_id!r}: "
                          "use letters, digits and _ + - . only")


def proc_stat(pid):
    """(state letter, start time in clock ticks) of a live pid, or None when it is gone."""
    try:
        data = paths.read_bytes(f"/proc/{pid}/stat")
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
    """Write a file by temp + rename, so readers see the old or the new content, never half.
    On failure the temp file goes too, and the OSError names path (not the temp file).
    Returns the new file's stat (see ContainerState.load)."""
    tmp = f"{path}.tmp{posix.getpid()}"
    try:
        fd = posix.open(tmp, posix.O_WRONLY | posix.O_CREAT | posix.O_TRUNC | posix.O_CLOEXEC,
                        mode)
    except OSError as e:
        raise OSError(e.errno, e.strerror, path) from None
    try:
        try:
            posix.write(fd, data.encode() if isinstance(data, str) else data)
            posix.rename(tmp, path)
            return posix.fstat(fd)  # what is at path now, unless someone replaced it since
        finally:
            posix.close(fd)
    except OSError as e:
        try:
            posix.unlink(tmp)
        except OSError:
            pass
        raise OSError(e.errno, e.strerror, path) from None


class StateMissing(NotFound):
    """The container directory has no state.json: nothing, or a create's first instant."""


class StateDamaged(Internal):
    """state.json exists but cannot be used (unreadable, not JSON, wrong fields, or a
    layout from a newer pyrunc)."""


# field -> the types a usable record may have there (created records; creating ones may
# still lack pid and pid_start)
_FIELDS = {"ociVersion": (str,), "id": (str,), "bundle": (str,), "rootfs": (str,),
           "created": (str,), "cgroup": (dict,), "pid": (int,), "pid_start": (int,)}
_LATE_FIELDS = ("pid", "pid_start")


def check_record(record, container_id):
    """The record as read, checked: a damaged one raises StateDamaged (one line)."""
    where = f"container {container_id!r}: state.json"
    if type(record) is not dict:
        raise StateDamaged(f"{where} is damaged: not a JSON object")
    version = record.get(STATE_VERSION_KEY, 0)
    if type(version) is not int or version < 0:
        raise StateDamaged(f"{where} is damaged: {STATE_VERSION_KEY} {version!r}")
    if version > STATE_VERSION:
        writer = record.get(WRITER_KEY)
        by = f" (pyrunc {writer})" if type(writer) is str else ""
        raise StateDamaged(f"{where} was written by a newer pyrunc{by} in state layout "
                           f"{version}; this pyrunc {__version__} reads layouts up to "
                           f"{STATE_VERSION}")
    creating = record.get("phase") == PHASE_CREATING
    for field, types in _FIELDS.items():
        if field not in record and creating and field in _LATE_FIELDS:
            continue
        if type(record.get(field)) not in types:
            raise StateDamaged(f"{where} is damaged: field {field!r} is missing or invalid")
    return record


class ContainerState:
    """One container's directory under the runtime root, and its recorded facts."""

    def __init__(self, root, container_id):
        check_id(container_id)
        self.root = root
        self.id = container_id
        self.dir = paths.join(root, container_id)
        self.record = None
        self._record_file = None  # the identity of the state.json self.record came from
        self._lock_fd = -1

    # --- the directory and its lock -------------------------------------------------------
    def claim(self):
        """Take the container's directory for create, locked and 0700 (whatever the umask
        and whatever mode an existing root has: nobody but us may open exec.fifo or read
        the record; runc: a 0700 root).

        The directory is a new one, or one a create killed between its mkdir and its first
        record left behind: no state.json and nobody holding its lock means nothing else
        was made yet, and runc leaves nothing that blocks the id after such a crash
        either.  Of concurrent creates of one id exactly one wins: each checks, under the
        lock it took without waiting, that the directory it locked is still the one at
        the path and still has no record."""
        try:
            posix.mkdir(self.root, 0o700)
        except OSError:
            if not paths.isdir(self.root):  # its parents missing (or not a directory)
                import os

                os.makedirs(self.root, mode=0o700, exist_ok=True)
        taken = AlreadyExists(f"container with id {self.id!r} already exists")
        for _ in range(_CLAIM_TRIES):
            try:
                posix.mkdir(self.dir, 0o700)
            except FileExistsError:
                pass
            try:
                fd = posix.open(self.dir, posix.O_RDONLY | posix.O_DIRECTORY
                                | posix.O_NOFOLLOW | posix.O_CLOEXEC)
            except FileNotFoundError:
                continue  # removed (a delete, a losing create) since: try again
            except OSError:
                raise taken from None  # not a directory: not ours to touch
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                posix.close(fd)
                raise taken from None  # a live create, or an operation on the container
            if not _still_at(fd, self.dir):
                posix.close(fd)
                continue
            if _has_record(fd) or not _clear_debris(fd):
                posix.close(fd)
                raise taken
            posix.fchmod(fd, 0o700)
            self._lock_fd = fd
            return
        raise taken

    def locked(self, timeout=None):
        """The lock as a context manager (`with st.locked() as held:`; held.acquired is
        False when a timeout ran out), on an fd of its own, so that threads of a
        long-lived caller sharing this object serialize; released on every way out."""
        return _Held(self, timeout)

    @property
    def lock_fd(self):
        """The lock claim() took for create; held until unlock() or remove()."""
        return self._lock_fd

    def unlock(self):
        if self._lock_fd >= 0:
            posix.close(self._lock_fd)
            self._lock_fd = -1

    def remove(self):
        """Remove the directory and everything in it (state.json, fifo, temp files).  By a
        delete it holds state.json alone (start consumed the fifo): that unlink and the
        rmdir come first, the listing (four syscalls more) only when something is left."""
        try:
            posix.unlink(paths.join(self.dir, STATE_FILE))
            posix.rmdir(self.dir)
        except OSError:
            self._remove_listed()
        self.unlock()

    def _remove_listed(self):
        try:
            names = posix.listdir(self.dir)
        except FileNotFoundError:
            return
        for name in names:
            path = paths.join(self.dir, name)
            try:
                posix.unlink(path)
            except FileNotFoundError:
                pass
            except IsADirectoryError:  # debris, e.g. a state.json that is a directory
                import shutil

                shutil.rmtree(path, ignore_errors=True)
        try:
            posix.rmdir(self.dir)
        except FileNotFoundError:
            pass

    # --- the recorded facts ---------------------------------------------------------------
    @property
    def fifo_path(self):
        return paths.join(self.dir, FIFO_NAME)

    def exists(self):
        return paths.isdir(self.dir)

    def recorded(self):
        """The directory has a record: the id is taken (without one it is a create's first
        instant, or what a create killed then left, which the next create takes over)."""
        return paths.lexists(paths.join(self.dir, STATE_FILE))

    def load(self):
        """Read state.json: StateMissing ("does not exist") when there is none,
        StateDamaged when it cannot be used.  The record this object read or wrote last is
        kept when state.json is still that file (one stat instead of a read and a parse,
        ~0.2 ms: `run`'s start and delete after its create): every writer replaces the
        file (write_atomic: a new inode), and its size and times are compared too."""
        path = paths.join(self.dir, STATE_FILE)
        try:
            if (self._record_file is not None
                    and file_identity(posix.stat(path)) == self._record_file):
                return self.record
            self._record_file = None
            data, st = paths.read_bytes(path, fstat=True)
            identity = file_identity(st)
        except FileNotFoundError:
            raise StateMissing(f"container {self.id!r} does not exist") from None
        except OSError as e:
            raise StateDamaged(f"container {self.id!r}: cannot read state.json: "
                               f"{e.strerror}") from None
        try:
            record = jsonlite.loads(data)
        except (ValueError, UnicodeDecodeError, RecursionError) as e:
            raise StateDamaged(f"container {self.id!r}: state.json is damaged: "
                               f"{str(e).splitlines()[0] if str(e) else 'not JSON'}") from None
        self.record = check_record(record, self.id)
        self._record_file = identity
        return self.record

    def save(self, record):
        """Write the record atomically, stamped with the layout version and the writer."""
        record = dict(record)
        record[STATE_VERSION_KEY] = STATE_VERSION
        record[WRITER_KEY] = __version__
        self._record_file = None
        written = write_atomic(paths.join(self.dir, STATE_FILE), jsonlite.dumps(record))
        self.record = record
        self._record_file = file_identity(written)

    @property
    def creating(self):
        """The record is a create's, not finished (running now, or killed half-way)."""
        return self.record is not None and self.record.get("phase") == PHASE_CREATING

    # --- derived status -------------------------------------------------------------------
    def status(self):
        rec = self.record
        if rec is None or self.creating:
            return CREATING
        if not rec.get("pid") or not process_alive(rec["pid"], rec["pid_start"]):
            return STOPPED
        freezer = rec.get("freezer")
        if freezer and _frozen(freezer):
            return PAUSED
        if paths.exists(self.fifo_path):
            return CREATED
        return RUNNING

    def oci_state(self):
        """The state document `pyrunc state` prints: the spec's fields plus runc's."""
        rec = self.record
        status = self.status()
        doc = {
            "ociVersion": rec["ociVersion"],
            "id": self.id,
            "pid": rec.get("pid", 0) if status != STOPPED else 0,
            "status": status,
            "bundle": rec["bundle"],
            "rootfs": rec["rootfs"],
            "created": rec["created"],
            "owner": rec.get("owner", ""),
        }
        if rec.get("annotations"):
            doc["annotations"] = rec["annotations"]
        return doc


_CLAIM_TRIES = 5  # a directory removed under create this often in a row: give up


def _still_at(fd, path):
    """The directory open at fd is the one path names now (not removed or replaced)."""
    try:
        there = posix.lstat(path)
    except FileNotFoundError:
        return False
    here = posix.fstat(fd)
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def _has_record(dir_fd):
    try:
        posix.stat(STATE_FILE, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def _clear_debris(dir_fd):
    """Empty a record-less directory a dead create left (a half-written temp record);
    False when it holds a directory, which no create makes: not ours to remove."""
    for name in posix.listdir(dir_fd):
        try:
            posix.unlink(name, dir_fd=dir_fd)
        except FileNotFoundError:
            pass
        except IsADirectoryError:
            return False
    return True


def _open_dir(path, container_id):
    try:
        return posix.open(path, posix.O_RDONLY | posix.O_DIRECTORY | posix.O_CLOEXEC)
    except FileNotFoundError:
        raise NotFound(f"container {container_id!r} does not exist") from None


def _flock(fd, timeout=None):
    """flock fd exclusively; with a timeout, False when it is still held by then."""
    if timeout is None:
        fcntl.flock(fd, fcntl.LOCK_EX)
        return True
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)


def file_identity(st):
    """What tells one version of a file from another (state.json; create's and the
    starter's caches of what they read): its inode, size and change times."""
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


class _Held:
    """ContainerState.locked(): the lock taken on entry and let go on exit (an exception
    too)."""

    __slots__ = ("state", "timeout", "fd", "acquired")

    def __init__(self, state, timeout):
        self.state, self.timeout, self.fd, self.acquired = state, timeout, -1, False

    def __enter__(self):
        # the directory locked must still be the one at the path: while we waited, a
        # delete may have removed it and a create made and locked a new one, whose
        # container is not ours to touch without its own lock
        for _ in range(_CLAIM_TRIES):
            self.fd = _open_dir(self.state.dir, self.state.id)
            try:
                self.acquired = _flock(self.fd, self.timeout)
                if not self.acquired or _still_at(self.fd, self.state.dir):
                    return self
            except BaseException:
                posix.close(self.fd)
                raise
            posix.close(self.fd)
            self.fd = -1
        raise NotFound(f"container {self.state.id!r} does not exist")

    def __exit__(self, *exc):
        posix.close(self.fd)
        self.fd = -1
        return False


def _frozen(freezer_file):
    try:
        value = paths.read_bytes(freezer_file).decode().strip()
    except OSError:
        return False
    return value in ("FROZEN", "1")


def list_containers(root, on_damaged=None):
    """ContainerState objects (loaded) for every container under root, sorted by id.

    The root also holds pyrunc's own entries, named so that they are no valid id
    (@seccomp-cache), and a create's directory has no state.json for an instant: those are
    passed over.  A damaged container is reported to on_damaged(id, error) and the rest
    are listed (runc prints "load container ID: ..." and goes on)."""
    try:
        names = sorted(posix.listdir(root))
    except FileNotFoundError:
        return []
    found = []
    for name in names:
        try:
            st = ContainerState(root, name)
        except PyruncError:
            continue  # not a container id: one of pyrunc's own entries
        try:
            st.load()
        except StateMissing:
            continue
        except StateDamaged as e:
            if on_damaged is not None:
                on_damaged(name, e)
            continue
        found.append(st)
    return found
