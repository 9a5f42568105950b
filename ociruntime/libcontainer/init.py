"""What the two children of `create` do: the intermediate (namespaces) and the container
init (rootfs, then the exec stage).  Both run in forked copies of the runtime and never
return: they exec or _exit (see process.py for the protocol).

Everything they need was decided by the parent before the fork and handed over in a Launch
record, so no config parsing or policy happens after fork.
"""

import posix

from ociruntime import paths
from ociruntime.errors import PyruncError
from ociruntime.frozen import Frozen
from ociruntime.libcontainer import namespaces
from ociruntime.libcontainer import syscalls as sc
from ociruntime.libcontainer.cgroups import join_self
from ociruntime.libcontainer.process import (
    MSG_HOOKS,
    MSG_HOOKS_DONE,
    MSG_IDMAP,
    MSG_IDMAP_DONE,
    MSG_PID,
)
from ociruntime.libcontainer.rootfs import Rootfs
from ociruntime.libcontainer.stage import Plan, exec_stage


class Launch(Frozen):
    """Everything the children need, prepared by the parent."""

    __slots__ = ("container_id", "config", "bundle", "rootfs", "ns_plan", "join_fds",
                 "cgroup_joins",
                 "cgroup_binds", "cgroup_v2", "stage_fd", "fifo_fd", "preserve_fds",
                 "no_pivot", "cap_masks", "cap_last", "umask", "run_runtime_hooks", "seccomp",
                 "mount_fds", "idmap_items", "new_keyring", "join_pidns_fd")
    # seccomp: (memfd holding the compiled program, seccomp(2) flags), or None
    # mount_fds: {config mount index: fd of an idmapped mount made by the parent}
    # idmap_items: idmapped mounts the intermediate has made in the container's mount
    # namespace (with a user namespace; see idmap.Helper)
    # fifo_fd: an O_PATH handle of exec.fifo, opened by the parent: neither child ever
    # holds the host's state directory (a process exec'd into the container with
    # CAP_SYS_PTRACE could reach it through /proc/PID/fd and climb out with "..")
    # join_pidns_fd: a pid namespace to join (linux.namespaces pid with a path), joined by
    # the stage (setns + fork), never by the Python init: see procfs_pidns
    _defaults = {"seccomp": None, "mount_fds": {}, "idmap_items": (), "new_keyring": True,
                 "join_pidns_fd": None}


def intermediate(sync, launch):
    """Join the cgroup and namespaces, create the new ones, fork the container init."""
    close_other_fds(launch.preserve_fds)
    # the v1 hierarchies' tasks: this process has one thread, which moves itself (its
    # cgroup2 one it was created in: process.spawn's cgroup2)
    for tasks in launch.cgroup_joins:
        join_self(tasks)
    net_helper = helper = None
    if launch.config.linux.net_devices:
        from ociruntime.libcontainer.netdev import Helper as NetHelper

        net_helper = NetHelper(launch.config.linux.net_devices)
    if launch.idmap_items:
        from ociruntime.libcontainer.idmap import Helper

        helper = Helper(launch.idmap_items, 3 + launch.preserve_fds)
    pidns = [fd for ns_type, fd in launch.join_fds if ns_type == "pid"]
    namespaces.join([item for item in launch.join_fds if item[0] != "pid"])
    if pidns:
        launch = launch.replace(join_pidns_fd=pidns[0])
    plan = launch.ns_plan
    if plan.new_user:
        sc.unshare(sc.CLONE_NEWUSER)
        sync.send(MSG_IDMAP, pid=posix.getpid())
        sync.expect(MSG_IDMAP_DONE)
        posix.setresgid(0, 0, 0)
        posix.setresuid(0, 0, 0)
        # changing ids made us non-dumpable, which makes /proc/self/* root-owned on the
        # host, out of reach of our mapped uid (timens_offsets below needs it)
        sc.prctl(sc.PR_SET_DUMPABLE, 1)
    rest = plan.create & ~sc.CLONE_NEWUSER
    if rest:
        sc.unshare(rest)
    if plan.create & sc.CLONE_NEWTIME:
        namespaces.write_time_offsets(launch.config.linux.time_offsets)
    if net_helper is not None:
        net_helper.finish(posix.getpid())
    if helper is not None:
        launch = launch.replace(mount_fds=helper.finish(posix.getpid()))
    pid = posix.fork()
    if pid == 0:
        # the init unwinds into process._run_child on error, which reports and _exits
        container_init(sync, launch)
        posix._exit(1)
    sync.send(MSG_PID, pid=pid)


