"""Container: the OCI operations (create, start, state, kill, delete) and runc's `run`.

The CLI and the shim both call this module.  Operations that change a container hold its
directory lock; the status is derived (state.py), never stored.

start and delete import no os (posix and ociruntime.paths: see there), nor create's code,
which is in create.py; kill's is in kill.py, which `pyrunc kill` imports instead of this
module.
"""

import posix

from ociruntime import log, paths
from ociruntime.errors import (
    HookError,
    HostLimit,
    Internal,
    NotFound,
    PyruncError,
    WrongState,
)
from ociruntime.state import (
    CREATED,
    PAUSED,
    RUNNING,
    STOPPED,
    ContainerState,
    proc_stat,
    write_atomic,
)

FORCE_LOCK_WAIT = 5  # seconds `delete --force` waits for another operation's lock


class CreateOptions:
    """runc create's flags."""

    def __init__(self, bundle=".", pid_file=None, console_socket=None, preserve_fds=0,
                 no_pivot=False, no_new_keyring=False):
        self.bundle = bundle
        self.pid_file = pid_file
        self.console_socket = console_socket
        # run (not create) keeps the pty master itself: called with a dup of it
        self.keep_console = None
        self.preserve_fds = preserve_fds
        self.no_pivot = no_pivot
        self.no_new_keyring = no_new_keyring
        # the container's fds 0, 1, 2 when not the caller's own (the shim's fifos)
        self.stdio = None
        # a cgroups.prime_if_needed() already started by the caller (the CLI starts it
        # before its own imports, so more of the grace period is off create's path; on
        # Linux 5.7 and later there is none: the joins take no grace period)
        self.primed = None


