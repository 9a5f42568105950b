"""`exec`: run another process in a live container, entirely through the exec stage.

Python opens the container's namespace files and cgroup.procs files (checking that the
init is still the process it started), forks, and the child becomes the C stage at once:
the stage joins the cgroups and namespaces, forks into the pid namespace, applies the
process settings and execs.  A host interpreter never enters the live container, so
nothing in it can reach one through /proc/PID/exe (CVE-2019-5736).
"""

import os

from ociruntime import log
from ociruntime.errors import PyruncError
from ociruntime.libcontainer import namespaces
from ociruntime.libcontainer import syscalls as sc
from ociruntime.state import CREATED, PAUSED, RUNNING, proc_stat


class ExecOptions:
    def __init__(self, detach=False, pid_file=None, console_socket=None, preserve_fds=0,
                 ignore_paused=False, sub_cgroups=None):
        self.detach = detach
        # runc's exec --cgroup: {controller ("" for every one): existing sub-cgroup path}
        self.sub_cgroups = sub_cgroups or {}
        self.pid_file = pid_file
        self.console_socket = console_socket
        self.preserve_fds = preserve_fds
        self.ignore_paused = ignore_paused
        # for a caller that serves the process itself (the shim): fds 0, 1, 2 to give it,
        # and a callable taking the pty master instead of a --console-socket path
        self.stdio = None
        self.keep_console = None
        self.pid = None  # set once the process runs


