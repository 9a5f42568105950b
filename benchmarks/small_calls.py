#!/usr/bin/env python3
"""CPU of pyrunc's small calls (start, state, kill, delete), launchers A/B, interleaved.

Each round creates one `sleep 1000` container per launcher (untimed), then times its
start, state, kill (KILL) and, once the process is gone, delete, each as the task-clock
of `perf stat` (the call's CPU, its children's too): on a shared, busy host CPU time moves
far less than wall time.  The launchers alternate call by call, so drift hits them alike.
`--floor PY` adds the bare interpreter as pyrunc runs it (`PY -I -S -c 'import posix;
posix._exit(0)'`, timed beside each state).  Results are reported, never asserted; every
container made is deleted (--force) at the end, on error or Ctrl-C too.

    python3 benchmarks/small_calls.py --rounds 40 --floor /usr/bin/python3.11 \\
        before=OTHER/.venv/bin/pyrunc after=.venv/bin/pyrunc

Run as root, with perf installed; the bundle is busybox's (bench.py's make_bundles).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench import make_bundles  # noqa: E402

CALLS = ("start", "state", "kill", "delete")


def task_clock(argv):
    """The ms of CPU perf stat counts for argv (which must succeed)."""
    out = subprocess.run(["perf", "stat", "-x,", "-e", "task-clock", "--", *argv],
                         stdin=subprocess.DEVNULL, capture_output=True, text=True,
                         check=False)
    if out.returncode:
        raise SystemExit(f"{' '.join(argv)}: {out.stderr.strip()}")
    for line in out.stderr.splitlines():
        if "task-clock" in line:
            return float(line.split(",")[0])
    raise SystemExit(f"perf stat printed no task-clock: {out.stderr.strip()}")


def wait_gone(pid, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rpartition(")")[2].split()[0] in ("Z", "X"):
                    return
        except FileNotFoundError:
            return
        time.sleep(0.005)
    raise SystemExit(f"process {pid} did not exit after KILL")


def one_round(exe, root, bundle, cid, floor, results, label):
    subprocess.run([exe, "--root", root, "create", "-b", bundle, cid], check=True,
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    state = subprocess.run([exe, "--root", root, "state", cid], check=True,
                           capture_output=True).stdout
    pid = json.loads(state)["pid"]
    results[label, "start"].append(task_clock([exe, "--root", root, "start", cid]))
    results[label, "state"].append(task_clock([exe, "--root", root, "state", cid]))
    if floor:
        results["floor", "state"].append(
            task_clock([floor, "-I", "-S", "-c", "import posix; posix._exit(0)"]))
    results[label, "kill"].append(task_clock([exe, "--root", root, "kill", cid, "KILL"]))
    wait_gone(pid)
    results[label, "delete"].append(task_clock([exe, "--root", root, "delete", cid]))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("launchers", nargs="+", metavar="LABEL=PYRUNC")
    p.add_argument("--rounds", type=int, default=40)
    p.add_argument("--floor", metavar="PY", help="also time this interpreter's bare start")
    p.add_argument("--busybox", default="/bin/busybox")
    args = p.parse_args()
    launchers = [item.split("=", 1) for item in args.launchers]
    results = {(label, call): [] for label, _ in launchers for call in CALLS}
    results["floor", "state"] = []
    with tempfile.TemporaryDirectory(prefix="pyrunc-small-") as work:
        bundle = make_bundles(work, args.busybox)["lifecycle"]
        made = []
        try:
            for n in range(args.rounds):
                for i, (label, exe) in enumerate(launchers):
                    root, cid = os.path.join(work, f"root{i}"), f"small{n}"
                    made.append((exe, root, cid))
                    one_round(exe, root, bundle, cid, args.floor if i == 0 else None, results,
                              label)
        finally:
            for exe, root, cid in made:
                subprocess.run([exe, "--root", root, "delete", "--force", cid],
                               capture_output=True, check=False)
    print(f"ms of CPU (perf stat task-clock), {args.rounds} rounds: median (p25-p75)")
    for call in CALLS:
        cells = []
        for label in [lab for lab, _ in launchers] + ["floor"]:
            values = sorted(results.get((label, call), ()))
            if values:
                q = len(values) // 4
                cells.append(f"{label} {statistics.median(values):5.2f} "
                             f"({values[q]:.2f}-{values[-1 - q]:.2f})")
        print(f"  {call:7s} " + "   ".join(cells))


if __name__ == "__main__":
    main()