def direct(launch):
    """process.spawn's direct for this launch: (the namespaces' clone flags, the child's
    main) when the parent can make the container init itself, in its namespaces, with no
    intermediate (one Python process less per create: ~1.5-2 ms of CPU, its fork, page
    faults and exit); None when the intermediate has work between its fork and the
    init's: namespaces to join (setns; a pid namespace is joined by its children only),
    a user namespace (its id maps), a time namespace (its offsets are written before its
    first process), net devices, idmapped mounts."""
    plan = launch.ns_plan
    if (launch.join_fds or plan.new_user or plan.create & sc.CLONE_NEWTIME
            or launch.config.linux.net_devices or launch.idmap_items):
        return None
    # a cgroup namespace is made by the init after its cgroup joins (below), as the
    # intermediate makes it after its own: its root is then the container's cgroup
    return plan.create & ~sc.CLONE_NEWCGROUP, lambda sync: init_direct(sync, launch)


def init_direct(sync, launch):
    """The container init made by the parent in the new namespaces (direct): what the
    intermediate does besides making them, then container_init."""
    close_other_fds(launch.preserve_fds)
    for tasks in launch.cgroup_joins:
        join_self(tasks)
    if launch.ns_plan.create & sc.CLONE_NEWCGROUP:
        sc.unshare(sc.CLONE_NEWCGROUP)
    container_init(sync, launch, made_direct=True)


