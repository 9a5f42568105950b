"""`pyrunc`: runc's command line, one function per subcommand (those engines seldom call in
cliextra.py), and at the end the command line as data: every command and flag runc 1.1
has (their help texts and its layout are clihelp.py's).

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


def _alias(flags, table, command):
    """Fold the short names into the long ones (-f is --force or --format by command):
    table is flag_table's second dict."""
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
            kinds, longs = flag_table(GLOBAL)
            gflags, rest = parse_flags(argv, kinds, None)
            gflags = _alias(gflags, longs, None)
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
        names, table = COMMANDS[command]
        try:
            kinds, longs = flag_table(table)
            flags, positionals = parse_flags(args, kinds, command)
        except UsageError as e:
            e.command = command
            raise
        flags = _alias(flags, longs, command)
        if flags.get("help"):
            sys.stdout.write(command_help(_prog(), command))
            return 0
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
    from ociruntime import clihelp

    return clihelp.main_help(_prog(), _version().splitlines())


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
    if positionals and COMMANDS[command][0][:1] == ("container-id",):
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
# Every command and flag runc 1.1 has, as main parses them: a command's positional names
# ("[x]" optional, "[x...]" the rest of the line) and its flags, one string of
# "names:kind" (the long name first, then the short one; kinds "bool", "str", "int",
# "list", which repeats).  Their help texts, and the help's layout, are clihelp.py's,
# imported only to print help: every call reads this module, and the texts and the ~110
# objects they were built into cost each of them ~0.1 ms of CPU (unmarshalling, and a
# Python call a flag).  Constant tuples and strings cost nothing to build.
CRIU = "checkpoint/restore needs CRIU, which pyrunc does not support"

GLOBAL = ("debug:bool log:str log-format:str root:str criu:str systemd-cgroup:bool rootless:str "
          "help,h:bool version,v:bool")

COMMANDS = {
    "checkpoint": (("container-id",), "image-path:str work-path:str tcp-established:bool "
                                      "ext-unix-sk:bool shell-job:bool file-locks:bool "
                                      "manage-cgroups-mode:str empty-ns:str auto-dedup:bool "
                                      "lazy-pages:bool parent-path:str leave-running:bool "
                                      "status-fd:str page-server:str pre-dump:bool"),
    "create": (("container-id",), "bundle,b:str console-socket:str pid-file:str no-pivot:bool "
                                  "no-new-keyring:bool preserve-fds:int"),
    "delete": (("container-id",), "force,f:bool"),
    "events": (("container-id",), "interval:str stats:bool"),
    "exec": (("container-id", "[command...]"), "console-socket:str cwd:str env,e:list "
                                               "tty,t:bool user,u:str additional-gids,g:list "
                                               "process,p:str detach,d:bool pid-file:str "
                                               "process-label:str apparmor:str no-new-privs:bool "
                                               "cap,c:list preserve-fds:int cgroup:list "
                                               "ignore-paused:bool"),
    "kill": (("container-id", "[signal]"), "all,a:bool"),
    "list": ((), "format,f:str quiet,q:bool"),
    "pause": (("container-id",), ""),
    "ps": (("container-id", "[ps-args...]"), "format,f:str"),
    "restore": (("container-id",), "console-socket:str image-path:str work-path:str "
                                   "tcp-established:bool ext-unix-sk:bool shell-job:bool "
                                   "file-locks:bool manage-cgroups-mode:str empty-ns:str "
                                   "auto-dedup:bool lazy-pages:bool bundle,b:str detach,d:bool "
                                   "pid-file:str no-subreaper:bool no-pivot:bool lsm-profile:str "
                                   "lsm-mount-context:str"),
    "resume": (("container-id",), ""),
    "run": (("container-id",), "bundle,b:str console-socket:str detach,d:bool keep:bool "
                               "pid-file:str no-subreaper:bool no-pivot:bool no-new-keyring:bool "
                               "preserve-fds:int"),
    "spec": ((), "bundle,b:str rootless:bool"),
    "start": (("container-id",), ""),
    "state": (("container-id",), ""),
    # update's last five are later runc's, hidden from the help as runc 1.1 has none of them
    # (--cpu-shares is --cpu-share's other spelling)
    "update": (("container-id",), "resources,r:str blkio-weight:int cpu-period:str "
                                  "cpu-quota:str cpu-share:str cpu-rt-period:str "
                                  "cpu-rt-runtime:str cpuset-cpus:str cpuset-mems:str memory:str "
                                  "memory-reservation:str memory-swap:str pids-limit:int "
                                  "l3-cache-schema:str mem-bw-schema:str kernel-memory:str "
                                  "kernel-memory-tcp:str cpu-burst:str cpu-idle:str "
                                  "cpu-shares:str"),
    "features": ((), ""),
}


def flag_table(flags):
    """({name: kind} for every long and short name of a table's flags (and --help/-h),
    {short or alternative name: long name})."""
    kinds, longs = {"help": "bool", "h": "bool"}, {}
    for flag in flags.split():
        names, _, kind = flag.partition(":")
        names = names.split(",")
        for name in names:
            kinds[name] = kind
            longs[name] = names[0]
    return kinds, longs


def command_help(prog, name):
    from ociruntime import clihelp

    return clihelp.command_help(prog, name)


if __name__ == "__main__":
    import gc

    from ociruntime import exit_process

    gc.disable()  # as the launcher (see ociruntime/_bin/pyrunc)
    exit_process(main())
