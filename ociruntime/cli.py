"""`pyrunc`: runc's command line, one function per subcommand.

Engines call the runtime exactly as they call runc, so flags follow runc: global flags
before the subcommand, `--flag value` and `--flag=value` (and Go's single-dash `-flag`).
argparse is not used: its import costs more than a whole `pyrunc state`; nor is os (posix
and ociruntime.paths: see there).
"""

import posix
import sys

from ociruntime import OCI_VERSION, __version__, log, paths
from ociruntime.clispec import COMMANDS, GLOBAL, aliases, flag_table
from ociruntime.errors import PyruncError

GLOBAL_FLAGS = flag_table(GLOBAL)
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
            gflags, rest = parse_flags(argv, GLOBAL_FLAGS, None)
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
            from ociruntime.clispec import command_help

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
            from ociruntime.clispec import command_help

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
        return globals()["cmd_" + command](root, flags, positionals) or 0
    except UsageError as e:
        if e.command and not isinstance(e, UnknownCommand):
            from ociruntime.clispec import command_help

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
    from ociruntime.clispec import main_help

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


def _container(root, args):
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
        return _container(root, args).create(opts)

    pid = _primed_create(create)
    log.debug(f"create {args[0]}: the container's init is process {pid}")


def cmd_start(root, flags, args):
    _container(root, args).start()
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
    _container(root, args).kill(signum, all_processes=flags.get("all", False))


def cmd_delete(root, flags, args):
    _container(root, args).delete(force=flags.get("force", False))