def container_init(sync, launch, made_direct=False):
    """pid 1 of the container: build the filesystem, then become the exec stage."""
    from ociruntime.libcontainer import procattrs  # imported while the host is in reach

    cfg = launch.config
    if cfg.hooks.start_container:
        from ociruntime.libcontainer import hooks  # noqa: F401  (stage_plan, after pivot_root)
    sc.prctl(sc.PR_SET_DUMPABLE, 0)
    groups_denied = _setgroups_denied()  # through the runtime's /proc, while in reach
    # a container whose /proc will be no procfs: the stage reopens exec.fifo through a
    # detached one, made now, while the host's /proc makes a new procfs no news
    fifo_proc = None if _proc_mounted(cfg.mounts) else _detached_procfs(launch)
    posix.setsid()
    posix.umask(0)
    if launch.ns_plan.create & sc.CLONE_NEWNET:
        sc.loopback_up()
    if cfg.process is not None and cfg.process.oom_score_adj is not None:
        # through the runtime's /proc, before any container mount exists: after pivot_root
        # "/proc/self/..." is whatever the image or a volume put there (CVE-2025-52881)
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write(str(cfg.process.oom_score_adj))
    if cfg.linux.sysctl:
        from ociruntime.libcontainer import sysctl

        sysctl.apply(cfg.linux.sysctl)  # before any container mount: the runtime's /proc

    rootfs = Rootfs(launch.rootfs, launch.bundle, userns=launch.ns_plan.has("user"),
                    cgroup_v2=launch.cgroup_v2)
    rootfs.mount_fds = launch.mount_fds
    rootfs.pidns_fd = launch.join_pidns_fd
    rootfs.stage_fd = launch.stage_fd
    own_mount_ns = launch.ns_plan.has("mount")
    rootfs.prepare(own_mount_ns)
    rootfs.mount_all(cfg.mounts, launch.cgroup_binds)
    for fd in launch.mount_fds.values():
        posix.close(fd)
    rootfs.create_default_devices()
    if cfg.linux.devices:
        from ociruntime.libcontainer import devices

        devices.create_all(rootfs, cfg.linux.devices)
    peer = -1
    if cfg.process is not None and cfg.process.terminal:
        peer = _make_terminal(sync, rootfs, cfg.process)
    if launch.run_runtime_hooks:
        sync.send(MSG_HOOKS)
        sync.expect(MSG_HOOKS_DONE)
    if cfg.hooks.create_container:
        from ociruntime.libcontainer import hooks

        # runc's: in the rootfs (still reachable at its host path), and a hook without env
        # gets the container process's env (all runc's init has)
        hooks.run_all(cfg.hooks.create_container, "create_container",
                      _hook_state(launch, "creating"),
                      env=cfg.process.env if cfg.process is not None else (),
                      cwd=launch.rootfs)
    if cfg.process is not None:
        rootfs.make_cwd(cfg.process.cwd)
    rootfs.finish_readonly()
    rootfs.readonly_paths(cfg.linux.readonly_paths)
    rootfs.mask_paths(cfg.linux.masked_paths)
    if cfg.root.readonly:
        rootfs.make_readonly()
    rootfs.switch_root(launch.no_pivot, own_mount_ns)
    if own_mount_ns:
        rootfs.set_root_propagation(propagation_flag(cfg.linux.rootfs_propagation))

    if cfg.hostname is not None and launch.ns_plan.has("uts"):
        sc.sethostname(cfg.hostname)
    if cfg.domainname is not None and launch.ns_plan.has("uts"):
        sc.setdomainname(cfg.domainname)

    procattrs.apply_in_init(cfg, launch.container_id, launch.new_keyring)
    if peer >= 0:
        from ociruntime.libcontainer.console import make_controlling

        make_controlling(peer)
        posix.close(peer)
    if fifo_proc is None and not rootfs.joined_pidns_proc and not _reopens(launch.fifo_fd):
        raise PyruncError("/proc in the container is no procfs of its own (a mount over "
                          "it?): the container process could not be started through it")
    plan = stage_plan(launch, sync.fd, fifo_proc)
    if groups_denied:
        plan.add("setgroups", 0)  # the last record wins
    plan_fd = plan.to_fd()
    keep = (sync.fd, launch.fifo_fd, plan_fd)
    if fifo_proc is not None:
        keep += (fifo_proc,)
    if launch.join_pidns_fd is not None:
        keep += (launch.join_pidns_fd,)
    if launch.seccomp is not None:
        keep += (launch.seccomp[0],)
    if made_direct:
        # the parent's PR_SET_PDEATHSIG (process.spawn's die_with_parent) ends here, as
        # the intermediate's ended with it: the container outlives `create`; from now on
        # a dead parent is seen at the stage's first word to it
        sc.prctl(sc.PR_SET_PDEATHSIG, 0)
    exec_stage(launch.stage_fd, plan_fd, keep)


def _setgroups_denied():
    """An unprivileged caller wrote "deny" to setgroups before its gid map: setgroups(2)
    fails in this user namespace (runc skips it then, as here).  paths.read_bytes, not
    open(): its text layer (fstat, an isatty ioctl, lseeks, a decoder) is ~0.15 ms in this
    child, whose every page touched is a copy-on-write fault."""
    try:
        return paths.read_bytes("/proc/self/setgroups").strip() == b"deny"
    except OSError:
        return False


def _make_terminal(sync, rootfs, proc):
    """The pty: bound on /dev/console, its master sent to the parent for --console-socket."""
    from ociruntime.libcontainer import console
    from ociruntime.libcontainer.process import MSG_CONSOLE

    master, peer = console.open_pty(rootfs)
    try:
        console.set_size(master, proc.console_size)
        console.bind_console(rootfs, peer)
        sync.send(MSG_CONSOLE, fd=master)
    finally:
        posix.close(master)
    return peer


def _hook_state(launch, status):
    """State JSON for hooks run in the container's namespaces: the pid as it sees it.
    Also called after pivot_root (startContainer's, in stage_plan): container_init imports
    the hooks module before it, for a config with such hooks only."""
    from ociruntime.libcontainer.hooks import state_json

    return state_json(launch.container_id, status, posix.getpid(), launch.bundle,
                      launch.config.annotations)


def propagation_flag(name):
    from ociruntime.libcontainer.mountopts import PROPAGATION

    if not name:
        return 0
    return PROPAGATION.get(name, PROPAGATION.get(name.lstrip("r"), 0))


