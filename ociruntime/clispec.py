"""pyrunc's command line as data: every command and flag runc 1.1 has, with its help text.

cli.py parses with these tables; help() renders them in runc's layout (urfave/cli: NAME,
USAGE, DESCRIPTION, OPTIONS), so scripts and people reading `runc CMD --help` find the
same commands and flags.  Flag kinds: "bool", "str", "int", "list" (repeatable)."""


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