def exec_in(container, proc, opts):
    """Start proc in the container; returns its exit status, or 0 once started (detach)."""
    from ociruntime.libcontainer import capabilities, cgroups, process
    from ociruntime.libcontainer.init import add_process
    from ociruntime.libcontainer.stage import Plan, sealed_stage_fd

    st = container.state
    st.load()
    status = st.status()
    if status not in (CREATED, RUNNING, PAUSED):
        raise PyruncError(f"cannot exec in a {status} container")
    if status == PAUSED and not opts.ignore_paused:
        raise PyruncError("container is paused (use --ignore-paused to exec anyway)")
    if opts.console_socket and (not opts.detach or not proc.terminal):
        from ociruntime.libcontainer.run import CONSOLE_SOCKET_IN_FOREGROUND

        raise PyruncError(CONSOLE_SOCKET_IN_FOREGROUND)
    relayed = []
    from ociruntime.libcontainer.support import check_exec_process

    check_exec_process(proc)
    if proc.terminal and not opts.console_socket and opts.keep_console is None:
        if opts.detach:
            raise PyruncError("a terminal for a detached process needs --console-socket")
        opts.keep_console = relayed.append  # in the foreground we relay the pty, as runc
    record = st.record
    owned = []
    try:
        ns_fds = _open_namespaces(record, owned)
        cgroup_fds = []
        for procs in _procs_files(cgroups.from_record(record["cgroup"]), opts.sub_cgroups):
            try:
                fd = os.open(procs, os.O_WRONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                raise PyruncError(f"--cgroup: {os.path.dirname(procs)}: no such cgroup "
                                  "(the sub-cgroup must exist)") from None
            owned.append(fd)
            cgroup_fds.append(fd)
        stat = proc_stat(record["pid"])
        if stat is None or stat[1] != record["pid_start"]:
            raise PyruncError("container not running")
        stage_fd = sealed_stage_fd()
        owned.append(stage_fd)
        caps = proc.capabilities
        # an unprivileged caller joining the container's own user namespace: what it may
        # have there is its bounding set, and setgroups was denied there at create
        rootless = os.geteuid() != 0 and any(flag == sc.CLONE_NEWUSER for flag, _ in ns_fds)
        cap_masks = (capabilities.masks(caps, log.warn, rootless)
                     if caps is not None else None)
        umask = process.current_umask()
        seccomp = program = None
        if record.get("seccomp"):
            # the container's own profile, as compiled at create (runc applies it to exec too)
            from ociruntime.libcontainer.seccomp import load_for_exec, program_fd

            program = load_for_exec(st.dir, record)
            fd = program_fd(program.bpf, 3 + opts.preserve_fds)
            owned.append(fd)
            seccomp = (fd, program.flags)

        extras = (proc.scheduler is not None or proc.io_priority is not None
                  or proc.exec_cpu_affinity is not None)
        if extras:
            from ociruntime.libcontainer import procattrs

            procattrs.check(proc)

        new_keyring = not record.get("no_new_keyring")
        personality = record.get("personality")

        def child_main(sync):
            if new_keyring:
                from ociruntime.libcontainer.procattrs import join_keyring

                join_keyring(container.id)
            if personality:
                from ociruntime.libcontainer.procattrs import set_personality

                set_personality(personality)
            plan = Plan()
            plan.add("sync", sync.fd)
            plan.add("preserve", opts.preserve_fds)
            plan.add("fork", 1)
            for fd in cgroup_fds:
                plan.add("cgroup_fd", fd)
            for flag, fd in ns_fds:
                plan.add("ns", f"{fd},{flag}")
            if proc.terminal:
                plan.add("tty", 1)
                if proc.console_size is not None:
                    plan.add("console", f"{proc.console_size.height},"
                                        f"{proc.console_size.width}")
            add_process(plan, proc, cap_masks, capabilities.last_cap(), umask, seccomp)
            if rootless:
                plan.add("setgroups", 0)  # the last record wins
            if extras:
                procattrs.apply_for_exec(proc)
                plan.extend("cpu", procattrs.final_cpus(proc))
            sc.close_range(3 + opts.preserve_fds, 0xFFFFFFFF, sc.CLOSE_RANGE_CLOEXEC)
            plan_fd = plan.to_fd()
            keep = [sync.fd, plan_fd, *cgroup_fds, *(fd for _, fd in ns_fds)]
            if seccomp is not None:
                keep.append(seccomp[0])
            for fd in keep:
                os.set_inheritable(fd, True)
            sc.execveat(stage_fd, ["pyrunc-exec", str(plan_fd)], [])

        def console_master(fd):
            if opts.keep_console is not None:
                opts.keep_console(os.dup(fd))
                return
            from ociruntime.libcontainer.console import send_to_console_socket

            send_to_console_socket(opts.console_socket, fd)

        def seccomp_listener(fd, pid):
            from ociruntime.libcontainer.hooks import state_json
            from ociruntime.libcontainer.seccomp import send_to_listener

            send_to_listener(program, fd, pid, state_json(
                container.id, status, record["pid"], record["bundle"],
                record.get("annotations")))

        # die_with_parent: into a paused container (--ignore-paused) the stage freezes as it
        # joins the cgroup and exec waits, as runc 1.1's does, for the resume; a caller that
        # gives up meanwhile leaves no stage to run the command at the resume (SIGKILL
        # pending, it dies as it thaws: a v1 freezer holds even SIGKILL until then), and
        # is not held until the resume by a wait for it (wait_if_interrupted)
        # a subreaper, so that the exec'd process (whose parent, the stage, exits after
        # reporting its pid) comes back to us to be waited for, or reaped after a failure
        sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1)
        from ociruntime.libcontainer.stdio import foreground_pipes

        pipes = foreground_pipes(proc.terminal, opts.detach, opts.stdio)
        try:
            pid = process.spawn(child_main, on_console=console_master,
                                min_fd=3 + opts.preserve_fds, on_seccomp=seccomp_listener,
                                stdio=pipes.child if pipes else opts.stdio,
                                die_with_parent=True, wait_if_interrupted=status != PAUSED)
        except BaseException as error:
            if pipes:
                pipes.close()
            failed = getattr(error, "container_pid", None)
            if failed:
                _reap(failed)
            raise
    finally:
        for fd in owned:
            os.close(fd)
    opts.pid = pid
    try:
        if pipes:
            pipes.started(pid)
        if opts.pid_file:
            from ociruntime.libcontainer.container import write_pid_file

            try:
                write_pid_file(opts.pid_file, pid)
            except PyruncError:
                # as runc's terminate: an exec that failed leaves no process behind (ours
                # to reap: we are its subreaper)
                os.kill(pid, 9)  # SIGKILL: `signal` would import enum (~5 ms) for run too
                _reap(pid)
                raise
        if opts.detach:
            return 0
        from ociruntime.libcontainer.run import collect_cycles_again, forward_signals, wait_for

        collect_cycles_again()
        forward_signals(pid)
        if relayed:
            from ociruntime.libcontainer.console import relay

            relay(relayed[0], pid)
        elif pipes:
            pipes.relay(pid)
        return wait_for(pid)
    finally:
        if pipes:
            pipes.close()


def parse_sub_cgroups(values):
    """runc's exec --cgroup values, [<controller>[,<controller>...]:]<path>, as
    {controller or "": path}; the path stays below the container's cgroup."""
    subs = {}
    for value in values or ():
        controllers, sep, path = value.rpartition(":")
        names = controllers.split(",") if sep else [""]
        if not path or ".." in path.split("/") or any(not n and sep for n in names):
            raise PyruncError(f"--cgroup {value!r}: expected [<controller>:]<cgroup>")
        for name in names:
            if name in subs:
                raise PyruncError(f"--cgroup: {name or 'the path'} given twice")
            subs[name] = path.strip("/")
    return subs


