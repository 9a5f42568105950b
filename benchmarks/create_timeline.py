#!/usr/bin/env python3
"""Where the wall time of `RUNTIME run` (/bin/true) goes: a timeline from kernel tracepoints.

Wall times on a shared machine swing too much to compare two versions of create by their
totals; the order and the gaps between the events of one call do not.  Each run is
recorded by `perf record -a` with the scheduler's fork/exec/exit, cgroup attach and mkdir
tracepoints (no strace: it serialises the processes and inflates every syscall), and
every event of the runtime's process tree is put on a time line from its exec:

    thread   the first thread or process the runtime starts (pyrunc: the migration prime)
    primed   the first cgroup attach outside the container's cgroups (pyrunc's prime
             rewriting its own pid: the RCU grace period it waited for ends here)
    mkdir    the last mkdir(2) of the tree returns (pyrunc: its last cgroup directory;
             runc makes its directories with mkdirat, so it has none)
    attach   the first and the last attach to the container's cgroups
    program  the exec of /bin/true (the container's program)
    end      the runtime's exit

Medians over the runs, in ms from the runtime's exec.  Runtimes given together are
interleaved run by run.  As root, after .ci/setup, with perf installed:

    .venv/bin/python benchmarks/create_timeline.py --runs 20
    .venv/bin/python benchmarks/create_timeline.py --runtime .venv/bin/pyrunc --runtime runc

Results are reported, never asserted.
"""

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
EVENTS = ("sched:sched_process_fork", "sched:sched_process_exec", "sched:sched_process_exit",
          "cgroup:cgroup_attach_task", "syscalls:sys_exit_mkdir")
LINE = re.compile(r"\s*(.+?)\s+(\d+)\s+\[\d+\]\s+([\d.]+):\s+(\S+):(.*)")
PHASES = ("thread", "primed", "mkdir", "attach first", "attach last", "program", "end")
ID_PREFIX = f"ctl{os.getpid()}-"  # our containers' ids, and so their cgroups' paths


def record(runtimes, bundle, root, runs, data):
    """One shell loop under perf record: each runtime in turn, runs times."""
    lines = []
    for i in range(runs):
        for n, path in enumerate(runtimes):
            lines.append(f"{path} --root {root}/{n} run -b {bundle} {ID_PREFIX}{i}-{n} "
                         ">/dev/null 2>&1")
    script = os.path.join(os.path.dirname(data), "runs.sh")
    with open(script, "w") as f:
        f.write("\n".join(lines) + "\n")
    subprocess.run(["perf", "record", "-q", "-a", "-o", data,
                    *[arg for e in EVENTS for arg in ("-e", e)], "--", "sh", script],
                   check=True, stdout=subprocess.DEVNULL)
    return subprocess.run(["perf", "script", "-i", data], check=True, capture_output=True,
                          text=True).stdout


def timelines(text, runtimes):
    """{runtime: [ {phase: ms from the runtime's exec} ]} from perf script's text."""
    by_pid, runs = {}, []
    for line in text.splitlines():
        m = LINE.match(line)
        if not m:
            continue
        pid, t, event, rest = int(m.group(2)), float(m.group(3)) * 1000, m.group(4), m.group(5)
        if event == "sched:sched_process_exec":
            name = rest.split("filename=", 1)[1].split()[0] if "filename=" in rest else ""
            if name in runtimes:
                run = {"runtime": name, "start": t, "pid": pid, "ev": {}}
                runs.append(run)
                by_pid[pid] = run
                continue
        run = by_pid.get(pid)
        if run is None:
            continue
        ev, since = run["ev"], t - run["start"]
        if event == "sched:sched_process_fork":
            by_pid[int(rest.split("child_pid=", 1)[1].split()[0])] = run
            ev.setdefault("thread", since)
        elif event == "cgroup:cgroup_attach_task":
            if f"/{ID_PREFIX}" in rest.split("dst_path=", 1)[1].split()[0]:
                ev.setdefault("attach first", since)
                ev["attach last"] = since
            else:
                ev.setdefault("primed", since)
        elif event == "syscalls:sys_exit_mkdir" and rest.strip() == "0x0":
            ev["mkdir"] = since
        elif event == "sched:sched_process_exec" and "/bin/true" in rest:
            ev["program"] = since
        elif event == "sched:sched_process_exit" and pid == run["pid"]:
            ev["end"] = since
    out = {}
    for run in runs:
        # whole, and ours: the host may run the same binary for others meanwhile
        if "end" in run["ev"] and "attach first" in run["ev"]:
            out.setdefault(run["runtime"], []).append(run["ev"])
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--runtime", action="append",
                    help="a runtime binary (repeatable; default: the venv's pyrunc and runc)")
    args = ap.parse_args()
    if os.geteuid() != 0 or not shutil.which("perf"):
        sys.exit("create_timeline: needs root and perf")
    runtimes = [shutil.which(r) or os.path.abspath(r) for r in (args.runtime or [
        os.path.join(os.path.dirname(HERE), ".venv", "bin", "pyrunc"), "runc"])]
    sys.path.insert(0, HERE)
    sys.path.insert(1, os.path.dirname(HERE))
    import bench

    with tempfile.TemporaryDirectory(prefix="create-timeline-") as work:
        bundle = bench.make_bundles(work, shutil.which("busybox"))["run"]
        text = record(runtimes, bundle, os.path.join(work, "root"), args.runs,
                      os.path.join(work, "perf.data"))
    result = timelines(text, runtimes)
    print(f"ms from the runtime's exec, median of {args.runs} runs (n: runs seen whole)")
    print(f"{'runtime':<32}" + "".join(f"{p:>15}" for p in PHASES) + "      n")
    for path in runtimes:
        evs = result.get(path, [])
        cells = []
        for phase in PHASES:
            values = [e[phase] for e in evs if phase in e]
            cells.append(f"{statistics.median(values):15.1f}" if values else f"{'-':>15}")
        print(f"{path[-32:]:<32}" + "".join(cells) + f"{len(evs):7d}")


if __name__ == "__main__":
    main()
