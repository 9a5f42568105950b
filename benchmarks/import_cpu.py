#!/usr/bin/env python3
"""CPU of importing pyrunc's modules in fresh interpreters, checkouts A/B, interleaved.

Each run is a fresh `PY -I -S` with the collector off, as the launcher runs pyrunc, that
appends the checkout to sys.path, imports the package `ociruntime` (which installs the
code bundle's finder where there is one), then each module named, in order, timing each
import with time.process_time_ns: a module's figure is what importing it costs on top of
those before it (its own imports included).  The checkouts alternate run by run, so drift
hits them alike.  Results are reported, never asserted.

    .venv/bin/python benchmarks/import_cpu.py --runs 100 before=/work/main after=. \\
        ociruntime.cli ociruntime.libcontainer ociruntime.libcontainer.kill

The interpreter (--python, Debian's 3.11 by default) must be the one the checkouts'
bytecode and bundles were built for (.ci/setup), or the first runs compile.
"""

import argparse
import os
import statistics
import subprocess

CHILD = r"""
import gc
gc.disable()
import sys, time
clock = time.process_time_ns
sys.path.append(sys.argv[1])
start = clock()
import ociruntime
times = [clock() - start]
for name in sys.argv[2:]:
    start = clock()
    __import__(name)
    times.append(clock() - start)
loaders = {type(sys.modules[name].__loader__).__name__ for name in sys.argv[2:]}
print(" ".join(map(str, times)), ",".join(sorted(loaders)))
"""


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkouts", nargs="+", metavar="LABEL=DIR or MODULE")
    p.add_argument("--runs", type=int, default=100)
    p.add_argument("--python", default="/usr/bin/python3.11")
    args = p.parse_args()
    checkouts = [a.split("=", 1) for a in args.checkouts if "=" in a]
    modules = [a for a in args.checkouts if "=" not in a]
    samples = {label: [] for label, _ in checkouts}
    loaders = {label: set() for label, _ in checkouts}
    for _ in range(args.runs):
        for label, tree in checkouts:
            out = subprocess.run([args.python, "-I", "-S", "-c", CHILD,
                                  os.path.abspath(tree), *modules],
                                 capture_output=True, text=True, check=True).stdout.split()
            samples[label].append([int(t) / 1000 for t in out[:-1]])
            loaders[label].add(out[-1])
    print(f"us of CPU, {args.runs} runs interleaved: median (p25-p75)")
    for j, name in enumerate(["ociruntime", *modules]):
        line = f"{name:36}"
        for label in samples:
            q = statistics.quantiles([s[j] for s in samples[label]], n=4)
            line += f"  {label} {q[1]:6.0f} ({q[0]:.0f}-{q[2]:.0f})"
        print(line)
    line = f"{'all':36}"
    for label in samples:
        q = statistics.quantiles([sum(s) for s in samples[label]], n=4)
        line += f"  {label} {q[1]:6.0f} ({q[0]:.0f}-{q[2]:.0f})"
    print(line)
    for label in samples:
        print(f"{label}: loaders {' '.join(sorted(loaders[label]))}")


if __name__ == "__main__":
    main()
