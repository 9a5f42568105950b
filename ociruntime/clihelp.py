"""pyrunc's help: the texts of runc 1.1's commands and flags (cli.py's tables have their
names, kinds and arguments), rendered in runc's layout (urfave/cli: NAME, USAGE,
DESCRIPTION, OPTIONS), so scripts and people reading `runc CMD --help` find the same
commands and flags.  A module of its own, imported only to print help (--help, `help`, a
usage error): the other calls do not unmarshal these texts."""

from ociruntime.cli import COMMANDS, CRIU, GLOBAL

ID = "<container-id>"

# texts several commands' flags share
BUNDLE = "path to the root of the bundle directory, defaults to the current directory"
CONSOLE = ("path to an AF_UNIX socket which will receive a file descriptor referencing the "
           "master end of the console's pseudoterminal")
PID_FILE = "specify the file to write the process id to"
NO_PIVOT = "do not use pivot root to jail process inside rootfs"
NO_KEYRING = ("do not create a new session keyring for the container (it inherits the "
              "caller's session keyring)")
PRESERVE = ("Pass N additional file descriptors to the container (stdio + $LISTEN_FDS + N "
            "in total) (default: 0)")
DETACH = "detach from the container's process"
NO_SUBREAPER = "disable the use of the subreaper used to reap reparented processes"
FORMAT = 'select one of: table or json (default: "table")'
CRIU_COMMON = {
    "image-path": "path for the criu image files",
    "work-path": "path for saving work files and logs",
    "tcp-established": "allow open tcp connections",
    "ext-unix-sk": "allow external unix sockets",
    "shell-job": "allow shell jobs",
    "file-locks": "handle file locks, for safety",
    "manage-cgroups-mode": "cgroups mode: 'soft' (default), 'full' and 'strict'",
    "empty-ns": "create a namespace, but don't restore its properties",
    "auto-dedup": "enable auto deduplication of memory images",
    "lazy-pages": "use userfaultfd to lazily restore memory pages",
}

# a global flag's long name: its help
GLOBAL_HELP = {
    "debug": "enable debug logging",
    "log": "set the log file to write pyrunc logs to (default is '/dev/stderr')",
    "log-format": "set the log format ('text' (default), or 'json') (default: \"text\")",
    "root": "root directory for storage of container state (this should be located in tmpfs) "
    '(default: "/run/pyrunc")',
    "criu": 'path to the criu binary used for checkpoint and restore (default: "criu")',
    "systemd-cgroup": "enable systemd cgroup support (refused: not supported yet)",
    "rootless": "ignore cgroup permission errors ('true', 'false', or 'auto') (default: \"auto\")",
    "help": "show help",
    "version": "print the version",
}