def cmd_run(root, flags, args):
    def run_primed(primed):
        from ociruntime.libcontainer.run import run

        opts = _create_options(flags)
        opts.primed = primed
        return run(_container(root, args), opts, detach=flags.get("detach", False),
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

    container = _container(root, args)
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


def cmd_ps(root, flags, args):
    container = _container(root, args).load()
    pids = container.pids()
    fmt = flags.get("format", "table")
    if fmt == "json":  # one line, as runc (Go's json.Encoder)
        from ociruntime import jsonlite

        sys.stdout.write(jsonlite.dumps(pids) + "\n")
        return
    if fmt != "table":
        raise UsageError(f"invalid format option {fmt!r} (table or json)")
    import subprocess

    out = subprocess.run(["ps", *(args[1:] or ["-ef"])], capture_output=True, text=True,
                         check=False)
    if out.returncode:
        raise PyruncError(f"ps: {out.stderr.strip()}")
    lines = out.stdout.splitlines()
    if not lines:
        return
    header = lines[0].split()
    try:
        pid_column = header.index("PID")
    except ValueError:
        raise PyruncError("ps output has no PID column") from None
    wanted = {str(pid) for pid in pids}
    sys.stdout.write(lines[0] + "\n")
    for line in lines[1:]:
        fields = line.split()
        if len(fields) > pid_column and fields[pid_column] in wanted:
            sys.stdout.write(line + "\n")


def cmd_checkpoint(root, flags, args):
    from ociruntime.clispec import CRIU

    raise PyruncError(CRIU)


cmd_restore = cmd_checkpoint


def cmd_pause(root, flags, args):
    _container(root, args).pause()


def cmd_resume(root, flags, args):
    _container(root, args).resume()


def cmd_update(root, flags, args):
    from ociruntime.config import ConfigError, load_resources, parse_resources

    for name in ("l3-cache-schema", "mem-bw-schema"):
        if flags.get(name):
            raise PyruncError(f"--{name}: Intel RDT is not supported yet")
    source = flags.get("resources")
    try:
        if source:  # as runc: the other flags are then ignored
            if source == "-":
                data = sys.stdin.buffer.read()
            else:
                try:
                    with open(source, "rb") as f:
                        data = f.read()
                except OSError as e:
                    raise PyruncError(f"--resources {source}: {e.strerror}") from None
            resources = load_resources(data)
            from ociruntime import jsonlite

            raw = jsonlite.loads(data.decode())  # valid: load_resources checked it
        else:
            raw = _resources_from_flags(flags)
            resources = parse_resources(raw)
    except ConfigError as e:
        raise PyruncError(str(e).replace("config.json", "the resources JSON")) from None
    _container(root, args).update(resources, raw)


def _resources_from_flags(flags):
    """The LinuxResources JSON that runc update's flags stand for."""
    memory, cpu = {}, {}
    for flag, key in (("memory", "limit"), ("memory-swap", "swap"),
                      ("memory-reservation", "reservation"), ("kernel-memory", "kernel"),
                      ("kernel-memory-tcp", "kernelTCP")):
        if flags.get(flag):
            memory[key] = -1 if flags[flag] == "-1" else ram_in_bytes(flags[flag], flag)
    for flag, key in (("cpu-share", "shares"), ("cpu-period", "period"),
                      ("cpu-burst", "burst"), ("cpu-rt-period", "realtimePeriod"),
                      ("cpu-quota", "quota"), ("cpu-rt-runtime", "realtimeRuntime"),
                      ("cpu-idle", "idle")):
        if flags.get(flag):
            try:
                cpu[key] = int(flags[flag])
            except ValueError:
                raise UsageError(f"invalid value for --{flag}: {flags[flag]!r}") from None
    for flag, key in (("cpuset-cpus", "cpus"), ("cpuset-mems", "mems")):
        if flags.get(flag):
            cpu[key] = flags[flag]
    if memory.get("limit") == -1 and "swap" not in memory:
        memory["swap"] = 0  # unlimited memory: unlimited swap too, as runc
    doc = {}
    if memory:
        doc["memory"] = memory
    if cpu:
        doc["cpu"] = cpu
    if flags.get("pids-limit"):  # 0 leaves the limit as it is, as runc 1.1's update
        doc["pids"] = {"limit": flags["pids-limit"]}
    if flags.get("blkio-weight"):
        doc["blockIO"] = {"weight": flags["blkio-weight"]}
    return doc


def ram_in_bytes(text, flag=""):
    """docker's units.RAMInBytes, as runc update parses sizes: "512", "100m", "1.5GiB";
    the suffixes are binary (k = 1024)."""
    t = text.strip()
    low = t.lower()
    for suffix in ("ib", "b", "i"):
        if low.endswith(suffix) and len(low) > len(suffix):
            low = low[:-len(suffix)]
            break
    scale = 1
    if low and low[-1] in "kmgtp":
        scale = 1024 ** ("kmgtp".index(low[-1]) + 1)
        low = low[:-1]
    low = low.rstrip(" ")
    try:
        if not low or not low.replace(".", "", 1).isdigit():
            raise ValueError
        return int(float(low) * scale)
    except ValueError:
        raise UsageError(f"invalid value for --{flag}: invalid size: {text!r}") from None


def parse_duration(text):
    """A Go duration ("5s", "100ms", "1m30s") in seconds."""
    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
    total, i, t = 0.0, 0, text.strip()
    if t == "0":
        return 0.0
    while i < len(t):
        j = i
        while j < len(t) and (t[j].isdigit() or t[j] == "."):
            j += 1
        k = j
        while k < len(t) and not (t[k].isdigit() or t[k] == "."):
            k += 1
        if j == i or t[j:k] not in units:
            raise UsageError(f"invalid duration {text!r}")
        try:
            total += float(t[i:j]) * units[t[j:k]]
        except ValueError:
            raise UsageError(f"invalid duration {text!r}") from None
        i = k
    if not t:
        raise UsageError(f"invalid duration {text!r}")
    return total


def cmd_events(root, flags, args):
    import time

    from ociruntime import jsonlite
    from ociruntime.state import STOPPED

    interval = parse_duration(flags.get("interval", "5s"))
    if interval <= 0:
        raise UsageError("duration interval must be greater than 0")
    container = _container(root, args).load()
    if container.status() == STOPPED:
        raise PyruncError(f"container with id {container.id} is not running")
    manager = container.cgroup_manager()
    from ociruntime.libcontainer.run import collect_cycles_again

    collect_cycles_again()  # the stream may go on for days

    def emit(kind, data=None):
        event = {"type": kind, "id": container.id}
        if data is not None:
            event["data"] = data
        sys.stdout.write(jsonlite.dumps(event) + "\n")
        sys.stdout.flush()

    if flags.get("stats"):
        emit("stats", manager.stats())
        return
    # as runc: the stream goes on while the container is stopped (its cgroup is still
    # there to read) and ends when it is deleted (runc: the OOM notifier's cgroup is gone)
    ooms = manager.oom_kills() or 0
    next_stats = time.monotonic() + interval
    while True:
        # OOM kills are polled more often than stats: each one is an event of its own
        time.sleep(max(0.0, min(0.1, next_stats - time.monotonic())))
        count = manager.oom_kills()
        if count is not None and count > ooms:
            for _ in range(count - ooms):
                emit("oom")
            ooms = count
        if not container.state.exists():
            return
        if time.monotonic() >= next_stats:
            stats = manager.stats()
            if not container.state.exists():  # deleted while read: nothing to report
                return
            emit("stats", stats)
            next_stats += interval


def cmd_features(root, flags, args):
    from ociruntime.features import features

    sys.stdout.write(pretty_json(features(), unit="    ") + "\n")  # runc's 4 spaces


def cmd_list(root, flags, args):
    from ociruntime.state import list_containers

    def damaged(container_id, error):
        log.warn(f"list: {error}")  # that one is reported, the others are listed

    fmt = flags.get("format", "table")
    states = [st.oci_state() for st in list_containers(root, on_damaged=damaged)]
    if flags.get("quiet"):
        sys.stdout.write("".join(s["id"] + "\n" for s in states))
    elif fmt == "json":  # one line, and null for none, as runc (Go's nil slice)
        from ociruntime import jsonlite

        sys.stdout.write(jsonlite.dumps(states or None) + "\n")
    elif fmt == "table":
        rows = [("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")]
        rows += [(s["id"], str(s["pid"]), s["status"], s["bundle"], s["created"], s["owner"])
                 for s in states]
        sys.stdout.write(tabwriter(rows))
    else:
        raise UsageError(f"invalid format option {fmt!r} (table or json)")


def cmd_spec(root, flags, args):
    from ociruntime.specgen import default_spec

    bundle = flags.get("bundle") or "."
    path = paths.join(bundle, "config.json")
    if paths.exists(path):
        raise PyruncError(f"File {path} exists. Remove it first")
    with open(path, "w") as f:  # runc's layout: tabs, no newline at the end
        f.write(pretty_json(default_spec(rootless=flags.get("rootless", False)), unit="\t"))


# --- helpers ----------------------------------------------------------------------------------
def tabwriter(rows):
    """Rows as Go's tabwriter.NewWriter(w, 12, 1, 3, ' ', 0) lays them out for runc: each
    column but the last padded to at least 12, 3 spaces more than its widest cell."""
    widths = [max(12, max(len(r[i]) for r in rows) + 3) for i in range(len(rows[0]) - 1)]
    return "".join("".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) + row[-1]
                   + "\n" for row in rows)


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


if __name__ == "__main__":
    import gc

    from ociruntime.procexit import exit_process

    gc.disable()  # as the launcher (see ociruntime/_bin/pyrunc)
    exit_process(main())
