"""cgroups: one small Manager interface, a v1 and a v2 implementation picked by the host.

A Manager is built from the container's cgroupsPath, creates the directories (remembering
which it made, so destroy removes only those), tells the child which cgroup.procs files to
join, lists pids, and reads the freezer.  The state record keeps `to_record()` so later
commands rebuild the same Manager without the config.

posix and ociruntime.paths rather than os (see paths): delete, which rebuilds a Manager and
removes its directories, imports no os, nor does create; only the walk that removes a
container's own sub-cgroups imports it, for os.walk.
"""

import posix

from ociruntime import paths
from ociruntime.errors import PyruncError

CGROUP_ROOT = "/sys/fs/cgroup"
CGROUP2_SUPER_MAGIC = 0x63677270


def mountinfo():
    """/proc/self/mountinfo's lines, or None when it cannot be read.  create reads it once
    for host_is_v2 and v1's hierarchies (the kernel writes out every mount of the
    namespace at each read: a cost that grows with a busy host's mounts)."""
    try:
        with open("/proc/self/mountinfo") as f:
            return f.read().splitlines()
    except OSError:
        return None


def host_is_v2(lines=None):
    """Pure cgroup v2 (the unified hierarchy mounted at /sys/fs/cgroup itself).
    lines: mountinfo(), when the caller has it already."""
    for line in (mountinfo() if lines is None else lines) or ():
        fields = line.split()
        if fields[4] == CGROUP_ROOT:
            sep = fields.index("-")
            return fields[sep + 1] == "cgroup2"
    return False


def resolve_path(cgroups_path, container_id, own_path, default_base=None):
    """The cgroup path (relative to a hierarchy root) for a config's cgroupsPath:
    absolute -> as given; relative -> under the runtime's own cgroup; unset -> the
    container's id under default_base (else the runtime's own cgroup), as runc's cgroupfs
    driver names it.  The result always names a cgroup strictly below the hierarchy's
    root (see below_root)."""
    if not cgroups_path:
        path = below_root(default_base or own_path, container_id)
        if path is None:
            raise PyruncError(f"container id {container_id!r} cannot name a cgroup")
        return path
    if ":" in cgroups_path and not cgroups_path.startswith("/"):
        raise PyruncError("linux.cgroupsPath: the systemd form slice:prefix:name needs "
                          "--systemd-cgroup (not supported yet)")
    base = "/" if cgroups_path.startswith("/") else own_path
    path = below_root(base, cgroups_path)
    if path is None:
        raise PyruncError(f"linux.cgroupsPath: {cgroups_path!r} does not name a cgroup below "
                          "the root of the cgroup hierarchy")
    return path


def below_root(base, path):
    """`path` taken relative to `base` (both '/'-separated, base absolute) as a canonical
    absolute path with at least one component, or None when it is not one: it names the
    root itself, climbs above the root with '..' (never clamped, unlike os.path.normpath,
    which also keeps a leading '//'), or holds a NUL.  The one place that decides whether
    a cgroup path may be touched, so the root cgroup of the host can never be."""
    if "\0" in path or "\0" in base or not base.startswith("/"):
        return None
    parts = []
    for part in (base + "/" + path).split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                return None
            parts.pop()
        else:
            parts.append(part)
    return "/" + "/".join(parts) if parts else None


def recorded_dirs(dirs, created):
    """The directories of a Manager's dirs map and created list, each once (a container's
    own cgroups are in both: each is checked once, not twice, ~3 us a directory), refusing
    a record of any other shape (a damaged state.json) with one error instead of a
    traceback."""
    if type(dirs) is not dict or type(created) is not list:
        raise PyruncError("damaged cgroup record: dirs must be an object, created a list")
    own = list(dirs.values())
    return own + [d for d in created if d not in own]


