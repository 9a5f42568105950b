"""Container: the OCI operations (create, start, state, kill, delete) and runc's `run`.

The CLI and the shim both call this module.  Operations that change a container hold its
directory lock; the status is derived (state.py), never stored.

start, kill and delete import no os (posix and ociruntime.paths: see there); create, which
imports far more anyway, imports it where it begins (_create, _spawn_init).
"""

import posix

from ociruntime import OCI_VERSION, log, paths
from ociruntime.errors import (
    AlreadyExists,
    HookError,
    HostLimit,
    Internal,
    InvalidConfig,
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
    rfc3339_now,
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

    # --- create ----------------------------------------------------------------------------
    def create(self, opts):
        """Build the container and park its process in the exec stage. Nothing is written
        before the config has been parsed and checked; on failure nothing is left."""
        from ociruntime.libcontainer import cgroups

        primed = opts.primed or cgroups.prime_if_needed()
        try:
            # The fork chain's modules, imported now: where the joins still take the
            # rwsem (Linux < 5.7), the prime's write waits a grace period (3-17 ms here)
            # holding cgroup_mutex, and the cgroup mkdirs below queue behind it, so what
            # is done before them is done in that wait, off create's path (procattrs
            # too: the container init then finds it loaded)
            from ociruntime.libcontainer import (  # noqa: F401
                capabilities,
                init,
                procattrs,
                process,
                stage,
            )

            return self._create(opts, primed)
        finally:
            primed()

    def _create(self, opts, primed):
        import os

        from ociruntime.config import ConfigError, parse_config, read_config
        from ociruntime.libcontainer import cgroups
        from ociruntime.libcontainer.support import check_supported

        bundle = os.path.realpath(opts.bundle)
        if not os.path.isdir(bundle):
            raise InvalidConfig(f"bundle {opts.bundle}: not a directory")
        try:
            doc = read_config(bundle)
            cfg = parse_config(doc)
        except ConfigError as e:
            raise InvalidConfig(str(e)) from None
        if cfg.root is None:
            raise InvalidConfig("root: required on Linux")
        mountinfo = cgroups.mountinfo()
        cgroup_v2 = cgroups.host_is_v2(mountinfo)
        check_supported(cfg, cgroup_v2)
        seccomp_program = None
        if cfg.linux.seccomp is not None and cfg.process is not None:
            from ociruntime.libcontainer import seccomp

            seccomp_program = seccomp.prepare(cfg.linux.seccomp, self.state.root)
        rootfs = cfg.root.path if cfg.root.path.startswith("/") else os.path.join(
            bundle, cfg.root.path)
        if not os.path.isdir(rootfs):
            raise InvalidConfig(f"root.path: {rootfs} is not a directory")
        rootfs = os.path.realpath(rootfs)
        _check_rlimits(cfg.process)
        if (cfg.process is not None and cfg.process.terminal and not opts.console_socket
                and opts.keep_console is None):
            raise InvalidConfig("process.terminal is true: --console-socket is required "
                              "(or set terminal to false)")
        if opts.console_socket and (cfg.process is None or not cfg.process.terminal):
            raise InvalidConfig("--console-socket given, but process.terminal is false")
        if self.state.recorded():
            raise AlreadyExists(f"container with id {self.id!r} already exists")

        from ociruntime.libcontainer.namespaces import NamespacePlan

        ns_plan = NamespacePlan(cfg.linux.namespaces)
        _check_namespace_needs(cfg, ns_plan)
        if ns_plan.new_user:
            for field, mappings in (("uidMappings", cfg.linux.uid_mappings),
                                    ("gidMappings", cfg.linux.gid_mappings)):
                if not mappings:
                    raise InvalidConfig(f"linux.{field}: a new user namespace needs uid and "
                                      "gid mappings")
            if (os.geteuid() != 0 and cfg.process is not None
                    and cfg.process.user.additional_gids):
                raise InvalidConfig("process.user.additionalGids: an unprivileged caller's user "
                                  "namespace cannot have supplementary groups (setgroups is "
                                  "denied there)")
        join_fds = ns_plan.open_joins()
        premounted = _premounted(rootfs, ns_plan)
        manager = None
        pid = None
        claimed = False
        try:
            self.state.claim()
            claimed = True
            manager = cgroups.new_manager(cfg.linux.cgroups_path, self.id, cgroup_v2,
                                          mountinfo)
            _check_existing_cgroup(manager)
            # the intent first: before any cgroup, mount or process exists, a record names
            # what this create will make, so a create killed at any moment leaves nothing
            # that `delete --force` cannot find (the cgroup's directories still to be made,
            # the mounts in a shared mount namespace; the init's pid once it is known)
            record = self._record(cfg, doc, bundle, rootfs, ns_plan, premounted, opts,
                                  seccomp_program)
            record["cgroup"] = cgroups.planned_record(manager)
            record["freezer"] = manager.freezer_file()
            self.state.save(record)
            try:
                manager.create()
            except PyruncError:
                if os.geteuid() == 0 or cfg.linux.cgroups_path:
                    raise
                # runc's rootless rule: no cgroup when the caller cannot make one
                from ociruntime.libcontainer.cgroups.none import NoCgroupManager

                manager = NoCgroupManager()
            # saved again only when it made other directories than planned (a parent made
            # by a concurrent create meanwhile) or none: each save is a rename over the
            # record, ~0.4 ms of CPU on ext4 (its auto_da_alloc flushes the new file)
            made = {"cgroup": manager.to_record(), "freezer": manager.freezer_file()}
            if made != {"cgroup": record["cgroup"], "freezer": record["freezer"]}:
                record.update(made)
                self.state.save(record)
            if cfg.linux.resources is not None:
                manager.apply_devices(cfg.linux.resources.devices)
                # every controller and file the limits need, checked before any fork
                manager.set_resources(cfg.linux.resources, write=False)
            primed()  # no thread may be running when we fork
            if seccomp_program is not None:
                from ociruntime.libcontainer import seccomp

                seccomp.save_for_exec(self.state.dir, seccomp_program)

            # the init's pid as soon as it is known: for delete --force after a create
            # killed before its end (not needed when every directory of its cgroup was made
            # for it: the init is in it, and delete --force kills what is in it), and for
            # `state` called by the create phase's hooks
            pid_found_later = cgroups.owns_all(manager) and not (
                cfg.hooks.prestart or cfg.hooks.create_runtime or cfg.hooks.create_container)

            def record_pid(container_pid):
                if pid_found_later:
                    return
                stat = proc_stat(container_pid)
                if stat is not None:
                    record.update(pid=container_pid, pid_start=stat[1])
                    self.state.save(record)

            pid = self._spawn_init(cfg, bundle, rootfs, ns_plan, join_fds, manager,
                                   cgroup_v2, opts, seccomp_program, on_pid=record_pid)
            if cfg.linux.resources is not None and not _runtime_hooks(cfg):
                # the limits, once the runtime's own forks in the cgroup are done (a pids
                # limit must not stop them) and before the program runs; runc's order
                manager.set_resources(cfg.linux.resources)
            stat = proc_stat(pid)
            if stat is None:
                raise WrongState("container process exited during create")
            del record["phase"]
            record.update(pid=pid, pid_start=stat[1])
            self.state.save(record)
            if opts.pid_file:
                write_pid_file(opts.pid_file, pid)
        except BaseException as error:
            pid = pid or getattr(error, "container_pid", None)
            if pid:
                _kill_wait(pid)
            if manager is not None:
                try:
                    manager.destroy()
                except PyruncError as e:
                    log.warn(str(e))
            if claimed:
                # a create that lost the id made nothing: what is mounted under a shared
                # rootfs then is the winner's
                if premounted is not None:
                    _detach_container_mounts(rootfs, premounted)
                self.state.remove()
            if cfg.hooks.poststop and isinstance(error, HookError):
                from ociruntime.libcontainer import hooks

                hooks.run_all(cfg.hooks.poststop, "poststop",
                              self._hook_state(cfg, bundle, "stopped", pid), warn=log.warn)
            raise
        finally:
            self.state.unlock()  # on every way out (a no-op once remove() let it go)
            for _, fd in join_fds:
                try:
                    os.close(fd)
                except OSError:
                    pass
        return pid

    def _record(self, cfg, doc, bundle, rootfs, ns_plan, premounted, opts, seccomp_program):
        """The state record of this create, in phase "creating" (no pid yet)."""
        from ociruntime.state import PHASE_CREATING

        record = {
            "ociVersion": OCI_VERSION, "id": self.id, "phase": PHASE_CREATING,
            "bundle": bundle, "rootfs": rootfs, "created": rfc3339_now(),
            "owner": _owner(), "annotations": dict(cfg.annotations),
            "has_process": cfg.process is not None,
            "own_pid_ns": ns_plan.has_new("pid"),
            "shares_mount_ns": premounted,
            "config_oci_version": cfg.oci_version,
        }
        if cfg.linux.resources is not None:
            # as runc keeps its config: update merges into these, and the merged whole
            # is what later updates start from
            record["resources"] = doc["linux"]["resources"]
        if opts.no_new_keyring:
            record["no_new_keyring"] = True  # exec keeps the caller's keyring too
        if cfg.linux.personality is not None:
            record["personality"] = cfg.linux.personality.domain  # for exec too
        if seccomp_program is not None:
            record["seccomp"] = seccomp_program.to_record()
        if cfg.hooks.poststart or cfg.hooks.poststop:
            from ociruntime.libcontainer import hooks

            record["hooks"] = {"poststart": hooks.to_record(cfg.hooks.poststart),
                               "poststop": hooks.to_record(cfg.hooks.poststop)}
        return record

    def _spawn_init(self, cfg, bundle, rootfs, ns_plan, join_fds, manager, cgroup_v2, opts,
                    seccomp_program=None, on_pid=None):
        import os

        from ociruntime.config import idmapped
        from ociruntime.libcontainer import capabilities, init, namespaces, process, stage

        os.mkfifo(self.state.fifo_path, 0o622)
        # whatever the umask: the stage may not be root (a user namespace), and reopens
        # the fifo through /proc/self/fd, which skips the 0700 directory's search check
        os.chmod(self.state.fifo_path, 0o622)
        fifo_fd = os.open(self.state.fifo_path, os.O_PATH | os.O_CLOEXEC)
        stage_fd = stage.sealed_stage_fd()
        seccomp_fd = -1
        if seccomp_program is not None:
            from ociruntime.libcontainer.seccomp import program_fd

            seccomp_fd = program_fd(seccomp_program.bpf, 3 + opts.preserve_fds)
        mount_fds = {}
        idmap_items = ()
        if any(idmapped(m) for m in cfg.mounts):
            from ociruntime.libcontainer import idmap

            idmap_items = idmap.items(cfg, ns_plan, bundle)
            if idmap.in_parent(ns_plan):
                mount_fds = idmap.prepare(idmap_items, 3 + opts.preserve_fds)
                idmap_items = ()
        if ns_plan.has("user") and os.geteuid() == 0:
            # bind sources opened as the host's root (runc's mount sources); rootless,
            # the container's root is the caller and reaches what the caller does
            from ociruntime.libcontainer import idmap

            idmap_items = (*idmap_items, *idmap.source_items(cfg, bundle))
        caps = cfg.process.capabilities if cfg.process is not None else None
        old_umask = process.current_umask()
        cgroup2, cgroup_joins = manager.joins()
        launch = init.Launch(
            config=cfg, bundle=bundle, rootfs=rootfs, ns_plan=ns_plan, join_fds=join_fds,
            cgroup_joins=cgroup_joins, cgroup_binds=manager.bind_sources(),
            cgroup_v2=cgroup_v2, stage_fd=stage_fd, fifo_fd=fifo_fd,
            preserve_fds=opts.preserve_fds, no_pivot=opts.no_pivot,
            cap_masks=(capabilities.masks(caps, log.warn, ns_plan.new_user and os.geteuid() != 0)
                       if caps is not None else None),
            cap_last=capabilities.last_cap(), umask=old_umask, container_id=self.id,
            run_runtime_hooks=_runtime_hooks(cfg),
            seccomp=(seccomp_fd, seccomp_program.flags) if seccomp_fd >= 0 else None,
            mount_fds=mount_fds, idmap_items=idmap_items,
            new_keyring=not opts.no_new_keyring)

        def write_maps(child_pid):
            namespaces.write_id_maps(child_pid, cfg.linux.uid_mappings, cfg.linux.gid_mappings)

        def runtime_hooks(container_pid):
            from ociruntime.libcontainer import hooks

            if cfg.linux.resources is not None:
                manager.set_resources(cfg.linux.resources)  # the hooks see the limits
            # The spec does not say which status prestart hooks see.  prestart is the
            # deprecated pre-createRuntime hook that used to run at start, and its users
            # (and runtime-tools' hooks_stdin, as crun does) expect "created" there;
            # createRuntime sees the true "creating".
            # both in the bundle, as runc's create
            hooks.run_all(cfg.hooks.prestart, "prestart",
                          self._hook_state(cfg, bundle, "created", container_pid), cwd=bundle)
            state = self._hook_state(cfg, bundle, "creating", container_pid)
            hooks.run_all(cfg.hooks.create_runtime, "create_runtime", state, cwd=bundle)

        def console_master(fd):
            from ociruntime.libcontainer.console import send_to_console_socket

            if opts.keep_console is not None:
                opts.keep_console(os.dup(fd))
            else:
                send_to_console_socket(opts.console_socket, fd)

        def seccomp_listener(fd, container_pid):
            from ociruntime.libcontainer.seccomp import send_to_listener

            send_to_listener(seccomp_program, fd, container_pid,
                             self._hook_state(cfg, bundle, "creating", container_pid))

        try:
            return process.spawn(lambda sync: init.intermediate(sync, launch),
                                 on_idmap=write_maps, on_hooks=runtime_hooks,
                                 on_console=console_master, min_fd=3 + opts.preserve_fds,
                                 on_seccomp=seccomp_listener, stdio=opts.stdio,
                                 on_pid=on_pid, die_with_parent=True,
                                 child_close=(self.state.lock_fd,), cgroup2=cgroup2,
                                 direct=init.direct(launch))
        finally:
            os.close(fifo_fd)
            os.close(stage_fd)
            if seccomp_fd >= 0:
                os.close(seccomp_fd)
            for fd in mount_fds.values():
                os.close(fd)

    def _hook_state(self, cfg, bundle, status, pid):
        from ociruntime.libcontainer.hooks import state_json

        return state_json(self.id, status, pid, bundle, cfg.annotations)

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
        st = self.state
        st.load()
        status = st.status()
        if all_processes:
            # as runc: every process left in the cgroup, even of a stopped container
            from ociruntime.libcontainer import cgroups

            pids = cgroups.from_record(st.record["cgroup"]).pids()
            for pid in pids:
                try:
                    posix.kill(pid, signum)
                except ProcessLookupError:
                    pass
            if pids or st.record["cgroup"].get("version") != 0:
                return
        if status not in (CREATED, RUNNING, PAUSED):
            raise WrongState("container not running")
        _signal_init(st.record, signum)

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
            _kill_wait(st.record["pid"], st.record["pid_start"],
                       thaw=manager if status == PAUSED else None)
        if not st.record.get("own_pid_ns", False):
            # without a pid namespace of its own the init's children outlive it: what is
            # left in the cgroup goes with the container (runc does the same).  With one,
            # the kernel killed them all with the init, and anything else in a shared
            # cgroup is not ours to kill.
            _kill_cgroup(manager, paused=status == PAUSED)
        manager.destroy()
        if st.record.get("shares_mount_ns") is not None:
            _detach_container_mounts(st.record["rootfs"], st.record["shares_mount_ns"])
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
            _kill_wait(pid, rec.get("pid_start"))
        if owned:
            _kill_cgroup(manager)
        try:
            manager.destroy()
        except PyruncError as e:
            log.warn(str(e))
        if rec.get("shares_mount_ns") is not None:
            _detach_container_mounts(rec["rootfs"], rec["shares_mount_ns"])
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


def _check_existing_cgroup(manager):
    """runc's checks of a cgroup that is already there: a frozen one is refused (the
    container would hang), a non-empty one is a warning."""
    path = manager.freezer_file()
    if path:
        try:
            with open(path) as f:
                frozen = f.read().strip() in ("FROZEN", "1")
        except OSError:
            frozen = False
        if frozen:
            raise PyruncError("container's cgroup unexpectedly frozen")
    pids = manager.pids()
    if pids:
        log.warn(f"container's cgroup is not empty: {len(pids)} process(es) found")


def _check_namespace_needs(cfg, ns_plan):
    """Settings that only mean something in a namespace of the container's own (runc
    refuses them too, rather than change the host's)."""
    needs = (("hostname", cfg.hostname is not None, "uts"),
             ("domainname", cfg.domainname is not None, "uts"),
             ("linux.timeOffsets", bool(cfg.linux.time_offsets), "time"),
             ("linux.uidMappings", bool(cfg.linux.uid_mappings), "user"),
             ("linux.gidMappings", bool(cfg.linux.gid_mappings), "user"))
    for path, given, ns_type in needs:
        if given and not ns_plan.has(ns_type):
            raise InvalidConfig(f"{path}: needs a {ns_type} namespace of the container's own "
                              f"(linux.namespaces has none)")


def _premounted(rootfs, ns_plan):
    """For a container without a mount namespace of its own (it mounts in the runtime's):
    the ids of the mounts already under its rootfs, which delete must leave alone.  None
    for a container with one."""
    if ns_plan.has("mount"):
        return None
    from ociruntime.libcontainer.rootfs import mounts_under

    return [mnt_id for mnt_id, _ in mounts_under(rootfs)]


def _detach_container_mounts(rootfs, premounted):
    """A container without a mount namespace of its own mounted in the runtime's, under its
    rootfs: those mounts go with the container, what was there before stays."""
    from ociruntime.libcontainer.rootfs import detach_mounts_under

    for point in detach_mounts_under(rootfs, premounted):
        log.warn(f"could not unmount {point}")


def _runtime_hooks(cfg):
    """The parent runs prestart/createRuntime hooks (and sets the limits just before).
    A realtime scheduler takes the same sync: with RT group scheduling (v1
    cpu.rt_runtime_us) the init can become SCHED_FIFO/RR only once its cgroup has its
    realtime budget, so the limits go in before the init applies the scheduler (runc's
    order too: cgroup Set on procReady, the scheduler after)."""
    if cfg.hooks.prestart or cfg.hooks.create_runtime:
        return True
    sched = cfg.process.scheduler if cfg.process is not None else None
    return (sched is not None and sched.policy in ("SCHED_FIFO", "SCHED_RR")
            and cfg.linux.resources is not None)


def _check_rlimits(proc):
    """Fail before anything exists when an rlimit cannot be applied: raising a hard limit
    needs CAP_SYS_RESOURCE, which this runtime may not have."""
    if proc is None or not proc.rlimits:
        return
    for index, rl in enumerate(proc.rlimits):
        if rl.soft > rl.hard:
            raise InvalidConfig(f"process.rlimits[{index}]: {rl.type} soft limit {rl.soft} is "
                              f"above its hard limit {rl.hard}")
    from ociruntime.libcontainer.capabilities import BITS, own_permitted

    if own_permitted() >> BITS["CAP_SYS_RESOURCE"] & 1:
        return
    import resource

    for index, rl in enumerate(proc.rlimits):
        _, current_hard = resource.getrlimit(rl.resource)
        if current_hard != resource.RLIM_INFINITY and (
                rl.hard > current_hard or rl.hard == resource.RLIM_INFINITY):
            raise HostLimit(
                f"process.rlimits[{index}]: {rl.type} hard limit {rl.hard} is above the "
                f"runtime's own hard limit {current_hard}; raising it needs CAP_SYS_RESOURCE, "
                "which this runtime does not have")


def _owner():
    """runc's `owner`: the name of the user who created the container, as runc's `list`
    finds it: the first /etc/passwd line with that uid (runc reads the file, never NSS;
    pwd.getpwuid asks nscd's socket and nsswitch.conf first, ~0.1 ms more a create),
    else the uid."""
    uid = str(posix.geteuid()).encode()
    try:
        with open("/etc/passwd", "rb") as f:
            for line in f:
                fields = line.split(b":", 3)
                if len(fields) > 3 and fields[2] == uid and fields[0]:
                    return fields[0].decode("utf-8", "replace")
    except OSError:
        pass
    return uid.decode()


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


def _signal_init(record, signum):
    """Signal the container's init through a pidfd, after checking that the pid is still
    the process we started (never a bare, possibly reused, pid)."""
    from ociruntime._native._sys import pidfd_send_signal

    try:
        pidfd = posix.pidfd_open(record["pid"])
    except ProcessLookupError:
        raise WrongState("container not running") from None
    try:
        stat = proc_stat(record["pid"])
        if stat is None or stat[1] != record["pid_start"]:
            raise WrongState("container not running")
        pidfd_send_signal(pidfd, signum)
    finally:
        posix.close(pidfd)


def _kill_wait(pid, start_time=None, timeout=5.0, thaw=None):
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
