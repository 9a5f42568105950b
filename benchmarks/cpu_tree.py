#!/usr/bin/env python3
"""The CPU time of a command's whole process tree, commands interleaved run by run.

On a shared machine wall times swing with the load; the CPU a command and every process it
forks spend moves far less.  Each run is recorded by `perf record -a` with the scheduler's
stat_runtime, fork and exec tracepoints (nothing injected), and every process is charged
to the run whose command it descends from: the runtime itself, its forks (the fork chain,
the container's init, the exec stage, the program) and threads.  A container process that
a command leaves running is charged only for what it ran before the recording ended.

    .venv/bin/python benchmarks/cpu_tree.py --runs 40 \\
        "before=/path/to/other/pyrunc --root /tmp/r1 run -b BUNDLE ct{i}" \\
        "after=.venv/bin/pyrunc --root /tmp/r2 run -b BUNDLE ct{i}" \\
        "runc=runc --root /tmp/r3 run -b BUNDLE ct{i}"

'{i}' becomes a number unique to the run (container ids).  For each LABEL: the median CPU
of the tree, of the command's own process and of its forks (the tree less the command's
process: the fork chain, the container's init, the stage, the program; ms), and the
tree's quartiles.  As root, with
perf.  Results are reported, never asserted.
"""

import argparse
import collections
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

LINE = re.compile(r"\s*(.+?)\s+(\d+)/(\d+)\s+(\S+):\s*(.*)")
EVENTS = ("sched:sched_stat_runtime", "sched:sched_process_fork", "sched:sched_process_exec")


def record(commands, runs, work):
    """One shell loop under perf record: each command in turn, runs times, each in a
    `sh -c 'exec CMD'` of its own (so the command's process is the shell's child)."""
    lines = []
    for i in range(runs):
        for k, (_, cmd) in enumerate(commands):
            lines.append(f"sh -c 'exec {cmd.format(i=f'{os.getpid()}x{i}x{k}')}' "
                         ">/dev/null 2>&1")
    script = os.path.join(work, "runs.sh")
    with open(script, "w") as f:
        f.write("\n".join(lines) + "\n")
    data = os.path.join(work, "perf.data")
    subprocess.run(["perf", "record", "-q", "-a", "-o", data,
                    *[arg for e in EVENTS for arg in ("-e", e)], "--", "sh", script],
                   check=True, stdout=subprocess.DEVNULL)
    return subprocess.run(["perf", "script", "-i", data, "-F", "comm,pid,tid,event,trace"],
                          check=True, capture_output=True, text=True).stdout


def trees(text, commands):
    """{label: [(tree CPU ms, own CPU ms)]} from perf script's text."""
    runtime, children = collections.Counter(), collections.defaultdict(list)
    last_comm, execs = {}, []
    for line in text.splitlines():
        m = LINE.match(line)
        if not m:
            continue
        comm, pid, event, rest = m.group(1), int(m.group(2)), m.group(4), m.group(5)
        if event == "sched:sched_stat_runtime":
            runtime[pid] += int(re.search(r"runtime=(\d+)", rest).group(1))
        elif event == "sched:sched_process_fork":
            children[pid].append(int(re.search(r"child_pid=(\d+)", rest).group(1)))
        elif event == "sched:sched_process_exec":
            # the command's exec: by the `sh -c` that ran it (not a runtime's own re-exec)
            if last_comm.get(pid, "sh") == "sh":
                execs.append((pid, rest.split("filename=", 1)[1].split()[0]))
        if event != "sched:sched_process_exec":
            last_comm[pid] = comm

    def tree(pid):
        return runtime[pid] + sum(tree(c) for c in children[pid] if c != pid)

    labels = {}
    for label, cmd in commands:
        first = cmd.split()[0]
        path = shutil.which(first) or first
        labels[path] = labels[os.path.realpath(path)] = label
    out = collections.defaultdict(list)
    for pid, filename in execs:
        label = labels.get(filename) or labels.get(os.path.realpath(filename))
        if label:
            out[label].append((tree(pid) / 1e6, runtime[pid] / 1e6))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("command", nargs="+", help="LABEL=COMMAND ('{i}': a unique number)")
    args = ap.parse_args()
    if os.geteuid() != 0 or not shutil.which("perf"):
        sys.exit("cpu_tree: needs root and perf")
    commands = [c.split("=", 1) for c in args.command]
    with tempfile.TemporaryDirectory(prefix="cpu-tree-") as work:
        result = trees(record(commands, args.runs, work), commands)
    print(f"CPU ms, median of {args.runs} interleaved runs (n: runs seen)")
    print(f"{'command':<16}{'tree':>8}{'q1':>8}{'q3':>8}{'own':>8}{'forks':>8}{'n':>5}")
    for label, _ in commands:
        values = result.get(label, [])
        if not values:
            print(f"{label:<16}{'-':>8}")
            continue
        tree_ms = sorted(v[0] for v in values)
        q1, q3 = (tree_ms[int(q * (len(tree_ms) - 1))] for q in (0.25, 0.75))
        print(f"{label:<16}{statistics.median(tree_ms):8.2f}{q1:8.2f}{q3:8.2f}"
              f"{statistics.median(v[1] for v in values):8.2f}"
              f"{statistics.median(v[0] - v[1] for v in values):8.2f}{len(values):5d}")
    print(os.popen("uptime").read().strip())


if __name__ == "__main__":
    main()