def check_recorded(version, dirs, created):
    """A Manager's constructor's check of the directories it is given (v1: each below
    its own hierarchy's mount point, /sys/fs/cgroup/NAME; v2: below /sys/fs/cgroup)."""
    for d in recorded_dirs(dirs, created):
        check_below(d, CGROUP_ROOT if version == 2 else hierarchy_root(d))


def hierarchy_root(d):
    """The mount point of the v1 hierarchy a directory lives in: /sys/fs/cgroup/NAME."""
    name = d[len(CGROUP_ROOT) + 1:].split("/", 1)[0] if type(d) is str else ""
    return f"{CGROUP_ROOT}/{name or '-'}"


def check_below(directory, hierarchy_root):
    """Refuse a cgroup directory that is not canonical and strictly below hierarchy_root
    (an absolute mount point): every directory a Manager writes, joins or removes passes
    here first, whatever config or state record it came from."""
    root = hierarchy_root.rstrip("/")
    if (type(directory) is not str or not directory.startswith(root + "/")
            or below_root("/", directory) != directory or directory == root):
        raise PyruncError(f"refusing cgroup directory {directory!r}: it is not below the "
                          f"hierarchy root {hierarchy_root}")
    return directory


def joins_take_the_rwsem():
    """Whether joining the container's cgroups still takes cgroup_threadgroup_rwsem for
    writing on this kernel (and so waits a grace period after a quiet spell, see
    prime_migration).  The fork chain's joins do not since Linux 5.7: a v1 hierarchy is
    joined by the single-threaded intermediate writing "0" to its `tasks` (a thread
    moving itself skips the lock since 5.5, 9a3284fad42f "cgroup: Optimize single
    thread migration"), the cgroup2 one by creating the intermediate in it (clone3
    CLONE_INTO_CGROUP, 5.7: fork's read side only).  A kernel that refuses either at run
    time (clone3 filtered by a seccomp profile, say) gets the old joins, unprimed."""
    major, _, rest = posix.uname().release.partition(".")
    minor = rest.split(".", 1)[0]
    try:
        return (int(major), int(minor)) < (5, 7)
    except ValueError:
        return True


def prime_if_needed():
    """prime_migration() where the joins still take the rwsem, else nothing to wait for:
    a prime would itself take the write lock, and make the mkdirs and everyone's joins
    wait for its grace period."""
    if joins_take_the_rwsem():
        return prime_migration()
    return _nothing


def _nothing():
    pass


def join_self(path):
    """Write "0" (this process, or with a v1 `tasks` file this thread) into a cgroup
    file (write_file: os calls, no text and buffer layers on create's path)."""
    write_file(path, "0")


def prime_migration():
    """Start paying, in the background, the one-off cost of the first cgroup migration.

    The kernel's first write to any cgroup.procs after a quiet spell waits for an RCU grace
    period (~9 ms here); writes within the next period are fast.  Rewriting our own pid
    into the cgroup we are already in changes nothing but starts that wait while create
    parses the config and builds the container's cgroups; the child's real joins then take
    a fraction of a millisecond each.  (A pid that names no process would move nothing at
    all, but 6.18 looks the task up before it takes the lock: no wait is started.)  Only
    the runtime's own process is written, and only into the cgroup the mount shows it in
    (_own_procs_file).  Returns a function that waits for it to finish (no thread may
    outlive it: the runtime forks next)."""
    import _thread

    done = _thread.allocate_lock()
    done.acquire()
    pid = str(posix.getpid())

    def write_own_pid():
        try:
            procs = _own_procs_file()
            if procs is not None:
                with open(procs, "w") as f:
                    f.write(pid)
        except (OSError, ValueError):
            pass  # only an optimisation
        finally:
            done.release()

    _thread.start_new_thread(write_own_pid, ())

    def wait():
        done.acquire()
        done.release()

    return wait