# a command: (summary, usage (what USAGE shows after its name), description,
# {a flag's long name: its help}); a flag without one is hidden, as runc 1.1 has none of them
TEXTS = {
    "checkpoint": (
        "checkpoint a running container",
        ID,
        CRIU,
        {
            **CRIU_COMMON,
            "parent-path": "path for previous criu image files",
            "leave-running": "leave the process running after checkpointing",
            "status-fd": "criu writes \\0 to this FD once lazy-pages is ready",
            "page-server": "ADDRESS:PORT of the page server",
            "pre-dump": "dump the container's memory information only",
        },
    ),
    "create": (
        "create a container",
        ID,
        "Creates the container of the bundle (config.json and its root filesystem): "
        "its\nnamespaces, cgroup and mounts are set up and the process waits for `start`.",
        {
            "bundle": BUNDLE,
            "console-socket": CONSOLE,
            "pid-file": PID_FILE,
            "no-pivot": NO_PIVOT,
            "no-new-keyring": NO_KEYRING,
            "preserve-fds": PRESERVE,
        },
    ),
    "delete": (
        "delete any resources held by the container often used with detached container",
        ID,
        "Deletes a stopped container (or any with --force).",
        {
            "force": "Forcibly deletes the container if it is still running (uses SIGKILL)",
        },
    ),
    "events": (
        "display container events such as OOM notifications, cpu, memory, and IO usage statistics",
        ID,
        "Prints the container's cgroup stats every --interval, and OOM events, as JSON.",
        {
            "interval": "set the stats collection interval (default: 5s)",
            "stats": "display the container's stats then exit",
        },
    ),
    "exec": (
        "execute new process inside the container",
        "<container-id> <command> [command options]  || -p process.json <container-id>",
        "Runs another process in the namespaces and cgroups of a running container.",
        {
            "console-socket": CONSOLE,
            "cwd": "current working directory in the container",
            "env": "set environment variables",
            "tty": "allocate a pseudo-TTY",
            "user": "UID (format: <uid>[:<gid>])",
            "additional-gids": "additional gids",
            "process": "path to the process.json",
            "detach": DETACH,
            "pid-file": PID_FILE,
            "process-label": "set the asm process label for the process commonly used with selinux",
            "apparmor": "set the apparmor profile for the process",
            "no-new-privs": "set the no new privileges value for the process",
            "cap": "add a capability to the bounding set for the process",
            "preserve-fds": PRESERVE,
            "cgroup": "run the process in an (existing) sub-cgroup(s). Format is "
            "[<controller>:]<cgroup>.",
            "ignore-paused": "allow exec in a paused container",
        },
    ),
    "kill": (
        "kill sends the specified signal (default: SIGTERM) to the container's init process",
        "<container-id> [signal]",
        "Sends a signal (a number, KILL or SIGKILL) to the init process, or with --all "
        "to\nevery process of the container.",
        {
            "all": "send the specified signal to all processes inside the container",
        },
    ),
    "list": (
        "lists containers started by pyrunc with the given root",
        "",
        'The containers under the global option "--root" (default: "/run/pyrunc").',
        {
            "format": FORMAT,
            "quiet": "display only container IDs",
        },
    ),
    "pause": (
        "pause suspends all processes inside the container",
        ID,
        "Freezes every process of the container (its cgroup freezer).",
        {},
    ),
    "ps": (
        "ps displays the processes running inside a container",
        "<container-id> [ps options]",
        "The host's ps output, limited to the container's processes.",
        {
            "format": FORMAT,
        },
    ),
    "restore": (
        "restore a container from a previous checkpoint",
        ID,
        CRIU,
        {
            "console-socket": CONSOLE,
            **CRIU_COMMON,
            "bundle": BUNDLE,
            "detach": DETACH,
            "pid-file": PID_FILE,
            "no-subreaper": NO_SUBREAPER,
            "no-pivot": NO_PIVOT,
            "lsm-profile": "an LSM profile to be used during restore, TYPE:NAME",
            "lsm-mount-context": "an LSM mount context to be used during restore",
        },
    ),
    "resume": (
        "resumes all processes that have been previously paused",
        ID,
        "Thaws a paused container.",
        {},
    ),
    "run": (
        "create and run a container",
        ID,
        "Creates and starts the container of the bundle, waits for its process and\ndeletes "
        "the container; exits with the process's status.",
        {
            "bundle": BUNDLE,
            "console-socket": CONSOLE,
            "detach": DETACH,
            "keep": "do not delete the container after it exits",
            "pid-file": PID_FILE,
            "no-subreaper": NO_SUBREAPER,
            "no-pivot": NO_PIVOT,
            "no-new-keyring": NO_KEYRING,
            "preserve-fds": PRESERVE,
        },
    ),
    "spec": (
        "create a new specification file",
        "[arguments...]",
        'Writes a starter config.json (runc\'s defaults) into the bundle: edit its\n"args" '
        '(and "terminal") to run what you want.',
        {
            "bundle": "path to the root of the bundle directory",
            "rootless": "generate a configuration for a rootless container",
        },
    ),
    "start": (
        "executes the user defined process in a created container",
        ID,
        "Starts the process of a created container.",
        {},
    ),
    "state": (
        "output the state of a container",
        ID,
        "Prints the container's state (runtime-spec state JSON).",
        {},
    ),
    "update": (
        "update container resource constraints",
        ID,
        "Changes the cgroup limits of a container, from flags or a LinuxResources JSON.",
        {
            "resources": "path to the file containing the resources to update or '-' to read "
            "from the standard input",
            "blkio-weight": "Specifies per cgroup weight, range is from 10 to 1000 (default: 0)",
            "cpu-period": "CPU CFS period to be used for hardcapping (in usecs). 0 to use "
            "system default",
            "cpu-quota": "CPU CFS hardcap limit (in usecs). Allowed cpu time in a given period",
            "cpu-share": "CPU shares (relative weight vs. other containers)",
            "cpu-rt-period": "CPU realtime period to be used for hardcapping (in usecs). 0 to "
            "use system default",
            "cpu-rt-runtime": "CPU realtime hardcap limit (in usecs). Allowed cpu time in a "
            "given period",
            "cpuset-cpus": "CPU(s) to use",
            "cpuset-mems": "Memory node(s) to use",
            "memory": "Memory limit (in bytes)",
            "memory-reservation": "Memory reservation or soft_limit (in bytes)",
            "memory-swap": "Total memory usage (memory + swap); set '-1' to enable unlimited swap",
            "pids-limit": "Maximum number of pids allowed in the container (default: 0)",
            "l3-cache-schema": "The string of Intel RDT/CAT L3 cache schema",
            "mem-bw-schema": "The string of Intel RDT/MBA memory bandwidth schema",
        },
    ),
    "features": (
        "show the enabled features",
        "[arguments...]",
        "What this build supports, as runtime-spec features JSON.",
        {},
    ),
}


def _options(flags, texts, title):
    cells = []
    for flag in flags.split():
        names, _, kind = flag.partition(":")
        names = names.split(",")
        text = texts.get(names[0])
        if text:
            value = "" if kind == "bool" else " value"
            cells.append((", ".join(("--" if len(n) > 1 else "-") + n + value for n in names),
                          text))
    if not cells:
        return []
    width = max(len(c) for c, _ in cells)
    return ["", f"{title}:", *(f"   {c.ljust(width)}  {h}" for c, h in cells)]


def command_help(prog, name):
    flags = COMMANDS[name][1]
    summary, usage, description, texts = TEXTS[name]
    options = "[command options] " if flags else ""
    lines = ["NAME:", f"   {prog} {name} - {summary}", "", "USAGE:",
             f"   {prog} {name} {options}{usage}".rstrip(), "", "DESCRIPTION:",
             *("   " + line for line in description.splitlines())]
    lines += _options(flags, texts, "OPTIONS")
    return "\n".join(lines) + "\n"


def main_help(prog, version_lines):
    width = max(len(n) for n in COMMANDS) + 2
    lines = ["NAME:", f"   {prog} - Open Container Initiative runtime (runc's command line, "
             "in Python)", "",
             "To start a new instance of a container:", "",
             f"    # {prog} run [ -b bundle ] <container-id>", "",
             "USAGE:", f"   {prog} [global options] command [command options] [arguments...]",
             "", "VERSION:", *("   " + v for v in version_lines), "", "COMMANDS:"]
    lines += [f"   {n.ljust(width)}{TEXTS[n][0]}" for n in COMMANDS]
    lines.append(f"   {'help, h'.ljust(width)}Shows a list of commands or help for one "
                 "command")
    lines += _options(GLOBAL, GLOBAL_HELP, "GLOBAL OPTIONS")
    return "\n".join(lines) + "\n"