def _proc_mounted(mounts):
    """The last mount on /proc is a procfs: the container's /proc reopens exec.fifo."""
    on_proc = [m for m in mounts
               if paths.normpath("/" + m.destination.lstrip("/")) == "/proc"]
    return bool(on_proc) and on_proc[-1].type == "proc"


def _detached_procfs(launch):
    """A procfs mounted nowhere (pids only, read-only), of our pid namespace or of the
    one the container joins: the stage reopens exec.fifo through its self/fd.  It shows
    nothing that a procfs the container mounts itself would not."""
    from ociruntime.libcontainer.procfs_pidns import detached_proc

    try:
        return detached_proc(launch.join_pidns_fd, launch.stage_fd)
    except OSError as e:
        raise PyruncError(f"the container has no procfs at /proc and a private one could "
                          f"not be made to start it through: {e.strerror}") from None


def _reopens(fifo_fd):
    """This container's /proc reopens our handle of exec.fifo (it is the real procfs)."""
    try:
        seen = posix.stat(f"/proc/self/fd/{fifo_fd}")
        mine = posix.fstat(fifo_fd)
    except OSError:
        return False
    return (seen.st_dev, seen.st_ino) == (mine.st_dev, mine.st_ino)


def stage_plan(launch, sync_fd, fifo_proc=None):
    """The stage's plan for a container's first process."""
    plan = Plan()
    plan.add("sync", sync_fd)
    plan.add("fifo", launch.fifo_fd)
    if fifo_proc is not None:
        plan.add("fifo_proc", fifo_proc)
    plan.add("preserve", launch.preserve_fds)
    proc = launch.config.process
    if proc is None:
        return plan  # no process: the stage only parks; start will refuse
    if launch.join_pidns_fd is not None:
        plan.add("ns", f"{launch.join_pidns_fd},{sc.CLONE_NEWPID}")
        plan.add("fork", 1)
    if launch.config.hooks.start_container:
        plan.add("hook_state", _hook_state(launch, "created"))
        for hook in launch.config.hooks.start_container:
            plan.add("shook", hook.path)
            plan.extend("shook_arg", hook.args)
            if hook.env is None:
                plan.add("shook_inherit", 1)  # the program's env, as runc's init has
            else:
                plan.extend("shook_env", hook.env)
            if hook.timeout:
                plan.add("shook_timeout", hook.timeout)
    add_process(plan, proc, launch.cap_masks, launch.cap_last, launch.umask, launch.seccomp)
    return plan


def add_process(plan, proc, cap_masks, cap_last, umask, seccomp=None):
    """The process settings (config `process`) as plan records; shared with `exec`.
    seccomp: None or (fd of the compiled program, seccomp(2) flags)."""
    plan.extend("arg", proc.args)
    plan.extend("env", proc.env)
    plan.add("cwd", proc.cwd)
    user = proc.user
    plan.add("uid", user.uid)
    plan.add("gid", user.gid)
    plan.add("setgroups", 1)
    plan.extend("group", user.additional_gids)
    plan.add("umask", user.umask if user.umask is not None else umask)
    if proc.no_new_privileges:
        plan.add("nnp", 1)
    for rl in proc.rlimits:
        plan.add("rlimit", f"{rl.resource},{rl.soft},{rl.hard}")
    if cap_masks is not None:
        plan.add("caps", 1)
        plan.add("cap_last", cap_last)
        for key, set_name in (("cap_bnd", "bounding"), ("cap_eff", "effective"),
                              ("cap_prm", "permitted"), ("cap_inh", "inheritable"),
                              ("cap_amb", "ambient")):
            plan.add(key, format(cap_masks[set_name], "x"))
    if seccomp is not None:
        plan.add("seccomp_fd", seccomp[0])
        if seccomp[1]:
            plan.add("seccomp_flags", seccomp[1])


def close_other_fds(preserve_fds):
    """Make every fd the container must not inherit close-on-exec: all but 0-2 and the
    --preserve-fds range (CVE-2024-21626: no host fd may leak into it).  One close_range
    call; the runtime's own fds are made inheritable again just before the stage."""
    sc.close_range(3 + preserve_fds, 0xFFFFFFFF, sc.CLOSE_RANGE_CLOEXEC)