def _own_procs_file():
    """cgroup.procs of this process's cgroup in the first hierarchy /proc/self/cgroup
    names, found through that hierarchy's mount (its root as runc maps it); None when no
    mount shows that cgroup.  In a cgroup namespace with the host's cgroupfs mounted, say,
    /proc/self/cgroup says "/" while the mount's root is the host's: joining the two names
    the host's root cgroup, and the write would move the runtime out of its own."""
    with open("/proc/self/cgroup") as f:
        _, controllers, path = f.readline().rstrip("\n").split(":", 2)
    wanted = set(controllers.split(",")) if controllers else None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            if wanted is None:
                if fields[sep + 1] != "cgroup2":
                    continue
            elif fields[sep + 1] != "cgroup" or not wanted <= set(fields[sep + 3].split(",")):
                continue
            root, point = fields[3], fields[4]
            if "\\" in root + point:
                return None  # an escaped name: not worth decoding for an optimisation
            root = root.rstrip("/")
            if path != root and not path.startswith(root + "/"):
                return None  # the cgroup is not below what is mounted (e.g. "/.." roots)
            return f"{point}{path[len(root):].rstrip('/')}/cgroup.procs"
    return None


def new_manager(cgroups_path, container_id, v2=None, lines=None):
    """v2: host_is_v2(), lines: mountinfo(), when the caller has them already."""
    if host_is_v2(lines) if v2 is None else v2:
        from ociruntime.libcontainer.cgroups.v2 import V2Manager
        return V2Manager.for_container(cgroups_path, container_id)
    from ociruntime.libcontainer.cgroups.v1 import V1Manager
    return V1Manager.for_container(cgroups_path, container_id, lines)


def from_record(record):
    """Rebuild the Manager that create used, from the state record."""
    if record.get("version") == 0:
        from ociruntime.libcontainer.cgroups.none import NoCgroupManager
        return NoCgroupManager()
    if record.get("version") == 2:
        from ociruntime.libcontainer.cgroups.v2 import V2Manager
        return V2Manager(record["dirs"], record.get("created", []))
    from ociruntime.libcontainer.cgroups.v1 import V1Manager
    return V1Manager(record["dirs"], record.get("created", []))


def destroy_recorded(record):
    """What destroy() does for the Manager from_record(record) builds (v1 or v2: remove
    the directories create made; none for a container without cgroups), after the same
    checks, without building it: delete of a stopped container whose init had a pid
    namespace of its own (the kernel killed the cgroup's processes with it: none to list,
    kill or thaw) needs nothing else of the v1 or v2 module (~0.18 ms to import)."""
    if record.get("version") == 0:
        return
    dirs, created = record["dirs"], record.get("created", [])
    check_recorded(record.get("version"), dirs, created)
    remove_dirs(created, own=set(dirs.values()))


def planned_record(manager):
    """manager.to_record() as it will be once create() has run: with the directories that
    are missing now as the ones it made.  `create` records it before making them, so a
    create killed half-way leaves a record from which `delete --force` removes them."""
    record = manager.to_record()
    if record.get("version") not in (1, 2):
        return record
    missing = []
    for path in record["dirs"].values():
        chain = []
        p = path
        while p != "/" and not paths.isdir(p):
            chain.append(p)
            p = paths.dirname(p)
        missing += [d for d in reversed(chain) if d not in missing]
    return dict(record, created=missing)


def owns_all(manager):
    """Every directory of the container's cgroup was made for it (none is shared with
    anything else), so all that is in it is the container's."""
    dirs = list(getattr(manager, "dirs", {}).values())
    return bool(dirs) and all(d in manager.created for d in dirs)


