"""The subcommands engines seldom call: update, events, ps, list, spec, features.

cli.py runs them (main looks here for a command it does not define), but their code, with
its parsers (sizes, durations, the update flags' LinuxResources) and its table layout, is
read only when one of them runs: every state, start, kill and delete reads cli.py, and
this half of it cost each of them ~0.1 ms of CPU (its .pyc 42 -> 25 KB).
"""

import sys

from ociruntime import log, paths
from ociruntime.cli import UsageError, container_for, pretty_json
from ociruntime.errors import PyruncError


def cmd_ps(root, flags, args):
    container = container_for(root, args).load()
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
    container_for(root, args).update(resources, raw)


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
    container = container_for(root, args).load()
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


def tabwriter(rows):
    """Rows as Go's tabwriter.NewWriter(w, 12, 1, 3, ' ', 0) lays them out for runc: each
    column but the last padded to at least 12, 3 spaces more than its widest cell."""
    widths = [max(12, max(len(r[i]) for r in rows) + 3) for i in range(len(rows[0]) - 1)]
    return "".join("".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) + row[-1]
                   + "\n" for row in rows)
