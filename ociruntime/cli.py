"""`pyrunc`: runc's command line, one function per subcommand (those engines seldom call in
cliextra.py), and at the end the command line as data: every command and flag runc 1.1
has, with its help text, rendered in runc's layout.

Engines call the runtime exactly as they call runc, so flags follow runc: global flags
before the subcommand, `--flag value` and `--flag=value` (and Go's single-dash `-flag`).
argparse is not used: its import costs more than a whole `pyrunc state`; nor is os (posix
and ociruntime.paths: see there).
"""

import posix
import sys

from ociruntime import OCI_VERSION, __version__, log, paths
from ociruntime.errors import PyruncError

EXIT_UNKNOWN_COMMAND = 3  # runc's (urfave/cli's) status for a command it does not know
EXIT_EXEC_FAILED = 255  # runc exec: the process could not be started


class UsageError(PyruncError):
    """Bad command line: runc prints the command's help on stdout and exits 1."""

    def __init__(self, message, command=None):
        super().__init__(message)
        self.command = command


class UnknownCommand(UsageError):
    pass


def parse_flags(args, table, command):
    """Split args into ({flag: value}, [positionals]): flags come first, the first
    positional ends them (a global flag list's first positional is the command)."""
    flags, positionals = {}, []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            positionals.extend(args[i + 1:])
            break
        if not arg.startswith("-") or arg == "-":
            if command is None:
                return flags, args[i:]
            # as runc (urfave/cli): a command's flags end at its first argument
            positionals.extend(args[i:])
            break
        name, eq, value = arg.lstrip("-").partition("=")
        kind = table.get(name)
        if kind is None:
            where = f"{command}: " if command else ""
            raise UsageError(f"{where}flag provided but not defined: {arg}")
        if kind == "bool":
            flags[name] = not eq or value.lower() in ("1", "true", "yes")
        else:
            if not eq:
                i += 1
                if i >= len(args):
                    raise UsageError(f"flag needs an argument: {arg}")
                value = args[i]
            if kind == "int":
                try:
                    value = int(value)
                except ValueError:
                    raise UsageError(f"invalid value {value!r} for flag {arg}") from None
            if kind == "list":
                flags.setdefault(name, []).append(value)
            else:
                flags[name] = value
        i += 1
    return flags, positionals


def _alias(flags, command):
    """Fold the short names into the long ones (-f is --force or --format by command)."""
    table = aliases(COMMANDS[command].flags if command else GLOBAL)
    if command == "update":
        table["cpu-shares"] = "cpu-share"
    out = {}
    for name, value in flags.items():
        name = table.get(name, name)
        if isinstance(value, list):
            value = out.get(name, []) + value
        out[name] = value
    return out


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    command, positionals = None, []
    try:
        try:
            gflags, rest = parse_flags(argv, flag_table(GLOBAL), None)
            gflags = _alias(gflags, None)
        except UsageError as e:
            sys.stdout.write(f"Incorrect Usage. {e}\n\n" + _main_help())
            raise
        log.configure(gflags.get("log"), gflags.get("log-format", "text"),
                      gflags.get("debug", False))
        if gflags.get("version"):
            sys.stdout.write(_version())
            return 0
        if gflags.get("help") or not rest or rest[0] in ("help", "h"):
            topic = rest[1] if len(rest) > 1 and rest[0] in ("help", "h") else None
            if topic is None:
                sys.stdout.write(_main_help())
                return 0
            if topic not in COMMANDS:
                raise UnknownCommand(f"No help topic for '{topic}'")
            sys.stdout.write(command_help(_prog(), topic))
            return 0
        command, args = rest[0], rest[1:]
        if command not in COMMANDS:
            raise UnknownCommand(f"No help topic for '{command}'")
        spec = COMMANDS[command]
        try:
            flags, positionals = parse_flags(args, flag_table(spec.flags), command)
        except UsageError as e:
            e.command = command
            raise
        flags = _alias(flags, command)
        if flags.get("help"):
            sys.stdout.write(command_help(_prog(), command))
            return 0
        names = spec.args
        required = [n for n in names if not n.startswith("[")]
        if len(positionals) < len(required):
            raise UsageError(f"{command}: {required[len(positionals)]} is required", command)
        if len(positionals) > len(names) and not (names and names[-1].endswith("...]")):
            raise UsageError(f"{command}: too many arguments: {' '.join(positionals)}",
                             command)
        root = gflags.get("root") or _default_root()
        if gflags.get("systemd-cgroup") and command in ("create", "run"):
            _refuse_systemd_cgroup()
        run = globals().get("cmd_" + command)
        if run is None:  # one of the commands engines seldom call
            from ociruntime import cliextra

            run = getattr(cliextra, "cmd_" + command)
        return run(root, flags, positionals) or 0
    except UsageError as e:
        if e.command and not isinstance(e, UnknownCommand):
            sys.stdout.write(f"Incorrect Usage: {e}\n\n" + command_help(_prog(), e.command))
        log.error(str(e))
        return EXIT_UNKNOWN_COMMAND if isinstance(e, UnknownCommand) else 1
    except PyruncError as e:
        log.error(_where(command, positionals, e) + str(e))
        return EXIT_EXEC_FAILED if command == "exec" else 1
    except OSError as e:
        # an unexpected system error still gets one line, never a traceback
        where = f" {e.filename}" if e.filename else ""
        log.error(_where(command, positionals, e) + f"{e.strerror or e}{where}")
        return EXIT_EXEC_FAILED if command == "exec" else 1
    except KeyboardInterrupt:
        return 130