class Container:
    def __init__(self, root, container_id):
        self.state = ContainerState(root, container_id)
        self.id = container_id

    def create(self, opts):
        """Build the container and park its process in the exec stage (create.py: the
        other operations read none of its code).  Nothing is written before the config
        has been parsed and checked; on failure nothing is left."""
        from ociruntime.libcontainer.create import create

        return create(self, opts)

    def _recorded_hook_state(self, status):
        from ociruntime.libcontainer.hooks import state_json

        rec = self.state.record
        return state_json(self.id, status, rec["pid"], rec["bundle"], rec.get("annotations"))

    def _run_recorded_hooks(self, phase, status, warn=None):
        """poststart in the bundle (runc 1.1 runs it from create, in the bundle); poststop
        where the caller is, as runc's delete."""
        recorded = self.state.record.get("hooks", {}).get(phase)
        if recorded:
            from ociruntime.libcontainer import hooks

            hooks.run_all(hooks.from_record(recorded), phase,
                          self._recorded_hook_state(status), warn=warn,
                          cwd=self.state.record["bundle"] if phase == "poststart" else None)

    # --- the other operations --------------------------------------------------------------
    def load(self):
        self.state.load()
        return self

    def status(self):
        return self.state.status()

    def start(self):
        st = self.state
        with st.locked():
            st.load()
            status = st.status()
            if status != CREATED:
                raise WrongState(f"cannot start a container in the {status} state "
                                 "(it must be created)")
            if not st.record.get("has_process"):
                raise WrongState("cannot start: config.json has no process")
            failure = _release_fifo(st.fifo_path, st.record)
            if failure is None:
                try:
                    self._run_recorded_hooks("poststart", RUNNING,
                                             warn=self._poststart_warn())
                except PyruncError as e:
                    failure = str(e)
        if failure is not None:
            # a failed startContainer or poststart hook: stop and destroy (spec steps 12-13)
            self.delete(force=True)
            raise HookError(failure)

    def _poststart_warn(self):
        """Before runtime-spec 1.3.0 a failing poststart hook was only a warning."""
        version = self.state.record.get("config_oci_version", "1.3.0")
        major_minor = tuple(int(x) for x in version.split("-")[0].split(".")[:2])
        return log.warn if major_minor < (1, 3) else None

    def kill(self, signum, all_processes=False):
        """kill.py: `pyrunc kill` reads that module alone."""
        from ociruntime.libcontainer.kill import kill

        kill(self.state, signum, all_processes)

    def delete(self, force=False):
        st = self.state
        if not st.exists():
            if force:
                # as runc: an engine cleaning up after a failed create (podman) or a crash
                # retries `delete --force`; a container already gone is no error then.
                # Nothing else is touched: a cgroup of the default name (the id under the
                # caller's, as runc names it) is someone else's when we have no record
                return
            raise NotFound(f"container {self.id!r} does not exist")
        with st.locked(timeout=FORCE_LOCK_WAIT if force else None) as held:
            if not held.acquired:
                # --force: whoever holds the lock (a hung hook, a wedged runtime) does not
                # keep the container alive; what it was doing is moot once it is gone
                log.warn(f"delete {self.id}: the container's lock is held by another "
                         "process; deleting anyway")
            self._delete_locked(force)

    def _delete_locked(self, force):
        from ociruntime.state import StateDamaged, StateMissing

        st = self.state
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
            _remove_default_cgroup(self.id)
            st.remove()
            return
        from ociruntime.libcontainer import cgroups

        manager = cgroups.from_record(st.record["cgroup"])
        if st.creating:
            self._delete_half_made(manager, force)
            return
        status = st.status()
        # runc and crun kill and delete a created container without --force (a task
        # created and never started; engines rely on it), against the spec's wording:
        # see conformance/CHECKLIST.md "Deviations"
        if status not in (STOPPED, CREATED) and not force:
            raise WrongState(f"cannot delete container {self.id} that is not stopped: "
                              f"{status}")
        if status != STOPPED:
            kill_wait(st.record["pid"], st.record["pid_start"],
                       thaw=manager if status == PAUSED else None)
        if not st.record.get("own_pid_ns", False):
            # without a pid namespace of its own the init's children outlive it: what is
            # left in the cgroup goes with the container (runc does the same).  With one,
            # the kernel killed them all with the init, and anything else in a shared
            # cgroup is not ours to kill.
            _kill_cgroup(manager, paused=status == PAUSED)
        manager.destroy()
        if st.record.get("shares_mount_ns") is not None:
            detach_container_mounts(st.record["rootfs"], st.record["shares_mount_ns"])
        st.remove()
        self._run_recorded_hooks("poststop", STOPPED, warn=log.warn)

    def _delete_half_made(self, manager, force):
        """A create's record that is still "creating" under our lock: that create was
        killed half-way.  Kill what it made (the init, when its pid was recorded; all of a
        cgroup made for it), remove the cgroup, its mounts and the state."""
        from ociruntime.libcontainer import cgroups

        rec = self.state.record
        pid = rec.get("pid")
        owned = cgroups.owns_all(manager)
        alive = bool(pid and proc_stat(pid) and proc_stat(pid)[1] == rec.get("pid_start"))
        if not force and (alive or (owned and manager.pids())):
            raise WrongState(f"cannot delete container {self.id} that is being created "
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
        self.state.remove()

    def pause(self):
        self._freeze(True)

    def resume(self):
        self._freeze(False)

    def _freeze(self, frozen):
        """pause/resume through the freezer (v1 freezer.state, v2 cgroup.freeze)."""
        st = self.state
        with st.locked():
            st.load()
            status = st.status()
            if frozen and status not in (RUNNING, CREATED):
                raise WrongState(f"container not running (it is {status})")
            if not frozen and status != PAUSED:
                raise WrongState(f"container not paused (it is {status})")
            from ociruntime.libcontainer import cgroups

            cgroups.from_record(st.record["cgroup"]).freeze(frozen)

    def update(self, resources, raw=None):
        """`update`: change the cgroup limits of a live container.  raw is the resources
        JSON the update stands for: it is merged into the recorded resources (runc keeps
        its config in its state the same way), so a later update of another field keeps
        what this one set, and a value that needs another (swap needs the memory limit on
        v2) takes it from the record.  New device rules replace the old ones."""
        st = self.state
        with st.locked():
            st.load()
            status = st.status()
            if status not in (CREATED, RUNNING, PAUSED):
                raise WrongState(f"container not running (it is {status})")
            from ociruntime.config import parse_resources
            from ociruntime.libcontainer import cgroups

            manager = cgroups.from_record(st.record["cgroup"])
            merged = None
            if raw is not None:
                merged = _merge_resources(st.record.get("resources") or {}, raw)
                mem = raw.get("memory")
                if mem and "swap" in mem and "limit" not in mem:
                    limit = (merged.get("memory") or {}).get("limit")
                    if limit is not None:
                        raw = dict(raw, memory=dict(mem, limit=limit))
                        resources = parse_resources(raw)
            if resources.devices:
                rules = resources.devices
                if merged is not None:
                    rules = parse_resources({"devices": merged["devices"]}).devices
                manager.apply_devices(rules)
            manager.set_resources(resources, update=True)
            if merged is not None:
                st.save(dict(st.record, resources=merged))

    def cgroup_manager(self):
        from ociruntime.libcontainer import cgroups

        return cgroups.from_record(self.state.record["cgroup"])

    def oci_state(self):
        return self.state.oci_state()

    def pids(self):
        from ociruntime.libcontainer import cgroups

        return cgroups.from_record(self.state.record["cgroup"]).pids()


def write_pid_file(path, pid):
    """--pid-file of create, run and exec: the bare pid, atomically (an error names the
    flag; the caller then undoes what the pid stands for, as runc does)."""
    import os

    try:
        write_atomic(os.path.abspath(path), str(pid), 0o644)
    except OSError as e:
        raise PyruncError(f"--pid-file {path}: {e.strerror}") from None


def _merge_resources(saved, new):
    """runc update's merge: each value given replaces the recorded one; objects merge
    field by field, arrays (device rules, throttles, hugepage limits) replace whole."""
    merged = dict(saved)
    for key, value in new.items():
        old = merged.get(key)
        if type(value) is dict and type(old) is dict:
            merged[key] = _merge_resources(old, value)
        else:
            merged[key] = value
    return merged


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


STAGE_EXE = "/memfd:pyrunc-stage"  # /proc/PID/exe of a process still in the exec stage
HOOK_FAILURE = b"hooks.startContainer["  # how the stage's failure answer begins, after "1"


def _release_fifo(fifo_path, record):
    """Open exec.fifo for reading: the parked stage's open completes, it runs the
    startContainer hooks and answers "0" (going to exec the program) or "1<why>".  Returns
    None, or the failure text.  Reads to EOF: the stage keeps the fifo open until execve
    closes it, so poststart hooks run after the program is executed.

    What was read only explains; the process decides.  Nobody but root can reach the
    fifo, but a start must neither hang nor destroy a container over it: it stops waiting
    once the process has left the stage (exec'd the program) or died; garbage written into
    the fifo makes no failure while the program runs; a stage that someone else released
    (the program runs, nothing came to us) is reported, and the container left alone."""
    import select
    import time

    from ociruntime.state import process_alive

    pid, start_time = record["pid"], record["pid_start"]
    fd = posix.open(fifo_path, posix.O_RDONLY | posix.O_NONBLOCK | posix.O_CLOEXEC)
    answer = b""
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        while True:
            if poller.poll(100):
                data = posix.read(fd, 4096)
                if data:
                    answer += data
                    if answer == b"0":
                        continue  # the usual answer: EOF follows at execve
                elif answer:
                    break  # EOF after the answer: the stage exec'd the program, or died
                else:
                    time.sleep(0.01)  # a writer came and went without a word
            if not process_alive(pid, start_time) or _left_stage(pid):
                break
    finally:
        posix.close(fd)
    posix.unlink(fifo_path)
    if answer == b"0":
        return None
    hook_failed = answer.find(b"1" + HOOK_FAILURE)
    if process_alive(pid, start_time) and _left_stage(pid):
        if not answer:
            raise WrongState("cannot start an already running container (another process "
                              "opened its exec.fifo)")
        log.warn(f"exec.fifo: unexpected data {answer[:64]!r}; the program runs")
        return None
    if hook_failed >= 0:
        return answer[hook_failed + 1:].decode(errors="replace")
    if b"0" in answer:  # the stage's "0" among someone else's bytes; the program ran
        log.warn(f"exec.fifo: unexpected data {answer[:64]!r}")
        return None
    raise WrongState("container process exited before it could start")


def _left_stage(pid):
    """The process has exec'd something else than the stage (the container's program)."""
    try:
        return not posix.readlink(f"/proc/{pid}/exe").startswith(STAGE_EXE)
    except OSError:
        return False  # gone (the caller checks that), or not ours to look at


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
