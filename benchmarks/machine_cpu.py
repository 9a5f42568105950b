#!/usr/bin/env python3
"""The whole machine's CPU per run, batches of runs in flight, commands interleaved.

On two cores with 8 runs in flight throughput is 1 / the machine's CPU per run, and not
all of that is the runtime's process tree: kernel threads work on a run's behalf after
it ended (a network namespace's cleanup in kworkers, cgroup destruction, RCU callbacks,
memcg offlining).  Each batch runs N copies of a command, P at a time (xargs -P), and
reads around it:

- the machine: busy time from /proc/stat (all but idle and iowait; clock ticks);
- the tree: the user and sys time of xargs and every process it waited for, from wait4
  (the runtime, its forks and the container's processes, which each runtime waits for);
- kernel threads: each one's sum_exec_runtime (/proc/PID/task/TID/schedstat, ns), by
  name (kworker, ksoftirqd, rcu, ...), read after --settle seconds for deferred work;
- others: the same of every other thread alive at the end (other load on the host);
- unseen: the remainder: processes of other load that began and ended within the batch.

On a shared host others and unseen are other people's work; tree + kthr is what a run
costs the machine.

    .venv/bin/python benchmarks/machine_cpu.py --runs 48 --inflight 8 --batches 6 \\
        "before=/path/to/other/pyrunc --root /tmp/r1 run -b BUNDLE c{i}" \\
        "after=.venv/bin/pyrunc --root /tmp/r2 run -b BUNDLE c{i}" \\
        "runc=runc --root /tmp/r3 run -b BUNDLE c{i}"

'{i}' becomes a number unique to the run.  Per LABEL: medians over the batches of each
share per run (ms) and the batches' quartiles of the machine's.  As root.  Reported,
never asserted.
"""

import argparse
import collections
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

TICK = os.sysconf("SC_CLK_TCK")


def machine_busy():
    """Clock ticks of all cores since boot: (busy: all but idle and iowait, idle)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal (guest time is inside user)
    return sum(fields[:8]) - fields[3] - fields[4], fields[3] + fields[4]


def tasks():
    """{tid: (class, ns run)} of every thread: a kernel thread's class is its name's
    stem (kworker, ksoftirqd, rcu...), any other thread's "others" (other load)."""
    out, me = {}, os.getpid()
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == me:
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
            name = stat[stat.index("(") + 1:stat.rindex(")")]
            ppid = int(stat[stat.rindex(")") + 2:].split()[1])
            kernel = pid == "2" or ppid == 2
            for tid in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    ns = int(f.read().split()[0])
                cls = (re.split(r"[/:\-_0-9]", name, maxsplit=1)[0] or name) if kernel \
                    else "others"
                out[int(tid)] = (cls, ns)
        except (OSError, ValueError):
            continue
    return out


def batch(cmd, runs, inflight, tag, work, settle):
    lines = "\n".join(cmd.format(i=f"{tag}x{i}") for i in range(runs))
    script = os.path.join(work, f"{tag}.txt")
    with open(script, "w") as f:
        f.write(lines + "\n")
    k0, (b0, i0) = tasks(), machine_busy()
    t0 = time.perf_counter()
    proc = subprocess.Popen(["xargs", "-P", str(inflight), "-d", "\n", "-a", script,
                             "-I", "{}", "sh", "-c", "exec {}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, ru = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    _, idle = machine_busy()
    time.sleep(settle)  # the kernel's deferred work on the batch's behalf lands here
    (b1, _), k1 = machine_busy(), tasks()
    by_class = collections.Counter()
    for tid, (cls, ns) in k1.items():
        before = k0.get(tid, (cls, 0))[1]
        by_class[cls] += max(0, ns - before) / 1e6
    return {
        "wall": wall,
        "machine": (b1 - b0) * 1000 / TICK,
        # the cores' idle share while the batch ran (not in the settle): runs waiting
        # on something else than CPU (a lock, a grace period) with CPU to spare
        "idle": (idle - i0) / (wall * TICK * os.cpu_count()),
        "tree": (ru.ru_utime + ru.ru_stime) * 1000,
        "user": ru.ru_utime * 1000,
        "sys": ru.ru_stime * 1000,
        "others": by_class.pop("others", 0),
        "kthreads": dict(by_class),
        "failed": proc.returncode != 0,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("commands", nargs="+", metavar="LABEL=COMMAND")
    parser.add_argument("--runs", type=int, default=48, help="runs per batch")
    parser.add_argument("--inflight", type=int, default=8)
    parser.add_argument("--batches", type=int, default=6, help="batches per command")
    parser.add_argument("--settle", type=float, default=0.3,
                        help="seconds after each batch before the last reading, for the "
                             "kernel's deferred work to land in the batch that caused it")
    args = parser.parse_args()
    commands = [c.split("=", 1) for c in args.commands]
    results = collections.defaultdict(list)
    with tempfile.TemporaryDirectory() as work:
        for b in range(args.batches):
            for k, (label, cmd) in enumerate(commands):
                r = batch(cmd, args.runs, args.inflight, f"{os.getpid()}x{b}x{k}", work,
                          args.settle)
                results[label].append(r)
                print(f"batch {b} {label}: {r['machine'] / args.runs:.2f} ms/run machine, "
                      f"{r['tree'] / args.runs:.2f} tree, {args.runs / r['wall']:.1f} runs/s"
                      + (" FAILED" if r["failed"] else ""), file=sys.stderr)
    report(results, args)


def report(results, args):
    n = args.runs
    print(f"{n} runs per batch, {args.inflight} in flight, {args.batches} batches each; "
          "ms of CPU per run, medians over the batches")
    classes = sorted({c for rs in results.values() for r in rs for c in r["kthreads"]
                      if statistics.median(x["kthreads"].get(c, 0) for x in rs) / n > 0.01})
    print(f"{'':10} {'runs/s':>7} {'machine':>8} {'(p25-p75)':>13} {'tree':>6} {'user':>6} "
          f"{'sys':>6} {'kthr':>6} {'others':>6} {'unseen':>6} {'idle%':>5}  "
          + " ".join(f"{c[:9]:>9}" for c in classes))
    for label, rs in results.items():
        def med(f, rs=rs):
            return statistics.median(f(r) for r in rs) / n
        machine = sorted(r["machine"] / n for r in rs)
        q = statistics.quantiles(machine, n=4) if len(machine) > 1 else machine * 3
        print(f"{label:10} {statistics.median(n / r['wall'] for r in rs):7.1f} "
              f"{statistics.median(machine):8.2f} {q[0]:6.2f}-{q[2]:6.2f} "
              f"{med(lambda r: r['tree']):6.2f} {med(lambda r: r['user']):6.2f} "
              f"{med(lambda r: r['sys']):6.2f} "
              f"{med(lambda r: sum(r['kthreads'].values())):6.2f} "
              f"{med(lambda r: r['others']):6.2f} {med(unseen):6.2f} "
              f"{statistics.median(r['idle'] for r in rs) * 100:5.1f}  "
              + " ".join(f"{med(lambda r, c=c: r['kthreads'].get(c, 0)):9.2f}"
                         for c in classes))
        if any(r["failed"] for r in rs):
            print(f"{label}: some runs failed", file=sys.stderr)


def unseen(r):
    """The machine's busy time that no thread alive at the end and no process of the tree
    accounts for: processes of other load that began and ended within the batch (and the
    ticks' sampling error)."""
    return r["machine"] - r["tree"] - r["others"] - sum(r["kthreads"].values())

if __name__ == "__main__":
    main()