def _procs_files(manager, subs):
    """The cgroup.procs files the process joins: the container's cgroups, or the existing
    sub-cgroups --cgroup names in them."""
    if not subs:
        return manager.procs_files()
    dirs = getattr(manager, "dirs", None)
    if dirs is None:
        if getattr(manager, "dir", None) is None:
            raise PyruncError("--cgroup: the container has no cgroup")
        if set(subs) - {""}:
            raise PyruncError("--cgroup: a controller name is only valid on cgroup v1")
        dirs = {"": manager.dir}
    unknown = set(subs) - {""} - {c for name in dirs for c in name.split(",")}
    if unknown:
        raise PyruncError(f"--cgroup: no such controller: {sorted(unknown)[0]}")
    files = []
    for name, d in dirs.items():
        sub = next((subs[c] for c in name.split(",") if c in subs), subs.get(""))
        files.append(os.path.join(d, sub, "cgroup.procs") if sub
                     else os.path.join(d, "cgroup.procs"))
    return files


def _reap(pid):
    from ociruntime.libcontainer import monitor

    monitor.reap(pid)


def _open_namespaces(record, owned):
    """(clone flag, fd) of each namespace of the init that is not already ours, in join
    order (user first, mount last)."""
    pid = record["pid"]
    joins = []
    for ns_type in namespaces.JOIN_ORDER:
        name = namespaces.PROC_NAMES[ns_type]
        try:
            theirs = os.stat(f"/proc/{pid}/ns/{name}")
            mine = os.stat(f"/proc/self/ns/{name}")
        except FileNotFoundError:
            if ns_type == "time":
                continue  # a kernel without time namespaces
            raise PyruncError("container not running") from None
        if (theirs.st_dev, theirs.st_ino) == (mine.st_dev, mine.st_ino):
            continue
        fd = os.open(f"/proc/{pid}/ns/{name}", os.O_RDONLY | os.O_CLOEXEC)
        owned.append(fd)
        joins.append((namespaces.FLAGS[ns_type], fd))
    return joins


def process_for_exec(container, flags, command):
    """The Process to exec: --process FILE as given, or, like runc, the container's own
    config `process` with the command and the flags' changes."""
    from ociruntime import config

    if flags.get("process"):
        try:
            return config.load_process(flags["process"])
        except config.ConfigError as e:
            raise PyruncError(f"--process {flags['process']}: {e}") from None
    if not command:
        raise PyruncError("a command is required (or --process FILE)")
    container.state.load()
    try:
        base = config.load_config(container.state.record["bundle"]).process
    except config.ConfigError as e:
        raise PyruncError(f"reading the bundle's config.json: {e}") from None
    if base is None:
        raise PyruncError("the container's config.json has no process to start from")
    changes = {"args": tuple(command), "terminal": flags.get("tty", False),
               "console_size": None}
    if flags.get("cwd"):
        changes["cwd"] = flags["cwd"]
    if flags.get("env"):
        env = {e.split("=", 1)[0]: e for e in base.env}
        env.update((e.split("=", 1)[0], e) for e in flags["env"])
        changes["env"] = tuple(env.values())
    user = base.user
    try:
        if flags.get("user"):
            uid, colon, gid = flags["user"].partition(":")
            user = user.replace(uid=config.parse_id(uid, "--user UID"),
                                gid=config.parse_id(gid, "--user GID") if colon else user.gid)
        if flags.get("additional-gids"):
            gids = tuple(config.parse_id(g, "--additional-gids") for g in flags["additional-gids"])
            user = user.replace(additional_gids=gids)
    except config.ConfigError as e:
        raise PyruncError(str(e)) from None
    changes["user"] = user
    if flags.get("cap") and base.capabilities is not None:
        caps = base.capabilities
        added = tuple(flags["cap"])
        changes["capabilities"] = caps.replace(**{
            name: tuple(getattr(caps, name) or ()) + added
            for name in ("bounding", "effective", "permitted", "ambient")})
    if flags.get("no-new-privs"):
        changes["no_new_privileges"] = True
    if flags.get("apparmor"):
        changes["apparmor_profile"] = flags["apparmor"]
    if flags.get("process-label"):
        changes["selinux_label"] = flags["process-label"]
    return base.replace(**changes)