def make_dirs(path, created):
    """mkdir -p that records each directory it made (outermost first).  A parent can go
    between the walk and the mkdir below it: another container's delete removes the
    parent it made (/ns of /ns/id) once it looks empty; then walk again.  The walk is
    mkdir itself, upwards until one is made or there already (a hierarchy's root at
    worst), then down again: no stat of each directory first (the directory itself first:
    its parent is there in the usual case, one mkdir; /ns/id with /ns to make, three,
    not six: 30 syscalls less a create on a host with ten hierarchies)."""
    for attempt in range(10):
        missing = []  # innermost first, each one's parent missing when it was tried
        p = path
        while True:
            try:
                posix.mkdir(p, 0o755)
                created.append(p)
                break
            except FileExistsError:
                break  # there already: left alone, as below
            except FileNotFoundError:
                parent = paths.dirname(p)
                if parent == p:
                    raise
                missing.append(p)
                p = parent
        try:
            for d in reversed(missing):
                try:
                    posix.mkdir(d, 0o755)
                except FileExistsError:
                    continue
                created.append(d)
            return
        except FileNotFoundError:
            if attempt == 9:
                raise


def remove_dirs(created, own=()):
    """rmdir what we made, innermost first; a cgroup with live tasks is reported.  A parent
    we made on the way (cgroupsPath /ns/id made /ns) stays when another container's cgroup
    lives in it now: it is theirs as much as ours (the last one out removes it).  The
    sub-cgroups the container made in its own cgroups (own) go first, depth-first, as
    runc's RemovePath does."""
    for d in reversed(created):
        if d in own:
            if _rmdir_at_once(d):
                continue
            import os

            for root, _dirs, _files in os.walk(d, topdown=False):
                _rmdir_cgroup(root)
            continue
        if any(other.startswith(d + "/") for other in created):
            _rmdir_parent(d)
        else:
            _rmdir_cgroup(d)


def _rmdir_at_once(d):
    """One rmdir of a container's own cgroup: True when it is gone.  Most have no
    sub-cgroups, and listing one (20-35 files in a v1 hierarchy) only to find none cost
    delete ~0.3 ms for 11 hierarchies; EBUSY (sub-cgroups, or tasks still exiting) is
    left to the walk and its retries."""
    try:
        posix.rmdir(d)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return True


def _rmdir_cgroup(d):
    import time

    for attempt in range(50):
        try:
            posix.rmdir(d)
            return
        except FileNotFoundError:
            return
        except OSError as e:
            if e.errno != 16 or attempt == 49:  # EBUSY: tasks still exiting
                raise PyruncError(f"removing cgroup {d}: {e.strerror}") from None
            time.sleep(0.01)


def _rmdir_parent(d):
    """A parent made on the way (/ns of /ns/id): removed when empty, and left, at once,
    when another container's cgroup lives in it (EBUSY), even one made since a check:
    theirs as much as ours, the last one out removes it."""
    try:
        posix.rmdir(d)
    except FileNotFoundError:
        pass
    except OSError as e:
        if e.errno not in (16, 39):  # EBUSY, ENOTEMPTY
            raise PyruncError(f"removing cgroup {d}: {e.strerror}") from None


def read_tree_pids(directory):
    """The pids in a cgroup and every cgroup below it (runc's GetAllPids), top-down as
    os.walk went (a directory that cannot be listed is skipped); on posix.scandir, as os
    costs create and run ~1 ms to import (ociruntime/paths.py)."""
    pids = []
    todo = [directory]
    while todo:
        d = todo.pop()
        try:
            with posix.scandir(d) as entries:
                subdirs = [e.path for e in entries if e.is_dir(follow_symlinks=False)]
        except OSError:
            continue
        pids += read_pids(paths.join(d, "cgroup.procs"))
        todo += reversed(subdirs)
    return pids


def write_file(path, text):
    """One write of text to a cgroup file through os calls: open() would add a buffer and
    a text layer (6 syscalls instead of 3, and ~20 us more Python a file, 16 of them in a
    v1 create: devices.allow, cpuset)."""
    fd = posix.open(path, posix.O_WRONLY | posix.O_CLOEXEC)
    try:
        posix.write(fd, text.encode())
    finally:
        posix.close(fd)


def read_file(path):
    """A small cgroup file's text, as write_file writes."""
    return paths.read_bytes(path).decode()


def read_pids(procs_file):
    try:
        with open(procs_file) as f:
            return [int(x) for x in f.read().split()]
    except FileNotFoundError:
        return []