def _prog():
    return sys.argv[0].rpartition("/")[2] if sys.argv and sys.argv[0] else "pyrunc"


def _version():
    return f"pyrunc version {__version__}\ncommit: {_commit()}\nspec: {OCI_VERSION}\n"


def _main_help():
    return main_help(_prog(), _version().splitlines())


def _refuse_systemd_cgroup():
    """--systemd-cgroup asks for cgroups made by systemd (transient units over D-Bus).
    Checked before anything is made, so the error leaves nothing behind."""
    if not paths.isdir("/run/systemd/system"):  # sd_booted()'s test
        raise PyruncError("--systemd-cgroup: systemd is not running on this host (no "
                          "/run/systemd/system); drop the flag to use the cgroupfs driver")
    raise PyruncError("--systemd-cgroup: the systemd cgroup driver is not supported yet; "
                      "drop the flag to use the cgroupfs driver")


def _where(command, positionals, error):
    """The error line's prefix: "create ID: " names the operation and the container."""
    if command is None or isinstance(error, UsageError):
        return ""
    if positionals and COMMANDS[command].args[:1] == ("container-id",):
        return f"{command} {positionals[0]}: "
    return f"{command}: "


def _commit():
    """Written by setup.py's build (ociruntime/_native/COMMIT)."""
    try:
        with open(paths.join(paths.dirname(__file__), "_native", "COMMIT")) as f:
            return f.read().strip() or "unknown"
    except OSError:
        return "unknown"


# --- subcommands ------------------------------------------------------------------------------
# no process can hold more fds than the kernel's nr_open ceiling (2**20 by default)
MAX_PRESERVE_FDS = 1 << 20


def _preserve_fds(flags):
    """--preserve-fds N: a count of fds after stdio, so 0..MAX_PRESERVE_FDS."""
    preserve = flags.get("preserve-fds", 0)
    if not 0 <= preserve <= MAX_PRESERVE_FDS:
        raise UsageError(f"--preserve-fds {preserve}: must be between 0 and {MAX_PRESERVE_FDS}")
    return preserve


def _create_options(flags):
    from ociruntime.libcontainer.container import CreateOptions

    preserve = _preserve_fds(flags)
    return CreateOptions(bundle=flags.get("bundle") or ".", pid_file=flags.get("pid-file"),
                         console_socket=flags.get("console-socket"), preserve_fds=preserve,
                         no_pivot=flags.get("no-pivot", False),
                         no_new_keyring=flags.get("no-new-keyring", False))


