#!/usr/bin/env python3
"""Where `ctr run --rm ... /bin/true` spends its time through a shim: each process that
containerd starts for it (the shim's start, server, workers and delete, the runtime's
fork chain, runc) on a time line from ctr's exec, with its CPU time.

A private containerd (as shim_bench.py's) runs the containers one at a time, idle between
them, under `perf record -a` with the scheduler's fork, exec, exit and runtime
tracepoints (sched_stat_runtime: the CPU time of every thread, nothing injected in the
processes).  A process is named by its executable and the order of its exec within the
run (containerd-shim-pyrunc-v2#1 is `start`, #2 `delete`; the python that outlives the run
is the server, python#1 its Create's worker); its threads' CPU counts to it.  Medians
over the runs, in ms: exec (from ctr's), end (its exit or next exec, or the end of the
run for a server that outlives it) and CPU.  As root, after .ci/setup, with perf installed:

    .venv/bin/python benchmarks/shim_timeline.py --runtime pyrunc --runs 5
    .venv/bin/python benchmarks/shim_timeline.py --runtime runc
    .venv/bin/python benchmarks/shim_timeline.py --repo /another/checkout   # its shim

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
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import shim_bench as sb  # noqa: E402
from bench import become_subreaper, make_bundles, reap_orphans  # noqa: E402

EVENTS = ("sched:sched_process_fork", "sched:sched_process_exec", "sched:sched_process_exit",
          "sched:sched_stat_runtime")
LINE = re.compile(r"\s*(.+?)\s+(\d+)\s+\[\d+\]\s+([\d.]+):\s+(\S+):(.*)")


def record(cd, runtime, runs, data):
    """The runs under perf, each after 1.5 s of quiet (a task's own server goes within 1 s)."""
    script = os.path.join(os.path.dirname(data), "runs.sh")
    with open(script, "w") as f:
        for i in range(runs):
            f.write(f"sleep 1.5; ctr --address {cd.address} --namespace {cd.namespace} run "
                    f"--rm --runtime {sb.RUNTIMES[runtime]} {sb.IMAGE} tl{i} /bin/true\n")
    subprocess.run(["perf", "record", "-q", "-a", "-o", data,
                    *[arg for e in EVENTS for arg in ("-e", e)], "--", "sh", script],
                   check=True, stdout=subprocess.DEVNULL)
    return subprocess.run(["perf", "script", "-i", data], check=True, capture_output=True,
                          text=True).stdout


STARTER = "pyrunc-starter"  # the shim's starter (shim/starter.py), by its process name


def processes(text):
    """[{exe, exec, end, cpu}] of ctr and of everything containerd forked, in exec order:
    a fork belongs to its parent's process until it execs.  The shim's starter (running
    before the runs) is one more process per run: its CPU between two ctr execs (start's
    and delete's requests); what it forks (a server, and the middle process of its double
    fork) a process of its own, "pyrunc-shim" (a server's own forks, such as its Create's
    worker, count to it)."""
    owner, procs, starter = {}, [], None
    for line in text.splitlines():
        m = LINE.match(line)
        if not m:
            continue
        comm, tid, when, event, rest = m.group(1), int(m.group(2)), float(m.group(3)), \
            m.group(4), m.group(5)
        if event == "sched:sched_process_fork":
            child = int(re.search(r"child_pid=(\d+)", rest).group(1))
            if comm == STARTER:
                procs.append({"exe": "pyrunc-shim", "tid": child, "exec": when, "end": None,
                              "cpu": 0.0})
                owner[child] = procs[-1]
            elif tid in owner:
                owner[child] = owner[tid]
            elif comm == "containerd":
                owner[child] = None  # not a process of ours until it execs
        elif event == "sched:sched_process_exec":
            exe = os.path.basename(re.search(r"filename=(\S+)", rest).group(1))
            if tid in owner or exe == "ctr":
                if owner.get(tid) is not None and owner[tid]["tid"] == tid:
                    owner[tid]["end"] = when  # it became another program
                procs.append({"exe": exe, "tid": tid, "exec": when, "end": None, "cpu": 0.0})
                owner[tid] = procs[-1]
                if exe == "ctr":
                    starter = None
        elif event == "sched:sched_process_exit":
            if owner.get(tid) is not None and owner[tid]["tid"] == tid:  # not a thread's
                owner[tid]["end"] = when
        elif event == "sched:sched_stat_runtime":
            pid = int(re.search(r" pid=(\d+)", rest).group(1))
            cpu = int(re.search(r"runtime=(\d+)", rest).group(1)) / 1e6
            if owner.get(pid) is not None:
                owner[pid]["cpu"] += cpu
            elif comm == STARTER and pid not in owner:
                if starter is None:
                    starter = {"exe": STARTER, "tid": pid, "exec": when, "end": when,
                               "cpu": 0.0}
                    procs.append(starter)
                starter["cpu"] += cpu
                starter["end"] = when
    return procs


def timelines(procs):
    """One {name: (exec ms, end ms, cpu ms)} per ctr run."""
    runs, current = [], None
    for p in procs:
        if p["exe"] == "ctr":
            current = {}
            runs.append((p, current))
            continue
        if current is None:
            continue
        current.setdefault(p["exe"], []).append(p)
    out = []
    for ctr, members in runs:
        t0, t1 = ctr["exec"], ctr["end"] or ctr["exec"]
        row = {"ctr run (wall; its own cpu)": (0.0, (t1 - t0) * 1000, ctr["cpu"])}
        for exe, ps in members.items():
            exe = "exec stage (/dev/fd/N)" if exe.isdigit() else exe
            n = 0
            for p in ps:
                if p["end"] is None or p["end"] > t1:  # a server: its cpu until it exits
                    name, end = f"{exe} (outlives the run)", t1
                else:
                    n += 1
                    name, end = f"{exe}#{n}", p["end"]
                row[name] = ((p["exec"] - t0) * 1000, (end - t0) * 1000, p["cpu"])
        row["all of them (cpu)"] = (0.0, 0.0, sum(v[2] for v in row.values()))
        out.append(row)
    return out


def report(rows, runtime):
    names = []
    for row in rows:
        names += [n for n in row if n not in names]
    print(f"ctr run --rm /bin/true through {runtime}'s shim: medians of {len(rows)} runs, "
          "ms from ctr's exec")
    print(f"{'process':<34}{'exec':>8}{'end':>8}{'cpu':>8}{'runs':>6}")
    for name in names:
        vals = [row[name] for row in rows if name in row]
        exec_, end, cpu = (statistics.median(v[i] for v in vals) for i in range(3))
        print(f"{name:<34}{exec_:>8.1f}{end:>8.1f}{cpu:>8.1f}{len(vals):>6}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runtime", choices=sorted(sb.RUNTIMES), default="pyrunc")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--repo", default=sb.REPO,
                        help="the checkout whose .venv/bin containerd finds the shim in")
    args = parser.parse_args()
    if os.geteuid() != 0 or not shutil.which("perf"):
        sys.exit("shim_timeline: needs root and perf")
    sb.REPO = os.path.abspath(args.repo)
    become_subreaper()
    work = tempfile.mkdtemp(prefix="pyrunc-shim-timeline-")
    cd = None
    try:
        bundles = make_bundles(work, shutil.which("busybox") or "/bin/busybox")
        rootfs = os.path.join(os.path.dirname(bundles["run"]), "rootfs")
        tar = sb.enginelib.write_oci_archive(rootfs, os.path.join(work, "image.tar"), sb.IMAGE)
        cd = sb.Containerd(os.path.join(work, "cd"), repo=sb.REPO)
        cd.ctr("images", "import", "--all-platforms", tar)
        for i in range(2):  # warm caches: the image, the shim's .pyc files
            cd.ctr("run", "--rm", "--runtime", sb.RUNTIMES[args.runtime], sb.IMAGE, f"w{i}",
                   "/bin/true")
            reap_orphans()
        time.sleep(1.0)
        text = record(cd, args.runtime, args.runs, os.path.join(work, "perf.data"))
        reap_orphans()
    finally:
        if cd is not None:
            cd.cleanup()
            cd.stop()
        subprocess.run(["umount", "-R", "-l", work], capture_output=True, check=False)
        shutil.rmtree(work, ignore_errors=True)
    report(timelines(processes(text)), args.runtime)


if __name__ == "__main__":
    main()
