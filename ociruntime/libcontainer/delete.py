"""delete: what a container leaves goes (its processes, its cgroup, the mounts it made in
the runtime's namespace, its state directory), then its poststop hooks run.

Its own module, which Container.delete calls: `pyrunc delete` reads none of the other
operations' code (container.py and its two classes: ~0.45 ms of a fresh process's CPU).
create's failure path undoes what it made with kill_wait and detach_container_mounts.
"""

import posix

from ociruntime import log, paths
from ociruntime.errors import HostLimit, Internal, NotFound, PyruncError, WrongState
from ociruntime.state import CREATED, PAUSED, STOPPED, StateDamaged, StateMissing, proc_stat

FORCE_LOCK_WAIT = 5  # seconds `delete --force` waits for another operation's lock


def delete(st, force=False):
    """st: the container's ContainerState."""
    if not st.exists():
        if force:
            # as runc: an engine cleaning up after a failed create (podman) or a crash
            # retries `delete --force`; a container already gone is no error then.
            # Nothing else is touched: a cgroup of the default name (the id under the
            # caller's, as runc names it) is someone else's when we have no record
            return
        raise NotFound(f"container {st.id!r} does not exist")
    with st.locked(timeout=FORCE_LOCK_WAIT if force else None) as held:
        if not held.acquired:
            # --force: whoever holds the lock (a hung hook, a wedged runtime) does not
            # keep the container alive; what it was doing is moot once it is gone
            log.warn(f"delete {st.id}: the container's lock is held by another "
                     "process; deleting anyway")
        _delete_locked(st, force)


def _delete_locked(st, force):
    try:
        st.load()
    except StateMissing:
        # a create that died before its first record: it made nothing else yet
        st.remove()
        return
    except StateDamaged as e:
        if not force:
            raise Internal(f"{e}: cannot tell whether it still runs; nothing was "
                           "deleted (delete --force removes what can be found)") from None
        log.warn(f"{e}: removing what can be found without it")
        _remove_default_cgroup(st.id)
        st.remove()
        return
    from ociruntime.libcontainer import cgroups

    if st.creating:
        _delete_half_made(st, cgroups.from_record(st.record["cgroup"]), force)
        return
    status = st.status()
    # runc and crun kill and delete a created container without --force (a task
    # created and never started; engines rely on it), against the spec's wording:
    # see conformance/CHECKLIST.md "Deviations"
    if status not in (STOPPED, CREATED) and not force:
        raise WrongState(f"cannot delete container {st.id} that is not stopped: "
                          f"{status}")
    own_pid_ns = st.record.get("own_pid_ns", False)
    if status == STOPPED and own_pid_ns:
        # the common case: nothing to kill or thaw, only the directories to remove
        cgroups.destroy_recorded(st.record["cgroup"])
    else:
        manager = cgroups.from_record(st.record["cgroup"])
        if status != STOPPED:
            kill_wait(st.record["pid"], st.record["pid_start"],
                      thaw=manager if status == PAUSED else None)
        if not own_pid_ns:
            # without a pid namespace of its own the init's children outlive it: what is
            # left in the cgroup goes with the container (runc does the same).  With
            # one, the kernel killed them all with the init, and anything else in a
            # shared cgroup is not ours to kill.
            _kill_cgroup(manager, paused=status == PAUSED)
        manager.destroy()
    if st.record.get("shares_mount_ns") is not None:
        detach_container_mounts(st.record["rootfs"], st.record["shares_mount_ns"])
    st.remove()
    if st.record.get("hooks", {}).get("poststop"):
        from ociruntime.libcontainer.hooks import run_recorded

        run_recorded(st.record, st.id, "poststop", STOPPED, warn=log.warn)


def _delete_half_made(st, manager, force):
    """A create's record that is still "creating" under our lock: that create was
    killed half-way.  Kill what it made (the init, when its pid was recorded; all of a
    cgroup made for it), remove the cgroup, its mounts and the state."""
    from ociruntime.libcontainer import cgroups

    rec = st.record
    pid = rec.get("pid")
    owned = cgroups.owns_all(manager)
    alive = bool(pid and proc_stat(pid) and proc_stat(pid)[1] == rec.get("pid_start"))
    if not force and (alive or (owned and manager.pids())):
        raise WrongState(f"cannot delete container {st.id} that is being created "
                          "(its create was interrupted?): use delete --force")
    if alive:
        kill_wait(pid, rec.get("pid_start"))
    if owned:
        _kill_cgroup(manager)
    try:
        manager.destroy()
    except PyruncError as e:
        log.warn(str(e))
    if rec.get("shares_mount_ns") is not None:
        detach_container_mounts(rec["rootfs"], rec["shares_mount_ns"])
    st.remove()


def _remove_default_cgroup(container_id):
    """Kill what is in the cgroup pyrunc names after this id by default (<id> under the
    caller's cgroup) and remove it: for a container whose record is damaged."""
    from ociruntime.libcontainer import cgroups

    try:
        manager = cgroups.new_manager(None, container_id)
    except (PyruncError, OSError):
        return
    manager.created = [d for d in manager.dirs.values() if paths.isdir(d)]
    if not manager.created:
        return
    _kill_cgroup(manager)
    manager.destroy()


def _kill_cgroup(manager, paused=False):
    """SIGKILL every process in the container's cgroup and wait until it is empty."""
    import time

    deadline = time.monotonic() + 5
    while True:
        pids = manager.pids()
        if not pids:
            return
        for pid in pids:
            try:
                posix.kill(pid, 9)
            except ProcessLookupError:
                pass
        if paused:
            manager.freeze(False)  # a frozen task dies only once thawed
            paused = False
        if time.monotonic() > deadline:
            raise HostLimit(f"processes {pids} did not die")
        time.sleep(0.002)


def detach_container_mounts(rootfs, premounted):
    """A container without a mount namespace of its own mounted in the runtime's, under its
    rootfs: those mounts go with the container, what was there before stays."""
    from ociruntime.libcontainer.rootfs import detach_mounts_under

    for point in detach_mounts_under(rootfs, premounted):
        log.warn(f"could not unmount {point}")


def kill_wait(pid, start_time=None, timeout=5.0, thaw=None):
    """SIGKILL a container process and wait until it is gone (or a zombie).  A frozen
    process dies only once thawed: pass the cgroup manager as thaw for a paused one.
    Never reaps it: its exit status belongs to its reaper (the shim's, or run's)."""
    import time

    stat = proc_stat(pid)
    if stat is None or (start_time is not None and stat[1] != start_time):
        return
    try:
        posix.kill(pid, 9)
    except ProcessLookupError:
        return
    if thaw is not None:
        thaw.freeze(False)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stat = proc_stat(pid)
        if stat is None or stat[0] in ("Z", "X"):
            return
        time.sleep(0.005)