def container_for(root, args):
    from ociruntime.libcontainer.container import Container

    return Container(root, args[0])


def _default_root():
    """runc's rule: an unprivileged caller with XDG_RUNTIME_DIR keeps its state there."""
    xdg = paths.getenv("XDG_RUNTIME_DIR")
    if xdg and posix.geteuid() != 0:
        return paths.join(xdg, "pyrunc")
    return "/run/pyrunc"


def _primed_create(body):
    """Run body(primed) with the cgroup migration prime (where one is needed:
    cgroups.prime_if_needed) started first, before create's imports (~3 ms of them: the
    C helper, the container module), and waited for on every way out (no thread may be
    left when create forks, and it does not outlive the call)."""
    from ociruntime.libcontainer.cgroups import prime_if_needed

    primed = prime_if_needed()
    try:
        return body(primed)
    finally:
        primed()


def cmd_create(root, flags, args):
    def create(primed):
        opts = _create_options(flags)
        opts.primed = primed
        return container_for(root, args).create(opts)

    pid = _primed_create(create)
    log.debug(f"create {args[0]}: the container's init is process {pid}")


def cmd_start(root, flags, args):
    # start's code alone: libcontainer.container (the other operations) is not imported
    from ociruntime.libcontainer.start import start
    from ociruntime.state import ContainerState

    start(ContainerState(root, args[0]))
    log.debug(f"start {args[0]}: the program runs")


def cmd_state(root, flags, args):
    # the state record alone: libcontainer.container (the operations) is not imported
    from ociruntime.state import ContainerState

    st = ContainerState(root, args[0])
    st.load()
    doc = st.oci_state()
    doc["owner"] = ""  # runc's state never fills it (its list does)
    sys.stdout.write(pretty_json(doc))  # no newline at the end, as runc


def cmd_kill(root, flags, args):
    signum = parse_signal(args[1] if len(args) > 1 else "TERM")
    # kill's code alone: libcontainer.container (the other operations) is not imported
    from ociruntime.libcontainer.kill import kill
    from ociruntime.state import ContainerState

    kill(ContainerState(root, args[0]), signum, all_processes=flags.get("all", False))


def cmd_delete(root, flags, args):
    # delete's code alone: libcontainer.container (the other operations) is not imported
    from ociruntime.libcontainer.delete import delete
    from ociruntime.state import ContainerState

    delete(ContainerState(root, args[0]), force=flags.get("force", False))


def cmd_run(root, flags, args):
    def run_primed(primed):
        from ociruntime.libcontainer.run import run

        opts = _create_options(flags)
        opts.primed = primed
        return run(container_for(root, args), opts, detach=flags.get("detach", False),
                   keep=flags.get("keep", False))

    status = _primed_create(run_primed)
    log.debug(f"run {args[0]}: " + ("the program runs" if flags.get("detach") else
                                    f"the program exited with status {status}"))
    return status


def cmd_exec(root, flags, args):
    from ociruntime.libcontainer.execute import (
        ExecOptions,
        exec_in,
        parse_sub_cgroups,
        process_for_exec,
    )

    container = container_for(root, args)
    proc = process_for_exec(container, flags, args[1:])
    preserve = _preserve_fds(flags)
    opts = ExecOptions(detach=flags.get("detach", False), pid_file=flags.get("pid-file"),
                       console_socket=flags.get("console-socket"), preserve_fds=preserve,
                       ignore_paused=flags.get("ignore-paused", False),
                       sub_cgroups=parse_sub_cgroups(flags.get("cgroup")))
    status = exec_in(container, proc, opts)
    log.debug(f"exec {args[0]}: process {opts.pid} " + (
        "runs" if opts.detach else f"exited with status {status}"))
    return status


def cmd_checkpoint(root, flags, args):
    raise PyruncError(CRIU)


cmd_restore = cmd_checkpoint


