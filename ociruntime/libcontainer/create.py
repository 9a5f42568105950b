"""create: build a container and park its process in the exec stage (Container.create).

A module of its own so that start, kill and delete, which import container.py for the
container's other operations, do not read create's code too (half of what container.py
was: ~0.25 ms of CPU on each of those calls).  create itself imports far more (the config
model, the fork chain, os).
"""

import posix

from ociruntime import OCI_VERSION, log, paths
from ociruntime.errors import (
    AlreadyExists,
    HookError,
    HostLimit,
    InvalidConfig,
    PyruncError,
    WrongState,
)
from ociruntime.libcontainer.container import write_pid_file
from ociruntime.libcontainer.delete import detach_container_mounts, kill_wait
from ociruntime.state import file_identity, proc_stat, rfc3339_now


def create(container, opts):
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

        return _create(container, opts, primed)
    finally:
        primed()


def _create(container, opts, primed):
    from ociruntime.config import ConfigError, parse_config, read_config
    from ociruntime.libcontainer import cgroups
    from ociruntime.libcontainer.support import check_supported

    bundle = paths.realpath(opts.bundle)
    if not paths.isdir(bundle):
        raise InvalidConfig(f"bundle {opts.bundle}: not a directory")
    prepared = opts.prepared
    if prepared is not None and prepared[:2] == (bundle, _config_key(bundle)):
        doc, cfg = prepared[2:]
    else:
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

        seccomp_program = seccomp.prepare(cfg.linux.seccomp, container.state.root)
    rootfs = cfg.root.path if cfg.root.path.startswith("/") else paths.join(
        bundle, cfg.root.path)
    if not paths.isdir(rootfs):
        raise InvalidConfig(f"root.path: {rootfs} is not a directory")
    rootfs = paths.realpath(rootfs)
    from ociruntime.libcontainer.capabilities import read_status

    proc_status = read_status()  # one read for the rlimits' check, the umask and the caps
    _check_rlimits(cfg.process, proc_status)
    if (cfg.process is not None and cfg.process.terminal and not opts.console_socket
            and opts.keep_console is None):
        raise InvalidConfig("process.terminal is true: --console-socket is required "
                          "(or set terminal to false)")
    if opts.console_socket and (cfg.process is None or not cfg.process.terminal):
        raise InvalidConfig("--console-socket given, but process.terminal is false")
    if container.state.recorded():
        raise AlreadyExists(f"container with id {container.id!r} already exists")

    from ociruntime.libcontainer.namespaces import NamespacePlan

    ns_plan = NamespacePlan(cfg.linux.namespaces)
    _check_namespace_needs(cfg, ns_plan)
    if ns_plan.new_user:
        for field, mappings in (("uidMappings", cfg.linux.uid_mappings),
                                ("gidMappings", cfg.linux.gid_mappings)):
            if not mappings:
                raise InvalidConfig(f"linux.{field}: a new user namespace needs uid and "
                                  "gid mappings")
        if (posix.geteuid() != 0 and cfg.process is not None
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
        container.state.claim()
        claimed = True
        manager = cgroups.new_manager(cfg.linux.cgroups_path, container.id, cgroup_v2,
                                      mountinfo)
        _check_existing_cgroup(manager)
        # the intent first: before any cgroup, mount or process exists, a record names
        # what this create will make, so a create killed at any moment leaves nothing
        # that `delete --force` cannot find (the cgroup's directories still to be made,
        # the mounts in a shared mount namespace; the init's pid once it is known)
        record = _record(container, cfg, doc, bundle, rootfs, ns_plan, premounted, opts,
                         seccomp_program)
        record["cgroup"] = cgroups.planned_record(manager)
        record["freezer"] = manager.freezer_file()
        container.state.save(record)
        try:
            manager.create()
        except PyruncError:
            if posix.geteuid() == 0 or cfg.linux.cgroups_path:
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
            container.state.save(record)
        if cfg.linux.resources is not None:
            manager.apply_devices(cfg.linux.resources.devices)
            # every controller and file the limits need, checked before any fork
            manager.set_resources(cfg.linux.resources, write=False)
        primed()  # no thread may be running when we fork
        if seccomp_program is not None:
            from ociruntime.libcontainer import seccomp

            seccomp.save_for_exec(container.state.dir, seccomp_program)

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
                container.state.save(record)

        pid = _spawn_init(container, cfg, bundle, rootfs, ns_plan, join_fds, manager,
                          cgroup_v2, opts, seccomp_program, on_pid=record_pid,
                          proc_status=proc_status)
        if cfg.linux.resources is not None and not _runtime_hooks(cfg):
            # the limits, once the runtime's own forks in the cgroup are done (a pids
            # limit must not stop them) and before the program runs; runc's order
            manager.set_resources(cfg.linux.resources)
        stat = proc_stat(pid)
        if stat is None:
            raise WrongState("container process exited during create")
        del record["phase"]
        record.update(pid=pid, pid_start=stat[1])
        container.state.save(record)
        if opts.pid_file:
            write_pid_file(opts.pid_file, pid)
    except BaseException as error:
        pid = pid or getattr(error, "container_pid", None)
        if pid:
            kill_wait(pid)
        if manager is not None:
            try:
                manager.destroy()
            except PyruncError as e:
                log.warn(str(e))
        if claimed:
            # a create that lost the id made nothing: what is mounted under a shared
            # rootfs then is the winner's
            if premounted is not None:
                detach_container_mounts(rootfs, premounted)
            container.state.remove()
        if cfg.hooks.poststop and isinstance(error, HookError):
            from ociruntime.libcontainer import hooks

            hooks.run_all(cfg.hooks.poststop, "poststop",
                          _hook_state(container, cfg, bundle, "stopped", pid), warn=log.warn)
        raise
    finally:
        container.state.unlock()  # on every way out (a no-op once remove() let it go)
        for _, fd in join_fds:
            try:
                posix.close(fd)
            except OSError:
                pass
    return pid


def _record(container, cfg, doc, bundle, rootfs, ns_plan, premounted, opts, seccomp_program):
    """The state record of this create, in phase "creating" (no pid yet)."""
    from ociruntime.state import PHASE_CREATING

    record = {
        "ociVersion": OCI_VERSION, "id": container.id, "phase": PHASE_CREATING,
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


def prepare_config(bundle):
    """The bundle's config read and parsed before the create is asked for (for
    CreateOptions.prepared): a caller that waits for the request does this meanwhile.
    create uses it only while config.json is still the file read here (its inode, size,
    mtime and ctime); None when it cannot be read or parsed (create then reports why)."""
    from ociruntime.config import ConfigError, parse_config, read_config

    bundle = paths.realpath(bundle)
    key = _config_key(bundle)
    try:
        doc = read_config(bundle)
        cfg = parse_config(doc)
    except (ConfigError, OSError):
        return None
    if key is None or _config_key(bundle) != key:
        return None  # changed while it was read
    return bundle, key, doc, cfg


def _config_key(bundle):
    try:
        return file_identity(posix.stat(paths.join(bundle, "config.json")))
    except OSError:
        return None


def _spawn_init(container, cfg, bundle, rootfs, ns_plan, join_fds, manager, cgroup_v2, opts,
                seccomp_program=None, on_pid=None, proc_status=None):
    from ociruntime.config import idmapped
    from ociruntime.libcontainer import capabilities, init, namespaces, process, stage

    posix.mkfifo(container.state.fifo_path, 0o622)
    # whatever the umask: the stage may not be root (a user namespace), and reopens
    # the fifo through /proc/self/fd, which skips the 0700 directory's search check
    posix.chmod(container.state.fifo_path, 0o622)
    fifo_fd = posix.open(container.state.fifo_path, posix.O_PATH | posix.O_CLOEXEC)
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
    if ns_plan.has("user") and posix.geteuid() == 0:
        # bind sources opened as the host's root (runc's mount sources); rootless,
        # the container's root is the caller and reaches what the caller does
        from ociruntime.libcontainer import idmap

        idmap_items = (*idmap_items, *idmap.source_items(cfg, bundle))
    caps = cfg.process.capabilities if cfg.process is not None else None
    if proc_status is None:
        proc_status = capabilities.read_status()  # one read for the umask and the caps
    old_umask = process.current_umask(proc_status)
    cgroup2, cgroup_joins = manager.joins()
    launch = init.Launch(
        config=cfg, bundle=bundle, rootfs=rootfs, ns_plan=ns_plan, join_fds=join_fds,
        cgroup_joins=cgroup_joins, cgroup_binds=manager.bind_sources(),
        cgroup_v2=cgroup_v2, stage_fd=stage_fd, fifo_fd=fifo_fd,
        preserve_fds=opts.preserve_fds, no_pivot=opts.no_pivot,
        cap_masks=(capabilities.masks(caps, log.warn, ns_plan.new_user and posix.geteuid() != 0,
                                      proc_status) if caps is not None else None),
        cap_last=capabilities.last_cap(), umask=old_umask, container_id=container.id,
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
                      _hook_state(container, cfg, bundle, "created", container_pid), cwd=bundle)
        state = _hook_state(container, cfg, bundle, "creating", container_pid)
        hooks.run_all(cfg.hooks.create_runtime, "create_runtime", state, cwd=bundle)

    def console_master(fd):
        from ociruntime.libcontainer.console import send_to_console_socket

        if opts.keep_console is not None:
            opts.keep_console(posix.dup(fd))
        else:
            send_to_console_socket(opts.console_socket, fd)

    def seccomp_listener(fd, container_pid):
        from ociruntime.libcontainer.seccomp import send_to_listener

        send_to_listener(seccomp_program, fd, container_pid,
                         _hook_state(container, cfg, bundle, "creating", container_pid))

    try:
        return process.spawn(lambda sync: init.intermediate(sync, launch),
                             on_idmap=write_maps, on_hooks=runtime_hooks,
                             on_console=console_master, min_fd=3 + opts.preserve_fds,
                             on_seccomp=seccomp_listener, stdio=opts.stdio,
                             on_pid=on_pid, die_with_parent=True,
                             child_close=(container.state.lock_fd,), cgroup2=cgroup2,
                             direct=init.direct(launch))
    finally:
        posix.close(fifo_fd)
        posix.close(stage_fd)
        if seccomp_fd >= 0:
            posix.close(seccomp_fd)
        for fd in mount_fds.values():
            posix.close(fd)


def _hook_state(container, cfg, bundle, status, pid):
    from ociruntime.libcontainer.hooks import state_json

    return state_json(container.id, status, pid, bundle, cfg.annotations)


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


RLIM_INFINITY = 2**64 - 1  # rlim_t's all ones: no limit


def _check_rlimits(proc, status=None):
    """Fail before anything exists when an rlimit cannot be applied: raising a hard limit
    needs CAP_SYS_RESOURCE, which this runtime may not have.  status: read_status()."""
    if proc is None or not proc.rlimits:
        return
    for index, rl in enumerate(proc.rlimits):
        if rl.soft > rl.hard:
            raise InvalidConfig(f"process.rlimits[{index}]: {rl.type} soft limit {rl.soft} is "
                              f"above its hard limit {rl.hard}")
    from ociruntime.libcontainer.capabilities import BITS, own_permitted

    if own_permitted(status=status) >> BITS["CAP_SYS_RESOURCE"] & 1:
        return
    # _sys's getrlimit, not the `resource` extension's (one shared object less to load,
    # ~0.2 ms); unsigned, as the config's: RLIM_INFINITY is 2**64 - 1
    from ociruntime._native._sys import getrlimit

    for index, rl in enumerate(proc.rlimits):
        _, current_hard = getrlimit(rl.resource)
        if current_hard != RLIM_INFINITY and rl.hard > current_hard:
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