def cmd_pause(root, flags, args):
    container_for(root, args).pause()


def cmd_resume(root, flags, args):
    container_for(root, args).resume()


# --- helpers ----------------------------------------------------------------------------------


def parse_signal(text):
    """A signal as a number, a name (KILL) or a SIG name (SIGKILL): the names runc 1.1
    takes (golang.org/x/sys/unix's table: one name a number, none for the real-time
    ones), with this platform's numbers (from _native._sys, compiled from its <signal.h>:
    `signal` itself would import enum, ~5 ms of every kill)."""
    from ociruntime._native._sys import NSIG, SIGNALS

    digits = text[1:] if text.startswith("+") else text  # "+28" as Go's Atoi, for runc
    if digits.isdigit():
        if digits.isascii() and int(digits) < NSIG:  # 0 as runc: only checks the process is there
            return int(digits)
    else:
        name = text.upper()
        name = name if name.startswith("SIG") else "SIG" + name
        num = SIGNALS.get(name)
        if num is not None:
            return num
    raise UsageError(f"invalid signal {text!r}")


def pretty_json(value, indent="", unit="  "):
    """JSON indented by unit at each level, as runc prints it (two spaces; tabs for spec);
    json.dumps(indent=2) would cost the import of the json package."""
    from ociruntime import jsonlite

    inner = indent + unit
    if isinstance(value, dict) and value:
        items = [f'{inner}{jsonlite.dumps(str(k))}: {pretty_json(v, inner, unit)}'
                 for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + indent + "}"
    if isinstance(value, (list, tuple)) and value:
        items = [inner + pretty_json(v, inner, unit) for v in value]
        return "[\n" + ",\n".join(items) + "\n" + indent + "]"
    return jsonlite.dumps(value)


# --- the command line as data -----------------------------------------------------------------
# Every command and flag runc 1.1 has, with its help text: main parses with these tables,
# command_help and main_help render them in runc's layout (urfave/cli: NAME, USAGE,
# DESCRIPTION, OPTIONS), so scripts and people reading `runc CMD --help` find the same
# commands and flags.  Flag kinds: "bool", "str", "int", "list" (repeatable).  In this
# module, not one of their own, which every call would import beside it (~0.1 ms of CPU in
# a fresh process: a module is found, read and run at a cost of its own).

# Plain tuples with named fields, not typing.NamedTuple: importing typing (and the re,
# enum, functools and collections it pulls in) costs ~12 ms, on every pyrunc call.
class Flag(tuple):
    """(names, kind, help): names long first, then the short one."""

    __slots__ = ()

    def __new__(cls, names, kind, help):
        return tuple.__new__(cls, (names, kind, help))

    names = property(lambda self: self[0])
    kind = property(lambda self: self[1])
    help = property(lambda self: self[2])


class Command(tuple):
    """(summary, args, usage, description, flags): args are the positional names ("[x]"
    optional, "[x...]" the rest of the line); usage is what USAGE shows after the name."""

    __slots__ = ()

    def __new__(cls, summary, args, usage, description, flags):
        return tuple.__new__(cls, (summary, args, usage, description, flags))

    summary = property(lambda self: self[0])
    args = property(lambda self: self[1])
    usage = property(lambda self: self[2])
    description = property(lambda self: self[3])
    flags = property(lambda self: self[4])


def _f(names, kind, text):
    return Flag(tuple(names.split(",")), kind, text)


BUNDLE = _f("bundle,b", "str", "path to the root of the bundle directory, defaults to the "
            "current directory")
CONSOLE = _f("console-socket", "str", "path to an AF_UNIX socket which will receive a file "
             "descriptor referencing the master end of the console's pseudoterminal")
PID_FILE = _f("pid-file", "str", "specify the file to write the process id to")
NO_PIVOT = _f("no-pivot", "bool", "do not use pivot root to jail process inside rootfs")
NO_KEYRING = _f("no-new-keyring", "bool", "do not create a new session keyring for the "
                "container (it inherits the caller's session keyring)")
PRESERVE = _f("preserve-fds", "int", "Pass N additional file descriptors to the container "
              "(stdio + $LISTEN_FDS + N in total) (default: 0)")
DETACH = _f("detach,d", "bool", "detach from the container's process")
NO_SUBREAPER = _f("no-subreaper", "bool", "disable the use of the subreaper used to reap "
                  "reparented processes")
FORMAT = _f("format,f", "str", 'select one of: table or json (default: "table")')
CRIU = "checkpoint/restore needs CRIU, which pyrunc does not support"
CRIU_COMMON = (
    _f("image-path", "str", "path for the criu image files"),
    _f("work-path", "str", "path for saving work files and logs"),
    _f("tcp-established", "bool", "allow open tcp connections"),
    _f("ext-unix-sk", "bool", "allow external unix sockets"),
    _f("shell-job", "bool", "allow shell jobs"),
    _f("file-locks", "bool", "handle file locks, for safety"),
    _f("manage-cgroups-mode", "str", "cgroups mode: 'soft' (default), 'full' and 'strict'"),
    _f("empty-ns", "str", "create a namespace, but don't restore its properties"),
    _f("auto-dedup", "bool", "enable auto deduplication of memory images"),
    _f("lazy-pages", "bool", "use userfaultfd to lazily restore memory pages"),
)
ID = "<container-id>"

GLOBAL = (
    _f("debug", "bool", "enable debug logging"),
    _f("log", "str", "set the log file to write pyrunc logs to (default is '/dev/stderr')"),
    _f("log-format", "str", "set the log format ('text' (default), or 'json') "
       '(default: "text")'),
    _f("root", "str", "root directory for storage of container state (this should be "
       'located in tmpfs) (default: "/run/pyrunc")'),
    _f("criu", "str", 'path to the criu binary used for checkpoint and restore (default: '
       '"criu")'),
    _f("systemd-cgroup", "bool", "enable systemd cgroup support (refused: not supported "
       "yet)"),
    _f("rootless", "str", "ignore cgroup permission errors ('true', 'false', or 'auto') "
       '(default: "auto")'),
    _f("help,h", "bool", "show help"),
    _f("version,v", "bool", "print the version"),
)

COMMANDS = {
    "checkpoint": Command(
        "checkpoint a running container", ("container-id",), ID,
        CRIU, (*CRIU_COMMON, _f("parent-path", "str", "path for previous criu image files"),
               _f("leave-running", "bool", "leave the process running after checkpointing"),
               _f("status-fd", "str", "criu writes \\0 to this FD once lazy-pages is ready"),
               _f("page-server", "str", "ADDRESS:PORT of the page server"),
               _f("pre-dump", "bool", "dump the container's memory information only"))),
    "create": Command(
        "create a container", ("container-id",), ID,
        "Creates the container of the bundle (config.json and its root filesystem): its\n"
        "namespaces, cgroup and mounts are set up and the process waits for `start`.",
        (BUNDLE, CONSOLE, PID_FILE, NO_PIVOT, NO_KEYRING, PRESERVE)),
    "delete": Command(
        "delete any resources held by the container often used with detached container",
        ("container-id",), ID, "Deletes a stopped container (or any with --force).",
        (_f("force,f", "bool", "Forcibly deletes the container if it is still running "
            "(uses SIGKILL)"),)),
    "events": Command(
        "display container events such as OOM notifications, cpu, memory, and IO usage "
        "statistics", ("container-id",), ID,
        "Prints the container's cgroup stats every --interval, and OOM events, as JSON.",
        (_f("interval", "str", "set the stats collection interval (default: 5s)"),
         _f("stats", "bool", "display the container's stats then exit"))),
    "exec": Command(
        "execute new process inside the container", ("container-id", "[command...]"),
        f"{ID} <command> [command options]  || -p process.json {ID}",
        "Runs another process in the namespaces and cgroups of a running container.",
        (CONSOLE, _f("cwd", "str", "current working directory in the container"),
         _f("env,e", "list", "set environment variables"),
         _f("tty,t", "bool", "allocate a pseudo-TTY"),
         _f("user,u", "str", "UID (format: <uid>[:<gid>])"),
         _f("additional-gids,g", "list", "additional gids"),
         _f("process,p", "str", "path to the process.json"), DETACH, PID_FILE,
         _f("process-label", "str", "set the asm process label for the process commonly "
            "used with selinux"),
         _f("apparmor", "str", "set the apparmor profile for the process"),
         _f("no-new-privs", "bool", "set the no new privileges value for the process"),
         _f("cap,c", "list", "add a capability to the bounding set for the process"),
         PRESERVE,
         _f("cgroup", "list", "run the process in an (existing) sub-cgroup(s). Format is "
            "[<controller>:]<cgroup>."),
         _f("ignore-paused", "bool", "allow exec in a paused container"))),
    "kill": Command(
        "kill sends the specified signal (default: SIGTERM) to the container's init process",
        ("container-id", "[signal]"), f"{ID} [signal]",
        "Sends a signal (a number, KILL or SIGKILL) to the init process, or with --all to\n"
        "every process of the container.",
        (_f("all,a", "bool", "send the specified signal to all processes inside the "
            "container"),)),
    "list": Command(
        "lists containers started by pyrunc with the given root", (), "",
        'The containers under the global option "--root" (default: "/run/pyrunc").',
        (FORMAT, _f("quiet,q", "bool", "display only container IDs"))),
    "pause": Command(
        "pause suspends all processes inside the container", ("container-id",), ID,
        "Freezes every process of the container (its cgroup freezer).", ()),
    "ps": Command(
        "ps displays the processes running inside a container",
        ("container-id", "[ps-args...]"), f"{ID} [ps options]",
        "The host's ps output, limited to the container's processes.", (FORMAT,)),
    "restore": Command(
        "restore a container from a previous checkpoint", ("container-id",), ID,
        CRIU, (CONSOLE, *CRIU_COMMON, BUNDLE, DETACH, PID_FILE, NO_SUBREAPER, NO_PIVOT,
               _f("lsm-profile", "str", "an LSM profile to be used during restore, "
                  "TYPE:NAME"),
               _f("lsm-mount-context", "str", "an LSM mount context to be used during "
                  "restore"))),
    "resume": Command(
        "resumes all processes that have been previously paused", ("container-id",), ID,
        "Thaws a paused container.", ()),
    "run": Command(
        "create and run a container", ("container-id",), ID,
        "Creates and starts the container of the bundle, waits for its process and\n"
        "deletes the container; exits with the process's status.",
        (BUNDLE, CONSOLE, DETACH, _f("keep", "bool", "do not delete the container after "
                                     "it exits"),
         PID_FILE, NO_SUBREAPER, NO_PIVOT, NO_KEYRING, PRESERVE)),
    "spec": Command(
        "create a new specification file", (), "[arguments...]",
        'Writes a starter config.json (runc\'s defaults) into the bundle: edit its\n'
        '"args" (and "terminal") to run what you want.',
        (_f("bundle,b", "str", "path to the root of the bundle directory"),
         _f("rootless", "bool", "generate a configuration for a rootless container"))),
    "start": Command(
        "executes the user defined process in a created container", ("container-id",), ID,
        "Starts the process of a created container.", ()),
    "state": Command(
        "output the state of a container", ("container-id",), ID,
        "Prints the container's state (runtime-spec state JSON).", ()),
    "update": Command(
        "update container resource constraints", ("container-id",), ID,
        "Changes the cgroup limits of a container, from flags or a LinuxResources JSON.",
        (_f("resources,r", "str", "path to the file containing the resources to update or "
            "'-' to read from the standard input"),
         _f("blkio-weight", "int", "Specifies per cgroup weight, range is from 10 to 1000 "
            "(default: 0)"),
         _f("cpu-period", "str", "CPU CFS period to be used for hardcapping (in usecs). 0 "
            "to use system default"),
         _f("cpu-quota", "str", "CPU CFS hardcap limit (in usecs). Allowed cpu time in a "
            "given period"),
         _f("cpu-share", "str", "CPU shares (relative weight vs. other "
            "containers)"),
         _f("cpu-rt-period", "str", "CPU realtime period to be used for hardcapping (in "
            "usecs). 0 to use system default"),
         _f("cpu-rt-runtime", "str", "CPU realtime hardcap limit (in usecs). Allowed cpu "
            "time in a given period"),
         _f("cpuset-cpus", "str", "CPU(s) to use"),
         _f("cpuset-mems", "str", "Memory node(s) to use"),
         _f("memory", "str", "Memory limit (in bytes)"),
         _f("memory-reservation", "str", "Memory reservation or soft_limit (in bytes)"),
         _f("memory-swap", "str", "Total memory usage (memory + swap); set '-1' to enable "
            "unlimited swap"),
         _f("pids-limit", "int", "Maximum number of pids allowed in the container "
            "(default: 0)"),
         _f("l3-cache-schema", "str", "The string of Intel RDT/CAT L3 cache schema"),
         _f("mem-bw-schema", "str", "The string of Intel RDT/MBA memory bandwidth schema"),
         # later runc's flags, hidden from the help as runc 1.1 has none of them
         _f("kernel-memory", "str", ""), _f("kernel-memory-tcp", "str", ""),
         _f("cpu-burst", "str", ""), _f("cpu-idle", "str", ""),
         _f("cpu-shares", "str", ""))),  # --cpu-share's other spelling
    "features": Command(
        "show the enabled features", (), "[arguments...]",
        "What this build supports, as runtime-spec features JSON.", ()),
}


def flag_table(flags):
    """{name: kind} for every long and short name of flags (and --help/-h)."""
    table = {"help": "bool", "h": "bool"}
    for flag in flags:
        for name in flag.names:
            table[name] = flag.kind
    return table


def aliases(flags):
    """{short or alternative name: long name}."""
    return {name: flag.names[0] for flag in flags for name in flag.names[1:]}


def _options(flags, title):
    shown = [f for f in flags if f.help]
    if not shown:
        return []
    cells = []
    for flag in shown:
        value = "" if flag.kind == "bool" else " value"
        cells.append((", ".join(("--" if len(n) > 1 else "-") + n + value
                                for n in flag.names), flag.help))
    width = max(len(c) for c, _ in cells)
    return ["", f"{title}:", *(f"   {c.ljust(width)}  {h}" for c, h in cells)]


def command_help(prog, name):
    cmd = COMMANDS[name]
    options = "[command options] " if cmd.flags else ""
    lines = ["NAME:", f"   {prog} {name} - {cmd.summary}", "", "USAGE:",
             f"   {prog} {name} {options}{cmd.usage}".rstrip(), "", "DESCRIPTION:",
             *("   " + line for line in cmd.description.splitlines())]
    lines += _options(cmd.flags, "OPTIONS")
    return "\n".join(lines) + "\n"


def main_help(prog, version_lines):
    width = max(len(n) for n in COMMANDS) + 2
    lines = ["NAME:", f"   {prog} - Open Container Initiative runtime (runc's command line, "
             "in Python)", "",
             "To start a new instance of a container:", "",
             f"    # {prog} run [ -b bundle ] <container-id>", "",
             "USAGE:", f"   {prog} [global options] command [command options] [arguments...]",
             "", "VERSION:", *("   " + v for v in version_lines), "", "COMMANDS:"]
    lines += [f"   {n.ljust(width)}{c.summary}" for n, c in COMMANDS.items()]
    lines.append(f"   {'help, h'.ljust(width)}Shows a list of commands or help for one "
                 "command")
    lines += _options(GLOBAL, "GLOBAL OPTIONS")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    import gc

    from ociruntime import exit_process

    gc.disable()  # as the launcher (see ociruntime/_bin/pyrunc)
    exit_process(main())
